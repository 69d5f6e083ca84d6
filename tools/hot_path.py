"""Where an order-sign's time goes, stage by stage, next to the floor's.

Run: .venv/bin/python tools/hot_path.py [resources] [requests] [--as-if-validated]
     (defaults 300, 500)

Calls the real app and the floor app (cds_service/bench/floor.py) in this process through
ASGI, alternating, with a short idle gap after each call as between HTTP requests (a server
that waits for its next request comes back to cold caches, which Python-heavy code feels far
more than the floor's C JSON parser). The audit writer is left out (measured by the bench).
Prints medians in ms: the floor; the service in total and per stage, with validation by
fhir.resources (eager in gather, lazy in the facts) counted apart; "everything else" is the
framework, middleware, audit record, response and freeing the request's objects.

--as-if-validated is a what-if, never a product mode: each resource is validated once and the
model reused on later calls (keyed by type and id; the body never changes here), to show what
the rest of an answer costs when validation is free.
"""

import asyncio
import gc
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
from instructions import call  # tools/ is this script's path: one ASGI call, as there

from cds_service.api import app as app_module
from cds_service.api import pipeline as pipeline_module
from cds_service.api.heap import settle_heap
from cds_service.bench.floor import create_floor_app
from cds_service.bench.workload import order_sign_request
from cds_service.core import record as record_module

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
SIZE = int(ARGS[0]) if ARGS else 300
REQUESTS = int(ARGS[1]) if len(ARGS) > 1 else 500
AS_IF_VALIDATED = "--as-if-validated" in sys.argv
BODY = orjson.dumps(order_sign_request(SIZE))
spent: dict[str, float] = defaultdict(float)


def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Time spent in `function`, less the validation that happened inside it."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, validated = time.perf_counter(), spent["validation"]
        try:
            return function(*args, **kwargs)
        finally:
            inner = spent["validation"] - validated if stage != "validation" else 0.0
            spent[stage] += time.perf_counter() - started - inner

    return wrapper


real_validate = validate = record_module._validate
if AS_IF_VALIDATED:
    validated: dict[tuple[str, str], Any] = {}

    def validate_once(record: Any, raw: dict[str, Any], model: Any) -> Any:
        key = (raw["resourceType"], raw["id"])
        if key not in validated:
            validated[key] = real_validate(record, raw, model)
        return validated[key]

    validate = validate_once
record_module._validate = timed("validation", validate)
# The pipeline's own names (api/pipeline.py runs parse -> gather -> decide); gather is async, so
# its share is what remains after parse, validation and decide ("everything else" holds it).
pipeline_module.parse_hook = timed("parse", pipeline_module.parse_hook)
pipeline_module.decide = timed("decide", pipeline_module.decide)
service = app_module.create_app()


def acknowledge_at_once(record: Any, on_stored: Any = None) -> None:
    """The audit record is built but not written: acknowledged at once (the bench measures the
    writer over HTTP)."""
    if on_stored is not None:
        on_stored()


service.state.audit.submit = acknowledge_at_once
floor = create_floor_app()


async def main() -> None:
    for _ in range(30):
        await call(service, BODY)
        await call(floor, BODY)
    gc.collect()
    settle_heap()  # as the server does at start-up
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(REQUESTS):
        spent.clear()
        started = time.perf_counter()
        await call(service, BODY)
        samples["service total"].append(time.perf_counter() - started)
        for stage in ("parse", "validation", "decide"):
            samples[stage].append(spent[stage])
        samples["everything else"].append(samples["service total"][-1] - sum(spent.values()))
        await asyncio.sleep(0.001)
        started = time.perf_counter()
        await call(floor, BODY)
        samples["floor total"].append(time.perf_counter() - started)
        await asyncio.sleep(0.001)
    what_if = " (as if validation were free)" if AS_IF_VALIDATED else ""
    print(f"{SIZE} resources, {REQUESTS} calls each, medians in ms{what_if}")
    for stage, values in samples.items():
        print(f"  {stage:<30} {statistics.median(values) * 1000:7.2f}")
    print("  parse and decide exclude the fhir.resources validation done inside them; the")
    print("  gather (reading prefetch) is in everything else, with the framework and response")


asyncio.run(main())
