"""The readers of EHR-shaped data (issue 12 scope 2), table-driven, negative and unknown cases
included: GVHD grade Observations and MAGIC organ stages, chronic severity (never an acute
grade), conditioning inferred from the regimen, order-detail text, order questions and the
products' donors."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from cds_service.core.facts import Facts
from cds_service.core.facts.gvhd import grade_value, magic_grade
from cds_service.core.model import PatientRecord
from cds_service.core.orders import phrase_codes, recognise
from cds_service.core.record import add_resource
from cds_service.policy_store import load

THRESHOLDS = load().thresholds
AS_OF = date(2026, 3, 1)
SCT, ICD = "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"
LOCAL = "http://dli-hpc-cds.org/fhir"
CADSR = "http://cdebrowser.nci.nih.gov"
RXN = "http://www.nlm.nih.gov/research/umls/rxnorm"
DETAIL = f"{LOCAL}/CodeSystem/order-detail"
TX = {
    "resourceType": "Procedure", "id": "tx", "status": "completed", "subject": {"reference": "Patient/p"},
    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "38240"}]},
    "performedDateTime": "2025-06-10",
}  # fmt: skip


def facts(*resources: dict[str, Any], order: dict[str, Any] | None = None) -> Facts:
    record = PatientRecord()
    for resource in resources:
        add_resource(record, resource)
    recognised = recognise(order or service_request())
    return Facts(record, recognised, AS_OF, THRESHOLDS)


def service_request(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": "o", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/p"}, "authoredOn": "2026-03-01",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "38242"}]},
        **fields,
    }  # fmt: skip


def gvhd(cid: str, code: str, *, system: str = SCT, **fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": cid, "subject": {"reference": "Patient/p"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": system, "code": code}]}, "onsetDateTime": "2026-01-05", **fields,
    }  # fmt: skip


def grade_obs(focus: str, when: str = "2026-01-06", **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": f"g-{focus}-{when}", "status": "final",
        "code": {"coding": [{"system": CADSR, "code": "2603692"}]}, "subject": {"reference": "Patient/p"},
        "focus": [{"reference": f"Condition/{focus}"}], "effectiveDateTime": when, **value,
    }  # fmt: skip


def stages(skin: int, liver: int, upper: int, lower: int) -> dict[str, Any]:
    organs = (("2797618", skin), ("2797671", liver), ("5040179", upper), ("2797633", lower))
    return {
        "component": [
            {"code": {"coding": [{"system": CADSR, "code": c}]}, "valueInteger": v}
            for c, v in organs
        ]
    }


def obs_value(**value: Any) -> Any:
    return Observation.model_validate(
        {"resourceType": "Observation", "status": "final", "code": {"text": "grade"}, **value}
    )


@pytest.mark.parametrize(
    ("value", "grade"),
    [
        ({"valueCodeableConcept": {"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "aGVHD-III"}]}}, 3),
        ({"valueCodeableConcept": {"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "cGVHD-severe"}]}}, None),
        ({"valueInteger": 2}, 2),
        ({"valueInteger": 0}, 0),
        ({"valueInteger": 5}, None),
        ({"valueString": "III"}, 3),
        ({"valueString": "Grade IV"}, 4),
        ({"valueString": "grade 2"}, 2),
        ({"valueCodeableConcept": {"text": "aGVHD grade II"}}, 2),
        ({"valueString": "II-III"}, None),
        ({"valueString": "severe"}, None),
        ({"valueString": "grade 2?"}, None),
    ],
)  # fmt: skip
def test_grade_value(value: dict[str, Any], grade: int | None) -> None:
    assert grade_value(obs_value(**value)) == grade


@pytest.mark.parametrize(
    ("skin", "liver", "upper", "lower", "grade"),
    [
        (0, 0, 0, 0, 0),
        (1, 0, 0, 0, 1),
        (2, 0, 0, 0, 1),
        (3, 0, 0, 0, 2),  # stage-3 skin alone is grade II, not III
        (0, 1, 0, 0, 2),
        (0, 0, 1, 0, 2),
        (0, 0, 0, 1, 2),
        (0, 0, 0, 2, 3),  # stage-2 lower GI alone is grade III
        (3, 0, 1, 3, 3),
        (0, 2, 0, 0, 3),
        (4, 0, 0, 0, 4),
        (0, 4, 0, 0, 4),
        (0, 0, 0, 4, 4),
        (0, 0, 2, 0, None),  # upper GI has stages 0-1 only
        (5, 0, 0, 0, None),
    ],
)
def test_magic_grade(skin: int, liver: int, upper: int, lower: int, grade: int | None) -> None:
    assert (
        magic_grade({"skin": skin, "liver": liver, "upper-gi": upper, "lower-gi": lower}) == grade
    )


def test_magic_grade_needs_every_organ() -> None:
    assert magic_grade({"skin": 3, "liver": 0, "lower-gi": 2}) is None


SEVERE: dict[str, Any] = {"severity": {"coding": [{"system": SCT, "code": "24484000"}]}}
# (case, resources, acute_gvhd_grade)
GRADE_CASES: list[tuple[str, list[dict[str, Any]], float | None]] = [
    ("value on a focused Observation", [gvhd("a", "402355000"), grade_obs("a", valueString="III")], 3),
    ("organ stages on a focused Observation", [gvhd("a", "402355000"), grade_obs("a", **stages(3, 0, 0, 2))], 3),
    ("the latest Observation wins", [gvhd("a", "402355000"), grade_obs("a", "2026-01-02", valueInteger=3),
                                     grade_obs("a", "2026-02-01", valueInteger=1)], 1),
    ("a newer staging Observation supersedes an older stage summary", [
        gvhd("a", "402355000", stage=[{"summary": {"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "aGVHD-II"}]}}]),
        grade_obs("a", valueInteger=4)], 4),
    ("a newer stage summary supersedes an older staging Observation", [
        gvhd("a", "402355000", recordedDate="2026-02-01", stage=[{"summary": {"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "aGVHD-II"}]}}]),
        grade_obs("a", valueInteger=4)], 2),
    ("a stage summary and an Observation the same day that disagree: unknown (conflict)", [
        gvhd("a", "402355000", recordedDate="2026-01-06", stage=[{"summary": {"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "aGVHD-II"}]}}]),
        grade_obs("a", valueInteger=4)], None),
    ("a newer grade Observation that cannot be read: unknown, never the older grade", [
        gvhd("a", "402355000"), grade_obs("a", "2026-01-06", valueInteger=2),
        grade_obs("a", "2026-01-09", valueString="see note")], None),
    ("an Observation on another Condition is not this one's grade",
     [gvhd("a", "402355000"), grade_obs("other", valueInteger=3)], None),
    ("unstaged organs leave the grade unknown", [gvhd("a", "402355000"), grade_obs("a", **stages(3, 0, 0, 2)) | {
        "component": stages(3, 0, 0, 2)["component"][:2]}], None),
    ("chronic GVHD severity is never an acute grade", [gvhd("c", "402356004", **SEVERE)], 0),
    ("acute-on-chronic with a severity only: grade unknown", [gvhd("ac", "D89.812", system=ICD, **SEVERE)], None),
    ("a chronic severity code as an Observation value is no acute grade", [
        gvhd("a", "402355000"),
        grade_obs("a", valueCodeableConcept={"coding": [{"system": f"{LOCAL}/CodeSystem/gvhd-grade", "code": "cGVHD-severe"}]})], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "resources", "grade"), GRADE_CASES, ids=[c[0] for c in GRADE_CASES]
)
def test_acute_gvhd_grade_from_ehr_shapes(
    case: str, resources: list[Any], grade: float | None
) -> None:
    assert facts(*resources)["acute_gvhd_grade"].value == grade


def test_chronic_severity_is_shown_with_chronic_gvhd_only() -> None:
    got = facts(gvhd("c", "402356004", **SEVERE))
    assert got["chronic_gvhd_active"].evidence[0].summary.endswith("(severity: severe)")
    assert got["acute_gvhd_active"].value is False


def administration(aid: str, code: str, when: str, value: float, unit: str, route: str | None = "47625008",
                   status: str = "completed") -> dict[str, Any]:  # fmt: skip
    dosage: dict[str, Any] = {"dose": {"value": value, "unit": unit, "code": unit}}
    if route:
        dosage["route"] = {"coding": [{"system": SCT, "code": route}]}
    return {
        "resourceType": "MedicationAdministration", "id": aid, "status": status,
        "medicationCodeableConcept": {"coding": [{"system": RXN, "code": code}]},
        "subject": {"reference": "Patient/p"}, "effectiveDateTime": when, "dosage": dosage,
    }  # fmt: skip


def course(code: str, value: float, unit: str, **kw: Any) -> list[dict[str, Any]]:
    return [administration(f"m{i}", code, f"2025-06-0{2 + i}", value, unit, **kw) for i in range(4)]


WEIGHT = {
    "resourceType": "Observation", "id": "wt", "status": "final", "subject": {"reference": "Patient/p"},
    "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "effectiveDateTime": "2025-06-01",
    "valueQuantity": {"value": 70, "unit": "kg", "code": "kg", "system": "http://unitsofmeasure.org"},
}  # fmt: skip
RIC_TX = {**TX, "extension": [{"url": f"{LOCAL}/StructureDefinition/conditioning-intensity",
          "valueCodeableConcept": {"coding": [{"system": f"{LOCAL}/CodeSystem/conditioning-intensity", "code": "RIC"}]}}]}  # fmt: skip
BU_RX = {
    "resourceType": "MedicationRequest", "id": "rx", "status": "completed", "intent": "order",
    "subject": {"reference": "Patient/p"}, "authoredOn": "2025-06-01",
    "medicationCodeableConcept": {"coding": [{"system": RXN, "code": "1828"}]},
}  # fmt: skip
# (case, resources, conditioning_intensity, a word the note must hold when unknown)
CONDITIONING_CASES: list[tuple[str, list[dict[str, Any]], str | None, str]] = [
    ("IV busulfan 12.8 mg/kg", [TX, *course("1828", 3.2, "mg/kg")], "MAC", ""),
    ("IV busulfan in mg with a body weight", [TX, WEIGHT, *course("1729351", 224, "mg")], "MAC", ""),
    ("an injection product needs no route", [TX, *course("1729351", 3.2, "mg/kg", route=None)], "MAC", ""),
    ("melphalan 200 mg/m2", [TX, administration("mel", "6718", "2025-06-08", 200, "mg/m2")], "MAC", ""),
    ("busulfan in mg without a body weight", [TX, *course("1828", 224, "mg")], None, "body weight"),
    ("oral busulfan is not converted", [TX, *course("1828", 4, "mg/kg", route="26643006")], None, "oral"),
    ("busulfan without a route", [TX, *course("1828", 3.2, "mg/kg", route=None)], None, "route"),
    ("a lower busulfan course is not read as RIC", [TX, *course("1828", 1.6, "mg/kg")], None, "not inferred"),
    ("melphalan 140 mg/m2 is not read as RIC", [TX, administration("mel", "6718", "2025-06-08", 140, "mg/m2")], None, "not inferred"),
    ("melphalan in mg needs a BSA", [TX, administration("mel", "6718", "2025-06-08", 300, "mg")], None, "body surface area"),
    ("outside the conditioning window", [TX, *[administration(f"m{i}", "1828", f"2025-04-0{2 + i}", 3.2, "mg/kg") for i in range(4)]], None, "not recorded"),
    ("administrations not completed", [TX, *course("1828", 3.2, "mg/kg", status="in-progress")], None, "not recorded"),
    ("fludarabine alone settles nothing", [TX, administration("flu", "24698", "2025-06-05", 160, "mg/m2")], None, "fludarabine"),
    ("orders alone are named, never totalled", [TX, BU_RX], None, "only as orders"),
    ("a recorded intensity wins", [RIC_TX, *course("1828", 3.2, "mg/kg")], "RIC", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "resources", "value", "word"),
    CONDITIONING_CASES,
    ids=[c[0] for c in CONDITIONING_CASES],
)
def test_conditioning_inferred_from_the_regimen(
    case: str, resources: list[Any], value: str | None, word: str
) -> None:
    fact = facts(*resources)["conditioning_intensity"]
    assert fact.value == value, fact.note
    if value is None:
        assert fact.note.startswith("not documented") and word in fact.note
    elif value == "MAC":
        assert fact.evidence and all(
            "inferred from the regimen" in e.summary for e in fact.evidence
        )


@pytest.mark.parametrize(
    ("text", "stated"),
    [
        ("Same donor as transplant", ["original-donor"]),
        ("original donor", ["original-donor"]),
        ("Different donor (haplo sibling)", ["different-donor"]),
        ("CD3+ selected", ["ex-vivo-manipulated-product"]),
        ("Unmanipulated product", ["unmanipulated-product"]),
        ("genetically modified T cells", ["genetically-modified-product"]),
        ("not the same donor", []),
        ("no manipulation", []),
        ("same donor or a new donor", []),
        ("CD3+ selected?", []),
        ("possibly CD3+ selected", []),
        ("donor lymphocytes", []),
        ("same donor, CD3+ selected", ["original-donor", "ex-vivo-manipulated-product"]),
    ],
)
def test_order_detail_text_is_read_plainly(text: str, stated: list[str]) -> None:
    assert phrase_codes(text) == stated


def questions(*items: dict[str, Any], status: str = "completed",
              canonical: str = f"{LOCAL}/Questionnaire/order-questions") -> dict[str, Any]:  # fmt: skip
    return {"resourceType": "QuestionnaireResponse", "id": "q", "status": status,
            "questionnaire": canonical, "item": list(items)}  # fmt: skip


def answer(link: str, **value: Any) -> dict[str, Any]:
    return {"linkId": link, "answer": [value]}


SOURCE_Q = answer("product-source", valueCoding={"system": DETAIL, "code": "different-donor"})
RISK_Q = answer("high-relapse-risk", valueBoolean=False)
NAMED = {"supportingInfo": [{"reference": "#q"}]}
CODED_ORIGINAL = {"orderDetail": [{"coding": [{"system": DETAIL, "code": "original-donor"}]}]}


def product(pid: str, donor: str) -> dict[str, Any]:
    return {"resourceType": "BiologicallyDerivedProduct", "id": pid,
            "collection": {"source": {"reference": donor}}}  # fmt: skip


GRAFT_TX = {
    **TX,
    "contained": [product("graft", "RelatedPerson/d1")],
    "usedReference": [{"reference": "#graft"}],
}
# (case, order fields, record, fact, expected value, where the evidence says it came from)
ORDER_CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], str, Any, str]] = [
    ("order question", {"contained": [questions(SOURCE_Q)], **NAMED}, [], "product_source", "different-donor", "Order question"),
    ("boolean question answered no", {"contained": [questions(RISK_Q)], **NAMED}, [], "high_relapse_risk_attested", False, "Order question"),
    ("a response not named in supportingInfo", {"contained": [questions(SOURCE_Q)]}, [], "product_source", None, ""),
    ("a response in progress", {"contained": [questions(SOURCE_Q, status="in-progress")], **NAMED}, [], "product_source", None, ""),
    ("another questionnaire's response", {"contained": [questions(SOURCE_Q, canonical="http://payer.example/Questionnaire/x")], **NAMED}, [], "product_source", None, ""),
    ("a question and a code that disagree", {"contained": [questions(SOURCE_Q)], **NAMED, **CODED_ORIGINAL}, [], "product_source", None, ""),
    ("orderDetail text", {"orderDetail": [{"text": "Same donor as transplant"}]}, [], "product_source", "original-donor", "Order detail text"),
    ("ambiguous orderDetail text", {"orderDetail": [{"text": "same or different donor?"}]}, [], "product_source", None, ""),
    ("text on a coded detail is its label, not read", {"orderDetail": [{"coding": [{"system": DETAIL, "code": "original-donor"}], "text": "different donor"}]}, [], "product_source", "original-donor", "Order detail"),
    ("the product's donor is the graft's", {"contained": [product("p", "RelatedPerson/d1")], "supportingInfo": [{"reference": "#p"}]}, [GRAFT_TX], "product_source", "original-donor", "Product donor"),
    ("the product's donor is another", {"contained": [product("p", "RelatedPerson/d2")], "supportingInfo": [{"reference": "#p"}]}, [GRAFT_TX], "product_source", "different-donor", "Product donor"),
    ("no graft donor to compare with", {"contained": [product("p", "RelatedPerson/d1")], "supportingInfo": [{"reference": "#p"}]}, [TX], "product_source", None, ""),
    ("ex vivo manipulation in text", {"orderDetail": [{"text": "CD3+ selected"}]}, [], "product_manipulation", "ex-vivo-manipulated-product", "Order detail text"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fields", "record", "fact", "value", "where"),
    ORDER_CASES,
    ids=[c[0] for c in ORDER_CASES],
)
def test_order_facts_from_ehr_shapes(
    case: str, fields: dict[str, Any], record: list[Any], fact: str, value: Any, where: str
) -> None:
    got = facts(*record, order=service_request(**fields))[fact]
    assert got.value == value, got.note
    if where:
        assert got.evidence[0].summary.startswith(f"{where}"), got.evidence
