"""Recognise hematopoietic stem cell transplants (HSCT) and CAR T among Procedures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from cds_service.core import codes
from cds_service.core.fhir_util import codings, display, procedure_date, procedure_done, ref

Kind = Literal["allogeneic", "autologous"]


@dataclass(frozen=True)
class Transplant:
    reference: str
    kind: Kind | None  # None: an HSCT whose donor type the code does not say
    when: date | None
    t_cell_depleted: bool | None
    label: str
    procedure: Any


def classify(procedure: Any) -> Transplant | None:
    """The transplant a Procedure records, or None if it is not an HSCT.

    T-cell depletion is read from the code: ICD-10-PCS substance U or SNOMED 234332000/234333005
    mean depleted; any other allogeneic code is read as not depleted (ICD-10-PCS names the
    substance explicitly; CPT 38240 and other SNOMED codes describe an unmanipulated graft).
    """
    if not procedure_done(procedure):
        return None
    kind: Kind | None = None
    tcd: bool | None = None
    found = False
    for system, code in codings(procedure.code):
        if system == codes.CPT and code in codes.ALLO_CPT | codes.AUTO_CPT:
            found, kind = True, kind or ("allogeneic" if code in codes.ALLO_CPT else "autologous")
        elif system == codes.SNOMED and code in codes.ALLO_SNOMED:
            found, kind = True, "allogeneic"
            tcd = tcd or code in codes.TCD_SNOMED
        elif system == codes.SNOMED and code in codes.AUTO_SNOMED:
            found, kind = True, kind or "autologous"
        elif system == codes.SNOMED and code in codes.GENERIC_HSCT_SNOMED:
            found = True
        elif system == codes.ICD10PCS and (match := codes.HSCT_PCS.match(code)):
            substance, qualifier = match.groups()
            found = True
            kind = "autologous" if qualifier == "0" else "allogeneic"
            tcd = tcd or substance == "U"
    if not found:
        return None
    if kind == "allogeneic" and tcd is None:
        tcd = False
    if kind == "autologous":
        tcd = None
    when = procedure_date(procedure)
    return Transplant(ref(procedure), kind, when, tcd, display(procedure.code), procedure)


def is_hsct_coding(system: str, code: str) -> bool:
    return (
        (system == codes.CPT and code in codes.ALLO_CPT | codes.AUTO_CPT)
        or (
            system == codes.SNOMED
            and code in codes.ALLO_SNOMED | codes.AUTO_SNOMED | codes.GENERIC_HSCT_SNOMED
        )
        or (system == codes.ICD10PCS and codes.HSCT_PCS.match(code) is not None)
    )


def is_car_t_coding(system: str, code: str) -> bool:
    return (
        (system == codes.SNOMED and code in codes.CAR_T_SNOMED)
        or (system == codes.CPT and code in codes.CAR_T_CPT)
        or (system in codes.HCPCS_SYSTEMS and code in codes.CAR_T_HCPCS)
        or (system == codes.ICD10CM and code in codes.CAR_T_ICD)
    )
