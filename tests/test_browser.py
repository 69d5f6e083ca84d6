"""The sandbox page in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright;
nothing is downloaded): the real service runs under uvicorn on an ephemeral loopback port.

Screenshots go to artifacts/browser/. Without Chromium these tests skip, except where
CDS_REQUIRE_BROWSER=1 (set by .ci/run), where a missing browser fails them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from cds_service.compose import create_dev_app
from cds_service.core.questionnaire import OPEN_MARK
from cds_service.core.questions import ASKED
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings
from tests.test_fhir_validation import assert_valid_r4

CHROMIUM = Path(os.environ.get("CDS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
# The closed network refuses Chromium's background connections; these flags stop them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def base_url(knowledge: Knowledge) -> Iterator[str]:
    """The real app under uvicorn on 127.0.0.1 and a port the OS picks."""
    config = uvicorn.Config(create_dev_app(Settings(), knowledge), host="127.0.0.1", port=0,
                            log_level="warning", lifespan="off")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        threading.Event().wait(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing; install it: apt-get install -y chromium chromium-driver"
        if os.environ.get("CDS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as playwright:  # each launch gets a fresh, empty profile
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.goto("/sandbox")
    tab.wait_for_selector("body.ready")
    yield tab
    context.close()
    assert errors == [], f"script errors on the page: {errors}"


def fire(page: Page, scenario: str, services: str = "dli", payer: str = "fixture",
         hook: str = "order-sign") -> None:  # fmt: skip
    page.select_option("#scenario", scenario)
    page.select_option("#services", services)
    page.select_option("#hook", hook)
    page.select_option("#payer", payer)
    page.click("#fire")
    page.wait_for_selector(f'#fire-result[data-fired="{scenario}"]:not([aria-busy])')


def shot(page: Page, name: str, selector: str | None = None) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = page.locator(selector) if selector else page
    target.screenshot(path=str(ARTIFACTS / f"{name}.png"))


# One scenario per determination, each with its fixture's own payer (order-sign).
DETERMINATIONS = [
    ("relapsed-aml-allo-mac", "dli", "meets-criteria", "info", "Meets criteria",
     "Covered (billing code 38242) under Coverage/ram-cov."),
    ("prophylactic-dli-ric", "hpc-boost", "does-not-meet-criteria", "warning",
     "Does not meet criteria", "Not covered (billing code 38243) under Coverage/pric-cov."),
    ("acute-gvhd-ungraded", "dli", "needs-information", "warning", "Needs information",
     "Clinical documentation is needed."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("scenario", "services", "determination", "indicator", "shown", "coverage"), DETERMINATIONS
)
def test_firing_a_scenario_shows_cards_checklist_and_coverage(
    page: Page, scenario: str, services: str, determination: str, indicator: str, shown: str,
    coverage: str,
) -> None:  # fmt: skip
    fire(page, scenario, services)
    cards = page.locator(".cds-card")
    assert cards.count() == 1
    card = cards.first
    assert card.get_attribute("data-indicator") == indicator
    phrase = {"meets-criteria": "meets",
              "does-not-meet-criteria": "does not meet",
              "needs-information": "needs documenting"}[determination]  # fmt: skip
    assert phrase in card.locator(".card-summary").inner_text()
    assert card.locator(".card-detail li").count() >= 3  # the Markdown checklist became a list
    assert card.locator(".card-link").count() >= 1
    cell = page.locator("td.determination")
    assert cell.count() == 1 and cell.inner_text() == shown
    statuses = page.locator(".criterion").evaluate_all("items => items.map(i => i.dataset.status)")
    wanted = {"meets-criteria": "met", "does-not-meet-criteria": "not-met",
              "needs-information": "unknown"}[determination]  # fmt: skip
    assert wanted in statuses
    if determination == "does-not-meet-criteria":
        assert card.locator("select.override-reason option").count() == 4  # prompt + 3 reasons
    assert coverage in page.locator(".coverage-section").inner_text()
    shot(page, f"{scenario}-{services}", "#fire-result")


def test_all_payer_comparison_for_relapsed_aml(page: Page) -> None:
    fire(page, "relapsed-aml-allo-mac", payer="none", hook="order-select")
    table = page.locator("table.comparison")
    assert table.count() == 1
    headers = table.locator("th .policy-id").all_inner_texts()
    assert headers == ["anthem-cg-trans-03", "bcbsms-l.2.03.402", "centene-cp.mp.101",
                       "molina-mcp-210", "wellmark-07.03.13"]  # fmt: skip
    assert table.locator("td.determination").all_inner_texts() == ["Meets criteria"] * 5
    molina = table.locator('td.criteria-cell[data-policy="molina-mcp-210"]')
    assert (
        molina.locator('[data-criterion="molina-dli-mixed-chimerism"]').get_attribute("data-status")
        == "met"
    )
    assert page.locator(".cds-card").count() == 5
    assert page.locator(".coverage-section").count() == 0  # no Coverage: no CRD coverage info
    shot(page, "relapsed-aml-all-payers", ".comparison-section")
    shot(page, "relapsed-aml-all-payers-page")


def test_raw_request_and_response_are_in_collapsible_panels(page: Page) -> None:
    fire(page, "relapsed-aml-allo-mac", services="both", hook="order-select")
    panels = page.locator("details.raw")
    assert panels.count() == 2
    assert not panels.first.locator("pre").is_visible()  # collapsed until opened
    panels.first.locator("summary").click()
    request = json.loads(panels.first.locator("pre").inner_text())
    assert request["hook"] == "order-select"
    assert request["context"]["selections"] == ["ServiceRequest/ram-dli", "ServiceRequest/ram-hpc"]
    assert "POST /cds-services/dli-hpc-order-select" in panels.first.locator("summary").inner_text()
    panels.nth(1).locator("summary").click()
    response = json.loads(panels.nth(1).locator("pre").inner_text())
    assert len(response["cards"]) == page.locator(".cds-card").count() >= 2
    assert "systemActions" not in response  # order-select: cards only


def test_prefetch_none_is_offered_when_the_fixture_server_is_hosted(page: Page) -> None:
    options = page.locator("#prefetch option")
    assert options.count() == 2
    assert options.nth(1).get_attribute("value") == "none" and not options.nth(1).is_disabled()


MALICIOUS: dict[str, Any] = {
    "cards": [
        {
            "summary": "<img src=x onerror=window.pwned=1> summary",
            "indicator": "critical",
            "source": {"label": "<script>window.pwned=2</script>"},
            "detail": "**Bold** and *italic* \\*not italic\\*\n"
            "- level one\n  - level two <img src=x onerror=window.pwned=3>\n"
            "    - level three\n"
            "- [click](javascript:window.pwned=4) and [policy](https://example.org/p)\n\n"
            '<script>window.pwned=5</script><a href="javascript:window.pwned=6">raw</a>',
            "links": [
                {"label": "bad", "url": "javascript:window.pwned=7", "type": "absolute"},
                {"label": "good", "url": "https://example.org/", "type": "absolute"},
            ],
            "suggestions": [{"label": "Add a note", "actions": []}],
        },
        {"summary": "x" * 150, "indicator": "urgent", "source": {}},
    ]
}


def test_card_preview_renders_safely(page: Page) -> None:
    page.goto("/sandbox#preview")
    page.fill("#preview-input", json.dumps(MALICIOUS))
    page.click("#preview-render")
    result = page.locator("#preview-result")
    result.locator(".cds-card").first.wait_for()
    assert page.evaluate("window.pwned") is None
    assert result.locator("img, script, iframe").count() == 0
    hrefs = result.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/p", "https://example.org/"]
    first = result.locator(".cds-card").first
    assert "<img src=x" in first.locator(".card-summary").inner_text()  # shown as text
    detail = first.locator(".card-detail")
    assert detail.locator("strong").inner_text() == "Bold"
    assert detail.locator("em").inner_text() == "italic"
    assert "*not italic*" in detail.inner_text()
    assert detail.locator("ul ul ul li").inner_text() == "level three"
    assert "<script>window.pwned=5</script>" in detail.inner_text()
    problems = result.locator(".cds-card").nth(1).locator(".card-problems").inner_text()
    assert "150 characters" in problems and "not info, warning or critical" in problems
    assert "source.label is required" in problems
    shot(page, "card-preview", "#preview-result")


def test_card_preview_says_what_is_wrong_with_bad_input(page: Page) -> None:
    page.goto("/sandbox#preview")
    page.fill("#preview-input", "{not json")
    page.click("#preview-render")
    assert "Not valid JSON" in page.locator("#preview-result .error").inner_text()
    page.fill("#preview-input", '{"cards": "none"}')
    page.click("#preview-render")
    assert 'needs a "cards" array' in page.locator("#preview-result .error").inner_text()


def test_a_question_the_record_cannot_answer_is_marked_on_the_worksheet(page: Page) -> None:
    """Poor graft function has no SDC population expression: the sandbox says so under it."""
    fire(page, "short-neutropenia-after-transplant", services="hpc-boost", payer="molina-mcp-210")
    page.click(".cds-card .open-worksheet")
    page.wait_for_selector('form.worksheet[data-questionnaire="molina-hpc"]')
    marked = page.locator('[data-link-id="molina-hpc-promote-engraftment"] .ws-citation')
    assert marked.inner_text().startswith(OPEN_MARK + " Policy criterion: Promotion of engraftment")
    citations = page.locator(".ws-citation").all_inner_texts()
    assert sum(OPEN_MARK in c for c in citations) == 1  # every other question has an expression
    label = page.locator('[data-link-id="molina-hpc-promote-engraftment"] label').inner_text()
    assert label.endswith(ASKED["poor_graft_function"]), label


def test_the_worksheet_loop_turns_needs_information_into_a_determination(page: Page) -> None:
    """Issue 13: fire, open the pre-filled worksheet, answer the open item, submit (the sandbox
    FHIR server stores the QuestionnaireResponse), fire again, read the new determination."""
    fire(page, "prophylactic-dli-ric", payer="molina-mcp-210")
    assert page.locator("td.determination").inner_text() == "Needs information"
    page.click(".cds-card .open-worksheet")
    page.wait_for_selector('form.worksheet[data-questionnaire="molina-dli"]')
    # what the record settles is pre-filled and read-only; the open question is not
    settled = page.locator('[data-link-id="molina-dli-allogeneic-hsct"] select')
    assert settled.is_disabled() and settled.input_value() == "allogeneic"
    assert page.locator('[data-link-id="molina-dli-allogeneic-hsct"] .ws-origin').count() == 1
    open_item = page.locator('[data-link-id="molina-dli-planned-prevention"] select')
    assert open_item.is_enabled() and open_item.input_value() == ""
    # each question says where its criterion stands, in the card's words
    word = '[data-link-id="{}"] .ws-status-word'
    assert page.locator(word.format("molina-dli-planned-prevention")).inner_text().strip() == "Unknown:"
    assert page.locator(word.format("molina-dli-allogeneic-hsct")).inner_text().strip() == "Met:"
    # the item asks a question (core/questions.py); the criterion it answers is shown under it
    box = page.locator('[data-link-id="molina-dli-planned-prevention"]')
    assert box.locator("label").inner_text().endswith(ASKED["high_relapse_risk_attested"])
    citation = box.locator(".ws-citation").inner_text()
    assert citation.startswith("Policy criterion: A planned strategy to prevent relapse"), citation
    shot(page, "worksheet-molina-dli", "#worksheet")
    open_item.select_option("true")
    with page.expect_request(lambda r: r.method == "POST" and "/api/worksheet" in r.url) as posted:
        page.click('form.worksheet button[type="submit"]')
    page.wait_for_selector('form.worksheet[data-submitted="true"]')
    assert_valid_r4(posted.value.post_data_json or {})  # the completed worksheet the page wrote
    status = page.locator(".ws-status").inner_text()
    assert status.startswith("Stored as QuestionnaireResponse/ws-"), status
    page.click("#fire")
    page.wait_for_selector('#fire-result[data-fired="prophylactic-dli-ric"]:not([aria-busy])')
    assert page.locator("td.determination").inner_text() == "Meets criteria"
    detail = page.locator(".cds-card .card-detail").inner_text()
    assert "Attested by" in detail and "QuestionnaireResponse/" not in detail  # words, not ids
    assert page.locator(".cds-card .open-worksheet").count() == 0  # nothing left to complete
    shot(page, "worksheet-after", "#fire-result")


# --- issue 21: what the clinician sees ------------------------------------------------------------
def test_the_tabs_switch(page: Page) -> None:
    assert page.locator("#fire-tab").is_visible() and not page.locator("#preview-tab").is_visible()
    page.click("#tab-preview")
    page.wait_for_selector("#preview-tab", state="visible")
    # `hidden` beats .layout{display:grid}: the fire form is gone, not merely covered
    page.wait_for_selector("#fire-tab", state="hidden", timeout=2000)
    assert page.locator("#fire-tab").evaluate("e => getComputedStyle(e).display") == "none"
    page.click("#tab-fire")
    page.wait_for_selector("#preview-tab", state="hidden", timeout=2000)
    assert page.locator("#fire-tab").is_visible()


def test_firing_another_patient_closes_the_open_worksheet(page: Page) -> None:
    fire(page, "prophylactic-dli-ric", payer="molina-mcp-210")
    page.click(".cds-card .open-worksheet")
    page.wait_for_selector("form.worksheet")
    fire(page, "relapsed-aml-allo-mac")
    assert not page.locator("#worksheet").is_visible()
    assert page.locator("form.worksheet").count() == 0  # nothing left to submit for the last patient


def test_worksheets_belong_to_the_sandbox_session(browser: Browser, base_url: str) -> None:
    """One tester's submitted worksheet does not change another's answers (nor the README loop)."""
    pages = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
        tab = context.new_page()
        tab.goto("/sandbox")
        tab.wait_for_selector("body.ready")
        pages.append(tab)
    first, second = pages
    fire(first, "prophylactic-dli-ric", payer="molina-mcp-210")
    first.click(".cds-card .open-worksheet")
    first.locator('[data-link-id="molina-dli-planned-prevention"] select').select_option("true")
    first.click('form.worksheet button[type="submit"]')
    first.wait_for_selector('form.worksheet[data-submitted="true"]')
    fire(first, "prophylactic-dli-ric", payer="molina-mcp-210")
    assert first.locator("td.determination").inner_text() == "Meets criteria"
    fire(second, "prophylactic-dli-ric", payer="molina-mcp-210")
    assert second.locator("td.determination").inner_text() == "Needs information"
    for tab in pages:
        tab.context.close()


def test_the_card_at_side_panel_width_shows_the_next_step_first(browser: Browser, base_url: str) -> None:
    context = browser.new_context(viewport={"width": 480, "height": 800}, base_url=base_url)
    tab = context.new_page()
    tab.goto("/sandbox")
    tab.wait_for_selector("body.ready")
    fire(tab, "prophylactic-dli-ric", payer="molina-mcp-210")
    assert tab.evaluate("document.documentElement.scrollWidth") <= 480  # no sideways scrolling
    assert tab.evaluate("window.scrollY") == 0
    step = tab.locator(".cds-card .card-detail p").first
    assert step.inner_text().startswith("Next step:")
    box = step.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 800, box  # on the first screen
    shot(tab, "card-480px")
    context.close()


def _authorize(app: Page, patient: str | None = None) -> None:
    """The fixture EHR's consent page (a standalone launch also picks the patient)."""
    app.wait_for_selector("#approve")
    if patient is not None:
        app.select_option("#patient", patient)
    app.click("#approve")
    app.wait_for_selector("body[data-loaded]")


