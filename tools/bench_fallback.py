#!/usr/bin/env python3
"""Latency of order-sign with full, partial and no prefetch (CRD: 5 s at p90).

The service and the fixture FHIR server both run under uvicorn on ephemeral loopback ports;
every scenario patient is signed (DLI and HPC boost) `--rounds` times per mode.

Usage (from the repository root): .venv/bin/python tools/bench_fallback.py [--rounds 3] [--page-size 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from cds_service.api.app import create_app
from cds_service.core.model import Service
from cds_service.fixture_server import create_fixture_server, serve_in_thread
from cds_service.scenarios import (
    PARTIAL_PREFETCH_KEYS,
    build_request,
    load_scenarios,
    point_at_fhir_server,
)

TOKEN = "bench-token"  # noqa: S105 (guards the synthetic fixture data only)
MODES = {"full prefetch": None, "partial prefetch": PARTIAL_PREFETCH_KEYS, "no prefetch": ()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=4, help="fixture server page size")
    args = parser.parse_args()
    scenarios = load_scenarios()
    fixture = create_fixture_server(TOKEN, page_size=args.page_size)
    with (
        serve_in_thread(create_app()) as service,
        serve_in_thread(fixture) as ehr,
        httpx.Client(base_url=service, timeout=30) as client,
    ):
        for mode, keys in MODES.items():
            times = []
            for _ in range(args.rounds):
                for scenario in scenarios:
                    for svc in Service:
                        request = build_request(scenario.bundle(), "order-sign", (svc,), keys)
                        if keys is not None:
                            point_at_fhir_server(request, ehr, TOKEN)
                        started = time.perf_counter()
                        response = client.post("/cds-services/dli-hpc-order-sign", json=request)
                        times.append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, response.text
            cuts = statistics.quantiles(times, n=10)
            print(
                f"{mode:<17} n={len(times):<4} p50={statistics.median(times):6.1f} ms"
                f"  p90={cuts[8]:6.1f} ms  max={max(times):6.1f} ms"
            )


if __name__ == "__main__":
    main()
