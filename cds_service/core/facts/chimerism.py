"""donor_chimerism_pct: the latest donor chimerism after the index transplant (§5.2, §6.4)."""

from __future__ import annotations

from typing import Any

from cds_service.core import codes
from cds_service.core.facts import car_t, transplant
from cds_service.core.facts.context import Context
from cds_service.core.facts.latest import Reading, Span, latest, span
from cds_service.core.fhir_util import fmt, observation_time, ref
from cds_service.core.model import Evidence, Fact
from cds_service.core.units import Dimension, read_quantity

# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = frozenset(codes.CHIMERISM_LOINC)


def _is_chimerism(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def _reading(obs: Any, when: Span, code: str) -> Reading[float]:
    """One chimerism result as % donor, or unreadable (a value given as text, a unit that is not
    a fraction, a percentage outside 0-100) with the reason in its evidence."""
    reports = codes.CHIMERISM_LOINC[code]
    value, why = read_quantity(obs.valueQuantity, Dimension.FRACTION)
    if value is None and obs.valueQuantity is None:
        why = "the result is not a number with a unit" + (
            f' (reported as text "{obs.valueString}")' if obs.valueString else ""
        )
    elif value is not None and not 0 <= value <= 100:
        value, why = None, f"{value:g} % is not a percentage of cells"
    if value is None:
        summary = f"Chimerism (LOINC {code}) could not be read: {why}"
        return Reading(when, None, Evidence(ref(obs), summary, when.start))
    donor = value if reports == "donor" else 100.0 - value
    summary = f"Chimerism (LOINC {code}): {donor:g} % donor"
    if reports == "recipient":
        summary += f" (reported {value:g} % recipient)"
    return Reading(when, round(donor, 6), Evidence(ref(obs), summary, when.start))


def donor_chimerism_pct(ctx: Context) -> Fact:
    """The latest chimerism result after the index transplant (core/facts/latest.py). Two
    results on the same day that disagree (e.g. unsorted cells and a CD3+ T-cell fraction) are
    a conflict: neither LOINC code carries the lineage, and no policy says which lineage its
    "chimerism" means, so the reviewer decides. Undated results cannot be placed after the
    transplant and are not read."""
    readings = []
    for obs, _, (_, code) in ctx.observations(_is_chimerism):
        when = span(observation_time(obs))
        if when is not None and ctx.after_transplant(when.start):
            readings.append(_reading(obs, when, code))
    if gap := ctx.unreadable("Observation", _is_chimerism):
        return Fact(None, note=f"not documented: {gap}")
    found = latest(readings)
    if found is None:
        return Fact(
            None,
            note="not documented: no chimerism result after the transplant; attach the latest "
            "chimerism report (% donor cells)",
        )
    if found.value is None:
        return Fact(
            None, found.evidence, note=f"not documented: {found.problem}", conflict=found.conflict
        )
    donor = found.value
    state = "documented absent (full donor chimerism)" if donor >= 100 else "documented present"
    return Fact(donor, found.evidence, note=f"{state}: latest result, {fmt(found.when)}")


def donor_chimerism_applicable(ctx: Context) -> Fact:
    """Donor chimerism measures an allogeneic graft (Wellmark HPC bullet 2, Molina HPC 2b): the
    chimerism criteria apply after an allogeneic transplant, and are not applicable after a
    documented autologous-only transplant or for a CAR-T-only patient (CAR T documented, no
    stem cell transplant on record), so no card asks them for a donor chimerism result."""
    hsct = transplant.hsct_type(ctx)
    if hsct.value == "allogeneic":
        return Fact(True, hsct.evidence, note="documented present: allogeneic transplant")
    if hsct.value == "autologous":
        return Fact(False, hsct.evidence, note="documented absent: autologous-only transplant")
    given = car_t.prior_car_t(ctx)
    if given.value is True and not ctx.transplants:
        return Fact(False, given.evidence, note="documented absent: CAR T only, no transplant")
    return Fact(None, hsct.evidence, note=hsct.note)


READS = {"Observation": _is_chimerism}
