"""`cds-service audit metrics`: the CRD suggested measures (CRD `metrics.md`) over a date range,
from the CRDMetricData fields of the audit records, per hook and payer:

- calls, and the response time's p50 / p90 (nearest rank) in milliseconds;
- share under 5 s (CRD's budget: the response time recorded is the service's own, from the
  request body read to the answer built);
- share with coverage information: calls whose answer carried a coverage-information
  systemAction, and the split of its `covered` codes.

Records stored before the fields were kept (migration 0004) count under payer `unrecorded`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from cds_service.audit.models import DecisionRow, EvaluationRow
from cds_service.audit.store import AuditFilter, AuditStore

BUDGET_MS = 5000.0  # CRD: a response within 5 s at the 90th percentile
UNRECORDED = "unrecorded"


def percentile(sorted_values: list[float], share: float) -> float | None:
    """Nearest-rank percentile of ascending values; None for none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class _Group:
    latencies: list[float] = field(default_factory=list)
    with_coverage_info: set[int] = field(default_factory=set)
    covered: Counter[str] = field(default_factory=Counter)


def _groups(store: AuditStore, where: AuditFilter) -> dict[tuple[str, str], _Group]:
    calls = select(DecisionRow.id, DecisionRow.hook, DecisionRow.payer, DecisionRow.latency_ms)
    infos = select(DecisionRow.id, EvaluationRow.coverage_info).join(
        EvaluationRow, EvaluationRow.decision_id == DecisionRow.id
    )
    infos = infos.where(EvaluationRow.coverage_info.is_not(None))
    if where.since:
        calls = calls.where(DecisionRow.recorded_at >= where.since)
        infos = infos.where(DecisionRow.recorded_at >= where.since)
    if where.until:
        calls = calls.where(DecisionRow.recorded_at < where.until)
        infos = infos.where(DecisionRow.recorded_at < where.until)
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    group_of: dict[int, _Group] = {}
    with store.session() as session:
        for decision_id, hook, payer, latency in session.execute(calls):
            group = groups[hook, payer or UNRECORDED]
            group.latencies.append(latency)
            group_of[decision_id] = group
        for decision_id, info in session.execute(infos):
            holder = group_of.get(decision_id)
            if holder is not None:
                holder.with_coverage_info.add(decision_id)
                holder.covered[str(info.get("covered"))] += 1
    return groups


def crd_metrics(store: AuditStore, where: AuditFilter) -> list[dict[str, Any]]:
    """One row per (hook, payer), sorted."""
    rows = []
    for (hook, payer), group in sorted(_groups(store, where).items()):
        latencies = sorted(group.latencies)
        calls = len(latencies)
        rows.append(
            {
                "hook": hook,
                "payer": payer,
                "calls": calls,
                "p50Ms": _rounded(percentile(latencies, 0.5)),
                "p90Ms": _rounded(percentile(latencies, 0.9)),
                "shareUnder5s": round(sum(v < BUDGET_MS for v in latencies) / calls, 4),
                "shareWithCoverageInfo": round(len(group.with_coverage_info) / calls, 4),
                "covered": dict(sorted(group.covered.items())),
            }
        )
    return rows


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
