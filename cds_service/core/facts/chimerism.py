"""donor_chimerism_pct: the latest donor chimerism after the index transplant (§5.2, §6.4)."""

from __future__ import annotations

from cds_service.core import codes
from cds_service.core.facts import car_t, transplant
from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import fmt, ref
from cds_service.core.model import Evidence, Fact

# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = frozenset(codes.CHIMERISM_LOINC)


def _is_chimerism(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def donor_chimerism_pct(ctx: Context) -> Fact:
    results = []
    for obs, when, (_, code) in ctx.observations(_is_chimerism):
        quantity = obs.valueQuantity
        if (
            quantity is None
            or quantity.value is None
            or "%" not in (quantity.code or quantity.unit or "")
        ):
            continue
        if not ctx.after_transplant(when) or when is None:
            continue
        value = float(quantity.value)
        donor = value if codes.CHIMERISM_LOINC[code] == "donor" else 100.0 - value
        summary = f"Chimerism (LOINC {code}): {donor:g} % donor"
        if codes.CHIMERISM_LOINC[code] == "recipient":
            summary += f" (reported {value:g} % recipient)"
        results.append((when, donor, Evidence(ref(obs), summary, when)))
    if gap := ctx.unreadable("Observation", _is_chimerism):
        return Fact(None, note=f"not documented: {gap}")
    if not results:
        return Fact(
            None,
            note="not documented: no chimerism result after the transplant; attach the latest "
            "chimerism report (% donor cells)",
        )
    when, donor, evidence = max(results, key=lambda item: item[0])
    state = "documented absent (full donor chimerism)" if donor >= 100 else "documented present"
    return Fact(donor, (evidence,), note=f"{state}: latest result, {fmt(when)}")


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
