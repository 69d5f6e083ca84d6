"""The PHI-free audit record of one answered hook call, built from the decision.

Only references (`Type/id`), codes, uuids and outcomes are copied: the card text, the draft
orders and the prefetch never are (the card detail quotes clinical values).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds_service.audit.crd_metrics import coverage_information, crd_version, payer_of
from cds_service.core import Decision


@dataclass(frozen=True)
class CriterionRecord:
    id: str
    status: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class EvaluationRecord:
    order: str
    service: str
    policy_id: str
    policy_version: str
    determination: str
    card_uuid: str | None
    coverage_assertion_id: str | None
    criteria: tuple[CriterionRecord, ...]
    # CRDMetricData coverageInfo of this order (covered, paNeeded, docNeeded, infoNeeded):
    # None when no coverage information was returned for it (order-select, another policy)
    coverage_info: dict[str, Any] | None = None


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    suggestion_uuids: tuple[str, ...]


@dataclass(frozen=True)
class DecisionRecord:
    recorded_at: datetime
    hook_instance: str
    service_id: str
    hook: str
    patient_id: str
    orders: tuple[str, ...]
    evaluations: tuple[EvaluationRecord, ...]
    cards: tuple[CardRecord, ...]
    latency_ms: float
    client_iss: str | None = None
    data_source: str = "prefetch"
    # CRDMetricData per call: the payer label (policy id, `none`, `no-order`), the CRD version
    # answered, the HTTP status, whether a client token was used, and per prefetch key where its
    # data came from (prefetch / fetched / failed)
    payer: str | None = None
    crd_version: str | None = None
    http_status: int = 200
    token_use: str = "not-used"  # noqa: S105 - CRD tokenUse, not a secret
    sources: dict[str, str] = field(default_factory=dict)
    # Names this record across retries: the spool replays it until the store has it, and the
    # store's unique index on it keeps a replay after an unacknowledged commit from doubling it.
    record_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def decision_record(
    decision: Decision | None,
    *,
    recorded_at: datetime,
    hook_instance: str,
    service_id: str,
    hook: str,
    patient_id: str,
    latency_ms: float,
    client_iss: str | None = None,
    data_source: str = "prefetch",
    crd_2_2: bool = False,
    sources: dict[str, str] | None = None,
) -> DecisionRecord:
    """`decision` is None for a call whose draft orders hold no DLI / HPC boost order."""
    body: dict[str, Any] = decision.body if decision else {"cards": []}
    evaluations = decision.evaluations if decision else []
    card_of = decision.card_uuids if decision else {}
    assertion_of = decision.assertion_ids if decision else {}
    coverage_of = coverage_information(decision)
    return DecisionRecord(
        recorded_at=recorded_at,
        hook_instance=hook_instance,
        service_id=service_id,
        hook=hook,
        patient_id=patient_id,
        orders=tuple(dict.fromkeys(e.order.reference for e in evaluations)),
        evaluations=tuple(
            EvaluationRecord(
                order=e.order.reference,
                service=e.service.value,
                policy_id=e.policy.id,
                policy_version=e.policy.policy.version,
                determination=e.determination.value,
                card_uuid=card_of.get((e.order.reference, e.policy.id)),
                coverage_assertion_id=assertion_of.get(e.order.reference)
                if decision and e.policy is decision.route.policies[0]
                else None,
                criteria=tuple(
                    CriterionRecord(
                        c.id, c.status.value, tuple(dict.fromkeys(x.reference for x in c.evidence))
                    )
                    for c in e.criteria
                ),
                coverage_info=coverage_of.get(e.order.reference)
                if decision and e.policy is decision.route.policies[0]
                else None,
            )
            for e in evaluations
        ),
        cards=tuple(
            CardRecord(
                card["uuid"],
                tuple(s["uuid"] for s in card.get("suggestions") or () if s.get("uuid")),
            )
            for card in body.get("cards") or ()
        ),
        latency_ms=latency_ms,
        client_iss=client_iss,
        data_source=data_source,
        payer=payer_of(decision),
        crd_version=crd_version(crd_2_2),
        token_use="used" if client_iss else "not-used",
        sources=sources or {},
    )
