"""Work limits through the real HTTP API: structural limits on prefetch (413 + OperationOutcome
naming the limit, the place and the setting, never the value), fetched pages over a structural
limit or the byte cap (the key fails as a 5xx does), and large calls answered in the worker
process exactly as they are on the event loop."""

from __future__ import annotations

import asyncio
import copy
import gzip
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from cds_service.api import gather as gather_module
from cds_service.api.discovery import SERVICES
from cds_service.api.errors import HookError
from cds_service.api.hooks import parse_hook
from cds_service.api.offload import Offload
from cds_service.bench.workload import order_sign_request
from cds_service.core import StructureLimits
from cds_service.core.model import Service
from tests.test_fetch import (
    FULL,
    KEYS,
    SIGN,
    app_client,
    evaluations,
    hook,
    mock_ehr,
    only_missing,
)
from tests.test_questionnaires import package_parameters

SECRET = "Zebra-Quartz-7781"  # a value that must never appear in an answer or a log


def condition(codings: int) -> dict[str, Any]:
    """The AML diagnosis (a Condition the evaluation reads) with `codings` codings in its code."""
    resource: dict[str, Any] = copy.deepcopy(FULL["conditions"]["entry"][0]["resource"])
    resource["id"] = "many-codings"
    extra = [{"system": "http://snomed.info/sct", "code": str(900 + i)} for i in range(codings)]
    resource["code"]["coding"] = resource["code"]["coding"][:1] + extra[: codings - 1]
    return resource


def with_conditions(*resources: dict[str, Any]) -> dict[str, Any]:
    request = copy.deepcopy(hook(dict.fromkeys(KEYS, "present"), server=None))
    request["prefetch"]["conditions"]["entry"] += [{"resource": r} for r in resources]
    return request


def long_note() -> dict[str, Any]:
    resource = condition(1)
    resource["note"] = [{"text": SECRET + "x" * 100}]
    return resource


def unread_with_long_code() -> dict[str, Any]:
    """A Condition no fact reads, its code.coding over the limit: still refused (its codes
    are read to decide whether to read it)."""
    resource = condition(1)
    resource["code"]["coding"] = [{"system": "urn:x", "code": str(i)} for i in range(5)]
    return resource


def category_codings() -> dict[str, Any]:
    resource = condition(1)
    resource["category"] = [{"coding": [{"system": "urn:x", "code": str(i)} for i in range(5)]}]
    return resource


OVER_A_LIMIT = [
    (
        "codings",
        with_conditions(condition(5)),
        "CDS_MAX_CODINGS",
        "prefetch.conditions.entry[2].resource.code.coding has 5 codings in one CodeableConcept; at most 4",
    ),
    (
        "codings in a category",
        with_conditions(category_codings()),
        "CDS_MAX_CODINGS",
        "prefetch.conditions.entry[2].resource.category[0].coding has 5",
    ),
    (
        "codings of an unread resource",
        with_conditions(unread_with_long_code()),
        "CDS_MAX_CODINGS",
        "prefetch.conditions.entry[2].resource.code.coding has 5",
    ),
    (
        "string",
        with_conditions(long_note()),
        "CDS_MAX_STRING_CHARS",
        "prefetch.conditions.entry[2].resource.note[0].text has 117 characters in one string; at most 100",
    ),
    (
        "entries",
        with_conditions(*[condition(1)] * 4),
        "CDS_MAX_BUNDLE_ENTRIES",
        "prefetch.conditions.entry has 6 entries in one Bundle; at most 5",
    ),
    (
        "resources",
        with_conditions(condition(1)),
        "CDS_MAX_RESOURCES",
        "prefetch.observations has 14 resources in one call; at most 12",
    ),
]
LIMITS = {
    "CDS_MAX_CODINGS": 4,
    "CDS_MAX_STRING_CHARS": 100,
    "CDS_MAX_BUNDLE_ENTRIES": 5,
    "CDS_MAX_RESOURCES": 12,
}


