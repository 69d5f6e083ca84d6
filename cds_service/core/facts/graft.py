"""t_cell_depleted_graft: how the index allogeneic graft was processed, read from its code.

ICD-10-PCS substance U or SNOMED 234332000/234333005 mean T-cell depleted (documented present).
The other ICD-10-PCS substances (Y/G/X: stem cells, marrow, cord blood) and the other allogeneic
SNOMED concepts name the graft type, so they are a documented absence of depletion. CPT 38240
cannot express graft processing at all: a transplant coded only with CPT is not documented.
"""

from __future__ import annotations

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.facts.transplant import is_hsct_coding
from cds_service.core.fhir_util import codings
from cds_service.core.model import Fact


def _is_t_cell_depleted(system: str, code: str) -> bool:
    if system == codes.SNOMED:
        return code in codes.TCD_SNOMED
    match = codes.HSCT_PCS.match(code) if system == codes.ICD10PCS else None
    return match is not None and match.group(1) == "U"


def _names_graft_type(system: str, code: str) -> bool:
    return system in (codes.SNOMED, codes.ICD10PCS) and is_hsct_coding(system, code)


def t_cell_depleted_graft(ctx: Context) -> Fact:
    index = ctx.index_transplant
    if index is None or index.kind != "allogeneic":
        return Fact(None, note="not documented: no coded allogeneic transplant")
    coded = list(codings(index.procedure.code))
    if any(_is_t_cell_depleted(s, c) for s, c in coded):
        return Fact(True, (index.as_evidence(),), note="documented present: T-cell depleted graft")
    if any(_names_graft_type(s, c) for s, c in coded):
        note = "documented absent: the transplant code names an unmanipulated graft"
        return Fact(False, (index.as_evidence(),), note=note)
    return Fact(
        None,
        (index.as_evidence(),),
        note="not documented: CPT 38240 does not say how the graft was processed; attach the "
        "graft processing record (T-cell depleted or not). A SNOMED CT or ICD-10-PCS code that "
        "names the graft type settles it.",
    )


READS = {"Procedure": is_hsct_coding}
