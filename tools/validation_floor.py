"""How close issue 23's target can come: the floor, the floor plus validating the answer's
evidence, and the service, over HTTP, side by side.

Run: .venv/bin/python tools/validation_floor.py [--requests 400] [--runs 3]

Three uvicorn processes on loopback, one client, the bench's 300-resource order-sign body, in
alternating rounds (cds_service/bench/run.py `compare`):
- floor: receive and parse the body, answer a fixed card (bench/floor.py);
- + validation: the same, plus validating with fhir.resources the 11 resources the service's
  answer rests on (found once at start-up; per call nothing else: no search, no facts, no
  cards);
- + validation + audit: that, and an audit record on disk before the answer (the service's own
  writer and spool; issue 24 made that a rule);
- service: `cds-service serve` with embedded defaults.
The last floor's ratio to the floor is a lower bound for any answer that validates every
resource it rests on and records it durably; the rest of the 2.0x budget is what is left for
reading the prefetch, deciding and rendering.
"""

import argparse
import asyncio
import contextlib
import statistics

import orjson

from cds_service.bench.run import FLOOR_APP, REAL_APP, compare, server
from cds_service.bench.workload import order_sign_request

VALIDATION_FLOOR_APP = "cds_service.bench.floor:create_validation_floor_app"
AUDITED_FLOOR_APP = "cds_service.bench.floor:create_audited_validation_floor_app"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per server per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    body = orjson.dumps(order_sign_request(300))
    apps = {
        "floor": FLOOR_APP,
        "+ validation": VALIDATION_FLOOR_APP,
        "+ validation + audit": AUDITED_FLOOR_APP,
        "service": REAL_APP,
    }
    rows = []
    with contextlib.ExitStack() as stack:
        urls = {name: stack.enter_context(server(app, body)).url for name, app in apps.items()}
        for run in range(1, args.runs + 1):
            figures = asyncio.run(compare(urls, body, args.requests, 1))
            rows.append(figures)
            base = figures["floor"]
            line = "  ".join(
                f"{name} p50 {f['p50_ms']:.2f} ms ({f['p50_ms'] / base['p50_ms']:.2f}x) "
                f"p99 {f['p99_ms']:.2f} ({f['p99_ms'] / base['p99_ms']:.2f}x)"
                for name, f in figures.items()
            )
            print(f"run {run}: {line}", flush=True)
    for name in apps:
        ratios = [r[name]["p50_ms"] / r["floor"]["p50_ms"] for r in rows]
        print(f"{name:>16}: p50 / floor p50, median of runs {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