@pytest.mark.parametrize(("why", "request_", "setting", "diagnostics"), OVER_A_LIMIT, ids=[c[0] for c in OVER_A_LIMIT])  # fmt: skip
def test_prefetch_over_a_structural_limit_is_a_413_naming_the_limit_and_where(
    why: str, request_: dict[str, Any], setting: str, diagnostics: str
) -> None:
    limits = {**{k: 10_000 for k in LIMITS}, "CDS_MAX_STRING_CHARS": 1_000_000, setting: LIMITS[setting]}  # fmt: skip
    client = app_client(None, **limits)
    response = client.post(SIGN, json=request_)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue["code"] == "too-costly"
    assert diagnostics in issue["diagnostics"] and f"({setting})" in issue["diagnostics"]
    assert SECRET not in response.text
    # The same call within the limits (the defaults) is answered.
    assert app_client(None).post(SIGN, json=request_).status_code == 200


def test_a_call_at_each_limit_is_answered() -> None:
    request = with_conditions(condition(4), long_note())
    client = app_client(None, CDS_MAX_CODINGS=4, CDS_MAX_STRING_CHARS=117, CDS_MAX_BUNDLE_ENTRIES=9, CDS_MAX_RESOURCES=15)  # fmt: skip
    response = client.post(SIGN, json=request)
    assert response.status_code == 200, response.text
    assert evaluations(response.json())[0]["determination"] == "meets-criteria"


def observations_page(extra: dict[str, Any]) -> dict[str, Any]:
    page: dict[str, Any] = copy.deepcopy(FULL["observations"])
    page["entry"].append({"resource": extra})
    return page


def fails_like_a_5xx(body: dict[str, Any], reason: str) -> None:
    """The Observation key failed: its criteria unknown, the rest unaffected, the card says why."""
    (result,) = evaluations(body)
    statuses = {c["id"]: c["status"] for c in result["criteria"]}
    assert statuses["molina-dli-mixed-chimerism"] == "unknown"
    assert statuses["molina-dli-allogeneic-hsct"] == "met"
    assert result["determination"] == "needs-information"
    detail = body["cards"][0]["detail"].replace("\\", "")  # Markdown escapes (_ [ ]) undone
    assert "**Could not be retrieved from the EHR**" in detail
    assert f"Observation data (observations): the EHR's FHIR server {reason}" in detail


def test_a_fetched_page_over_a_structural_limit_fails_its_key_like_a_5xx() -> None:
    many = copy.deepcopy(FULL["observations"]["entry"][0]["resource"])
    many["id"] = "many-codings"
    many["code"]["coding"] += [{"system": "urn:x", "code": str(i)} for i in range(120)]

    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=observations_page(many))

    response = app_client(mock_ehr(answer)).post(SIGN, json=hook(only_missing("observations")))
    assert response.status_code == 200, response.text
    fails_like_a_5xx(
        response.json(),
        "answered over a limit (page 1): Observation.entry[9].resource.code.coding has 121 "
        "codings in one CodeableConcept; at most 100 (CDS_MAX_CODINGS)",
    )


def test_fetched_pages_count_towards_the_resources_per_call() -> None:
    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=FULL["observations"])  # read only

    prefetched = 1 + 2 + 1  # coverage, conditions, procedures
    limit = prefetched + len(FULL["observations"]["entry"]) - 1
    client = app_client(mock_ehr(answer), CDS_MAX_RESOURCES=limit)
    response = client.post(SIGN, json=hook(only_missing("observations")))
    assert response.status_code == 200, response.text
    fails_like_a_5xx(response.json(), "answered over a limit (page 1): Observation has")


class Endless(httpx.AsyncByteStream):
    """A body of 64 kB chunks that never ends (no Content-Length); counts what was read."""

    def __init__(self) -> None:
        self.chunks = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = b'{"resourceType": "Bundle", "type": "searchset", "entry": ['
        yield head
        while True:
            self.chunks += 1
            yield b" " * 65_536
            await asyncio.sleep(0)


def test_a_fetched_page_over_the_byte_cap_is_not_read_past_it_and_fails_its_key() -> None:
    stream = Endless()

    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=stream)

    client = app_client(mock_ehr(answer), CDS_FHIR_MAX_PAGE_BYTES=1_000_000)
    response = client.post(SIGN, json=hook(only_missing("observations")))
    assert response.status_code == 200, response.text
    assert stream.chunks <= 1_000_000 // 65_536 + 1  # stopped at the cap, not at 50 MB
    fails_like_a_5xx(
        response.json(),
        "answered a page larger than 1000000 bytes (CDS_FHIR_MAX_PAGE_BYTES)",
    )


