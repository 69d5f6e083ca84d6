"""Persistent cytopenias: poor_graft_function after the index transplant and
cytopenia_after_car_t after the latest CAR T, both read from the same blood counts.

Poor graft function is "persistent cytopenias and/or transfusion dependence" (Wellmark
07.03.13 DESCRIPTION, Molina MCP-210 OVERVIEW), or a coded graft failure / pancytopenia.
Cytopenia after CAR T is Molina MCP-210's "persistent cytopenias after CAR T"; it needs a dated
CAR T (prior_car_t, car_t.py) and counts after it.
Thresholds, persistence and look-back: cds_service/data/clinical_thresholds.yaml.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cds_service.core import codes
from cds_service.core.facts import car_t, transplant
from cds_service.core.facts.context import CodingTest, Context
from cds_service.core.facts.latest import Latest, Reading, Span, latest
from cds_service.core.fhir_util import codings, condition_active, display, fmt, procedure_date, ref
from cds_service.core.model import Evidence, Fact
from cds_service.core.units import Dimension, read_quantity


def _loinc_in(wanted: frozenset[str]) -> Callable[[str, str], bool]:
    return lambda system, code: system == codes.LOINC and code in wanted


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = codes.ANC_LOINC | codes.PLATELET_LOINC | codes.HEMOGLOBIN_LOINC


def is_count(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def is_failure_dx(system: str, code: str) -> bool:
    """Graft rejection / failure or pancytopenia: documented poor graft function on its own."""
    return (
        system == codes.ICD10CM
        and (
            code in codes.GRAFT_FAILURE_ICD | codes.GRAFT_REJECTION_ICD
            or code.startswith(codes.PANCYTOPENIA_ICD_PREFIX)
        )
    ) or (system == codes.SNOMED and code in codes.GRAFT_FAILURE_SNOMED | codes.PANCYTOPENIA_SNOMED)


def is_cytopenia_dx(system: str, code: str) -> bool:
    """A coded neutropenia / thrombocytopenia: supports, but does not show, persistence."""
    return system == codes.ICD10CM and codes.CYTOPENIA_DX_ICD.match(code) is not None


def _is_transfusion(system: str, code: str) -> bool:
    return (
        (system == codes.ICD10PCS and code in codes.TRANSFUSION_PCS)
        or (system == codes.CPT and code in codes.TRANSFUSION_CPT)
        or (system in codes.HCPCS_SYSTEMS and codes.TRANSFUSION_HCPCS.match(code) is not None)
        or (system == codes.SNOMED and code in codes.TRANSFUSION_SNOMED)
    )


@dataclass
class Counts:
    """What the blood counts in the window say, lineage by lineage."""

    persistent: list[Evidence] = field(default_factory=list)  # low over >= persistence_days
    short: list[tuple[Evidence, date]] = field(default_factory=list)  # low, not yet long enough
    recovered: list[str] = field(default_factory=list)  # lineages whose newest count is normal
    # lineages whose newest count cannot be read, or whose same-day counts disagree
    unread: list[Evidence] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def read(self) -> bool:
        return bool(self.persistent or self.short or self.recovered or self.unread)


_Lineage = tuple[str, frozenset[str], Dimension, float, str]


def _lineages(ctx: Context) -> tuple[_Lineage, ...]:
    t = ctx.thresholds
    return (
        ("ANC", codes.ANC_LOINC, Dimension.COUNT, t.anc_below, "x10^9/L"),
        ("Platelets", codes.PLATELET_LOINC, Dimension.COUNT, t.platelets_below, "x10^9/L"),
        (
            "Hemoglobin",
            codes.HEMOGLOBIN_LOINC,
            Dimension.MASS_CONCENTRATION,
            t.hemoglobin_below,
            "g/dL",
        ),
    )


# One count as read: (value in the lineage's unit, or None; why it cannot be read; Observation)
_Count = tuple[float | None, str, Any]


def _days(
    ctx: Context, lineage: _Lineage, after: Callable[[date | None], bool]
) -> Iterator[tuple[date, list[_Count]]]:
    """The lineage's counts in the look-back window, one day at a time, newest first. Lazy, so
    older days are never validated once the walk stops."""
    _, loinc, dimension, _, _ = lineage
    start = ctx.window_start(ctx.thresholds.cytopenia_lookback_days)
    day: date | None = None
    counts: list[_Count] = []
    for obs, when, _ in ctx.observations(_loinc_in(loinc), newest_first=True):
        if when is None:
            continue
        if when < start or not after(when):
            break  # newest first: everything further is older still
        if when != day:
            if day is not None:
                yield day, counts
            day, counts = when, []
        counts.append((*read_quantity(obs.valueQuantity, dimension), obs))
    if day is not None:
        yield day, counts


def _one_day(lineage: _Lineage, when: date, counts: list[_Count]) -> Latest[bool]:
    """Whether the lineage is low that day, by the latest-assessment rule (core/facts/latest.py):
    a count that cannot be read, or counts that disagree, leave the day undecided. A single
    readable count (the usual case) decides without building the readings."""
    name, _, _, below, unit_label = lineage
    if len(counts) == 1 and (value := counts[0][0]) is not None:
        return Latest(value < below, ())
    readings = []
    for value, why, obs in counts:
        if value is None:
            summary = f"{name} on {fmt(when)} could not be read: {why}"
        else:
            summary = f"{name} {value:g} {unit_label}"
        low = None if value is None else value < below
        readings.append(Reading(Span.day(when), low, Evidence(ref(obs), summary, when)))
    found = latest(readings)
    return found if found is not None else Latest(None, ())


def _walk(
    ctx: Context, lineage: _Lineage, after: Callable[[date | None], bool], into: Counts
) -> None:
    """Walk back from the newest count in the look-back window (each day decided by
    `_one_day`); stop as soon as the lineage is decided, so older counts are never validated.
    The newest day decides whether the lineage is low; a day that cannot be read or disagrees
    with itself ends the run of low counts there."""
    name, _, _, below, unit_label = lineage
    persistence = ctx.thresholds.persistence_days
    latest_low: tuple[date, float, Any] | None = None
    earliest_low: date | None = None
    for when, counts in _days(ctx, lineage, after):
        day = _one_day(lineage, when, counts)
        values = [(v, obs) for v, _, obs in counts if v is not None]
        if day.value is None and latest_low is None:  # the newest day: nothing decides
            into.unread.extend(day.evidence)
            if day.conflict:
                into.conflicts.append(day.conflict)
            return
        if day.value is not True:  # normal, or an older day that cannot be read
            if latest_low is None:  # the newest count is normal: this lineage has recovered
                value = min(v for v, _ in values)
                into.recovered.append(f"{name} {value:g} {unit_label} on {fmt(when)}")
            break
        if latest_low is None:
            value, obs = min(values, key=lambda item: item[0])
            latest_low = (when, value, obs)
        earliest_low = when
        if (latest_low[0] - when).days >= persistence:
            summary = (
                f"{name} below {below:g} {unit_label} from {fmt(when)} to {fmt(latest_low[0])} "
                f"(latest {latest_low[1]:g} {unit_label})"
            )
            into.persistent.append(Evidence(ref(latest_low[2]), summary, latest_low[0]))
            return
    if latest_low is not None and earliest_low is not None:
        summary = (
            f"{name} {latest_low[1]:g} {unit_label} on {fmt(latest_low[0])} (below {below:g}), "
            f"low since {fmt(earliest_low)}: shorter than {persistence} days"
        )
        settle = earliest_low + timedelta(days=persistence)
        into.short.append((Evidence(ref(latest_low[2]), summary, latest_low[0]), settle))


def blood_counts(ctx: Context, after: Callable[[date | None], bool]) -> Counts:
    counts = Counts()
    for lineage in _lineages(ctx):
        _walk(ctx, lineage, after, counts)
    return counts


def _conditions(
    ctx: Context, test: CodingTest, after: Callable[[date | None], bool]
) -> list[Evidence]:
    return [
        Evidence(ref(c), f"Active {display(c.code)}", when)
        for c, when, _ in ctx.conditions(test)
        if condition_active(c) and (when is None or after(when))
    ]


def _transfusions(ctx: Context, after: Callable[[date | None], bool]) -> list[Evidence]:
    start = ctx.window_start(ctx.thresholds.transfusion_lookback_days)
    return [
        Evidence(ref(p), f"Transfusion: {display(p.code)}", when)
        for p in ctx.procedures
        if (when := procedure_date(p)) is not None
        and start <= when
        and after(when)
        and any(_is_transfusion(s, c) for s, c in codings(p.code))
    ]


def _unsettled(ctx: Context, counts: Counts, supporting: list[Evidence], since: str) -> Fact:
    """No proof either way: say which count (or which series) would settle it."""
    t = ctx.thresholds
    evidence = tuple(e for e, _ in counts.short) + tuple(supporting)
    if counts.short:
        on = max(d for _, d in counts.short)
        return Fact(
            None,
            evidence,
            note=f"not documented: counts are low for less than {t.persistence_days} days; a "
            f"count on or after {fmt(on)} showing the cytopenia persists would settle it",
        )
    series = (
        f"CBCs covering at least {t.persistence_days} days within the last "
        f"{t.cytopenia_lookback_days} days, after {since}"
    )
    if supporting:
        return Fact(
            None,
            evidence,
            note=f"not documented: a cytopenia or transfusion is coded but no counts show whether "
            f"it persists; attach {series}",
        )
    return Fact(None, note=f"not documented: no blood counts; attach {series}")


def _decide(ctx: Context, after: Callable[[date | None], bool], since: str, dx: CodingTest) -> Fact:
    t = ctx.thresholds
    evidence = _conditions(ctx, dx, after)
    counts = blood_counts(ctx, after)
    evidence += counts.persistent
    transfusions = _transfusions(ctx, after)
    if len(transfusions) >= t.min_transfusions:
        evidence += transfusions
    if evidence:
        return Fact(True, tuple(evidence), note="documented present")
    gap = ctx.unreadable("Observation", is_count) or ctx.unreadable("Condition", dx)
    if gap:
        return Fact(None, note=f"not documented: {gap}")
    supporting = _conditions(ctx, is_cytopenia_dx, after) + transfusions
    if counts.unread:
        problem = "; ".join(e.summary for e in counts.unread)
        return Fact(
            None,
            tuple(counts.unread) + tuple(supporting),
            note=f"not documented: the newest count of a lineage cannot be decided ({problem}); "
            "attach a readable count (value with a unit)",
            conflict="; ".join(counts.conflicts),
        )
    if counts.recovered and not counts.short:
        return Fact(
            False,
            note=f"documented absent: the newest counts after {since} are not low "
            f"({'; '.join(counts.recovered)})",
        )
    return _unsettled(ctx, counts, supporting, since)


def poor_graft_function(ctx: Context) -> Fact:
    """Graft failure / rejection, pancytopenia, a cytopenia persisting >= persistence_days, or
    transfusion dependence after the index transplant. A short run of low counts, a single
    severe count or a coded neutropenia / thrombocytopenia is not documented (unknown); only
    counts that show recovery are a documented absence."""
    index = ctx.index_transplant
    if index is None:
        hsct = transplant.hsct_type(ctx)
        return Fact(None, hsct.evidence, note=hsct.note or transplant.TRANSPLANT_NOT_DOCUMENTED)
    return _decide(ctx, ctx.after_transplant, f"the {fmt(index.when)} transplant", is_failure_dx)


def cytopenia_after_car_t(ctx: Context) -> Fact:
    """Persistent cytopenia or active pancytopenia dated after the latest dated CAR T."""
    given = car_t.prior_car_t(ctx)
    if given.value is not True:
        return Fact(given.value, note=given.note)
    dates = [e.when for e in given.evidence if e.when is not None]
    if not dates:
        return Fact(None, given.evidence, note="not documented: CAR T date unknown")
    car_t_date = max(dates)

    def after(when: date | None) -> bool:
        return when is not None and when > car_t_date

    return _decide(ctx, after, f"the {fmt(car_t_date)} CAR T", is_failure_dx)


READS = {
    "Observation": is_count,
    "Condition": lambda s, c: is_failure_dx(s, c) or is_cytopenia_dx(s, c),
    "Procedure": _is_transfusion,
}
