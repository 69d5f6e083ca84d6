"""Every worksheet with its pre-filled response in CSIRO Smart Forms, a standard SDC renderer.

For every fixture and every Questionnaire that `$questionnaire-package` returns for its order,
@aehrc/smart-forms-renderer (tests/renderer, bundled by esbuild into a temporary folder on each
run) builds the form from the Questionnaire and the service's QuestionnaireResponse in Debian's
Chromium. The test reads back the response the renderer holds (its getResponse()) and the page it
shows, and asserts that no pre-filled answer is dropped or changed (linkId + value), that each
answered question is on screen with its answer, that each shown question's text (the question a
clinician answers) and each question's and group's policy citation is visible text, and that
the mark on a question the record cannot answer ("The record cannot answer this") is visible. All renders run in one page load.

The service pre-fills no question whose enableWhen is false on the pre-filled response (a
chimerism question after an autologous graft; a question that waits for the transplant question
the record leaves open): Smart Forms would hide such an answer and leave it out on saving.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, sync_playwright

from cds_service.core.model import Service
from cds_service.core.questionnaire import OPEN_MARK
from cds_service.scenarios import draft_orders, load_scenarios
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_questionnaires import package_parameters

RENDERER = Path(__file__).parent / "renderer"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
SHOT = ("relapsed-aml-allo-mac", Service.DLI, "molina-dli")  # the worksheet in docs/


def _items(items: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [i for item in items or [] for i in (item, *_items(item.get("item")))]


def _values(item: dict[str, Any]) -> list[tuple[str, Any]]:
    """An item's answers as (value[x] name, value); a coding as (system, code)."""
    found = []
    for answer in item.get("answer", []):
        name = next(k for k in answer if k.startswith("value"))
        value = answer[name]
        found.append((name, (value["system"], value["code"]) if name == "valueCoding" else value))
    return found


