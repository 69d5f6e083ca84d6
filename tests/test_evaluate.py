"""The pure evaluator: operators, three-valued combination, none_of, applies_if, determinations."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.core.evaluate import check, combine_all, combine_any, evaluate
from cds_service.core.model import Determination, Fact, Order, Service, Status
from cds_service.core.policy import FactTest, Policy

M, N, U, NA = Status.MET, Status.NOT_MET, Status.UNKNOWN, Status.NOT_APPLICABLE

CHECKS = [
    ({"fact": "hsct_type", "equals": "allogeneic"}, "allogeneic", M),
    ({"fact": "hsct_type", "equals": "allogeneic"}, "autologous", N),
    ({"fact": "hsct_type", "equals": "allogeneic"}, None, U),
    ({"fact": "disease_status", "in": ["relapsed", "refractory"]}, "refractory", M),
    ({"fact": "disease_status", "in": ["relapsed", "refractory"]}, "remission", N),
    ({"fact": "donor_chimerism_pct", "lt": 100}, 99.5, M),
    ({"fact": "donor_chimerism_pct", "lt": 100}, 100.0, N),
    ({"fact": "donor_chimerism_pct", "le": 5}, 5.0, M),
    ({"fact": "acute_gvhd_grade", "ge": 3}, 2.0, N),
    ({"fact": "acute_gvhd_grade", "gt": 2}, 3.0, M),
    ({"fact": "indication_icd10cm", "any_prefix": ["C92", "Z85.6"]}, ("D46.22", "C92.02"), M),
    ({"fact": "indication_icd10cm", "any_prefix": ["C92"]}, ("D46.22",), N),
    ({"fact": "prior_car_t", "equals": True}, False, N),
]


@pytest.mark.parametrize(("test", "value", "expected"), CHECKS)
def test_check(test: dict[str, Any], value: Any, expected: Status) -> None:
    assert check(FactTest.model_validate(test), Fact(value)) is expected


COMBINATIONS = [
    ([M, M], M, M), ([M, U], U, M), ([M, N], N, M), ([U, N], N, U), ([N, N], N, N),
    ([U, U], U, U), ([NA, M], M, M), ([NA, NA], NA, NA), ([NA, U], U, U),
]  # fmt: skip


@pytest.mark.parametrize(("parts", "all_of", "any_of"), COMBINATIONS)
def test_three_valued_combination(parts: list[Status], all_of: Status, any_of: Status) -> None:
    assert combine_all(parts) is all_of
    assert combine_any(parts) is any_of


class StubFacts:
    """Facts given directly (a missing name is unknown)."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def __getitem__(self, name: str) -> Fact:
        return Fact(self.values.get(name))


def policy(rule: dict[str, Any]) -> Policy:
    return Policy.model_validate({
        "id": "test", "payer": {"name": "FactTest", "aliases": ["test"]},
        "policy": {"title": "t", "number": "1", "version": "1", "version_note": "n",
                   "source_document": "x.txt", "url": "https://example.org"},
        "prior_authorization": {"value": "not-stated", "citation": "c"},
        "services": {"dli": rule, "hpc-boost": {"not_addressed": "no"}},
    })  # fmt: skip


def leaf(id_: str, **test: Any) -> dict[str, Any]:
    return {"id": id_, "text": id_, "citation": "c", "test": test}


RULE = {
    "id": "root", "text": "r", "citation": "c",
    "all_of": [leaf("allo", fact="hsct_type", equals="allogeneic"),
               {"id": "donor", "text": "d", "citation": "c", "applies_if": {"fact": "hsct_type", "equals": "allogeneic"},
                "test": {"fact": "product_source", "equals": "original-donor"}}],
    "none_of": [leaf("no-gm", fact="product_manipulation", equals="genetically-modified-product")],
}  # fmt: skip
ORDER = Order("ServiceRequest/1", Service.DLI, "38242", "cpt", date(2026, 1, 1), frozenset(), {})
GOOD = {"hsct_type": "allogeneic", "product_source": "original-donor",
        "product_manipulation": "unmanipulated-product"}  # fmt: skip