def test_launch_to_answer(page: Page) -> None:
    """Fire, follow the card's `smart` link, authorize, see the timeline, answer the worksheet,
    submit it to the EHR (with the app's own SMART token), fire again: the answer changed."""
    fire(page, "relapse-before-transplant-only")
    assert "needs documenting" in page.locator(".card-summary").first.inner_text()
    issued: list[str] = []  # access tokens the fixture EHR's /smart/token gave the app
    used: set[str] = set()  # Authorization headers the app sent to the EHR's FHIR API

    def seen(response: Any) -> None:
        if response.url.split("?")[0].endswith("/smart/token") and response.ok:
            issued.append(response.json()["access_token"])

    def sent(request: Any) -> None:
        public = ("/smart/", "/.well-known/")  # discovery, authorize and token need no token
        if "/sandbox/fhir/" in request.url and not any(p in request.url for p in public) \
                and request.method != "OPTIONS":
            used.add(request.headers.get("authorization", ""))

    page.context.on("response", seen)
    page.context.on("request", sent)
    with page.context.expect_page() as opened:
        page.click(".cds-card .launch-app")
    app = opened.value
    _authorize(app)
    assert app.locator("#timeline svg .event-transplant").count() >= 1
    assert app.locator("#timeline svg .series-chimerism circle").count() >= 1
    assert app.locator("#comparison td").count() == 5
    shot(app, "smart-app-launched")
    app.locator('[data-link-id="molina-dli-planned-prevention"] select').select_option("true")
    with app.expect_request(
        lambda r: r.method == "POST" and r.url.split("?")[0].endswith("/QuestionnaireResponse")
    ) as posted:
        app.click('#worksheet form.worksheet button[type="submit"]')
    app.wait_for_selector('form.worksheet[data-submitted="true"]')
    assert_valid_r4(posted.value.post_data_json or {})  # the completed worksheet the app wrote to the EHR
    assert app.locator(".ws-status").inner_text().startswith("Saved to the EHR as QuestionnaireResponse/")
    app.click("#recheck")
    app.wait_for_selector('body[data-loaded="2"]')
    # every FHIR call of the app (reads and the write) carried the token it got by the SMART flow
    assert len(issued) == 1 and used == {f"Bearer {issued[0]}"}, used
    assert app.locator('#own-payer [data-policy="molina-mcp-210"]').get_attribute("data-determination") == "meets-criteria"
    page.bring_to_front()
    fire(page, "relapse-before-transplant-only")
    assert page.locator("td.determination").inner_text() == "Meets criteria"


@pytest.mark.parametrize("scenario", ["relapsed-aml-allo-mac", "acute-gvhd-grade-3",
                                      "short-neutropenia-after-transplant"])  # fmt: skip
def test_the_timeline_is_drawn(page: Page, base_url: str, scenario: str) -> None:
    """Standalone launch against the fixture EHR; the screenshots are in docs/ (README)."""
    page.goto(f"/smart/launch?iss={base_url}/sandbox/fhir")
    _authorize(page, scenario)
    svg = page.locator("#timeline svg")
    assert svg.locator(".event-transplant").count() >= 1 and svg.locator(".event-order").count() >= 1
    assert svg.locator(".series circle").count() >= 2
    shot(page, f"timeline-{scenario}", "#timeline")


def test_the_api_docs_page_renders_offline(page: Page) -> None:
    """/docs draws the OpenAPI page from our own Swagger UI copy: nothing from a CDN."""
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if "127.0.0.1" not in r.url
            and not r.url.startswith("data:") else None)  # fmt: skip
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "DLI / HPC boost" in page.locator(".swagger-ui .info .title").inner_text()
    assert outside == []
