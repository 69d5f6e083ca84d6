"""`cds-service bench`: how much an order-sign answer costs beyond receiving the request.

Measures, in one run: the in-process pipeline (JSON body -> facts -> evaluation -> cards) per
request size; HTTP latency and throughput against a real uvicorn process at concurrency 1 and
16; the same HTTP requests against the floor app (bench/floor.py) so every HTTP figure is also a
ratio to it; cold start (process start to first answered order-sign) and resident memory after
a long run. Prints a table and writes JSON. It asserts nothing: read the numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import httpx
import orjson

from cds_service.api.discovery import OPTIONAL_PREFETCH, REQUIRED_PREFETCH, SERVICES
from cds_service.api.gather import query_url
from cds_service.api.heap import settle_heap
from cds_service.api.limits import GatherLimits
from cds_service.api.pipeline import PipelineDeps, answer
from cds_service.audit.writer import BATCH_WINDOW, AuditWriter
from cds_service.bench.workload import order_sign_request, resource_count, unrelated_order_request
from cds_service.core import Service
from cds_service.fixture_server import create_fixture_server, serve_in_thread
from cds_service.policy_store import load
from cds_service.scenarios import build_request, find_scenario, point_at_fhir_server
from cds_service.settings import Settings

SIZES = (30, 300, 1500, 5000)  # the in-process scale curve
HTTP_SIZES = (30, 300, 1500)
UNRELATED = "300 unrelated"  # the 300-resource prefetch with a draft order for something else
PATH = "/cds-services/dli-hpc-order-sign"
REAL_APP = "cds_service.api.app:create_app"
FLOOR_APP = "cds_service.bench.floor:create_floor_app"
JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Plan:
    in_process: int = 300  # iterations per size
    http: int = 400  # requests per (size, concurrency)
    rss_requests: int = 10_000
    fallback: int = 30  # no-prefetch calls against the delayed fixture FHIR server


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(samples) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


# --- in process ---------------------------------------------------------------------------
def pipeline() -> Callable[[bytes], tuple[bytes, object]]:
    """Exactly what the route runs between receiving the body and serialising the answer
    (api/pipeline.py `answer`: parse, read prefetch in slices, decide, render), on an event
    loop, never in the large-call worker: this measures the work, wherever it runs. It returns
    the answer and the call's objects: the route frees those after the answer is sent, so the
    clock stops before they are freed here too."""
    deps, service = pipeline_deps(), SERVICES["dli-hpc-order-sign"]
    loop = asyncio.new_event_loop()

    def run(body: bytes) -> tuple[bytes, object]:
        result = loop.run_until_complete(answer(body, service, deps))
        return result.body, result

    return run


def pipeline_deps() -> PipelineDeps:
    """The app's answering dependencies with embedded defaults; no audit writer (it is not
    used before the answer is rendered)."""
    settings = Settings()
    return PipelineDeps(
        settings,
        load(settings.cards_dir),
        GatherLimits.from_settings(settings),
        cast(AuditWriter, None),
        lambda: datetime.now(UTC),
        lambda: str(uuid.uuid4()),
    )


def parse_only(body: bytes) -> tuple[bytes, object]:
    """The floor's work in process: parse the body (and free it after the clock stops)."""
    return b"", orjson.loads(body)


def time_calls(run: Callable[[bytes], tuple[bytes, object]], body: bytes, n: int) -> list[float]:
    for _ in range(10):
        run(body)  # warm caches
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        held = run(body)
        samples.append(time.perf_counter() - started)
        del held
    return samples


def measure_in_process(
    bodies: dict[int, bytes], unrelated: bytes, iterations: int
) -> dict[str, Any]:
    """Order-sign at each size and the unrelated order, with the floor's parse of the same
    body beside each; then the scale curve: the least-squares line through the order-sign
    p50s, and the cost per resource between neighbouring sizes (a step shows there)."""
    run = pipeline()
    gc.collect()
    settle_heap()  # as the server does at start-up (api/app.py lifespan)
    results: dict[str, Any] = {}
    rows = [*((str(size), body) for size, body in bodies.items()), (UNRELATED, unrelated)]
    for label, body in rows:
        figures = summary(time_calls(run, body, iterations))
        parse = summary(time_calls(parse_only, body, iterations))
        results[label] = {**figures, "parse_p50_ms": parse["p50_ms"]}
    results["scale"] = scale_curve({size: results[str(size)]["p50_ms"] for size in bodies})
    return results


