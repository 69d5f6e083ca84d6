"""Worksheet items are questions a clinician can answer, and the open ones are marked.

Each question's text comes from core/questions.py (one question per fact, its negated form where
a "yes" means the fact is false); the criterion's statement stays visible in the citation under
it. A question no SDC population expression answers starts that citation with the open mark. Nothing a client
reads back changed: tests/worksheet_structure.json pins every item's linkId, type, answer
options, enableWhen and repeats as they were before the wording changed (core/attestation.py
reads answers by linkId); regenerate it only when a policy's criteria change
(`python -m tests.test_questions > tests/worksheet_structure.json`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.core.facts import CATALOGUE
from cds_service.core.population import INITIAL_EXPRESSION
from cds_service.core.questionnaire import (
    DISPLAY_CATEGORY,
    OPEN_MARK,
    Worksheet,
    fact_value,
    worksheets,
)
from cds_service.core.questions import ASKED, ASKED_NEGATED, question
from cds_service.policy_store import load

SHEETS = worksheets(load().policies)
STRUCTURE = Path(__file__).parent / "worksheet_structure.json"
KEPT = ("linkId", "type", "answerOption", "enableWhen", "repeats")


def _items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for item in items for i in (item, *_items(item.get("item", [])))]


def _questions(sheet: Worksheet) -> list[dict[str, Any]]:
    return [i for i in _items(sheet.questionnaire["item"]) if i["linkId"] in sheet.leaves]


def structure() -> dict[str, list[dict[str, Any]]]:
    """What a client reads back, per worksheet: everything but the wording."""
    return {
        sheet.id: [
            {key: item[key] for key in KEPT if key in item}
            for item in _items(sheet.questionnaire["item"])
            if item["type"] != "display"
        ]
        for sheet in SHEETS
    }


def _open(item: dict[str, Any]) -> bool:
    return not any(e["url"] == INITIAL_EXPRESSION for e in item.get("extension", []))


def test_every_fact_has_its_question_and_every_yes_no_fact_its_negated_form() -> None:
    assert set(ASKED) == set(CATALOGUE)
    assert set(ASKED_NEGATED) == {f for f, spec in CATALOGUE.items() if spec.kind == "boolean"}
    assert all(q.endswith("?") for q in (*ASKED.values(), *ASKED_NEGATED.values()))
    with pytest.raises(ValueError, match="not a yes/no fact"):
        question("hsct_type", negated=True)


@pytest.mark.parametrize("sheet", SHEETS, ids=lambda s: s.id)
def test_every_question_is_a_question_not_the_criterion_statement(sheet: Worksheet) -> None:
    for item in _questions(sheet):
        leaf = sheet.leaves[item["linkId"]]
        text, statement = item["text"], leaf.node.text
        assert text.endswith("?") and text[0].isupper(), item["linkId"]
        assert statement.rstrip(". ").lower() not in text.lower(), item["linkId"]
        [citation] = [c for c in item["item"] if c["linkId"] == item["linkId"] + ".citation"]
        shown = citation["text"].removeprefix(OPEN_MARK + " ")
        assert shown.startswith(f"Policy criterion: {statement.rstrip('. ')}. Policy: ")


@pytest.mark.parametrize("sheet", SHEETS, ids=lambda s: s.id)
def test_a_yes_means_what_it_meant_before(sheet: Worksheet) -> None:
    """A yes/no question is worded negated exactly where a yes states the fact is false."""
    checked = 0
    for item in _questions(sheet):
        leaf = sheet.leaves[item["linkId"]]
        if item["type"] != "boolean":
            assert item["text"] == ASKED[leaf.test.fact]
            continue
        yes_means = fact_value(leaf, True)
        expected = ASKED[leaf.test.fact] if yes_means is True else ASKED_NEGATED[leaf.test.fact]
        assert item["text"] == expected, item["linkId"]
        checked += 1
    assert checked == sum(CATALOGUE[x.test.fact].kind == "boolean" for x in sheet.leaves.values())


def test_negated_questions_are_asked_by_the_exclusions_that_need_them() -> None:
    items = {i["linkId"]: i for s in SHEETS for i in _questions(s)}
    nonadherence = items["centene-dli-no-nonadherence"]  # none_of: yes = no non-adherence
    assert nonadherence["text"] == ASKED_NEGATED["nonadherence"]
    assert nonadherence["text"].startswith("Can the patient adhere")
    assert (
        items["molina-hpc-follows-car-t"]["text"] == "Has the patient received CAR T-cell therapy?"
    )


@pytest.mark.parametrize("sheet", SHEETS, ids=lambda s: s.id)
def test_open_questions_and_only_they_carry_the_open_mark(sheet: Worksheet) -> None:
    for item in _questions(sheet):
        # one display child: Smart Forms shows only a question's first "instructions" child
        [shown] = item["item"]
        assert shown["linkId"] == item["linkId"] + ".citation" and shown["type"] == "display"
        [category] = [e for e in shown["extension"] if e["url"] == DISPLAY_CATEGORY]
        assert category["valueCodeableConcept"]["coding"][0]["code"] == "instructions"
        # the mark comes first, where the clinician reads, on exactly the open questions
        assert shown["text"].startswith(OPEN_MARK + " Policy criterion: ") is _open(item)
        assert shown["text"].count(OPEN_MARK) == int(_open(item)), item["linkId"]


def test_the_questions_the_record_cannot_answer_are_the_marked_ones() -> None:
    marked = {i["linkId"] for s in SHEETS for i in _questions(s) if _open(i)}
    # poor graft function needs count series with units and persistence (core/population.py)
    assert marked == {"molina-hpc-promote-engraftment", "wellmark-hpc-promote-engraftment"}


def test_what_clients_read_back_is_unchanged() -> None:
    assert structure() == json.loads(STRUCTURE.read_text())


if __name__ == "__main__":
    print(json.dumps(structure(), indent=1, sort_keys=True))  # noqa: T201
