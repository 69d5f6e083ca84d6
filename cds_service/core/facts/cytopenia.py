"""Persistent cytopenias: poor_graft_function after the index transplant and
cytopenia_after_car_t after the latest CAR T, both read from the same blood counts.

Poor graft function is "persistent cytopenias and/or transfusion dependence" (Wellmark
07.03.13 DESCRIPTION, Molina MCP-210 OVERVIEW), or a coded graft failure / pancytopenia.
Cytopenia after CAR T is Molina MCP-210's "persistent cytopenias after CAR T"; it needs a dated
CAR T (prior_car_t, car_t.py) and counts after it.
Thresholds, persistence and look-back: cds_service/data/clinical_thresholds.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from cds_service.core import codes
from cds_service.core.facts import car_t, transplant
from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import (
    codings,
    condition_active,
    display,
    fmt,
    procedure_date,
    procedure_done,
    ref,
)
from cds_service.core.model import Evidence, Fact

# UCUM unit -> factor to 10*9/L (counts) or g/dL (hemoglobin); terminology reference §5.1.
_COUNT_UNITS = {
    "10*3/uL": 1.0,
    "10*9/L": 1.0,
    "10*3/mm3": 1.0,
    "K/uL": 1.0,
    "/uL": 0.001,
    "{cells}/uL": 0.001,
    "/mm3": 0.001,
    "10*6/L": 0.001,
}
_HGB_UNITS = {"g/dL": 1.0, "g/L": 0.1, "mg/dL": 0.001, "mmol/L": 1.611}


def _loinc_in(wanted: frozenset[str]) -> Callable[[str, str], bool]:
    return lambda system, code: system == codes.LOINC and code in wanted


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = codes.ANC_LOINC | codes.PLATELET_LOINC | codes.HEMOGLOBIN_LOINC


def is_count(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def is_failure_dx(system: str, code: str) -> bool:
    return (
        system == codes.ICD10CM
        and (code in codes.GRAFT_FAILURE_ICD or code.startswith(codes.PANCYTOPENIA_ICD_PREFIX))
    ) or (system == codes.SNOMED and code in codes.GRAFT_FAILURE_SNOMED | codes.PANCYTOPENIA_SNOMED)


def persistent_cytopenias(
    ctx: Context, after: Callable[[date | None], bool]
) -> tuple[list[Evidence], bool]:
    """(evidence of persistent cytopenia per lineage, whether any count was read at all).

    Per lineage, walk back from the newest count in the look-back window: persistent when the
    counts stay below the threshold over at least `persistence_days`. The walk stops as soon
    as that is decided, so older counts are never validated.
    """
    t = ctx.thresholds
    lineages = (
        ("ANC", codes.ANC_LOINC, _COUNT_UNITS, t.anc_below, "x10^9/L"),
        ("Platelets", codes.PLATELET_LOINC, _COUNT_UNITS, t.platelets_below, "x10^9/L"),
        ("Hemoglobin", codes.HEMOGLOBIN_LOINC, _HGB_UNITS, t.hemoglobin_below, "g/dL"),
    )
    start = ctx.window_start(t.cytopenia_lookback_days)
    found: list[Evidence] = []
    any_count = False
    for name, loinc, units, below, unit_label in lineages:
        latest: tuple[date, float, Any] | None = None
        for obs, when, _ in ctx.observations(_loinc_in(loinc), newest_first=True):
            quantity = obs.valueQuantity
            factor = units.get((quantity.code or quantity.unit or "") if quantity else "")
            if quantity is None or quantity.value is None or factor is None or when is None:
                continue
            if when < start or not after(when):
                break  # newest first: everything further is older still
            any_count = True
            value = float(quantity.value) * factor
            if value >= below:
                break
            latest = latest or (when, value, obs)
            if (latest[0] - when).days >= t.persistence_days:
                summary = (
                    f"{name} below {below:g} {unit_label} from {fmt(when)} to {fmt(latest[0])} "
                    f"(latest {latest[1]:g} {unit_label})"
                )
                found.append(Evidence(ref(latest[2]), summary, latest[0]))
                break
    return found, any_count


def _is_transfusion(system: str, code: str) -> bool:
    return system == codes.ICD10PCS and code in codes.TRANSFUSION_PCS


def poor_graft_function(ctx: Context) -> Fact:
    t = ctx.thresholds
    if transplant.hsct_type(ctx).value == "none":
        return Fact(False, note="no stem cell transplant on record, so no graft")
    evidence = [
        Evidence(ref(c), f"Active {display(c.code)}", when)
        for c, when, _ in ctx.conditions(is_failure_dx)
        if condition_active(c) and (when is None or ctx.after_transplant(when))
    ]
    cytopenias, any_count = persistent_cytopenias(ctx, ctx.after_transplant)
    evidence += cytopenias
    start = ctx.window_start(t.transfusion_lookback_days)
    transfusions = [
        Evidence(ref(p), f"Transfusion: {display(p.code)}", when)
        for p in ctx.record.procedures
        if procedure_done(p)
        and (when := procedure_date(p)) is not None
        and start <= when <= ctx.as_of
        and ctx.after_transplant(when)
        and any(_is_transfusion(s, c) for s, c in codings(p.code))
    ]
    if len(transfusions) >= t.min_transfusions:
        evidence += transfusions
    if evidence:
        return Fact(True, tuple(evidence))
    gap = ctx.unreadable("Observation", is_count) or ctx.unreadable("Condition", is_failure_dx)
    if gap:
        return Fact(None, note=gap)
    if any_count:
        return Fact(
            False,
            note=f"post-transplant counts in the last {t.cytopenia_lookback_days} days are not persistently low",
        )
    return Fact(
        None,
        note=f"no blood counts after the transplant in the last {t.cytopenia_lookback_days} days",
    )


def cytopenia_after_car_t(ctx: Context) -> Fact:
    """Persistent cytopenia or active pancytopenia dated after the latest dated CAR T."""
    given = car_t.prior_car_t(ctx)
    if given.value is not True:
        return Fact(given.value, note=given.note)
    dates = [e.when for e in given.evidence if e.when is not None]
    if not dates:
        return Fact(None, given.evidence, note="CAR T date unknown")
    car_t_date = max(dates)

    def after(when: date | None) -> bool:
        return when is not None and when > car_t_date

    evidence = [
        Evidence(ref(c), f"Active {display(c.code)}", when)
        for c, when, _ in ctx.conditions(is_failure_dx)
        if condition_active(c) and after(when)
    ]
    cytopenias, any_count = persistent_cytopenias(ctx, after)
    evidence += cytopenias
    if evidence:
        return Fact(True, tuple(evidence))
    if gap := ctx.unreadable("Observation", is_count):
        return Fact(None, note=gap)
    if any_count:
        return Fact(
            False, note=f"counts after the {fmt(car_t_date)} CAR T are not persistently low"
        )
    return Fact(None, note=f"no blood counts after the {fmt(car_t_date)} CAR T")


READS = {"Observation": is_count, "Condition": is_failure_dx, "Procedure": _is_transfusion}
