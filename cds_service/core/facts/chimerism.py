"""donor_chimerism_pct: the latest donor chimerism after the index transplant (§5.2, §6.4)."""

from __future__ import annotations

from cds_service.core import codes
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
        return Fact(None, note=gap)
    if not results:
        return Fact(None, note="no chimerism result (% donor) after the transplant")
    when, donor, evidence = max(results, key=lambda item: item[0])
    return Fact(donor, (evidence,), note=f"latest result, {fmt(when)}")


READS = {"Observation": _is_chimerism}
