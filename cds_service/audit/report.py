"""Audit read-outs: one decision as JSON, and the statistics a policy team looks at.

Override statistics (also in the README):
- A card's outcome is its latest feedback (by outcomeTimestamp); cards without feedback are
  left out, because "no feedback" means the card was ignored or the client sends none.
- Override rate of a policy = evaluations of that policy whose card was overridden, divided by
  evaluations of that policy whose card got feedback.
- A criterion counts as overridden when the clinician overrode a card on which that criterion
  was not-met (or unknown; the two are reported apart): override rate of (policy, criterion,
  status) = such evaluations whose card was overridden / such evaluations whose card got
  feedback. Met and not-applicable criteria are not counted: nothing was overridden there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, TypeVarTuple

from sqlalchemy import Select, func, select

from cds_service.audit.models import (
    CriterionRow,
    DecisionRow,
    EvaluationRow,
    FeedbackRow,
)
from cds_service.audit.store import AuditFilter, AuditStore

AGAINST = ("not-met", "unknown")  # criterion statuses that an override goes against


def decision_dict(row: DecisionRow, feedback: list[FeedbackRow]) -> dict[str, Any]:
    return {
        "id": row.id,
        "recordedAt": row.recorded_at.isoformat(),
        "hookInstance": row.hook_instance,
        "serviceId": row.service_id,
        "hook": row.hook,
        "clientIss": row.client_iss,
        "patient": f"Patient/{row.patient_id}",
        "orders": row.orders,
        "dataSource": row.data_source,
        "latencyMs": round(row.latency_ms, 1),
        "crdMetricData": crd_metric_data(row),
        "evaluations": [
            {
                "order": e.order_ref,
                "service": e.service,
                "policyId": e.policy_id,
                "policyVersion": e.policy_version,
                "determination": e.determination,
                "card": e.card_uuid,
                "coverageAssertionId": e.coverage_assertion_id,
                "coverageInfo": e.coverage_info,
                "criteria": [
                    {"id": c.criterion_id, "status": c.status, "evidence": c.evidence}
                    for c in e.criteria
                ],
            }
            for e in row.evaluations
        ],
        "cards": [{"uuid": c.uuid, "suggestions": c.suggestion_uuids} for c in row.cards],
        "feedback": [
            {
                "card": f.card_uuid,
                "outcome": f.outcome,
                "outcomeTimestamp": f.outcome_timestamp.isoformat(),
                "acceptedSuggestions": f.accepted_suggestions,
                "overrideReason": {
                    "system": f.reason_system,
                    "code": f.reason_code,
                    "display": f.reason_display,
                    "userComment": f.user_comment,
                },
                "receivedAt": f.received_at.isoformat(),
            }
            for f in feedback
        ],
    }


def crd_metric_data(row: DecisionRow) -> dict[str, Any]:
    """The CRDMetricData fields of one call (null in records stored before they were kept)."""
    return {
        "hookType": row.hook,
        "payer": row.payer,
        "crdVersion": row.crd_version,
        "httpStatus": row.http_status,
        "tokenUse": row.token_use,
        "responseTimeMs": round(row.latency_ms, 1),
        "fetched": row.sources,
    }


def assertion_dict(row: DecisionRow, assertion_id: str) -> dict[str, Any]:
    """What was asserted under one coverage-assertion-id: when, for which orders, under which
    policy version, each criterion's status and the ids it rested on. Ids and codes only."""
    asserted = [e for e in row.evaluations if e.coverage_assertion_id == assertion_id]
    return {
        "coverageAssertionId": assertion_id,
        "recordedAt": row.recorded_at.isoformat(),
        "auditRecord": row.id,
        "hookInstance": row.hook_instance,
        "serviceId": row.service_id,
        "hook": row.hook,
        "clientIss": row.client_iss,
        "patient": f"Patient/{row.patient_id}",
        "dataSource": row.data_source,
        "fetched": row.sources,
        "payer": row.payer,
        "orders": [
            {
                "order": e.order_ref,
                "service": e.service,
                "policyId": e.policy_id,
                "policyVersion": e.policy_version,
                "determination": e.determination,
                "coverageInfo": e.coverage_info,
                "card": e.card_uuid,
                "criteria": [
                    {"id": c.criterion_id, "status": c.status, "evidence": c.evidence}
                    for c in e.criteria
                ],
                # the worksheet answers (QuestionnaireResponses) the criteria rested on
                "worksheetAnswers": sorted(
                    {
                        ref
                        for c in e.criteria
                        for ref in c.evidence
                        if ref.startswith("QuestionnaireResponse/")
                    }
                ),
            }
            for e in asserted
        ],
    }


