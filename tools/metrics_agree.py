"""Do `/metrics` and the audit report agree with what a client saw? A load run against a real
`cds-service serve` (its own process, port and data folder).

    .venv/bin/python tools/metrics_agree.py [calls] [--port 8221]

Fires `calls` hook calls (scenario patients, order-sign and order-select, each with its own
payer, and one bad body in twenty: a 400), one at a time, timing each on the client. Then
compares, per (service, hook, payer):
- the histogram's count with the client's count (must be equal), and per status the response
  counter with the client's (must be equal);
- the histogram's sum with the client's total latency (the server's time is inside the
  client's: it must be smaller, by the HTTP and JSON overhead);
- the client's p50 / p90 with the histogram bucket holding the server's (the client's can only
  be later: at least the bucket's lower bound; the mean gap per call is the HTTP overhead), and,
  after the service has stopped (its audit written), with `cds-service audit metrics` (whose
  response time is the answer's computation alone, without the audit record's fsync).
Exits 1 when a count disagrees, the server's time exceeds the client's, or a client percentile
lies below the server's bucket.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cds_service.scenarios import build_request, load_scenarios

CLI = str(Path(sys.executable).with_name("cds-service"))


def nearest_rank(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def requests(calls: int) -> list[tuple[str, str, str, bytes]]:
    """(service id, hook, expected payer label, body), cycling through the scenarios."""
    scenarios = [s for s in load_scenarios() if s.payer]
    planned = []
    for i in range(calls):
        scenario = scenarios[i % len(scenarios)]
        hook = "order-sign" if i % 3 else "order-select"
        service = "dli-hpc-order-sign" if hook == "order-sign" else "dli-hpc-order-select"
        if i % 20 == 19:
            planned.append((service, hook, "bad", b'{"hook": '))
            continue
        body = json.dumps(build_request(scenario.bundle(), hook)).encode()
        planned.append((service, hook, "", body))
    return planned


def start(port: int, data: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"PORT": str(port), "CDS_DATA_DIR": str(data), "CDS_LOG_LEVEL": "warning"}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen([CLI, "serve"], env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the service did not start")


def fire(port: int, planned: list[tuple[str, str, str, bytes]]) -> list[dict[str, Any]]:
    seen = []
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for done, (service, hook, kind, body) in enumerate(planned, 1):
            started = time.perf_counter()
            response = client.post(f"/cds-services/{service}", content=body, headers=headers)
            seconds = time.perf_counter() - started
            payer = "bad" if kind == "bad" else _payer(response.json())
            seen.append({"service": service, "hook": hook, "payer": payer,
                         "status": response.status_code, "seconds": seconds})  # fmt: skip
            if done % 50 == 0:
                print(f"  {done}/{len(planned)} calls", file=sys.stderr)
    return seen


def _payer(body: dict[str, Any]) -> str:
    """The payer label the service should use: the one policy shown, else `none`."""
    policies = {
        item["policyId"]
        for card in body.get("cards") or ()
        for item in card.get("extension", {}).get("dli-hpc-cds.evaluations", ())
    }
    if not policies:
        return "no-order"
    return policies.pop() if len(policies) == 1 else "none"


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return found


def bucket_of(buckets: dict[float, float], count: float, share: float) -> tuple[float, float]:
    """The (lower, upper] bucket bounds holding the `share` quantile of the histogram."""
    rank, lower = math.ceil(share * count), 0.0
    for upper in sorted(buckets):
        if buckets[upper] >= rank:
            return lower, upper
        lower = upper
    return lower, math.inf


def compare(seen: list[dict[str, Any]], metrics: dict[str, Any]) -> bool:
    agree = True
    groups: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for call in seen:
        if call["status"] == 200:
            groups[call["service"], call["hook"], call["payer"]].append(call["seconds"])
    print(f"{'service / payer':<34} {'calls':>11} {'sum s client/server':>21} {'gap ms':>6} "
          f"{'p50 ms client (server bucket]':>26} {'p90 ms client (server bucket]':>26}")  # fmt: skip
    histogram = metrics["cds_hook_duration_seconds_count"]
    for (service, hook, payer), seconds in sorted(groups.items()):
        labels = {"service": service, "hook": hook, "payer": payer, "crd_version": "2.0.1"}
        key = tuple(sorted(labels.items()))
        count = histogram.get(key, 0.0)
        total = metrics["cds_hook_duration_seconds_sum"].get(key, 0.0)
        buckets = {
            float(dict(k)["le"]): v
            for k, v in metrics["cds_hook_duration_seconds_bucket"].items()
            if {kk: vv for kk, vv in k if kk != "le"} == labels
        }
        cells = []
        for share in (0.5, 0.9):
            client_value = nearest_rank(seconds, share)
            low, high = bucket_of(buckets, count, share)
            # each client time holds the server's plus the HTTP overhead, so the client's
            # quantile is at least the server's: at least the lower bound of its bucket. How
            # much more is the overhead (shown as the mean gap per call), not a disagreement.
            inside = low <= client_value
            agree &= inside
            cells.append(f"{client_value * 1000:7.1f} ({low * 1000:g}, {high * 1000:g}]")
        agree &= count == len(seconds) and total <= sum(seconds)
        gap = (sum(seconds) - total) / len(seconds) * 1000
        print(f"{service[8:] + ' ' + payer:<34} {len(seconds):>5}/{count:<5.0f} "
              f"{sum(seconds):>10.3f}/{total:<10.3f} {gap:>6.1f} {cells[0]:>26} {cells[1]:>26}")  # fmt: skip
    statuses = Counter((c["service"], str(c["status"])) for c in seen)
    for (service, status), n in sorted(statuses.items()):
        served = metrics["cds_hook_responses_total"].get(
            (("service", service), ("status", status)), 0.0
        )
        agree &= served == n
        print(f"responses {service} {status}: client {n}, /metrics {served:.0f}")
    return agree


def audit_report(data: Path, seen: list[dict[str, Any]]) -> None:
    env = os.environ | {"CDS_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [CLI, "audit", "metrics", "--json"], env=env, capture_output=True, text=True, check=True
    )
    print("\ncds-service audit metrics (service-side response time) vs client:")
    for row in json.loads(result.stdout):
        mine = [c["seconds"] * 1000 for c in seen if c["status"] == 200
                and c["hook"] == row["hook"] and c["payer"] == row["payer"]]  # fmt: skip
        if mine:
            print(f"  {row['hook']:<13} {row['payer']:<20} calls {row['calls']}/{len(mine)}  "
                  f"p50 {row['p50Ms']}/{nearest_rank(mine, 0.5):.1f} ms  "
                  f"p90 {row['p90Ms']}/{nearest_rank(mine, 0.9):.1f} ms  "
                  f"<5 s {row['shareUnder5s']:.0%}  coverage info {row['shareWithCoverageInfo']:.0%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", type=int, default=300)
    parser.add_argument("--port", type=int, default=8221)
    args = parser.parse_args()
    planned = requests(args.calls)
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        server = start(args.port, data)
        try:
            seen = fire(args.port, planned)
            metrics = scrape(args.port)
        finally:
            server.terminate()
            server.wait(timeout=30)
        agree = compare(seen, metrics)
        audit_report(data, seen)
    print("\nmetrics agree with the client" if agree else "\nMETRICS DISAGREE with the client")
    sys.exit(0 if agree else 1)


if __name__ == "__main__":
    main()
