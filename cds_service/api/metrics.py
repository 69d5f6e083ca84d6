"""`GET /metrics`: what an operator watches, in the Prometheus text format (prometheus-client).

Every label value comes from a fixed, small set (service ids, hooks, policy ids, CRD codes,
prefetch keys, outcome words): never a patient, order, token or client-sent string, so nothing
here can carry patient data and the series count stays bounded. Each app has its own registry
(tests build many apps; one process-wide registry would mix them). With `serve --workers N`
each worker counts its own calls: a scrape answers for the worker that served it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cds_service.api.gather import Gathered
from cds_service.api.offload import Offload
from cds_service.audit.crd_metrics import coverage_information, crd_version, payer_of
from cds_service.audit.writer import AuditWriter
from cds_service.core import Decision

# Around CRD found-2: an answer within 5 s 90 % of the time (10 s for a cold order-sign), and
# the FHIR fallback budget (3 s).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


def fetch_outcomes(gathered: Gathered | None) -> dict[str, str]:
    """Per prefetch key queried from the EHR's FHIR server: `ok` or `failed`."""
    if gathered is None:
        return {}
    return {
        key: "failed" if key in gathered.unretrieved else "ok"
        for key in (*gathered.fetched, *gathered.unretrieved)
    }


def data_sources(gathered: Gathered | None) -> dict[str, str]:
    """Per prefetch key queried (the rest came in prefetch): `fetched` or `failed`."""
    return {
        key: "fetched" if outcome == "ok" else "failed"
        for key, outcome in fetch_outcomes(gathered).items()
    }


@dataclass(frozen=True)
class CallFigures:
    """What one answered hook call adds to the counters."""

    service: str
    hook: str
    decision: Decision | None
    gathered: Gathered | None
    crd_2_2: bool
    seconds: float


class Metrics:
    def __init__(
        self,
        audit: AuditWriter,
        offload: Offload | None,
        replay_health: Callable[[], dict[str, str] | None] = lambda: None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "cds_hook_duration_seconds",
            "Time to answer a hook call, audit record on disk included",
            ["service", "hook", "payer", "crd_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.responses = Counter(
            "cds_hook_responses", "Hook calls answered, by HTTP status", ["service", "status"],
            registry=r,
        )  # fmt: skip
        self.determinations = Counter(
            "cds_determinations", "Evaluations of an order against a policy, by determination",
            ["service", "hook", "policy", "determination"], registry=r,
        )  # fmt: skip
        self.coverage_info = Counter(
            "cds_coverage_information",
            "Orders answered with CRD coverage information, by `covered` code",
            ["hook", "payer", "covered"], registry=r,
        )  # fmt: skip
        self.orders = Counter(
            "cds_orders", "DLI / HPC boost orders answered (the coverage-information share's base)",
            ["hook", "payer"], registry=r,
        )  # fmt: skip
        self.fallback = Counter(
            "cds_fallback_fetches", "Prefetch keys queried from the EHR's FHIR server, by outcome",
            ["key", "outcome"], registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "cds_client_tokens",
            "Client JWTs checked: accepted, rejected, replayed (jti seen), unchecked (replay "
            "cache unavailable)",
            ["outcome"], registry=r,
        )  # fmt: skip
        r.register(_StateCollector(audit, offload, replay_health))

    def observe(self, call: CallFigures) -> None:
        decision = call.decision
        payer = payer_of(decision)
        self.latency.labels(call.service, call.hook, payer, crd_version(call.crd_2_2)).observe(
            call.seconds
        )
        self.responses.labels(call.service, "200").inc()
        for key, outcome in fetch_outcomes(call.gathered).items():
            self.fallback.labels(key, outcome).inc()
        if decision is None:
            return
        for e in decision.evaluations:
            self.determinations.labels(
                call.service, call.hook, e.policy.id, e.determination.value
            ).inc()
        self.orders.labels(call.hook, payer).inc(len({e.order.reference for e in decision.evaluations}))
        for info in coverage_information(decision).values():
            self.coverage_info.labels(call.hook, payer, str(info.get("covered"))).inc()

    def rejected(self, service: str, status: int) -> None:
        self.responses.labels(service, str(status)).inc()


class _StateCollector(Collector):
    """Gauges read at scrape time: the audit queue and spool, the JWT replay cache, the
    large-call worker queue."""

    def __init__(
        self,
        audit: AuditWriter,
        offload: Offload | None,
        replay_health: Callable[[], dict[str, str] | None],
    ) -> None:
        self._audit, self._offload, self._replay_health = audit, offload, replay_health

    def collect(self) -> Iterator[Any]:
        health = self._audit.health()
        audit = GaugeMetricFamily(
            "cds_audit_records",
            "Audit records by where they are: queued (not yet on disk), spooled (on disk, not yet "
            "in the database), held in memory (spool unwritable), refused, dropped, written",
            labels=["state"],
        )
        for state, key in (
            ("queued", "queued"),
            ("spooled", "spooled"),
            ("held_in_memory", "heldInMemory"),
            ("refused", "refused"),
            ("dropped", "dropped"),
            ("written", "written"),
        ):
            audit.add_metric([state], float(health.get(key, 0)))
        yield audit
        up = GaugeMetricFamily(
            "cds_audit_storage_ok", "1 when the audit database takes records, else 0"
        )
        up.add_metric([], 1.0 if health["status"] == "ok" else 0.0)
        yield up
        replay = self._replay_health()
        if replay is not None:  # auth on
            cache = GaugeMetricFamily(
                "cds_replay_cache_ok", "1 while the JWT replay cache answers, else 0 (calls get 503)",
                labels=["backend"],
            )  # fmt: skip
            cache.add_metric([replay.get("backend", "")], 1.0 if replay["status"] == "ok" else 0.0)
            yield cache
        if self._offload is not None:
            large = GaugeMetricFamily(
                "cds_large_calls", "Large calls waiting or answered in the worker processes",
                labels=["state"],
            )  # fmt: skip
            large.add_metric(["in_flight"], float(self._offload.in_flight))
            large.add_metric(["capacity"], float(self._offload.queue))
            yield large
