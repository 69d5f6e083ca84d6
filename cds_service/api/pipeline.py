"""One hook call, start to answer: parse -> gather -> decide -> render, as plain functions.

The route (api/routes.py) only reads the body and hands it here; what runs after the answer is
sent (the log line) is `after_answer`, so it never delays the clinician; the audit record is on
disk before the answer (`audit_answer`: about a millisecond, one fsync shared by every call
that waits with it).
A large call is answered the same way in a worker process (api/offload.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson

from cds_service.api.allowlist import server_allowed
from cds_service.api.discovery import SERVICES, ServiceDef
from cds_service.api.errors import HookError
from cds_service.api.gather import FETCHED_TYPES, Gathered, gather
from cds_service.api.hooks import ParsedHook, parse_hook
from cds_service.api.limits import GatherLimits
from cds_service.api.metrics import data_sources
from cds_service.api.offload import Offload, worker_process_setup
from cds_service.api.resolve import resolve_orders
from cds_service.audit.record import decision_record
from cds_service.audit.writer import ACK_TIMEOUT_S, AuditWriter
from cds_service.core import (
    Decision,
    DecisionInputs,
    decide,
    not_evaluated_card,
    relevant_resources,
    unhandled_payer,
)
from cds_service.logs import safe_ids
from cds_service.policy_store import Knowledge
from cds_service.settings import Settings
from cds_service.smart.links import launch_url

log = logging.getLogger("cds_service")


@dataclass(frozen=True)
class PipelineDeps:
    """What answering needs beyond the request: built once per app (api/app.py)."""

    settings: Settings
    knowledge: Knowledge
    limits: GatherLimits
    audit: AuditWriter
    clock: Callable[[], datetime]
    new_uuid: Callable[[], str]
    fhir_transport: httpx.AsyncBaseTransport | None = None
    offload: Offload | None = None  # None: every call answered on the event loop


@dataclass(frozen=True)
class Answer:
    """The serialised answer and what the after-answer steps need to log and audit it."""

    body: bytes
    parsed: ParsedHook
    decision: Decision | None
    gathered: Gathered | None
    latency_ms: float


def parse(body: bytes, service: ServiceDef, settings: Settings) -> ParsedHook:
    parsed = parse_hook(body, service)
    server = parsed.request.fhirServer
    if server is not None and not server_allowed(
        server, settings.fhir_allowed_servers, settings.env
    ):
        raise HookError(
            400, f"fhirServer {server} is not on this service's allowlist of FHIR servers"
        )
    return parsed


async def answer(body: bytes, service: ServiceDef, deps: PipelineDeps) -> Answer:
    started, offload = time.perf_counter(), deps.offload
    if offload is not None and offload.takes(body):
        result = await offload.run(_answer_in_worker, body, service.id)
        return dataclasses.replace(result, latency_ms=_since(started))  # the wait included
    if offload is not None and offload.waits_turn(len(body)):
        async with offload.turn:
            return await _answer_here(body, service, deps, started)
    return await _answer_here(body, service, deps, started)


async def _answer_here(
    body: bytes, service: ServiceDef, deps: PipelineDeps, started: float
) -> Answer:
    parsed = parse(body, service, deps.settings)
    limits = deps.limits
    if parsed.references:  # appointment-book, order-dispatch: the orders are named by reference
        parsed = await resolve_orders(parsed, limits, deps.fhir_transport)
        limits = dataclasses.replace(limits, budget=max(0.0, limits.budget - _since(started) / 1000))
    if not parsed.orders:
        return Answer(_nothing_to_check(parsed, deps), parsed, None, None, _since(started))
    today = deps.clock().date()
    keep = relevant_resources(parsed.orders, today, deps.knowledge.thresholds)
    gathered = await gather(parsed, limits, deps.fhir_transport, keep, deps.knowledge.policies)
    decision = decide(
        DecisionInputs(
            hook=service.hook,
            orders=parsed.orders,
            record=gathered.record,
            policies=deps.knowledge.policies,
            thresholds=deps.knowledge.thresholds,
            options=dataclasses.replace(parsed.options, app_url=launch_url(deps.settings)),
            today=today,
            new_uuid=deps.new_uuid,
            unretrieved=tuple(
                f"{FETCHED_TYPES[key]} data ({key}): {why}"
                for key, why in gathered.unretrieved.items()
            ),
            patient_id=parsed.context.patientId,
            targets=coverage_targets(parsed),
            not_evaluated=parsed.not_evaluated,
        )
    )
    refusal = unhandled_payer(
        service.hook,
        decision.route,
        len(gathered.record.coverages),
        gathered.unretrieved.get("coverage") or gathered.unretrieved.get("payer", ""),
    )
    if refusal:
        raise HookError(400, refusal)
    return Answer(orjson.dumps(decision.body), parsed, decision, gathered, _since(started))


def _nothing_to_check(parsed: ParsedHook, deps: PipelineDeps) -> bytes:
    """No DLI / HPC boost order to evaluate: no cards, as for an unrelated order; or, when the
    call named orders that could not be evaluated, one card saying which and what to check."""
    if not parsed.not_evaluated:
        return b'{"cards":[]}'
    card = not_evaluated_card(parsed.not_evaluated, deps.new_uuid, parsed.options.crd_2_2)
    return orjson.dumps({"cards": [card]})


def coverage_targets(parsed: ParsedHook) -> dict[str, tuple[dict[str, Any], ...]]:
    """Where appointment-book's coverage information goes. CRD 2.2.1 cards.md (FHIR-50318): "if
    an Appointment is 'basedOn' a ServiceRequest, the system action ... will be against the
    ServiceRequest, not the appointment" (no targets: the order). CRD 2.0.1 has no such rule:
    the extension's context and profile-appointment put it on the Appointment, which is where
    Inferno's 2.0.1 crd_coverage_info_system_action_received looks for it on this hook."""
    if parsed.request.hook != "appointment-book" or parsed.options.crd_2_2:
        return {}
    return dict(parsed.appointments)