def _answers(response: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    return {i["linkId"]: _values(i) for i in _items(response.get("item")) if i.get("answer")}


def _jobs(client: TestClient) -> list[dict[str, Any]]:
    """Every (fixture, Questionnaire) the service packages: the worksheet and its pre-fill."""
    jobs = []
    for scenario in load_scenarios():
        for service in Service:
            if not draft_orders(scenario.bundle(), (service,)):
                continue
            body = client.post(PACKAGE, json=package_parameters(scenario.id, service)).json()
            for parameter in body["parameter"]:
                if parameter["name"] == "PackageBundle":
                    entries = [e["resource"] for e in parameter["resource"]["entry"]]
                    questionnaire = next(r for r in entries if r["resourceType"] == "Questionnaire")
                    response = next(r for r in entries if r["resourceType"] != "Questionnaire")
                    key = f"{scenario.id}/{service.value}/{questionnaire['id']}"
                    jobs.append({"key": key, "questionnaire": questionnaire, "response": response})
    return jobs


@pytest.fixture(scope="module")
def page_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The renderer page, bundled now from tests/renderer (so it is never stale)."""
    if shutil.which("node") is None or not (RENDERER / "node_modules" / "@aehrc").is_dir():
        if os.environ.get("CI") == "true":
            raise AssertionError("node and tests/renderer's npm ci are needed (scripts/test)")
        pytest.skip("node or tests/renderer/node_modules missing (cd tests/renderer && npm ci)")
    folder = tmp_path_factory.mktemp("renderer")
    subprocess.run(["node", "build.mjs", str(folder)], cwd=RENDERER, check=True, timeout=300)
    return folder


@pytest.fixture(scope="module")
def renderer(page_folder: Path) -> Iterator[Page]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing; install it: apt-get install -y chromium chromium-driver"
        if os.environ.get("CDS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto((page_folder / "index.html").as_uri())
        page.wait_for_selector("body.ready", state="attached")
        yield page
        browser.close()
    assert errors == [], f"script errors on the renderer page: {errors}"


@pytest.fixture(scope="module")
def jobs(client: TestClient) -> list[dict[str, Any]]:
    return _jobs(client)


@pytest.fixture(scope="module")
def rendered(renderer: Page, jobs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    """(job, what Smart Forms held and showed) for every job, rendered in one page load."""
    results: list[dict[str, Any]] = renderer.evaluate("jobs => window.renderWorksheets(jobs)", jobs)
    pairs = list(zip(jobs, results, strict=True))
    assert [(job["key"], result["error"]) for job, result in pairs if "error" in result] == []
    return pairs


def _enabled(item: dict[str, Any], answers: dict[str, list[tuple[str, Any]]]) -> bool:
    """enableWhen as the worksheets use it: "=" on a coding (core/questionnaire.py)."""
    for when in item.get("enableWhen", []):
        assert when["operator"] == "=" and "answerCoding" in when  # the only form generated
        wanted = ("valueCoding", (when["answerCoding"]["system"], when["answerCoding"]["code"]))
        if wanted not in answers.get(when["question"], []):
            return False
    return True


def _shows(item: dict[str, Any], answer: tuple[str, Any], seen: dict[str, Any]) -> bool:
    """Whether the rendered question shows this answer (its controls or its text)."""
    name, value = answer
    controls = seen["controls"]
    if name == "valueBoolean":
        return any(c["type"] == "radio" and c["checked"] and c["value"] == str(value).lower()
                   for c in controls)  # fmt: skip
    if name in ("valueDecimal", "valueInteger"):
        return any(c["value"].strip() and float(c["value"]) == value for c in controls)
    if name == "valueString":
        return any(c["value"] == value for c in controls)
    if name == "valueCoding":
        option = next(o["valueCoding"] for o in item["answerOption"]
                      if (o["valueCoding"]["system"], o["valueCoding"]["code"]) == value)  # fmt: skip
        return str(option["display"]) in seen["text"]
    raise AssertionError(f"no check for {name}")


def test_smart_forms_keeps_every_prefilled_answer(rendered: list[Any]) -> None:
    """getResponse() after rendering holds exactly the pre-filled answers, item by item."""
    tally: Counter[str] = Counter()
    dropped, changed, added = [], [], []
    for job, result in rendered:
        ours, held = _answers(job["response"]), _answers(result["response"])
        tally["renders"] += 1
        for link, values in ours.items():
            tally["answers checked"] += len(values)
            if link not in held:
                dropped.append((job["key"], link))
            elif held[link] != values:
                changed.append((job["key"], link, values, held[link]))
        added += [(job["key"], link) for link in held if link not in ours]
    print(f"\nSmart Forms render check: {dict(tally)}, dropped {len(dropped)}")  # noqa: T201
    assert tally["renders"] >= 300 and tally["answers checked"] >= 2000
    assert (dropped, changed, added) == ([], [], [])


def test_smart_forms_shows_every_answered_question_with_its_answer(rendered: list[Any]) -> None:
    tally: Counter[str] = Counter()
    unseen = []
    for job, result in rendered:
        answers, saved = _answers(job["response"]), _answers(result["saved"])
        questions = {i["linkId"]: i for i in _items(job["questionnaire"]["item"])}
        for link, values in answers.items():
            seen, item = result["items"][link], questions[link]
            assert _enabled(item, answers), (job["key"], link)  # else hidden, not saved
            assert saved[link] == values, (job["key"], link)
            tally["shown"] += len(values)
            if not seen["visible"] or not all(_shows(item, v, seen) for v in values):
                unseen.append((job["key"], link, values))
    print(f"\nSmart Forms shows: {dict(tally)}")  # noqa: T201
    assert unseen == []
    assert tally["shown"] >= 2000


def test_every_shown_question_and_group_shows_its_policy_citation(rendered: list[Any]) -> None:
    tally: Counter[str] = Counter()
    missing = []
    for job, result in rendered:
        answers = _answers(job["response"])
        items = _items(job["questionnaire"]["item"])
        parents = {c["linkId"]: i for i in items for c in i.get("item", [])}
        for citation in (i for i in items if i["type"] == "display"):
            parent, seen = parents[citation["linkId"]], result["items"]
            if not _enabled(parent, answers):
                tally["under a hidden question"] += 1
                continue
            kind = "group" if parent["type"] == "group" else "question"
            tally[f"{kind} citations"] += 1
            # the open mark (no population expression answers the question) leads its citation
            tally["open marks"] += citation["text"].startswith(OPEN_MARK)
            # a group's citation is its own display item; a question's is shown inside its box
            box = seen[citation["linkId"]] if kind == "group" else seen[parent["linkId"]]
            if not box["visible"] or citation["text"] not in box["text"]:
                missing.append((job["key"], citation["linkId"]))
    print(f"\nSmart Forms citations: {dict(tally)}, missing {len(missing)}")  # noqa: T201
    assert missing == []
    assert tally["question citations"] >= 2000 and tally["group citations"] >= 100
    assert tally["open marks"] >= 10


def test_every_shown_question_shows_its_question_text(rendered: list[Any]) -> None:
    """The question a clinician answers (core/questions.py) is what Smart Forms shows."""
    tally: Counter[str] = Counter()
    missing = []
    for job, result in rendered:
        answers = _answers(job["response"])
        for item in _items(job["questionnaire"]["item"]):
            if item["type"] in ("group", "display") or not _enabled(item, answers):
                continue
            tally[item["type"]] += 1
            seen = result["items"][item["linkId"]]
            if not seen["visible"] or item["text"] not in seen["text"]:
                missing.append((job["key"], item["linkId"]))
    print(f"\nSmart Forms question texts: {dict(tally)}, missing {len(missing)}")  # noqa: T201
    assert missing == []
    assert tally["boolean"] >= 100 and tally["choice"] >= 1000


def test_a_rendered_worksheet_screenshot(renderer: Page, jobs: list[dict[str, Any]]) -> None:
    """One worksheet left on screen, for docs/smart-forms-worksheet.png (copied by hand)."""
    scenario, service, sheet = SHOT
    [job] = [j for j in jobs if j["key"] == f"{scenario}/{service.value}/{sheet}"]
    [result] = renderer.evaluate("jobs => window.renderWorksheets(jobs, true)", [job])
    assert "error" not in result
    citation = next(
        i["text"] for i in _items(job["questionnaire"]["item"]) if i["type"] == "display"
    )
    assert renderer.get_by_text(citation, exact=True).first.is_visible()
    # MUI's fade-in done (an endless animation, such as a spinner, never finishes)
    finite = "a => a.playState !== 'running' || a.effect.getTiming().iterations === Infinity"
    renderer.wait_for_function(f"() => document.getAnimations().every({finite})")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    renderer.screenshot(path=str(ARTIFACTS / "smart-forms-worksheet.png"))  # the first screen
    assert json.dumps(result["response"]).count('"answer"') >= 5