def scale_curve(p50_ms: dict[int, float]) -> dict[str, Any]:
    """The fitted p50 = fixed + per_resource x resources, and the marginal cost per resource
    from each size to the next (flat cost: every marginal close to the fitted slope)."""
    sizes = sorted(p50_ms)
    mean_x = statistics.fmean(sizes)
    mean_y = statistics.fmean(p50_ms[s] for s in sizes)
    spread = sum((s - mean_x) ** 2 for s in sizes)
    slope = sum((s - mean_x) * (p50_ms[s] - mean_y) for s in sizes) / spread if spread else 0.0
    marginal = {
        f"{low}-{high}": round((p50_ms[high] - p50_ms[low]) / (high - low) * 1000, 2)
        for low, high in itertools.pairwise(sizes)
    }
    return {
        "per_resource_us": round(slope * 1000, 2),
        "fixed_ms": round(mean_y - slope * mean_x, 3),
        "marginal_us": marginal,
    }


# --- over HTTP ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    cold_start_s: float

    def rss_mb(self) -> dict[str, float]:
        fields = {}
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = round(int(value.split()[0]) / 1024, 1)
        return {"rss_mb": fields.get("VmRSS", 0.0), "peak_rss_mb": fields.get("VmHWM", 0.0)}


@contextmanager
def server(app: str, first_body: bytes) -> Iterator[Server]:
    """Start uvicorn on a free loopback port; cold start = spawn to first answered order-sign."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    env = {**os.environ, "CDS_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 -- our own interpreter and module, fixed arguments
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = started + 30
        while True:
            try:
                reply = httpx.post(url + PATH, content=first_body, timeout=5,
                                   headers={"content-type": "application/json"})  # fmt: skip
                if reply.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline or process.poll() is not None:
                raise RuntimeError(f"{app} did not start on port {port}")
            time.sleep(0.01)
        yield Server(url, process, time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def load_round(
    client: httpx.AsyncClient, body: bytes, requests: int, concurrency: int
) -> tuple[list[float], float]:
    """`requests` order-signs from `concurrency` workers: each latency, and the wall time."""
    samples: list[float] = []
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            started = time.perf_counter()
            response = await client.post(PATH, content=body, headers=JSON_HEADERS)
            samples.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.perf_counter() - started


def load_client(url: str, concurrency: int) -> httpx.AsyncClient:
    # Idle connections are dropped before uvicorn's 5 s keep-alive closes them: a client idle
    # through the other server's long round would otherwise send on a closing connection.
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=4
    )
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=30)


async def load_alone(url: str, body: bytes, requests: int, concurrency: int) -> None:
    async with load_client(url, concurrency) as client:
        await load_round(client, body, requests, concurrency)


async def compare(
    urls: dict[str, str], body: bytes, requests: int, concurrency: int
) -> dict[str, dict[str, float]]:
    """The same load against each server, in alternating rounds, so that both see the same
    machine: a shared host's speed drifts over seconds, and a ratio of figures taken minutes
    apart would measure the drift. Between rounds, a pause of two audit batch windows: the
    service's deferred audit writes are not charged to the floor's round."""
    per_round = max(concurrency * 4, 50)
    samples: dict[str, list[float]] = {label: [] for label in urls}
    walls = dict.fromkeys(urls, 0.0)
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            label: await stack.enter_async_context(load_client(url, concurrency))
            for label, url in urls.items()
        }
        for client in clients.values():
            await load_round(client, body, per_round, concurrency)  # warm up
        for _ in range(max(1, requests // per_round)):
            for label, client in clients.items():
                taken, wall = await load_round(client, body, per_round, concurrency)
                samples[label] += taken
                walls[label] += wall
                await asyncio.sleep(2 * BATCH_WINDOW)
    return {
        label: {**summary(taken), "throughput_rps": round(len(taken) / walls[label], 1)}
        for label, taken in samples.items()
    }


def measure_http(bodies: dict[str, bytes], plan: Plan) -> dict[str, Any]:
    """Each body (labelled by resources, and the unrelated order) at concurrency 1 and 16,
    against the service and the floor in alternating rounds; then memory under a long run."""
    first = bodies[str(HTTP_SIZES[0])]
    with server(REAL_APP, first) as service, server(FLOOR_APP, first) as floor:
        urls = {"service": service.url, "floor": floor.url}
        results: dict[str, Any] = {
            "service": {"cold_start_s": round(service.cold_start_s, 3)},
            "floor": {"cold_start_s": round(floor.cold_start_s, 3)},
        }
        for label, body in bodies.items():
            for concurrency in (1, 16):
                figures = asyncio.run(compare(urls, body, plan.http, concurrency))
                for name in urls:
                    results[name][f"{label}/c{concurrency}"] = figures[name]
        results["service"]["memory_before"] = service.rss_mb()
        # in two halves: growth in the second half, not the first (allocator warm-up), is a leak
        half = plan.rss_requests // 2
        asyncio.run(load_alone(service.url, bodies["300"], half, 16))
        results["service"]["memory_half"] = {**service.rss_mb(), "requests": half}
        asyncio.run(load_alone(service.url, bodies["300"], plan.rss_requests - half, 16))
        results["service"]["memory_after"] = {**service.rss_mb(), "requests": plan.rss_requests}
    for key, figures in results["service"].items():
        floor_figures = results["floor"].get(key)
        if isinstance(figures, dict) and isinstance(floor_figures, dict) and "p50_ms" in figures:
            figures["p50_vs_floor"] = round(figures["p50_ms"] / floor_figures["p50_ms"], 2)
            figures["p99_vs_floor"] = round(figures["p99_ms"] / floor_figures["p99_ms"], 2)
    return results


# --- FHIR fallback ------------------------------------------------------------------------
FETCHED_KEYS = (*REQUIRED_PREFETCH, *OPTIONAL_PREFETCH)  # what a no-prefetch call fetches
FALLBACK_TOKEN = "bench-token"  # noqa: S105 -- guards synthetic fixture data on loopback only


def measure_fallback(delay: float, requests: int) -> dict[str, Any]:
    """No prefetch: the service fetches every key (required and optional) from the fixture FHIR
    server, each search delayed by `delay`. Compare the whole call with the slowest query."""
    scenario = find_scenario("relapsed-aml-allo-mac")
    fixture = create_fixture_server(FALLBACK_TOKEN, page_size=100, delay=delay)
    with serve_in_thread(fixture) as fhir_url:
        request = build_request(scenario.bundle(), "order-sign", (Service.DLI,), ())
        del request["prefetch"]
        point_at_fhir_server(request, fhir_url, FALLBACK_TOKEN)
        body = orjson.dumps(request)
        patient = request["context"]["patientId"]
        auth = {"Authorization": f"Bearer {FALLBACK_TOKEN}"}
        urls = [query_url(fhir_url, key, patient) for key in FETCHED_KEYS]
        with httpx.Client(timeout=30, headers=auth) as client:
            single = [_timed(partial(client.get, url)) for url in urls for _ in range(3)]
        with (
            server(REAL_APP, body) as running,
            httpx.Client(base_url=running.url, timeout=30) as client,
        ):
            post = partial(client.post, PATH, content=body, headers=JSON_HEADERS)
            totals = [_timed(post) for _ in range(requests)]
    return {
        "missing_keys": len(FETCHED_KEYS),
        "delay_per_query_ms": delay * 1000,
        "slowest_single_query_ms": round(max(single) * 1000, 1),
        "total": summary(totals),
    }


def _timed(call: Callable[[], httpx.Response]) -> float:
    started = time.perf_counter()
    response = call()
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}")
    return time.perf_counter() - started


# --- report -------------------------------------------------------------------------------
def table(report: dict[str, Any]) -> str:
    lines = ["", f"machine: {report['machine']}", "", *_in_process_lines(report["in_process"])]
    http = report.get("http")
    if http:
        lines += ["", "over HTTP (uvicorn, loopback); x = service / floor, measured side by side; "
                  "targets at 300: order-sign p50 <= 2.0x and p99 <= 3x, unrelated p50 <= 1.2x",
                  f"{'resources/conc':>18} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} "
                  f"{'floor p50':>9} {'floor p99':>9} {'p50 x':>6} {'p99 x':>6}"]  # fmt: skip
        for key, figures in http["service"].items():
            if isinstance(figures, dict) and "p50_ms" in figures:
                floor = http["floor"][key]
                lines.append(
                    f"{key:>18} {figures['p50_ms']:>8} {figures['p99_ms']:>8} "
                    f"{figures['throughput_rps']:>8} {floor['p50_ms']:>9} {floor['p99_ms']:>9} "
                    f"{figures['p50_vs_floor']:>6} {figures['p99_vs_floor']:>6}"
                )
        service = http["service"]
        lines += ["", f"cold start: service {service['cold_start_s']} s, floor {http['floor']['cold_start_s']} s",
                  f"memory: {service['memory_before']['rss_mb']} MB RSS after warm-up, "
                  f"{service['memory_half']['rss_mb']} MB after {service['memory_half']['requests']} more requests, "
                  f"{service['memory_after']['rss_mb']} MB after {service['memory_after']['requests']} "
                  f"(peak {service['memory_after']['peak_rss_mb']} MB)"]  # fmt: skip
    fallback = report.get("fallback")
    if fallback:
        lines += ["", f"FHIR fallback, no prefetch: {fallback['missing_keys']} keys fetched, each search "
                  f"delayed {fallback['delay_per_query_ms']:g} ms: total p50 {fallback['total']['p50_ms']} ms, "
                  f"p99 {fallback['total']['p99_ms']} ms; slowest single query {fallback['slowest_single_query_ms']} ms"]  # fmt: skip
    return "\n".join(lines)


def _in_process_lines(in_process: dict[str, Any]) -> list[str]:
    lines = ["in process (JSON body -> facts -> evaluation -> cards); parse = the floor's "
             "work on the same body", f"{'resources':>14} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'parse p50':>9} {'p50 x':>6}"]  # fmt: skip
    for label, figures in in_process.items():
        if label != "scale":
            ratio = figures["p50_ms"] / figures["parse_p50_ms"] if figures["parse_p50_ms"] else 0
            lines.append(f"{label:>14} {figures['p50_ms']:>8} {figures['p99_ms']:>8} "
                         f"{figures['parse_p50_ms']:>9} {ratio:>6.2f}")  # fmt: skip
    scale = in_process["scale"]
    steps = ", ".join(f"{span}: {cost} us" for span, cost in scale["marginal_us"].items())
    return [
        *lines,
        f"scale curve: p50 = {scale['fixed_ms']} ms + {scale['per_resource_us']} us per "
        f"resource (least squares); per resource between sizes: {steps}",
    ]


def run_benchmark(
    plan: Plan, with_http: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    requests = {size: order_sign_request(size) for size in SIZES}
    bodies = {size: orjson.dumps(request) for size, request in requests.items()}
    unrelated = orjson.dumps(unrelated_order_request(300))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "resources": {size: resource_count(request) for size, request in requests.items()},
        "body_bytes": {size: len(body) for size, body in bodies.items()},
        "plan": plan.__dict__,
    }
    log(f"in process: {plan.in_process} iterations x {len(SIZES) + 1} requests ...")
    report["in_process"] = measure_in_process(bodies, unrelated, plan.in_process)
    if with_http:
        log(f"over HTTP: {plan.http} requests per size and concurrency, service and floor, "
            f"then {plan.rss_requests} requests for memory ...")  # fmt: skip
        http_bodies = {str(size): bodies.get(size) or orjson.dumps(order_sign_request(size))
                       for size in HTTP_SIZES}  # fmt: skip
        report["http"] = measure_http({**http_bodies, UNRELATED: unrelated}, plan)
        log(f"FHIR fallback: {plan.fallback} calls with no prefetch, 200 ms per FHIR search ...")
        report["fallback"] = measure_fallback(0.2, plan.fallback)
    return report