_WORKER_DEPS: list[PipelineDeps] = []  # in a large-call worker process: its app's deps


def adopt_in_worker(deps: PipelineDeps) -> None:
    """Run once in each large-call worker (forked): answer with the app's deps, inline."""
    _WORKER_DEPS[:] = [dataclasses.replace(deps, offload=None)]
    worker_process_setup()


def worker_deps() -> PipelineDeps:
    """In a large-call worker process: the deps of the app it was forked from."""
    return _WORKER_DEPS[0]


def _answer_in_worker(body: bytes, service_id: str) -> Answer:
    result = asyncio.run(answer(body, SERVICES[service_id], _WORKER_DEPS[0]))
    release(result)
    return result


def release(result: Answer) -> None:
    """Drop what the call read (prefetch JSON, validated resources), keeping what the log line
    and the audit record need: only that is sent back from the worker, and the rest is freed
    there, where freeing a million JSON nodes costs the event loop nothing."""
    if result.parsed.request.prefetch is not None:
        result.parsed.request.prefetch.clear()
    if result.gathered is not None:
        record = result.gathered.record
        held_lists = (
            record.conditions,
            record.procedures,
            record.observations,
            record.coverages,
            record.medication_administrations,
            record.medication_requests,
            record.questionnaire_responses,
        )
        for held in held_lists:
            held.clear()
        record.organizations.clear()


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def audit_answer(
    result: Answer, service: ServiceDef, deps: PipelineDeps, client_iss: str | None
) -> None:
    """Hand the call's audit record to the writer and wait (at most ACK_TIMEOUT_S: a full disk)
    until it is on disk: the answer is sent only then, so no crash loses an answered call's
    record (audit/writer.py). A failure is logged by its type only, and the answer stands."""
    try:
        loop = asyncio.get_running_loop()
        stored = loop.create_future()

        def settle() -> None:
            if not stored.done():
                stored.set_result(None)

        def on_stored() -> None:  # on the writer's spool thread
            loop.call_soon_threadsafe(settle)

        deps.audit.submit(
            decision_record(
                result.decision,
                recorded_at=deps.clock(),
                hook_instance=str(result.parsed.request.hookInstance),
                service_id=service.id,
                hook=service.hook,
                patient_id=result.parsed.context.patientId,
                latency_ms=result.latency_ms,
                client_iss=client_iss,
                data_source=result.gathered.source if result.gathered else "prefetch",
                crd_2_2=result.parsed.options.crd_2_2,
                sources=data_sources(result.gathered),
            ),
            on_stored,
        )
        await asyncio.wait_for(stored, ACK_TIMEOUT_S)
    except TimeoutError:
        log.warning("audit record not on disk within %g s; answered anyway", ACK_TIMEOUT_S)
    except Exception as error:
        log.error("audit step failed: %s", type(error).__name__)


async def after_answer(service: ServiceDef, result: Answer) -> None:
    """The log line, once the answer is sent. It cannot change the answer; a failure is logged
    by its type only (its message may hold data)."""
    try:
        if result.decision is not None:
            log_decision(service.id, result)
    except Exception as error:
        log.error("after-answer step failed: %s", type(error).__name__)


def log_decision(service_id: str, result: Answer) -> None:
    """Ids and outcomes only: never tokens, prefetch contents or clinical values."""
    if not log.isEnabledFor(logging.INFO) or result.decision is None or result.gathered is None:
        return  # the fields are not free to build
    parsed, decision, record = result.parsed, result.decision, result.gathered.record
    fields = {
        "hook": parsed.request.hook,
        "service": service_id,
        "hookInstance": str(parsed.request.hookInstance),
        "patient": parsed.context.patientId,
        "orders": [o.reference for o in parsed.orders],
        "policies": sorted({e.policy.id for e in decision.evaluations}),
        "determinations": {
            f"{e.order.reference} {e.policy.id}": e.determination.value
            for e in decision.evaluations
        },
        "unreadable_resources": len(record.problems),
        "payer_recognised": decision.route.recognised,
        # which criteria rested on a worksheet answer; the answers not read as counts per reason
        # only: a linkId is client text (it may hold anything), and one per line grew unbounded
        "attested": sorted({c.id for e in decision.evaluations for c in e.criteria if c.attested}),
        "ignored_answers": dict(Counter(i.reason for i in decision.ignored_answers)),
        "other_patient": len(record.other_patient),
        "other_patient_ids": safe_ids(record.other_patient),
        "ms": round(result.latency_ms, 1),
    }
    log.info("hook evaluated", extra={"fields": fields})
