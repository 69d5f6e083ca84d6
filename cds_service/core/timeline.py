"""The case as a story in time (pure): the record in, dated events out, for the SMART app's
drawn timeline (transplants, chimerism and counts over time, GVHD, relapse, the orders).

This is a view, not evidence: it lists every dated value (the facts use the latest readable
one), and it leaves out what the facts would not read as evidence (refuted or entered-in-error
diagnoses, procedures not done, another patient's records, which the record already dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.core import codes
from cds_service.core.fhir_util import (
    codings,
    condition_date,
    condition_valid,
    display,
    procedure_date,
    procedure_done,
)
from cds_service.core.model import Order, PatientRecord

_RELAPSE_ICD = re.compile(r"^C9[0-5]\.\d2$")  # "... in relapse"
_COUNTS = (
    ("anc", codes.ANC_LOINC, "ANC", "x10^9/L"),
    ("platelets", codes.PLATELET_LOINC, "Platelets", "x10^9/L"),
    ("hemoglobin", codes.HEMOGLOBIN_LOINC, "Hemoglobin", "g/dL"),
)
_FINAL = ("final", "amended", "corrected")
_TRANSPLANT_SNOMED = (
    codes.ALLO_SNOMED | codes.AUTO_SNOMED | codes.GENERIC_HSCT_SNOMED | codes.TCD_SNOMED
)


@dataclass(frozen=True)
class Event:
    """One dated point: `kind` says which lane it is drawn in; `value` for a measured series."""

    when: date
    kind: str  # transplant | chimerism | anc | platelets | hemoglobin | gvhd | relapse | diagnosis | order
    label: str
    value: float | None = None
    unit: str = ""

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"date": self.when.isoformat(), "kind": self.kind, "label": self.label}
        if self.value is not None:
            out["value"] = self.value
            out["unit"] = self.unit
        return out


def _transplant(procedure: Any) -> bool:
    for system, code in codings(procedure.code):
        if system == codes.CPT and code in codes.ALLO_CPT | codes.AUTO_CPT:
            return True
        if system == codes.SNOMED and code in _TRANSPLANT_SNOMED:
            return True
        if system == codes.ICD10PCS and codes.HSCT_PCS.match(code):
            return True
    return False


def _procedures(record: PatientRecord) -> list[Event]:
    events = []
    for p in record.procedures:
        when = procedure_date(p)
        if when is not None and procedure_done(p) and _transplant(p):
            events.append(Event(when, "transplant", display(p.code) or "Stem cell transplant"))
    return events


def _condition_kind(condition: Any) -> str | None:
    for system, code in codings(condition.code):
        if code in codes.ANY_GVHD_SNOMED or code in codes.ANY_GVHD_ICD:
            return "gvhd"
        if system == codes.SNOMED and code in codes.RELAPSE_SNOMED:
            return "relapse"
        if system == codes.ICD10CM and _RELAPSE_ICD.match(code):
            return "relapse"
    # the disease (a C or D chapter diagnosis), not every problem on the list
    coded = [code for system, code in codings(condition.code) if system == codes.ICD10CM]
    return "diagnosis" if any(code[:1] in ("C", "D") for code in coded) else None


def _conditions(record: PatientRecord) -> list[Event]:
    events = []
    for c in record.conditions:
        when, kind = condition_date(c), _condition_kind(c)
        if when is not None and kind is not None and condition_valid(c):
            events.append(Event(when, kind, display(c.code) or kind))
    return events


def _series(loinc: set[str]) -> tuple[str, str, str, str | None] | None:
    """(kind, name, default unit, chimerism side) of a result the timeline draws, else None."""
    for code, side in codes.CHIMERISM_LOINC.items():
        if code in loinc:
            return "chimerism", "Donor chimerism", "%", side
    for kind, wanted, name, unit in _COUNTS:
        if loinc & wanted:
            return kind, name, unit, None
    return None


def _observations(record: PatientRecord) -> list[Event]:
    """Chimerism results and counts: only these are validated (record.LazyObservation)."""
    events = []
    for obs in record.observations:
        series = _series({code for system, code in obs.codings if system == codes.LOINC})
        if series is None or obs.when is None or obs.status not in _FINAL:
            continue
        model = obs.model(record)
        quantity = model.valueQuantity if model is not None else None
        if quantity is None or quantity.value is None:
            continue
        kind, name, unit, side = series
        value = float(quantity.value)
        if side == "recipient":
            value = 100.0 - value
        shown = "%" if kind == "chimerism" else str(quantity.unit or quantity.code or unit)
        label = f"{name} {value:g} {shown}" if kind != "chimerism" else f"{name} {value:g} %"
        events.append(Event(obs.when, kind, label, value, shown))
    return events


def timeline(record: PatientRecord, orders: list[Order]) -> list[Event]:
    """Every dated event of the case, oldest first (ties in a fixed order: nothing depends on
    the order of the record)."""
    events = _procedures(record) + _conditions(record) + _observations(record)
    events += [
        Event(o.authored_on, "order", f"{o.service.label} ordered")
        for o in orders
        if o.authored_on is not None
    ]
    return sorted(events, key=lambda e: (e.when, e.kind, e.label, e.value or 0.0))
