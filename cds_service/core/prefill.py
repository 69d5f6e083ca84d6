"""Worksheets pre-filled from the record (DTR $questionnaire-package), pure.

Each question whose fact the record settles is answered with the record's value, marked as
filled by the server (DTR information-origin, source auto-server) and carrying the resources it
rests on (the project's `evidence` answer extension, one Reference each). Questions the record
leaves open stay unanswered: they are what the clinician completes. The same `Facts` the hook
evaluates decide the answers, so a pre-filled answer agrees with the card's criterion status.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def _fill(
    items: list[dict[str, Any]],
    sheet: Worksheet,
    facts: Facts,
    codes: dict[str, set[str]] | None = None,
) -> list[dict[str, Any]]:
    """The answered items, in the Questionnaire's order. A question its enableWhen disables on
    the answers before it (a chimerism question after an autologous graft; a question whose
    transplant type the record leaves open) gets none: FHIR gives a disabled item no answers,
    and a renderer hides it and leaves it out on saving (tests/test_renderer.py). `codes`: the
    coded answers so far, by linkId; an enableWhen's source question always comes first."""
    codes = {} if codes is None else codes
    filled: list[dict[str, Any]] = []
    for item in items:
        if item["type"] == "group":
            inner = _fill(item["item"], sheet, facts, codes)
            if inner:
                filled.append({"linkId": item["linkId"], "text": item["text"], "item": inner})
            continue
        leaf = sheet.leaves.get(item["linkId"])
        if leaf is None or not is_enabled(item, codes):
            continue
        answers = _answers(leaf, facts[leaf.test.fact])
        if answers:
            filled.append({"linkId": item["linkId"], "text": item["text"], "answer": answers})
            codes[item["linkId"]] = {a["valueCoding"]["code"] for a in answers if "valueCoding" in a}
    return filled


def is_enabled(item: dict[str, Any], codes: dict[str, set[str]]) -> bool:
    """enableWhen as the worksheets use it: one '=' on a coded answer (core/questionnaire.py)."""
    return all(
        when["answerCoding"]["code"] in codes.get(when["question"], ())
        for when in item.get("enableWhen", ())
    )


DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/"
QR_PROFILE = DTR + "dtr-questionnaireresponse"
BUNDLE_PROFILE = DTR + "DTR-QPackageBundle"
# DTRQuestionnaireResponse intendedUse binds CRD's doc-purpose codes: CRD temp in CRD 2.0.1 (what
# DTR 2.0.1 depends on), coverage-information-codes in CRD 2.2 (DTR 2.2).
DOC_PURPOSE_SYSTEM = {
    "2.0.1": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
    "2.2": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/coverage-information-codes",
}


@dataclass(frozen=True)
class Package:
    """What $questionnaire-package found: (worksheet, pre-filled response) pairs, whether the
    Coverage's payer has a policy here, and the asked-for canonicals no worksheet matches."""

    entries: list[tuple[Worksheet, dict[str, Any]]]
    payer_recognised: bool
    unknown_canonicals: tuple[str, ...] = ()


def _links(sheet: Worksheet, order: Order, coverage: str, dtr: str) -> list[dict[str, Any]]:
    """DTRQuestionnaireResponse links: DTR 2.0.1 `qr-context` 2..* (the Coverage and the order);
    DTR 2.2 `qr-coverage` 1..* and `qr-context` (the order); `intendedUse` 1..* in both: send it
    with the prior-authorization request where the policy requires one, else with the claim."""
    kind = "qr-context" if dtr == "2.0.1" else "qr-coverage"
    use = "withpa" if sheet.policy.prior_authorization.value == "auth-needed" else "withclaim"
    coding = {"system": DOC_PURPOSE_SYSTEM[dtr], "code": use}
    return [
        {"url": DTR + kind, "valueReference": {"reference": coverage}},
        {"url": DTR + "qr-context", "valueReference": {"reference": order.reference}},
        {"url": DTR + "intendedUse", "valueCodeableConcept": {"coding": [coding]}},
    ]


def prefilled_response(
    sheet: Worksheet,
    facts: Facts,
    order: Order,
    patient_id: str,
    today: date,
    coverage: str = "",
    dtr: str = "2.0.1",
) -> dict[str, Any]:
    """An in-progress DTR QuestionnaireResponse answering what the record already settles
    (`coverage` is the Coverage reference it is for; DTR forbids `basedOn`, the order is a link)."""
    response: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [QR_PROFILE]},
        "questionnaire": sheet.canonical,
        "status": "in-progress",
        "subject": {"reference": f"Patient/{patient_id}"},
        "authored": today.isoformat(),
    }
    if coverage:
        response["extension"] = _links(sheet, order, coverage, dtr)
    items = _fill(sheet.questionnaire["item"], sheet, facts)
    if items:  # FHIR forbids an empty array
        response["item"] = items
    return response


def _matches(sheet: Worksheet, canonical: str) -> bool:
    url, _, version = canonical.partition("|")
    return sheet.url == url and version in ("", sheet.version)


def questionnaire_package(
    record: PatientRecord,
    orders: list[Order],
    policies: tuple[Policy, ...],
    thresholds: Thresholds,
    today: date,
    patient_id: str,
    dtr: str = "2.0.1",
    wanted: tuple[str, ...] = (),
) -> Package:
    """For each order, the worksheet of each policy the Coverage routes to, with its pre-filled
    response. `wanted` (DTR `questionnaire` canonicals): exactly those worksheets, whichever
    payer's (DTR: "the operation will return the specified versions"). Without them an
    unrecognised payer gets none: the api answers that it does not serve that Coverage."""
    routed = route(record, policies, service_date(orders, today))
    candidates = policies if wanted else routed.policies if routed.recognised else ()
    coverage = routed.coverage or next(iter(record.coverages), None)
    reference = f"Coverage/{coverage.id}" if coverage is not None and coverage.id else ""
    entries: list[tuple[Worksheet, dict[str, Any]]] = []
    matched: set[str] = set()
    for order in orders:
        facts = Facts(record, order, order.authored_on or today, thresholds)
        for policy in candidates:
            sheet = worksheet_for(policy, order.service)
            if sheet is None:
                continue
            hits = {c for c in wanted if _matches(sheet, c)}
            if wanted and not hits:
                continue
            matched |= hits
            response = prefilled_response(sheet, facts, order, patient_id, today, reference, dtr)
            entries.append((sheet, response))
    unknown = tuple(c for c in wanted if c not in matched)
    return Package(entries, routed.recognised, unknown)
