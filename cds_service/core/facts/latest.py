"""The latest assessment: which of a fact's results decides. One rule, used by every fact that
changes over time (chimerism, blood counts, the acute GVHD grade, disease status, smoking
status, coverage), across every source the fact reads.

1. Each result is placed by its clinically effective time (Observation effective[x], else
   issued; Condition onset, else recorded; a worksheet's authored; an order's authoredOn). A
   partial date ("2025", "2025-03") covers its whole span. Results without any date cannot be
   placed and are left out by the caller (its note says so where it matters).
2. The newest result decides, together with every result at the same time: the same day, or a
   partial date whose span reaches that day. Older results are history: they never decide, and
   the deciding result is stated with its date.
3. If a result at the newest time cannot be read, the fact is unknown and that result is named;
   it never falls back to an older value.
4. If the results at the newest time disagree, the fact is unknown with a conflict line, unless
   the fact module passes a `settle` rule (its docstring says the clinical reason).

Cheap by design: readings are plain tuples built from values the fact module has already read;
nothing is parsed or validated here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Generic, TypeVar

from cds_service.core.fhir_util import fmt
from cds_service.core.model import Evidence

V = TypeVar("V", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Span:
    """When a result was effective: one day, or the days a partial date covers."""

    start: date
    end: date

    @classmethod
    def day(cls, when: date) -> Span:
        return cls(when, when)


def span(value: Any) -> Span | None:
    """A FHIR date / dateTime / instant (string or parsed) as a Span; None if absent or bad."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return Span.day(value.date())
    if isinstance(value, date):
        return Span.day(value)
    text = str(value)
    try:
        if len(text) >= 10:
            return Span.day(date.fromisoformat(text[:10]))
        if len(text) == 7:  # YYYY-MM
            year, month = int(text[:4]), int(text[5:7])
            following = date(year + month // 12, month % 12 + 1, 1)
            return Span(date(year, month, 1), date.fromordinal(following.toordinal() - 1))
        if len(text) == 4:  # YYYY
            return Span(date(int(text), 1, 1), date(int(text), 12, 31))
    except ValueError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class Reading(Generic[V]):
    """One result of a fact: its value (None: the service cannot read it) and its evidence,
    whose summary says what the result states or why it cannot be read."""

    when: Span
    value: V | None
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Latest(Generic[V]):
    """What the newest results say: a value, or why there is none (unreadable / conflict)."""

    value: V | None
    newest: tuple[Reading[V], ...]
    problem: str = ""  # "" when value is decided; else the clinician-facing reason

    @property
    def evidence(self) -> tuple[Evidence, ...]:
        return tuple(r.evidence for r in self.newest)

    @property
    def when(self) -> date:
        """The date the newest result is stated with (a partial date: its first day)."""
        return max(r.when.start for r in self.newest)

    @property
    def conflict(self) -> str:
        """The card's conflict line when same-time results disagree, else ""."""
        return self.problem if self.problem.startswith("Conflict") else ""


def _newest(readings: Sequence[Reading[V]]) -> tuple[Reading[V], ...]:
    """The result ending latest and every result whose span reaches its start (same time).
    Sorted by reference so nothing downstream depends on the order the EHR listed them."""
    last = max(readings, key=lambda r: (r.when.end, r.when.start))
    same = [r for r in readings if r.when.end >= last.when.start]
    return tuple(sorted(same, key=lambda r: (r.evidence.reference, r.evidence.summary)))


def latest(
    readings: Iterable[Reading[V]],
    settle: Callable[[tuple[Reading[V], ...]], Reading[V] | None] | None = None,
) -> Latest[V] | None:
    """The latest assessment of `readings` (module docstring); None when there is none."""
    found = list(readings)
    if not found:
        return None
    newest = _newest(found)
    unreadable = [r for r in newest if r.value is None]
    if unreadable:
        named = "; ".join(f"{r.evidence.reference} ({fmt(r.when.start)})" for r in unreadable)
        return Latest(None, newest, f"the latest result could not be read: {named}")
    values = {r.value for r in newest}
    if len(values) == 1:
        return Latest(newest[0].value, newest)
    chosen = settle(newest) if settle is not None else None
    if chosen is not None:
        return Latest(chosen.value, (chosen,))
    said = "; ".join(f"{r.evidence.reference} says {r.evidence.summary}" for r in newest)
    return Latest(None, newest, f"Conflict: results at the same time disagree ({said})")
