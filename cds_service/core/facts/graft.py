"""t_cell_depleted_graft: how the index allogeneic graft was processed, read from its code.

Only a code that *says* how the graft was processed decides (closed-world audit,
docs/closed-world-audit.md):
- ICD-10-PCS substance U ("Hematopoietic Stem/Progenitor Cells, T-cell Depleted") or SNOMED CT
  234332000 / 234333005: T-cell depleted (documented present).
- ICD-10-PCS substance Y ("Hematopoietic Stem/Progenitor Cells"): documented absent. The
  substance axis offers U for the same cells when depleted, so a coder choosing Y states that
  they were not.
- Everything else is silent: CPT 38240 cannot express processing; the other allogeneic SNOMED CT
  concepts ("allogeneic peripheral blood stem cell transplant", "bone marrow transplant") name
  the source, not the processing, and ICD-10-PCS G (marrow) / X (cord blood) have no depleted
  counterpart to be chosen against. Unknown, with the graft processing record as what settles it.
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


def _says_not_depleted(system: str, code: str) -> bool:
    match = codes.HSCT_PCS.match(code) if system == codes.ICD10PCS else None
    return match is not None and match.group(1) == "Y"


def t_cell_depleted_graft(ctx: Context) -> Fact:
    index = ctx.index_transplant
    if index is None or index.kind != "allogeneic":
        return Fact(None, note="not documented: no coded allogeneic transplant")
    coded = list(codings(index.procedure.code))
    if any(_is_t_cell_depleted(s, c) for s, c in coded):
        return Fact(True, (index.as_evidence(),), note="documented present: T-cell depleted graft")
    if any(_says_not_depleted(s, c) for s, c in coded):
        note = (
            "documented absent: the ICD-10-PCS code states stem cells that were not T-cell depleted"
        )
        return Fact(False, (index.as_evidence(),), note=note)
    return Fact(
        None,
        (index.as_evidence(),),
        note="not documented: the transplant's codes do not say how the graft was processed; "
        "attach the graft processing record (T-cell depleted or not). An ICD-10-PCS code with "
        "the substance qualifier (U depleted, Y not depleted) settles it.",
    )


READS = {"Procedure": is_hsct_coding}