def test_a_declared_content_length_over_the_cap_is_refused_before_reading() -> None:
    page = orjson.dumps(FULL["observations"])

    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=page)  # sets Content-Length

    client = app_client(mock_ehr(answer), CDS_FHIR_MAX_PAGE_BYTES=len(page) - 1)
    response = client.post(SIGN, json=hook(only_missing("observations")))
    fails_like_a_5xx(response.json(), f"answered a page larger than {len(page) - 1} bytes")
    client = app_client(mock_ehr(answer), CDS_FHIR_MAX_PAGE_BYTES=len(page))
    response = client.post(SIGN, json=hook(only_missing("observations")))
    assert "Could not be retrieved" not in response.text


def test_a_compressed_page_is_capped_as_it_inflates_not_after() -> None:
    """Issue 24: a gzip page was capped only once httpx had inflated each network chunk whole:
    14 kB of gzip (one chunk) became 64 MB in memory before the cap saw it."""
    cap = 1_000_000
    bomb = gzip.compress(b'{"resourceType": "Bundle", "entry": [' + b" " * 64_000_000)

    class OneChunk(httpx.AsyncByteStream):  # as the network hands it over: not yet inflated
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield bomb

    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=OneChunk(), headers={"content-encoding": "gzip"})

    client = app_client(mock_ehr(answer), CDS_FHIR_MAX_PAGE_BYTES=cap)
    tracemalloc.start()
    try:
        response = client.post(SIGN, json=hook(only_missing("observations")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    fails_like_a_5xx(response.json(), f"answered a page larger than {cap} bytes")
    assert peak < 16 * cap  # bounded by the cap, not by what the page inflates to


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_page_under_the_cap_is_read(encoding: str) -> None:
    page = orjson.dumps(FULL["observations"])
    sent = gzip.compress(page) if encoding == "gzip" else zlib.compress(page)

    async def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "gzip, deflate"
        return httpx.Response(200, content=sent, headers={"content-encoding": encoding})

    inline = app_client(mock_ehr(answer)).post(SIGN, json=hook(only_missing("observations")))
    assert inline.status_code == 200 and "Could not be retrieved" not in inline.text


LARGE = order_sign_request(1500)  # a long record: about 650 kB, over CDS_LARGE_CALL_BYTES


def test_a_large_call_is_answered_in_the_worker_exactly_as_on_the_loop() -> None:
    inline = app_client(None, CDS_LARGE_CALL_BYTES=100_000_000)
    worker = app_client(None)
    on_loop: Any = inline.app
    in_worker: Any = worker.app
    assert len(orjson.dumps(LARGE)) > in_worker.state.pipeline.settings.large_call_bytes
    expected = inline.post(SIGN, json=LARGE)
    answered = worker.post(SIGN, json=LARGE)
    assert answered.status_code == expected.status_code == 200
    assert evaluations(answered.json()) == evaluations(expected.json())
    assert in_worker.state.pipeline.offload.started
    assert not on_loop.state.pipeline.offload.started
    # Its log line and audit record are written in this process, from what came back.
    audit = in_worker.state.audit
    assert audit.flush()
    assert audit.health()["written"] == 1


def _mid_sized_with_a_worksheet() -> dict[str, Any]:
    request = order_sign_request(300)
    answers = {
        "resourceType": "QuestionnaireResponse", "id": "ws", "status": "completed",
        "questionnaire": "http://dli-hpc-cds.org/fhir/Questionnaire/molina-dli|0",
        "subject": {"reference": f"Patient/{request['context']['patientId']}"},
        "item": [{"linkId": f"q{i}", "answer": [{"valueString": "x"}]} for i in range(500)],
    }  # fmt: skip
    request["prefetch"]["questionnaireResponses"] = {
        "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": answers}],
    }  # fmt: skip
    return request


def test_a_mid_sized_call_with_a_worksheet_is_answered_in_the_worker() -> None:
    """Issue 24: a worksheet is one resource, read in one piece: slices between resources do
    not help, so a mid-sized call carrying one goes to the worker process (8 such calls gave
    normal order-sign p50 979 ms on the loop)."""
    request = _mid_sized_with_a_worksheet()
    inline = app_client(None, CDS_LARGE_CALL_BYTES=100_000_000)
    worker = app_client(None)
    in_worker: Any = worker.app
    size = len(orjson.dumps(request))
    assert in_worker.state.pipeline.settings.turn_call_bytes < size
    assert size <= in_worker.state.pipeline.settings.large_call_bytes
    expected, answered = inline.post(SIGN, json=request), worker.post(SIGN, json=request)
    assert answered.status_code == expected.status_code == 200
    assert evaluations(answered.json()) == evaluations(expected.json())
    assert in_worker.state.pipeline.offload.started