DETERMINATIONS = [
    (GOOD, Determination.MEETS, {"allo": M, "donor": M, "no-gm": M}),
    ({**GOOD, "product_manipulation": "genetically-modified-product"}, Determination.DOES_NOT_MEET, {"no-gm": N}),
    ({**GOOD, "product_manipulation": None}, Determination.NEEDS_INFORMATION, {"no-gm": U}),
    ({**GOOD, "product_source": None}, Determination.NEEDS_INFORMATION, {"donor": U}),
    ({**GOOD, "hsct_type": "autologous"}, Determination.DOES_NOT_MEET, {"allo": N, "donor": NA}),
    ({**GOOD, "hsct_type": None, "product_source": "original-donor"}, Determination.NEEDS_INFORMATION, {"donor": M}),
    ({**GOOD, "hsct_type": None, "product_source": None}, Determination.NEEDS_INFORMATION, {"donor": U}),
    # an unknown never hides a failure, and never becomes met
    ({**GOOD, "hsct_type": None, "product_manipulation": "genetically-modified-product"}, Determination.DOES_NOT_MEET, {"allo": U}),
]  # fmt: skip


@pytest.mark.parametrize(("values", "determination", "statuses"), DETERMINATIONS)
def test_determination(
    values: dict[str, Any], determination: Determination, statuses: dict[str, Status]
) -> None:
    result = evaluate(policy(RULE), Service.DLI, ORDER, StubFacts(**values))  # type: ignore[arg-type]
    assert result.determination is determination
    got = {c.id: c.status for c in result.criteria}
    assert {k: got[k] for k in statuses} == statuses
    assert [c.id for c in result.criteria] == ["allo", "donor", "no-gm"]


def test_when_unknown_not_met() -> None:
    rule = {**leaf("root-leaf", fact="hsct_type", equals="allogeneic"), "when_unknown": "not-met"}
    wrapped = {"id": "root", "text": "r", "citation": "c", "all_of": [rule]}
    result = evaluate(policy(wrapped), Service.DLI, ORDER, StubFacts())  # type: ignore[arg-type]
    assert result.determination is Determination.DOES_NOT_MEET


def test_not_addressed_service() -> None:
    result = evaluate(policy(RULE), Service.HPC_BOOST, ORDER, StubFacts())  # type: ignore[arg-type]
    assert result.determination is Determination.NOT_ADDRESSED
    assert result.criteria == ()


# review_if: where the policy leaves a case to a reviewer, a not-met becomes unknown
REVIEWED: dict[str, Any] = {
    "id": "root", "text": "r", "citation": "c",
    "all_of": [{**leaf("relapsed", fact="disease_status", **{"in": ["relapsed", "refractory"]}),
                "review_if": {"fact": "disease_status", "equals": "persistent"},
                "reading": "persistent disease is for the reviewer", "to_settle": "attach the report"}],
}  # fmt: skip
REVIEWS = [
    ("relapsed", Determination.MEETS, M),
    ("persistent", Determination.NEEDS_INFORMATION, U),  # the reviewer's case: never not-met
    ("remission", Determination.DOES_NOT_MEET, N),  # positive evidence against: stays not-met
    (None, Determination.NEEDS_INFORMATION, U),
]


@pytest.mark.parametrize(("status", "determination", "leaf_status"), REVIEWS)
def test_review_if_turns_not_met_into_unknown(
    status: str | None, determination: Determination, leaf_status: Status
) -> None:
    facts = StubFacts(disease_status=status)
    result = evaluate(policy(REVIEWED), Service.DLI, ORDER, facts)  # type: ignore[arg-type]
    assert result.determination is determination
    assert result.criteria[0].status is leaf_status


def test_review_if_needs_a_reading_and_guidance() -> None:
    bare = dict(REVIEWED["all_of"][0])
    del bare["reading"]
    with pytest.raises(ValueError, match="review_if needs a reading"):
        policy({**REVIEWED, "all_of": [bare]})


# an any_of branch that cannot change the answer is superseded, with everything inside it
BRANCHES: dict[str, Any] = {
    "id": "root", "text": "r", "citation": "c",
    "any_of": [leaf("a", fact="hsct_type", equals="allogeneic"),
               {"id": "b", "text": "b", "citation": "c",
                "all_of": [{**leaf("b1", fact="donor_chimerism_pct", lt=90), "to_settle": "chimerism"},
                           leaf("b2", fact="prior_car_t", equals=True)]}],
}  # fmt: skip


def test_a_met_branch_supersedes_the_others() -> None:
    met = evaluate(policy(BRANCHES), Service.DLI, ORDER, StubFacts(hsct_type="allogeneic"))  # type: ignore[arg-type]
    assert {c.id: c.superseded for c in met.criteria} == {
        "a": False,
        "b": True,
        "b1": True,
        "b2": True,
    }
    assert met.unknown == ()  # b1 is unknown, but asking for it cannot change the answer
    open_ = evaluate(policy(BRANCHES), Service.DLI, ORDER, StubFacts(hsct_type="autologous"))  # type: ignore[arg-type]
    assert not any(c.superseded for c in open_.criteria)
    assert [c.id for c in open_.unknown] == ["b1"]
