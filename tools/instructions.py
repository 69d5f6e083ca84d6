"""Instructions per call (valgrind --tool=callgrind): order-sign, an unrelated order, the floor.

Run: .venv/bin/python tools/instructions.py [--resources 300] [--calls 20] [--keep DIR]

Wall-clock figures on a shared machine drift by 2x over minutes; instruction counts do not. This
runs itself under callgrind (the child), calls the real app and the floor app
(cds_service/bench/floor.py) in process through ASGI, and counts the instructions of `--calls`
calls of each, every thread included (the threadpool, the audit writer's hand-off). Start-up,
imports and warm-up are not counted: the child calls os.getsid at each boundary, and callgrind
(`--dump-before=os_getsid`, CPython's C function for it) writes and zeroes its counters there,
so each workload gets its own dump. The garbage collector is collected and frozen before the first boundary, as
the server does at start-up, never inside a measured run.

The audit record is built, and acknowledged at once instead of waiting for the spool thread's
fsync (that is disk, not instructions; the bench measures it over HTTP).

The last run is a what-if, never a product mode: order-sign with each resource validated once
and the model reused on later calls (as tools/hot_path.py --as-if-validated), to show what the
answer costs beyond validation by fhir.resources.

Prints instructions per call, the ratio to the floor, and the top functions of the order-sign
run (callgrind_annotate, inclusive) when --top N is given.
"""

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

WORKLOADS = ("order-sign", "unrelated order", "floor", "order-sign, validation free (what-if)")
PATH = "/cds-services/dli-hpc-order-sign"


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=300)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this directory")
    parser.add_argument("--top", type=int, default=0, help="print the top N functions")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# --- the child, under callgrind --------------------------------------------------------------
def boundary() -> None:
    """A call callgrind recognises (--dump-before=os_getsid): dump and zero the counters."""
    os.getsid(0)


async def call(app: Any, body: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])
    status = []

    async def receive() -> Any:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    assert status == [200], status


def child(resources: int, calls: int) -> None:
    import orjson

    from cds_service.api.app import create_app
    from cds_service.api.heap import settle_heap
    from cds_service.bench.floor import create_floor_app
    from cds_service.bench.workload import order_sign_request, unrelated_order_request

    service = create_app()

    def acknowledge_at_once(record: Any, on_stored: Any = None) -> None:
        if on_stored is not None:
            on_stored()

    service.state.audit.submit = acknowledge_at_once
    floor = create_floor_app()
    runs = [
        (service, orjson.dumps(order_sign_request(resources))),
        (service, orjson.dumps(unrelated_order_request(resources))),
        (floor, orjson.dumps(order_sign_request(resources))),
    ]

    async def main() -> None:
        for app, body in runs:
            for _ in range(10):
                await call(app, body)
        gc.collect()
        settle_heap()  # as the server does at start-up (api/app.py), outside every measured run
        boundary()
        for app, body in runs:
            for _ in range(calls):
                await call(app, body)
            boundary()
        validate_once()
        for _ in range(10):
            await call(service, runs[0][1])  # fill the what-if's models
        boundary()
        for _ in range(calls):
            await call(service, runs[0][1])
        boundary()

    asyncio.run(main())


def validate_once() -> None:
    """The what-if: each resource validated on its first call only (keyed by type and id; the
    body never changes here)."""
    from cds_service.core import record as record_module

    validate, models = record_module._validate, {}

    def reuse(record: Any, raw: dict[str, Any], model: Any) -> Any:
        key = (raw["resourceType"], raw.get("id"))
        if key not in models:
            models[key] = validate(record, raw, model)
        return models[key]

    record_module._validate = reuse


# --- the parent ------------------------------------------------------------------------------
def totals(dump: Path) -> int:
    for line in dump.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def dump_number(path: Path) -> int:
    found = re.search(r"\.(\d+)$", path.name)
    return int(found.group(1)) if found and path.name.count(".") >= 3 else 0


def main() -> None:
    args = options()
    if args.child:
        child(args.resources, args.calls)
        return
    out = args.keep or Path(tempfile.mkdtemp(prefix="instructions-"))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("callgrind.out.*"):
        old.unlink()
    env = {
        **os.environ,
        "CDS_LOG_LEVEL": "warning",
        "CDS_DATA_DIR": str(out / "data"),
        # every call answered in this process (callgrind does not follow the large-call worker)
        "CDS_LARGE_CALL_BYTES": str(10**9),
    }
    command = [
        "valgrind", "--tool=callgrind", "--dump-before=os_getsid",
        f"--callgrind-out-file={out}/callgrind.out.%p", sys.executable, __file__, "--child",
        "--resources", str(args.resources), "--calls", str(args.calls),
    ]  # fmt: skip
    print(f"running under callgrind (a few minutes): {args.calls} calls each, "
          f"{args.resources} resources ...", file=sys.stderr)  # fmt: skip
    subprocess.run(command, check=True, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
    dumps = sorted((p for p in out.glob("callgrind.out.*") if dump_number(p) > 0), key=dump_number)
    # dumps: start-up, the three workloads, the what-if's warm-up, the what-if
    if len(dumps) < 2 + len(WORKLOADS):
        raise RuntimeError(f"expected {2 + len(WORKLOADS)} dumps in {out}, found {len(dumps)}")
    measured = dict(zip(WORKLOADS, [*dumps[1:4], dumps[5]], strict=True))
    per_call = {name: totals(dump) / args.calls for name, dump in measured.items()}
    floor = per_call["floor"]
    print(f"\n{args.resources} resources, {args.calls} calls each: instructions per call")
    for name, count in per_call.items():
        print(f"  {name:<16} {count / 1e6:9.2f} M   {count / floor:5.2f}x the floor")
    if args.top:
        annotate = ["callgrind_annotate", "--inclusive=yes", str(measured["order-sign"])]
        report = subprocess.run(annotate, check=True, capture_output=True, text=True)  # noqa: S603
        lines = [line for line in report.stdout.splitlines() if re.match(r"\s*[\d,]+ ", line)]
        print(f"\norder-sign, top {args.top} functions (inclusive, whole run):")
        print("\n".join(lines[: args.top]))
    print(f"\ndumps: {out}")


if __name__ == "__main__":
    main()