def test_a_mid_sized_questionnaire_package_is_answered_in_the_worker() -> None:
    params = package_parameters("relapsed-aml-allo-mac", Service.DLI)
    record = next(p for p in params["parameter"] if p["name"] == "patientRecord")["resource"]
    filler = {"resourceType": "Basic", "id": "f", "code": {"text": "x" * 100}}
    record["entry"] += [{"resource": filler}] * 300  # over CDS_TURN_CALL_BYTES
    inline = app_client(None, CDS_LARGE_CALL_BYTES=100_000_000)
    worker = app_client(None)
    in_worker: Any = worker.app
    path = "/fhir/Questionnaire/$questionnaire-package"
    expected, answered = inline.post(path, json=params), worker.post(path, json=params)
    assert answered.status_code == expected.status_code == 200
    assert answered.json() == expected.json()
    assert in_worker.state.pipeline.offload.started


MID_SIZED = order_sign_request(300)  # about 134 kB: over CDS_TURN_CALL_BYTES, answered on the loop
SMALL = order_sign_request(10)


def test_a_mid_sized_call_waits_its_turn_while_small_calls_pass() -> None:
    app: Any = app_client(None).app
    settings, offload = app.state.pipeline.settings, app.state.pipeline.offload
    assert settings.turn_call_bytes < len(orjson.dumps(MID_SIZED)) <= settings.large_call_bytes
    assert len(orjson.dumps(SMALL)) <= settings.turn_call_bytes

    async def scene() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cds") as http:
            await offload.turn.acquire()  # another mid-sized call is being answered
            waiting = asyncio.create_task(http.post(SIGN, json=MID_SIZED))
            small = await http.post(SIGN, json=SMALL)
            assert small.status_code == 200
            assert not waiting.done()  # still waiting for its turn
            offload.turn.release()
            mid = await waiting
            assert mid.status_code == 200
            assert evaluations(mid.json())

    asyncio.run(scene())
    assert not offload.started  # neither went to the worker


def test_reading_prefetch_hands_the_loop_back_between_resources(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Other calls run while a long prefetch is read, and the record is the same as read in
    one piece."""
    monkeypatch.setattr(gather_module, "_SLICE_S", 0.0)  # give the loop back after every one
    parsed = parse_hook(orjson.dumps(MID_SIZED), SERVICES["dli-hpc-order-sign"])
    limits = StructureLimits()
    ticks = 0

    async def other_call() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def scene() -> Any:
        other = asyncio.create_task(other_call())
        await asyncio.sleep(0)
        record, _ = await gather_module._from_prefetch_sharing_the_loop(parsed, None, limits)
        other.cancel()
        return record

    record = asyncio.run(scene())
    at_once, _ = gather_module.from_prefetch(parsed, None, limits)
    assert ticks >= 290  # one turn of the other call per resource read (about 300)
    assert [c.id for c in record.conditions] == [c.id for c in at_once.conditions]
    assert len(record.observations) == len(at_once.observations)


@pytest.mark.parametrize(
    ("spoil", "status"),
    [
        (lambda r: r.update(hook="order-select"), 400),
        (lambda r: r["prefetch"]["conditions"]["entry"].append({"resource": condition(101)}), 413),
    ],
    ids=["invalid", "over a limit"],
)
def test_a_refused_large_call_is_refused_the_same_from_the_worker(spoil: Any, status: int) -> None:
    request = copy.deepcopy(LARGE)
    spoil(request)
    response = app_client(None).post(SIGN, json=request)
    assert response.status_code == status, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


def test_large_calls_beyond_the_queue_are_refused_with_503() -> None:
    offload = Offload(0, 1, queue=2, turn_bytes=0)
    offload.in_flight = 2
    with pytest.raises(HookError) as refused:
        asyncio.run(offload.run(len, b""))
    assert refused.value.status == 503
