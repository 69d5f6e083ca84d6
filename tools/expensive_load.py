"""8 maximal-but-legal expensive order-sign calls in parallel, again as each one ends, while
normal order-sign calls run at a steady 20/s, against a real `cds-service serve` on loopback
(or --url): prints the normal calls' p50 / p99 with and without the expensive ones, the
expensive calls' own latency, and that a structure over each limit gets 413 + OperationOutcome.

    .venv/bin/python tools/expensive_load.py [--seconds 25] [--parallel 8] [--rate 20] [--url URL]

An expensive call is the relapsed-AML request plus as many Conditions as the body limit holds,
each with a code the evaluation reads and the most codings one CodeableConcept may carry, so
every one is validated. Loopback only (--url must be a development server: no token is sent);
bounded: rate x seconds normal calls and --parallel expensive callers for --seconds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
from hostile_connections import free_port, start_service  # tools/ is this script's path

from cds_service.bench.workload import order_sign_request
from cds_service.settings import Settings

SIGN = "/cds-services/dli-hpc-order-sign"
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


def expensive_request(max_bytes: int, codings: int) -> bytes:
    """The normal request plus Conditions of `codings` codings until the body nears `max_bytes`."""
    request = order_sign_request(50)
    patient = request["context"]["patientId"]
    entries = request["prefetch"]["conditions"]["entry"]
    one = condition(0, codings)
    one["subject"]["reference"] = f"Patient/{patient}"
    size = len(orjson.dumps({"resource": one})) + 1
    room = max_bytes - len(orjson.dumps(request)) - 1024
    count = min(room // size, LIMITS.max_bundle_entries - len(entries))
    for i in range(count):
        entries.append({"resource": {**copy.deepcopy(one), "id": f"x{i}"}})
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


class Load:
    """Normal calls at `rate`/s (open loop: each is sent when due, whatever the others do)."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        self.normal = orjson.dumps(order_sign_request(50))
        self.lock = threading.Lock()
        self.failures: list[str] = []

    def post(self, body: bytes) -> tuple[int | str, float]:
        started = time.perf_counter()
        try:
            status: int | str = self.client.post(SIGN, content=body, headers=JSON).status_code
        except httpx.HTTPError as error:
            status = type(error).__name__
        return status, (time.perf_counter() - started) * 1000

    def normal_calls(self, seconds: float, rate: float) -> list[float]:
        latencies: list[float] = []

        def one() -> None:
            status, ms = self.post(self.normal)
            with self.lock:
                if status == 200:
                    latencies.append(ms)
                else:
                    self.failures.append(f"normal {status}")

        start = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            for i in range(int(rate * seconds)):
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
                pool.submit(one)
        return latencies

    def expensive_calls(self, body: bytes, until: float, out: list[float]) -> None:
        while time.monotonic() < until:
            status, ms = self.post(body)
            with self.lock:
                if status == 200:
                    out.append(ms)
                else:
                    self.failures.append(f"expensive {status}")


def run(base: str, args: argparse.Namespace) -> None:
    load = Load(base)
    body = expensive_request(LIMITS.max_body_bytes, LIMITS.max_codings)
    status, ms = load.post(body)
    print(f"one expensive call alone: {len(body):,} bytes, HTTP {status}, {ms:.0f} ms")
    print(f"normal calls alone, {args.rate:g}/s for 5 s ...", flush=True)
    alone = load.normal_calls(5, args.rate)
    print(f"  {percentiles(alone)}")
    print(f"{args.parallel} expensive callers + normal calls {args.rate:g}/s for {args.seconds:g} s ...", flush=True)  # fmt: skip
    expensive: list[float] = []
    until = time.monotonic() + args.seconds
    callers = [
        threading.Thread(target=load.expensive_calls, args=(body, until, expensive))
        for _ in range(args.parallel)
    ]
    for caller in callers:
        caller.start()
    loaded = load.normal_calls(args.seconds, args.rate)
    for caller in callers:
        caller.join()
    print(f"  normal:    {percentiles(loaded)}  (target p99 < 100 ms)")
    print(f"  expensive: {percentiles(expensive)}")
    print(f"  failures: {len(load.failures)} {sorted(set(load.failures))}")
    print("over each structural limit:")
    for name, oversized in oversized_requests().items():
        response = load.client.post(SIGN, content=oversized, headers=JSON)
        outcome = (
            response.json() if response.headers.get("content-type", "").endswith("json") else {}
        )
        diagnostics = outcome.get("issue", [{}])[0].get("diagnostics", "") if outcome.get("resourceType") == "OperationOutcome" else "(no OperationOutcome)"  # fmt: skip
        print(f"  {name} ({len(oversized):,} bytes): HTTP {response.status_code} {diagnostics}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--url", help="a running development service (default: start one)")
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
