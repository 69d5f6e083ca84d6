"""8 maximal-but-legal expensive order-sign calls in parallel, again as each one ends, while
normal order-sign calls run at a steady 20/s, against a real `cds-service serve` on loopback
(or --url): prints the normal calls' p50 / p99 with and without the expensive ones, the
expensive calls' own latency, and that a structure over each limit gets 413 + OperationOutcome.

    .venv/bin/python tools/expensive_load.py [--seconds 25] [--parallel 8] [--rate 20] [--url URL]
                                             [--kind hook|package|worksheet] [--body-bytes N]

An expensive call is the relapsed-AML request plus as many Conditions as the body limit holds,
each with a code the evaluation reads and the most codings one CodeableConcept may carry, so
every one is validated. `--kind package`: the same Conditions as the patientRecord of a DTR
$questionnaire-package call; `--kind worksheet`: an order-sign carrying a completed worksheet
(QuestionnaireResponse) of that many answered items. Loopback only (--url must be a development server: no token is sent);
bounded: rate x seconds normal calls and --parallel expensive callers for --seconds.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
from hostile_connections import free_port, start_service  # tools/ is this script's path

from cds_service.bench.workload import order_sign_request
from cds_service.core import worksheets
from cds_service.policy_store import load
from cds_service.settings import Settings

SIGN = "/cds-services/dli-hpc-order-sign"
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
JSON = {"content-type": "application/json"}
LIMITS = Settings()


def condition(i: int, codings: int) -> dict[str, Any]:
    """A Condition the evaluation reads (an AML diagnosis) with `codings` codings in its code."""
    coding = [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C92.00"}]
    coding += [
        {"system": "http://snomed.info/sct", "code": str(10_000_000 + j), "display": "filler"}
        for j in range(codings - 1)
    ]
    return {
        "resourceType": "Condition", "id": f"x{i}", "subject": {"reference": "Patient/x"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": coding}, "onsetDateTime": "2024-01-01",
    }  # fmt: skip


def expensive_request(max_bytes: int, codings: int, kind: str = "hook") -> tuple[str, bytes]:
    """The path and body of an expensive call of `kind` whose body nears `max_bytes`."""
    request = order_sign_request(50)
    patient = request["context"]["patientId"]
    if kind == "worksheet":
        return SIGN, _with_worksheet(request, max_bytes)
    entries = request["prefetch"]["conditions"]["entry"]
    one = condition(0, codings)
    one["subject"]["reference"] = f"Patient/{patient}"
    size = len(orjson.dumps({"resource": one})) + 1
    room = max_bytes - len(orjson.dumps(request)) - 1024
    count = min(room // size, LIMITS.max_bundle_entries - len(entries))
    for i in range(count):
        entries.append({"resource": {**copy.deepcopy(one), "id": f"x{i}"}})
    if kind == "package":
        return PACKAGE, _package(request)
    return SIGN, orjson.dumps(request)


def _package(request: dict[str, Any]) -> bytes:
    """DTR $questionnaire-package input: the coverage, the orders, the conditions as record."""
    prefetch = request["prefetch"]
    coverage = next(
        e["resource"] for e in prefetch["coverage"]["entry"] if e["resource"]["resourceType"] == "Coverage"
    )  # fmt: skip
    orders = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]
    record = {"resourceType": "Bundle", "type": "collection", "entry": prefetch["conditions"]["entry"]}  # fmt: skip
    parameters = [{"name": "coverage", "resource": coverage}]
    parameters += [{"name": "order", "resource": o} for o in orders]
    parameters += [{"name": "patientRecord", "resource": record}]
    return orjson.dumps({"resourceType": "Parameters", "parameter": parameters})


def _with_worksheet(request: dict[str, Any], max_bytes: int) -> bytes:
    """The request with one completed worksheet of as many (unknown) answered items as fit."""
    item = {"linkId": "filler-0000000", "answer": [{"valueString": "x" * 40}]}
    count = (max_bytes - len(orjson.dumps(request)) - 1024) // (len(orjson.dumps(item)) + 1)
    response = {
        "resourceType": "QuestionnaireResponse", "id": "ws", "status": "completed",
        "questionnaire": next(s.canonical for s in worksheets(load().policies) if s.id == "molina-dli"),
        "subject": {"reference": f"Patient/{request['context']['patientId']}"},
        "authored": "2026-03-01T10:00:00Z",
        "item": [item | {"linkId": f"filler-{i:07d}"} for i in range(count)],
    }  # fmt: skip
    request["prefetch"]["questionnaireResponses"] = {
        "resourceType": "Bundle", "type": "searchset", "entry": [{"resource": response}],
    }  # fmt: skip
    return orjson.dumps(request)


def oversized_requests() -> dict[str, bytes]:
    """One request over each structural limit, all well under the body limit."""
    base = order_sign_request(50)
    patient = base["context"]["patientId"]
    cases: dict[str, Any] = {}
    request = copy.deepcopy(base)
    request["prefetch"]["conditions"]["entry"].append(
        {"resource": condition(0, LIMITS.max_codings + 1) | {"subject": {"reference": f"Patient/{patient}"}}}
    )  # fmt: skip
    cases["codings per CodeableConcept"] = request
    request = copy.deepcopy(base)
    note = {"text": "n" * (LIMITS.max_string_chars + 1)}
    request["prefetch"]["conditions"]["entry"][0]["resource"]["note"] = [note]
    cases["string length"] = request
    request = copy.deepcopy(base)
    filler = {"resource": {"resourceType": "Observation", "id": "f", "status": "final"}}
    request["prefetch"]["observations"]["entry"] += [filler] * (LIMITS.max_bundle_entries + 1)
    cases["entries per Bundle"] = request
    request = copy.deepcopy(base)
    share = LIMITS.max_resources // 3 + 1
    for key in ("conditions", "procedures", "observations"):
        request["prefetch"][key]["entry"] += [
            {"resource": {"resourceType": "Basic", "id": "f"}}
        ] * share
    cases["resources per call"] = request
    return {name: orjson.dumps(request) for name, request in cases.items()}


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{len(values)} calls"
    cuts = statistics.quantiles(values, n=100)
    return f"{len(values)} ok, p50 {statistics.median(values):.1f} ms, p99 {cuts[98]:.1f} ms, max {max(values):.0f} ms"


def post(client: httpx.Client, body: bytes, path: str = SIGN) -> tuple[int | str, float]:
    started = time.perf_counter()
    try:
        status: int | str = client.post(path, content=body, headers=JSON).status_code
    except httpx.HTTPError as error:
        status = type(error).__name__
    return status, (time.perf_counter() - started) * 1000


def client(base: str) -> httpx.Client:
    # keep-alive shorter than the server's (5 s), so no call is sent on a closing connection
    return httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(keepalive_expiry=2))


def normal_calls(base: str, seconds: float, rate: float) -> tuple[list[float], list[str]]:
    """Normal calls at `rate`/s, open loop: each is sent when due, whatever the others do."""
    body = orjson.dumps(order_sign_request(50))
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one() -> None:
        status, ms = post(http, body)
        with lock:
            (latencies.append(ms) if status == 200 else failures.append(f"normal {status}"))

    start = time.monotonic()
    with client(base) as http, ThreadPoolExecutor(16) as pool:
        for i in range(int(rate * seconds)):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            pool.submit(one)
    return latencies, failures


def expensive_calls(
    base: str, path: str, body: bytes, seconds: float
) -> tuple[list[float], list[str]]:
    """One expensive caller: a call, and the next as soon as it is answered (its own process,
    so that sending 10 MB bodies does not slow the normal calls' client; at a low CPU priority,
    so that the load generator does not take the CPU from the service it measures)."""
    os.nice(15)
    latencies: list[float] = []
    failures: list[str] = []
    until = time.monotonic() + seconds
    with client(base) as http:
        while time.monotonic() < until:
            status, ms = post(http, body, path)
            (latencies.append(ms) if status == 200 else failures.append(f"expensive {status}"))
    return latencies, failures


def run(base: str, args: argparse.Namespace) -> None:
    size = args.body_bytes or LIMITS.max_body_bytes
    path, body = expensive_request(size, LIMITS.max_codings, args.kind)
    with client(base) as http:
        status, ms = post(http, body, path)
    print(f"one expensive {args.kind} call alone: {len(body):,} bytes, HTTP {status}, {ms:.0f} ms")
    print(f"normal calls alone, {args.rate:g}/s for 5 s ...", flush=True)
    alone, failures = normal_calls(base, 5, args.rate)
    print(f"  {percentiles(alone)}")
    print(f"{args.parallel} expensive callers + normal calls {args.rate:g}/s for {args.seconds:g} s ...", flush=True)  # fmt: skip
    with ProcessPoolExecutor(args.parallel) as callers:
        jobs = [
            callers.submit(expensive_calls, base, path, body, args.seconds)
            for _ in range(args.parallel)
        ]
        loaded, more = normal_calls(base, args.seconds, args.rate)
        failures += more
        expensive = []
        for job in jobs:
            latencies, more = job.result()
            expensive += latencies
            failures += more
    print(f"  normal:    {percentiles(loaded)}  (target p99 < 100 ms)")
    print(f"  expensive: {percentiles(expensive)}")
    print(f"  failures: {len(failures)} {sorted(set(failures))}")
    print("over each structural limit:")
    with client(base) as http:
        for name, oversized in oversized_requests().items():
            response = http.post(SIGN, content=oversized, headers=JSON)
            outcome = response.json() if "json" in response.headers.get("content-type", "") else {}
            issue = outcome.get("issue", [{}])[0] if outcome.get("resourceType") == "OperationOutcome" else {}  # fmt: skip
            print(f"  {name} ({len(oversized):,} bytes): HTTP {response.status_code} OperationOutcome {issue.get('code')}: {issue.get('diagnostics', '(none)')}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--url", help="a running development service (default: start one)")
    parser.add_argument("--kind", choices=["hook", "package", "worksheet"], default="hook")
    parser.add_argument(
        "--body-bytes",
        type=int,
        help="size of each expensive call (default: the body limit); just under "
        "CDS_LARGE_CALL_BYTES measures the largest call still answered on the event loop",
    )
    args = parser.parse_args()
    if args.url:
        run(args.url, args)
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        service = start_service(port, Path(scratch), Path(scratch) / "service.log")
        try:
            run(f"http://127.0.0.1:{port}", args)
        finally:
            service.terminate()
            service.wait(10)


if __name__ == "__main__":
    main()