Columns = TypeVarTuple("Columns")


def _within(query: Select[*Columns], where: AuditFilter) -> Select[*Columns]:
    """Limit an evaluation query to decisions recorded in the filter's time window."""
    query = query.join(DecisionRow, EvaluationRow.decision_id == DecisionRow.id)
    if where.since:
        query = query.where(DecisionRow.recorded_at >= where.since)
    if where.until:
        query = query.where(DecisionRow.recorded_at < where.until)
    return query


def _rate(overridden: int, total: int) -> float | None:
    return round(overridden / total, 4) if total else None


def stats(store: AuditStore, where: AuditFilter) -> dict[str, Any]:
    with store.session() as session:
        determinations: dict[str, Counter[str]] = defaultdict(Counter)
        counted = _within(
            select(EvaluationRow.policy_id, EvaluationRow.determination, func.count()),
            where,
        ).group_by(EvaluationRow.policy_id, EvaluationRow.determination)
        for policy, determination, count in session.execute(counted):
            determinations[policy][determination] = count

        linked = FeedbackRow.decision_id.is_not(None)
        outcome: dict[str | None, str] = {}  # card uuid -> latest outcome
        latest = select(FeedbackRow.card_uuid, FeedbackRow.outcome).where(linked)
        for card_uuid, result in session.execute(
            latest.order_by(FeedbackRow.outcome_timestamp, FeedbackRow.id)
        ):
            outcome[card_uuid] = result
        with_feedback = EvaluationRow.card_uuid.in_(select(FeedbackRow.card_uuid).where(linked))

        by_policy: dict[str, Counter[str]] = defaultdict(Counter)
        evaluations = _within(select(EvaluationRow.policy_id, EvaluationRow.card_uuid), where)
        for policy, card in session.execute(evaluations.where(with_feedback)):
            by_policy[policy]["total"] += 1
            by_policy[policy]["overridden"] += outcome.get(card) == "overridden"

        by_criterion: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
        criteria = _within(
            select(
                EvaluationRow.policy_id,
                CriterionRow.criterion_id,
                CriterionRow.status,
                EvaluationRow.card_uuid,
            ).join(CriterionRow, CriterionRow.evaluation_id == EvaluationRow.id),
            where,
        ).where(with_feedback, CriterionRow.status.in_(AGAINST))
        for policy, criterion, status, card in session.execute(criteria):
            by_criterion[policy, criterion, status]["total"] += 1
            by_criterion[policy, criterion, status]["overridden"] += (
                outcome.get(card) == "overridden"
            )

    return {
        "determinations": {p: dict(sorted(c.items())) for p, c in sorted(determinations.items())},
        "overridesByPolicy": [
            {
                "policy": p,
                "withFeedback": c["total"],
                "overridden": c["overridden"],
                "overrideRate": _rate(c["overridden"], c["total"]),
            }
            for p, c in sorted(by_policy.items())
        ],
        "overridesByCriterion": [
            {
                "policy": p,
                "criterion": k,
                "status": s,
                "withFeedback": c["total"],
                "overridden": c["overridden"],
                "overrideRate": _rate(c["overridden"], c["total"]),
            }
            for (p, k, s), c in sorted(by_criterion.items())
        ],
    }
