"""prior_car_t and cytopenia_after_car_t (terminology reference §4.1, §4.2, §6.7)."""

from __future__ import annotations

from datetime import date

from cds_service.core.facts.context import Context
from cds_service.core.facts.graft import is_count, is_failure_dx, persistent_cytopenias
from cds_service.core.facts.hsct import is_car_t_coding
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


def _car_t_evidence(ctx: Context) -> list[Evidence]:
    found = [
        Evidence(ref(p), f"Procedure: {display(p.code)}", when)
        for p in ctx.record.procedures
        if procedure_done(p)
        and any(is_car_t_coding(s, c) for s, c in codings(p.code))
        and ((when := procedure_date(p)) is None or when <= ctx.as_of)
    ]
    found += [
        Evidence(ref(c), f"Condition: {display(c.code)}", when)
        for c, when, _ in ctx.conditions(is_car_t_coding)
    ]
    return found


def prior_car_t(ctx: Context) -> Fact:
    if evidence := _car_t_evidence(ctx):
        return Fact(True, tuple(evidence))
    gap = ctx.unreadable("Procedure", is_car_t_coding) or ctx.unreadable(
        "Condition", is_car_t_coding
    )
    return Fact(None, note=gap) if gap else Fact(False, note="no CAR T therapy on record")


def cytopenia_after_car_t(ctx: Context) -> Fact:
    """Persistent cytopenia or active pancytopenia dated after the latest dated CAR T."""
    given = prior_car_t(ctx)
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


READS = {"Procedure": is_car_t_coding, "Condition": is_car_t_coding}
