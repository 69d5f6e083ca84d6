"""t_cell_depleted_graft: how the index allogeneic graft was processed, read from its code.

ICD-10-PCS substance U or SNOMED 234332000/234333005 mean T-cell depleted; any other allogeneic
code is read as not depleted (ICD-10-PCS names the substance explicitly; CPT 38240 and the other
SNOMED codes describe an unmanipulated graft).
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


def t_cell_depleted_graft(ctx: Context) -> Fact:
    index = ctx.index_transplant
    if index is None or index.kind != "allogeneic":
        return Fact(None, note="no coded allogeneic transplant")
    depleted = any(_is_t_cell_depleted(s, c) for s, c in codings(index.procedure.code))
    return Fact(depleted, (index.as_evidence(),))


READS = {"Procedure": is_hsct_coding}
