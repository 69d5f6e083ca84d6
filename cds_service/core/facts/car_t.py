"""prior_car_t: CAR T therapy on record (terminology reference §4.1, §4.2, §6.7).

cytopenia_after_car_t is decided with the other cytopenias, in cytopenia.py.
"""

from __future__ import annotations

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import codings, display, procedure_date, ref
from cds_service.core.model import Evidence, Fact


def is_car_t_coding(system: str, code: str) -> bool:
    return (
        (system == codes.SNOMED and code in codes.CAR_T_SNOMED)
        or (system == codes.CPT and code in codes.CAR_T_CPT)
        or (system in codes.HCPCS_SYSTEMS and code in codes.CAR_T_HCPCS)
        or (system == codes.ICD10CM and code in codes.CAR_T_ICD)
    )


def _car_t_evidence(ctx: Context) -> list[Evidence]:
    found = [
        Evidence(ref(p), f"Procedure: {display(p.code)}", when)
        for p in ctx.procedures
        if any(is_car_t_coding(s, c) for s, c in codings(p.code))
        for when in (procedure_date(p),)
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


READS = {"Procedure": is_car_t_coding, "Condition": is_car_t_coding}
