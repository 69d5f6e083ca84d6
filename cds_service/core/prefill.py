"""Worksheets pre-filled from the record (DTR $questionnaire-package), pure.

Each question whose fact the record settles is answered with the record's value, marked as
filled by the server (DTR information-origin, source auto-server) and carrying the resources it
rests on (the project's `evidence` answer extension, one Reference each). Questions the record
leaves open stay unanswered: they are what the clinician completes. The same `Facts` the hook
evaluates decide the answers, so a pre-filled answer agrees with the card's criterion status.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.core.facts import Facts, Thresholds
from cds_service.core.model import Fact, Order, PatientRecord
from cds_service.core.payer import route, service_date
from cds_service.core.policy import Policy
from cds_service.core.questionnaire import (
    Leaf,
    Worksheet,
    answer_value,
    display,
    item_type,
    value_system,
    worksheet_for,
)

INFORMATION_ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
EVIDENCE_EXT = "http://dli-hpc-cds.org/fhir/StructureDefinition/evidence"


def _answers(leaf: Leaf, fact: Fact) -> list[dict[str, Any]]:
    if fact.value is None:
        return []
    value = answer_value(leaf, fact.value)
    kind = item_type(leaf.test)
    if kind == "boolean":
        values: list[dict[str, Any]] = [{"valueBoolean": bool(value)}]
    elif kind == "choice":
        code = str(value)
        coding = {"system": value_system(leaf.test.fact), "code": code, "display": display(code)}
        values = [{"valueCoding": coding}]
    elif kind == "integer" and isinstance(value, int | float):
        values = [{"valueInteger": int(value)}]
    elif kind == "decimal" and isinstance(value, int | float):
        values = [{"valueDecimal": float(value)}]
    else:
        values = [{"valueString": c} for c in (value if isinstance(value, tuple) else (value,))]
    origin = {
        "url": INFORMATION_ORIGIN,
        "extension": [{"url": "source", "valueCode": "auto-server"}],
    }
    evidence = [
        {"url": EVIDENCE_EXT, "valueReference": {"reference": reference}}
        for reference in dict.fromkeys(e.reference for e in fact.evidence)
    ]
    return [{**v, "extension": [origin, *evidence]} for v in values]


def _fill(items: list[dict[str, Any]], sheet: Worksheet, facts: Facts) -> list[dict[str, Any]]:
    filled: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "group":
            inner = _fill(item["item"], sheet, facts)
            if inner:
                filled.append({"linkId": item["linkId"], "text": item["text"], "item": inner})
            continue
        leaf = sheet.leaves.get(item["linkId"])
        answers = _answers(leaf, facts[leaf.test.fact]) if leaf is not None else []
        if answers:
            filled.append({"linkId": item["linkId"], "text": item["text"], "answer": answers})
    return filled


def prefilled_response(
    sheet: Worksheet, facts: Facts, order: Order, patient_id: str, today: date
) -> dict[str, Any]:
    """An in-progress QuestionnaireResponse answering what the record already settles."""
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": sheet.canonical,
        "status": "in-progress",
        "subject": {"reference": f"Patient/{patient_id}"},
        "basedOn": [{"reference": order.reference}],
        "authored": today.isoformat(),
    }
    items = _fill(sheet.questionnaire["item"], sheet, facts)
    if items:  # FHIR forbids an empty array
        response["item"] = items
    return response


def questionnaire_package(
    record: PatientRecord,
    orders: list[Order],
    policies: tuple[Policy, ...],
    thresholds: Thresholds,
    today: date,
    patient_id: str,
) -> list[tuple[Worksheet, dict[str, Any]]]:
    """For each order, the worksheet of each policy the Coverage routes to (all of them when the
    payer is not recognised, as the hooks compare them), with its pre-filled response."""
    routed = route(record, policies, service_date(orders, today))
    package = []
    for order in orders:
        facts = Facts(record, order, order.authored_on or today, thresholds)
        for policy in routed.policies:
            sheet = worksheet_for(policy, order.service)
            if sheet is not None:
                package.append((sheet, prefilled_response(sheet, facts, order, patient_id, today)))
    return package
