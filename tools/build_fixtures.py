#!/usr/bin/env python3
"""Build the scenario patients in fhir_fixtures/ (FHIR R4 collection Bundles + manifest + README).

Usage (from the repository root):
    python tools/build_fixtures.py          # (re)write fhir_fixtures/*.json, scenarios.yaml, README.md
    python tools/build_fixtures.py --check  # also walk cards/*.yaml over each scenario's intended
                                            # facts: compare with the hand-derived expectations and
                                            # print criterion coverage (met / not-met / unknown)

Python 3.11, standard library + PyYAML only. Output is deterministic (no clocks, no randomness).

Every scenario below carries:
  * the FHIR content (built by its `build` function),
  * `facts`: the facts the record is meant to yield (our reading of cds_service/core/facts
    semantics; documentation for extractor tests), and
  * `expected`: determinations derived BY HAND from the policy trees in cards/*.yaml.
`--check` re-derives the determinations mechanically from `facts` only as a cross-check of the
hand derivation; it never writes them.
"""

from __future__ import annotations

import json
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fhir_fixtures"
BASE = "http://fixtures.dli-hpc-cds.org/fhir"

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CPT = "http://www.ama-assn.org/go/cpt"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CLIN = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CCAT = "http://terminology.hl7.org/CodeSystem/condition-category"
OCAT = "http://terminology.hl7.org/CodeSystem/observation-category"
LOCAL = "http://dli-hpc-cds.org/fhir"
COND_EXT = f"{LOCAL}/StructureDefinition/conditioning-intensity"
COND_SYS = f"{LOCAL}/CodeSystem/conditioning-intensity"
GVHD_SYS = f"{LOCAL}/CodeSystem/gvhd-grade"
ORDER_SYS = f"{LOCAL}/CodeSystem/order-detail"
PAYER_SYS = f"{LOCAL}/sid/payer"
MRN_SYS = "http://fixtures.dli-hpc-cds.org/fhir/sid/mrn"
NPI_SYS = "http://hl7.org/fhir/sid/us-npi"

POLICIES = (
    "wellmark-07.03.13",
    "molina-mcp-210",
    "centene-cp.mp.101",
    "anthem-cg-trans-03",
    "bcbsms-l.2.03.402",
)

# --- code displays (terminology.md) ---------------------------------------------------------
DISPLAY = {
    (ICD10CM, "C92.00"): "Acute myeloblastic leukemia, not having achieved remission",
    (ICD10CM, "C92.01"): "Acute myeloblastic leukemia, in remission",
    (ICD10CM, "C92.02"): "Acute myeloblastic leukemia, in relapse",
    (ICD10CM, "C92.10"): "Chronic myeloid leukemia, BCR/ABL-positive, not having achieved remission",
    (ICD10CM, "C92.12"): "Chronic myeloid leukemia, BCR/ABL-positive, in relapse",
    (ICD10CM, "C92.A0"): "Acute myeloid leukemia with multilineage dysplasia, not having achieved remission",
    (ICD10CM, "C91.00"): "Acute lymphoblastic leukemia not having achieved remission",
    (ICD10CM, "C91.02"): "Acute lymphoblastic leukemia, in relapse",
    (ICD10CM, "C90.00"): "Multiple myeloma not having achieved remission",
    (ICD10CM, "C81.10"): "Nodular sclerosis Hodgkin lymphoma, unspecified site",
    (ICD10CM, "D46.22"): "Refractory anemia with excess of blasts 2",
    (ICD10CM, "C50.911"): "Malignant neoplasm of unspecified site of right female breast",
    (ICD10CM, "Z85.3"): "Personal history of malignant neoplasm of breast",
    (ICD10CM, "D57.1"): "Sickle-cell disease without crisis",
    (ICD10CM, "D61.3"): "Idiopathic aplastic anemia",
    (ICD10CM, "T86.02"): "Bone marrow transplant failure",
    (ICD10CM, "D89.810"): "Acute graft-versus-host disease",
    (ICD10CM, "Z94.84"): "Stem cells transplant status",
    (ICD10CM, "F17.210"): "Nicotine dependence, cigarettes, uncomplicated",
    (ICD10CM, "F17.211"): "Nicotine dependence, cigarettes, in remission",
    (ICD10CM, "Z87.891"): "Personal history of nicotine dependence",
    (ICD10CM, "Z91.19"): "Patient's noncompliance with other medical treatment and regimen",
    (ICD10CM, "Z60.2"): "Problems related to living alone",
    (ICD10CM, "Z63.8"): "Other specified problems related to primary support group",
    (ICD10CM, "A41.9"): "Sepsis, unspecified organism",
    (ICD10CM, "Z16.24"): "Resistance to multiple antibiotics",
    (ICD10CM, "Z16.13"): "Resistance to carbapenem",
    (SCT, "91861009"): "Acute myeloid leukemia (disorder)",
    (SCT, "91857003"): "Acute lymphoid leukemia (disorder)",
    (SCT, "109989006"): "Multiple myeloma (disorder)",
    (SCT, "109995007"): "Myelodysplastic syndrome (disorder)",
    (SCT, "118599009"): "Hodgkin's disease (disorder)",
    (SCT, "254837009"): "Malignant neoplasm of breast (disorder)",
    (SCT, "417357006"): "Sickling disorder due to hemoglobin S (disorder)",
    (SCT, "55907008"): "Acquired aplastic anemia (disorder)",
    (SCT, "12281000132104"): "Relapsing acute myeloid leukemia (disorder)",
    (SCT, "234522008"): "Disease relapse in transplant marrow (disorder)",
    (SCT, "1251564008"): "Relapsing malignant neoplastic disease (disorder)",
    (SCT, "1251565009"): "Refractory malignant neoplastic disease (disorder)",
    (SCT, "830057003"): "Relapsing classical Hodgkin lymphoma (disorder)",
    (SCT, "234520000"): "Bone marrow transplant failure (disorder)",
    (SCT, "402355000"): "Acute graft-versus-host disease (disorder)",
    (SCT, "58390007"): "Allogeneic bone marrow transplantation (procedure)",
    (SCT, "425843001"): "Allogeneic peripheral blood stem cell transplant (procedure)",
    (SCT, "234332000"): "Transplant of T-cell depleted allogeneic bone marrow (procedure)",
    (SCT, "426425001"): "Transplant of bone marrow from sibling donor (procedure)",
    (SCT, "427615008"): "Transplant of allograft of cord blood to bone marrow (procedure)",
    (SCT, "425983008"): "Autologous peripheral blood stem cell transplant (procedure)",
    (SCT, "1156961008"): "Chimeric antigen receptor T-cell immunotherapy (procedure)",
    (SCT, "271299001"): "Patient's condition worsened (finding)",
    (SCT, "359746009"): "Patient's condition stable (finding)",
    (SCT, "268910001"): "Patient's condition improved (finding)",
    (SCT, "550991000124107"): "Malignant neoplasm in full remission (disorder)",
    (SCT, "449868002"): "Smokes tobacco daily (finding)",
    (SCT, "266919005"): "Never smoked tobacco (finding)",
    (SCT, "8517006"): "Ex-smoker (finding)",
    (CPT, "38240"): "Hematopoietic progenitor cell (HPC); allogeneic transplantation per donor",
    (CPT, "38241"): "Hematopoietic progenitor cell (HPC); autologous transplantation",
    (CPT, "38242"): "Allogeneic lymphocyte infusions",
    (CPT, "38243"): "Hematopoietic progenitor cell (HPC); HPC boost",
    (CPT, "38228"): "CAR-T cell administration, autologous",
    (PCS, "30243Y3"): "Transfusion of Allogeneic Unrelated Hematopoietic Stem Cells into Central Vein, Percutaneous Approach",
    (PCS, "30243Y2"): "Transfusion of Allogeneic Related Hematopoietic Stem Cells into Central Vein, Percutaneous Approach",
    (PCS, "30243Y4"): "Transfusion of Allogeneic Unspecified Hematopoietic Stem Cells into Central Vein, Percutaneous Approach",
    (PCS, "30233Y3"): "Transfusion of Allogeneic Unrelated Hematopoietic Stem Cells into Peripheral Vein, Percutaneous Approach",
    (PCS, "30243U2"): "Transfusion of Allogeneic Related T-cell Depleted Hematopoietic Stem Cells into Central Vein, Percutaneous Approach",
    (PCS, "30243X3"): "Transfusion of Allogeneic Unrelated Cord Blood Stem Cells into Central Vein, Percutaneous Approach",
    (PCS, "30243G2"): "Transfusion of Allogeneic Related Bone Marrow into Central Vein, Percutaneous Approach",
    (PCS, "30243Y0"): "Transfusion of Autologous Hematopoietic Stem Cells into Central Vein, Percutaneous Approach",
}
ORDER_DETAIL_DISPLAY = {
    "original-donor": "Cells from the original transplant donor",
    "different-donor": "Cells from a donor other than the original transplant donor",
    "unmanipulated-product": "Unmanipulated product",
    "genetically-modified-product": "Genetically modified product",
    "ex-vivo-manipulated-product": "Ex vivo manipulated product (not genetically modified)",
    "high-relapse-risk": "Ordering clinician attests high risk of relapse",
}
COND_DISPLAY = {"MAC": "Myeloablative conditioning", "RIC": "Reduced-intensity conditioning",
                "NMA": "Nonmyeloablative conditioning"}
GVHD_DISPLAY = {"aGVHD-III": "Acute GVHD grade III"}
PAYERS = {
    # key -> identifier value (None = unrecognised, no project identifier)
    "molina": "molina",
    "wellmark": "wellmark",
    "centene": "centene",
    "anthem": "anthem",
    "bcbsms": "bcbsms",
}
PAYER_POLICY = {
    "molina": "molina-mcp-210",
    "wellmark": "wellmark-07.03.13",
    "centene": "centene-cp.mp.101",
    "anthem": "anthem-cg-trans-03",
    "bcbsms": "bcbsms-l.2.03.402",
}


def cc(*codes: tuple[str, str], text: str | None = None) -> dict:
    out: dict = {"coding": [{"system": s, "code": c, "display": DISPLAY[(s, c)]} for s, c in codes]}
    if text:
        out["text"] = text
    return out


def d(s: str) -> date:
    return date.fromisoformat(s)


def before(as_of: str, days: int) -> str:
    return (d(as_of) - timedelta(days=days)).isoformat()


def after(start: str, days: int) -> str:
    return (d(start) + timedelta(days=days)).isoformat()


class Builder:
    """Collects the resources of one scenario bundle."""

    def __init__(self, sc: dict) -> None:
        self.sc = sc
        self.tag = sc["tag"]
        self.pid = sc["id"]
        self.as_of = sc["as_of"]
        self.entries: list[dict] = []
        self._n: dict[str, int] = {}
        self.coverage_id: str | None = None

    # ids -------------------------------------------------------------------------------
    def rid(self, kind: str) -> str:
        self._n[kind] = self._n.get(kind, 0) + 1
        n = self._n[kind]
        return f"{self.tag}-{kind}" if n == 1 else f"{self.tag}-{kind}{n}"

    def add(self, res: dict) -> str:
        self.entries.append({"fullUrl": f"{BASE}/{res['resourceType']}/{res['id']}", "resource": res})
        return f"{res['resourceType']}/{res['id']}"

    @property
    def subject(self) -> dict:
        return {"reference": f"Patient/{self.pid}"}

    # resources -------------------------------------------------------------------------
    def patient(self, p: dict) -> None:
        given, family = p["name"]
        self.add({
            "resourceType": "Patient",
            "id": self.pid,
            "identifier": [{
                "use": "usual",
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                     "code": "MR", "display": "Medical record number"}]},
                "system": MRN_SYS,
                "value": p["mrn"],
            }],
            "active": True,
            "name": [{"use": "official", "family": family, "given": given.split()}],
            "telecom": [{"system": "phone", "value": p["phone"], "use": "home"}],
            "gender": p["gender"],
            "birthDate": p["birthDate"],
            "address": [{
                "use": "home",
                "line": [p["address"][0]],
                "city": p["address"][1],
                "state": p["address"][2],
                "postalCode": p["address"][3],
                "country": "US",
            }],
        })

    def practitioner(self, name: tuple[str, str], npi: str) -> None:
        given, family = name
        self.pract = self.rid("prac")
        self.add({
            "resourceType": "Practitioner",
            "id": self.pract,
            "identifier": [{"system": NPI_SYS, "value": npi}],
            "name": [{"family": family, "given": given.split(), "prefix": ["Dr."]}],
        })

    def condition(self, codes: list[tuple[str, str]], onset: str, *, status: str = "active",
                  kind: str = "dx", recorded: str | None = None, stage: str | None = None,
                  abatement: str | None = None, category: str = "problem-list-item",
                  note: str | None = None) -> str:
        res: dict = {
            "resourceType": "Condition",
            "id": self.rid(kind),
            "clinicalStatus": {"coding": [{"system": CLIN, "code": status}]},
            "verificationStatus": {"coding": [{"system": VER, "code": "confirmed"}]},
            "category": [{"coding": [{"system": CCAT, "code": category}]}],
            "code": cc(*codes),
            "subject": self.subject,
            "onsetDateTime": onset,
            "recordedDate": recorded or onset,
        }
        if abatement:
            res["abatementDateTime"] = abatement
        if stage:
            res["stage"] = [{
                "summary": {"coding": [{"system": GVHD_SYS, "code": stage, "display": GVHD_DISPLAY[stage]}]},
                "type": {"text": "MAGIC consensus acute GVHD grading"},
            }]
        if note:
            res["note"] = [{"text": note}]
        return self.add(res)

    def transplant(self, codes: list[tuple[str, str]], when: str, reason: str | None,
                   conditioning: str | None, note: str | None = None) -> str:
        res: dict = {"resourceType": "Procedure", "id": self.rid("tx")}
        if conditioning:
            res["extension"] = [{
                "url": COND_EXT,
                "valueCodeableConcept": {"coding": [{"system": COND_SYS, "code": conditioning,
                                                     "display": COND_DISPLAY[conditioning]}]},
            }]
        res.update({
            "status": "completed",
            "code": cc(*codes),
            "subject": self.subject,
            "performedDateTime": when,
        })
        if reason:
            res["reasonReference"] = [{"reference": reason}]
        if note:
            res["note"] = [{"text": note}]
        return self.add(res)

    def car_t(self, codes: list[tuple[str, str]], when: str, reason: str, note: str) -> str:
        return self.add({
            "resourceType": "Procedure",
            "id": self.rid("cart"),
            "status": "completed",
            "code": cc(*codes),
            "subject": self.subject,
            "performedDateTime": when,
            "reasonReference": [{"reference": reason}],
            "note": [{"text": note}],
        })

    def _obs(self, kind: str, code: dict, when: str, category: str | None, value: dict) -> dict:
        res: dict = {"resourceType": "Observation", "id": self.rid(kind), "status": "final"}
        if category:
            res["category"] = [{"coding": [{"system": OCAT, "code": category}]}]
        res.update({"code": code, "subject": self.subject, "effectiveDateTime": when})
        res.update(value)
        return res

    def chimerism(self, when: str, donor: float | None = None, recipient: float | None = None) -> str:
        if donor is not None:
            code = {"coding": [{"system": LOINC, "code": "102113-8",
                                "display": "Mixed chimerism post SCT transplantation [Ratio] in Peripheral blood by Molecular genetics method"}],
                    "text": "Donor chimerism, peripheral blood (% donor)"}
            value = donor
        else:
            code = {"coding": [{"system": LOINC, "code": "104480-9",
                                "display": "Cells.recipient derived/Cells in Bone marrow by Molecular genetics method --post stem cell transplant"}],
                    "text": "Recipient chimerism, bone marrow (% recipient)"}
            value = recipient
        return self.add(self._obs("chim", code, when, "laboratory", {
            "valueQuantity": {"value": value, "unit": "%", "system": UCUM, "code": "%"}}))

    COUNT: ClassVar[dict[str, tuple[str, str, str]]] = {
        "anc": ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL"),
        "plt": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"),
        "hgb": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    }

    def count(self, kind: str, when: str, value: float) -> str:
        loinc, display, unit = self.COUNT[kind]
        return self.add(self._obs(kind, {"coding": [{"system": LOINC, "code": loinc, "display": display}]},
                                  when, "laboratory",
                                  {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}))

    def normal_counts(self, *dates: str, anc: float = 2.6, plt: float = 168, hgb: float = 12.1) -> None:
        for i, when in enumerate(dates):
            self.count("anc", when, round(anc - 0.2 * i, 2))
            self.count("plt", when, plt - 7 * i)
            self.count("hgb", when, round(hgb - 0.3 * i, 1))

    def disease_status(self, when: str, value: str, focus: str) -> str:
        res = self._obs("dstat", {"coding": [{"system": LOINC, "code": "97509-4",
                                               "display": "Cancer disease progression"}]},
                        when, None,
                        {"valueCodeableConcept": cc((SCT, value))})
        res["focus"] = [{"reference": focus}]
        return self.add(res)

    def smoking(self, when: str, value: str) -> str:
        return self.add(self._obs("smk", {"coding": [{"system": LOINC, "code": "72166-2",
                                                       "display": "Tobacco smoking status"}]},
                                  when, "social-history", {"valueCodeableConcept": cc((SCT, value))}))

    def coverage(self, key: str | None, name: str, member: str) -> None:
        org: dict = {"resourceType": "Organization", "id": "payer", "name": name}
        if key:
            org["identifier"] = [{"system": PAYER_SYS, "value": PAYERS[key]}]
        else:
            org["identifier"] = [{"system": PAYER_SYS, "value": "acme-health-mutual"}]
        cid = self.rid("cov")
        self.coverage_id = cid
        self.add({
            "resourceType": "Coverage",
            "id": cid,
            "contained": [org],
            "status": "active",
            "subscriberId": member,
            "beneficiary": self.subject,
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                         "code": "self"}]},
            "period": {"start": f"{self.as_of[:4]}-01-01"},
            "payor": [{"reference": "#payer", "display": name}],
        })

    def orders(self, dli: list[str], hpc: list[str], reason: str | None) -> None:
        for suffix, cpt, details, text in (
            ("dli", "38242", dli, "Donor lymphocyte infusion"),
            ("hpc", "38243", hpc, "Hematopoietic progenitor cell boost"),
        ):
            res: dict = {
                "resourceType": "ServiceRequest",
                "id": f"{self.tag}-{suffix}",
                "status": "draft",
                "intent": "order",
                "code": {"coding": [{"system": CPT, "code": cpt, "display": DISPLAY[(CPT, cpt)]}], "text": text},
            }
            if details:
                res["orderDetail"] = [
                    {"coding": [{"system": ORDER_SYS, "code": c, "display": ORDER_DETAIL_DISPLAY[c]}]}
                    for c in details
                ]
            res.update({
                "subject": self.subject,
                "authoredOn": self.as_of,
                "requester": {"reference": f"Practitioner/{self.pract}"},
            })
            if self.coverage_id:
                res["insurance"] = [{"reference": f"Coverage/{self.coverage_id}"}]
            if reason:
                res["reasonReference"] = [{"reference": reason}]
            self.add(res)

    def bundle(self) -> dict:
        return {
            "resourceType": "Bundle",
            "id": f"{self.tag}-bundle",
            "type": "collection",
            "entry": self.entries,
        }


# --- scenario helpers -----------------------------------------------------------------------
STD = ["original-donor", "unmanipulated-product"]
NEVER = "266919005"

# Record-level facts every scenario starts from (overridden per scenario).
DEFAULT_FACTS = {
    "diagnosis_class": "hematologic-malignancy",
    "indication_icd10cm": None,
    "hsct_type": "allogeneic",
    "t_cell_depleted_graft": False,
    "conditioning_intensity": "MAC",
    "disease_status": None,
    "donor_chimerism_pct": 100,
    "acute_gvhd_grade": 0,
    "chronic_gvhd_active": False,
    "poor_graft_function": False,
    "prior_car_t": False,
    "cytopenia_after_car_t": False,
    "current_substance_use": False,
    "nonadherence": False,
    "lacks_social_support": False,
    "uncontrolled_resistant_infection": False,
}


def low_series(b: Builder, kind: str, values: list[tuple[int, float]]) -> None:
    """Counts at `as_of - days`."""
    for days, value in values:
        b.count(kind, before(b.as_of, days), value)


SCENARIOS: list[dict] = []


def scenario(**kw):
    def wrap(fn):
        kw["build"] = fn
        SCENARIOS.append(kw)
        return fn
    return wrap


M, DNM, NI, NA = "meets-criteria", "does-not-meet-criteria", "needs-information", "not-addressed"


def exp(dli: tuple[str, str, str, str, str], hpc: tuple[str, str]) -> dict:
    """dli: (wellmark, molina, centene, anthem, bcbsms); hpc: (wellmark, molina)."""
    return {
        "dli": dict(zip(POLICIES, dli, strict=False)),
        "hpc-boost": dict(zip(POLICIES, (*hpc, NA, NA, NA), strict=False)),
    }


# ============================================================================================
# Scenarios. Order details: "dli"/"hpc" lists of order-detail codes. Expected tuples are
# (Wellmark, Molina, Centene, Anthem, BCBSMS) for DLI and (Wellmark, Molina) for the HPC boost.
# ============================================================================================


@scenario(
    id="relapsed-aml-allo-mac", tag="ram",
    title="Relapsed AML after allogeneic myeloablative HSCT",
    description="AML (C92.00) treated with a matched-unrelated myeloablative PBSC transplant in 02/2025; "
                "marrow relapse (C92.02) in 02/2026 with falling donor chimerism (71 %). The textbook "
                "therapeutic DLI: every policy is met; the HPC boost is met through chimerism < 100 %.",
    payer="molina", as_of="2026-03-16",
    patient={"name": ("Marisol Elena", "Quintanilla"), "gender": "female", "birthDate": "1968-04-23",
             "mrn": "MRN-40418822", "phone": "(614) 555-0147",
             "address": ("2291 Kenny Road Apt 4B", "Columbus", "OH", "43210")},
    coverage=("molina", "Molina Healthcare of Ohio", "MOH-778120344"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "relapsed", "donor_chimerism_pct": 71},
    expected=exp((M, M, M, M, M), (M, M)),
)
def _ram(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-10-02", recorded="2024-10-04")
    tx = "2025-02-11"
    b.transplant([(CPT, "38240"), (SCT, "425843001")], tx, aml, "MAC",
                 note="MUD PBSCT, Bu/Cy myeloablative conditioning")
    b.chimerism("2025-05-20", donor=98)
    b.condition([(ICD10CM, "C92.02"), (SCT, "12281000132104")], "2026-02-24", kind="rel")
    b.chimerism("2026-02-26", donor=71)
    b.normal_counts(before(b.as_of, 20), before(b.as_of, 48))
    b.smoking("2026-02-24", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="prophylactic-dli-ric", tag="pric",
    title="Prophylactic DLI after reduced-intensity allogeneic HSCT (AML in remission)",
    description="AML in first remission transplanted with reduced-intensity conditioning (04/2025); in "
                "remission with 100 % donor chimerism at day +100. Pre-emptive DLI: Wellmark and BCBSMS "
                "accept RIC as the high-risk setting, Molina needs an attestation that is absent.",
    payer="wellmark", as_of="2026-01-20",
    patient={"name": ("Gerald Wayne", "Brandvold"), "gender": "male", "birthDate": "1961-09-02",
             "mrn": "MRN-51120974", "phone": "(515) 555-0193",
             "address": ("418 Grand Avenue", "Des Moines", "IA", "50309")},
    coverage=("wellmark", "Wellmark Blue Cross and Blue Shield of Iowa", "WMK-882013377"),
    facts={"indication_icd10cm": ["C92.00"], "conditioning_intensity": "RIC", "disease_status": "remission"},
    expected=exp((M, DNM, M, M, M), (DNM, DNM)),
)
def _pric(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-12-05")
    b.transplant([(SCT, "425843001"), (PCS, "30233Y3")], "2025-04-15", aml, "RIC",
                 note="MUD PBSCT, Flu/Mel reduced-intensity conditioning")
    b.disease_status("2025-07-24", "550991000124107", aml)
    b.chimerism("2025-07-24", donor=100)
    b.chimerism("2025-12-18", donor=100)
    b.normal_counts(before(b.as_of, 33), before(b.as_of, 61))
    b.smoking("2025-12-18", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="molina-high-risk-attestation", tag="mhr",
    title="Pre-emptive DLI with a high-relapse-risk attestation (FLT3-ITD AML, MAC, in remission)",
    description="FLT3-ITD AML, myeloablative MUD transplant (01/2025), in remission (C92.01 after the "
                "transplant) with full donor chimerism; the DLI order attests high relapse risk. Molina 2c "
                "accepts the attestation; Wellmark/BCBSMS define high risk only as TCD graft or RIC/NMA.",
    payer="molina", as_of="2026-02-09",
    patient={"name": ("Darnell Avery", "Whitcombe"), "gender": "male", "birthDate": "1979-12-14",
             "mrn": "MRN-60277315", "phone": "(713) 555-0112",
             "address": ("7710 Bellfort Street", "Houston", "TX", "77061")},
    coverage=("molina", "Molina Healthcare of Texas", "MTX-330918245"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "remission"},
    expected=exp((DNM, M, M, M, DNM), (DNM, DNM)),
)
def _mhr(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-08-19",
                      note="FLT3-ITD positive, NPM1 wild type")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-01-14", aml, "MAC")
    b.condition([(ICD10CM, "C92.01")], "2025-04-22", kind="rem", status="remission")
    b.chimerism("2025-04-22", donor=100)
    b.chimerism("2026-01-12", donor=100)
    b.normal_counts(before(b.as_of, 28), before(b.as_of, 70))
    b.smoking("2026-01-12", NEVER)
    b.orders([*STD, "high-relapse-risk"], STD, aml)


@scenario(
    id="t-cell-depleted-graft", tag="tcd",
    title="T-cell depleted haploidentical graft with poor graft function (ALL)",
    description="ALL transplanted with an ex vivo T-cell depleted related graft (MAC, 06/2025); responding "
                "(mCODE improved), full donor chimerism, persistent thrombocytopenia < 30. DLI is met through the "
                "TCD high-risk setting (not for Molina); the HPC boost is met through poor graft function.",
    payer="bcbsms", as_of="2026-04-02",
    patient={"name": ("Latoya Simone", "Pettaway"), "gender": "female", "birthDate": "1990-07-30",
             "mrn": "MRN-71830021", "phone": "(601) 555-0168",
             "address": ("1504 North State Street", "Jackson", "MS", "39202")},
    coverage=("bcbsms", "Blue Cross & Blue Shield of Mississippi", "BMS-5521873309"),
    facts={"indication_icd10cm": ["C91.00"], "t_cell_depleted_graft": True, "disease_status": "responding",
           "poor_graft_function": True},
    expected=exp((M, DNM, M, M, M), (M, M)),
)
def _tcd(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2024-06-11")
    b.transplant([(SCT, "234332000"), (PCS, "30243U2")], "2025-06-10", all_, "MAC",
                 note="Haploidentical (brother) CD3/CD19-depleted graft, TBI-based MAC")
    b.disease_status("2025-09-18", "268910001", all_)
    b.chimerism("2025-09-18", donor=100)
    b.chimerism("2026-03-05", donor=100)
    low_series(b, "plt", [(49, 21), (31, 17), (7, 24)])
    for days in (49, 31, 7):
        b.count("anc", before(b.as_of, days), 1.4)
        b.count("hgb", before(b.as_of, days), 9.1)
    b.smoking("2026-03-05", NEVER)
    b.orders(STD, STD, all_)


@scenario(
    id="mixed-chimerism-no-relapse", tag="mix",
    title="Falling mixed chimerism (82 % donor) without relapse",
    description="AML with myelodysplasia-related changes, myeloablative BM transplant (03/2025), in "
                "remission; donor chimerism 97 → 91 → 82 %. Wellmark/BCBSMS accept chimerism conversion; Molina "
                "requires confirmed relapse with it; Centene I.B needs a relapse concern (but I.A is met).",
    payer="centene", as_of="2026-03-03",
    patient={"name": ("Theodore James", "Okonkwo-Reyes"), "gender": "male", "birthDate": "1972-02-08",
             "mrn": "MRN-82019466", "phone": "(316) 555-0176",
             "address": ("3320 East Douglas Avenue", "Wichita", "KS", "67208")},
    coverage=("centene", "Ambetter from Sunflower Health Plan", "AMB-U77102394"),
    facts={"indication_icd10cm": ["C92.A0"], "disease_status": "remission", "donor_chimerism_pct": 82},
    expected=exp((M, DNM, M, M, M), (M, M)),
)
def _mix(b: Builder):
    aml = b.condition([(ICD10CM, "C92.A0"), (SCT, "91861009")], "2024-11-19")
    b.transplant([(CPT, "38240"), (SCT, "58390007")], "2025-03-18", aml, "MAC")
    b.disease_status("2025-06-26", "550991000124107", aml)
    b.chimerism("2025-06-26", donor=97)
    b.chimerism("2025-10-02", donor=91)
    b.chimerism("2026-02-11", donor=82)
    b.normal_counts(before(b.as_of, 20), before(b.as_of, 55))
    b.smoking("2026-02-11", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="acute-gvhd-grade-3", tag="ag3",
    title="Relapsed AML with active grade III acute GVHD",
    description="AML after a related-donor RIC transplant (07/2025), relapse in transplant marrow "
                "(01/2026), active acute GVHD graded III (MAGIC). Centene II.C excludes DLI with acute GVHD "
                "above grade 2; the other policies state no GVHD criterion (Molina only in its overview).",
    payer="centene", as_of="2026-02-17",
    patient={"name": ("Rosalind Mae", "Hutchins"), "gender": "female", "birthDate": "1957-11-05",
             "mrn": "MRN-93104257", "phone": "(512) 555-0131",
             "address": ("905 West 29th Street", "Austin", "TX", "78705")},
    coverage=("centene", "Ambetter from Superior HealthPlan", "AMB-T55610982"),
    facts={"indication_icd10cm": ["C92.00"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "donor_chimerism_pct": 85, "acute_gvhd_grade": 3},
    expected=exp((M, M, DNM, M, M), (M, M)),
)
def _ag3(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2025-01-27")
    b.transplant([(CPT, "38240"), (PCS, "30243Y2")], "2025-07-08", aml, "RIC")
    b.condition([(SCT, "402355000"), (ICD10CM, "D89.810")], "2026-01-05", kind="gvhd", stage="aGVHD-III",
                note="Skin stage 3, gut stage 2 (MAGIC overall grade III)")
    b.condition([(SCT, "234522008")], "2026-01-20", kind="rel")
    b.chimerism("2026-01-22", donor=85)
    b.normal_counts(before(b.as_of, 14), before(b.as_of, 40))
    b.smoking("2026-01-22", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="acute-gvhd-ungraded", tag="agu",
    title="Progressive ALL with active acute GVHD, grade not recorded",
    description="Ph+ ALL, myeloablative PBSC transplant (05/2025); rising MRD recorded as mCODE 'worsened' "
                "(01/2026); acute GVHD on the problem list without a grade. Centene cannot settle II.C "
                "(needs-information); the others are met for DLI.",
    payer="centene", as_of="2026-01-28",
    patient={"name": ("Kwame Nathaniel", "Asante"), "gender": "male", "birthDate": "1985-05-19",
             "mrn": "MRN-10472298", "phone": "(916) 555-0154",
             "address": ("2150 Capitol Avenue", "Sacramento", "CA", "95816")},
    coverage=("centene", "Health Net of California", "HNC-40231187"),
    facts={"indication_icd10cm": ["C91.00"], "disease_status": "progressive", "acute_gvhd_grade": None},
    expected=exp((M, M, NI, M, M), (DNM, DNM)),
)
def _agu(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2024-12-02", note="Philadelphia-positive B-ALL")
    b.transplant([(SCT, "425843001")], "2025-05-20", all_, "MAC")
    b.chimerism("2025-08-28", donor=100)
    b.condition([(ICD10CM, "D89.810")], "2025-12-15", kind="gvhd")
    b.disease_status("2026-01-09", "271299001", all_)
    b.chimerism("2026-01-09", donor=100)
    b.normal_counts(before(b.as_of, 12), before(b.as_of, 40))
    b.smoking("2026-01-09", NEVER)
    b.orders(STD, STD, all_)


@scenario(
    id="total-host-chimerism", tag="thc",
    title="Relapsed AML with loss of donor chimerism (total host chimerism)",
    description="AML, myeloablative MUD transplant (04/2025); marrow recipient chimerism 12 % then 97 % "
                "(donor 3 %) with relapse in 03/2026. Centene II.D excludes total host chimerism; the other DLI "
                "policies are met, the HPC boost through chimerism < 100 %.",
    payer="centene", as_of="2026-03-25",
    patient={"name": ("Imelda Rose", "Castellano"), "gender": "female", "birthDate": "1966-03-28",
             "mrn": "MRN-21588430", "phone": "(785) 555-0109",
             "address": ("1220 SW Topeka Boulevard", "Topeka", "KS", "66612")},
    coverage=("centene", "Ambetter from Sunflower Health Plan", "AMB-U77180551"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "relapsed", "donor_chimerism_pct": 3},
    expected=exp((M, M, DNM, M, M), (M, M)),
)
def _thc(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-11-08")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-04-01", aml, "MAC")
    b.chimerism("2025-07-10", recipient=12)
    b.chimerism("2026-03-10", recipient=97)
    b.condition([(ICD10CM, "C92.02")], "2026-03-12", kind="rel")
    b.normal_counts(before(b.as_of, 9), before(b.as_of, 37), anc=1.9, plt=121, hgb=10.8)
    b.smoking("2026-03-10", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="current-smoker", tag="smk",
    title="Relapsed CML after RIC transplant in a current daily smoker",
    description="CML (BCR/ABL+) after a RIC transplant (03/2025), relapse in 01/2026, donor 88 %; smoking "
                "status 'smokes tobacco daily' and active nicotine dependence. Only Centene (I.C.4 current "
                "tobacco use) fails.",
    payer="centene", as_of="2026-02-26",
    patient={"name": ("Dale Everett", "Pruitt"), "gender": "male", "birthDate": "1963-06-17",
             "mrn": "MRN-32674109", "phone": "(417) 555-0188",
             "address": ("1610 East Sunshine Street", "Springfield", "MO", "65804")},
    coverage=("centene", "Ambetter from Home State Health", "AMB-M66203478"),
    facts={"indication_icd10cm": ["C92.10"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "donor_chimerism_pct": 88, "current_substance_use": True},
    expected=exp((M, M, DNM, M, M), (M, M)),
)
def _smk(b: Builder):
    cml = b.condition([(ICD10CM, "C92.10")], "2023-05-15")
    b.transplant([(CPT, "38240")], "2025-03-25", cml, "RIC")
    b.condition([(ICD10CM, "F17.210")], "2010-01-01", kind="tob", recorded="2023-05-15")
    b.condition([(ICD10CM, "C92.12")], "2026-01-30", kind="rel")
    b.chimerism("2026-02-02", donor=88)
    b.smoking("2026-02-10", "449868002")
    b.normal_counts(before(b.as_of, 16), before(b.as_of, 44))
    b.orders(STD, STD, cml)


@scenario(
    id="ex-smoker", tag="exs",
    title="Relapsed ALL in an ex-smoker (nicotine dependence in remission)",
    description="ALL, myeloablative transplant (01/2025), relapse (C91.02) in 02/2026, full donor chimerism; "
                "smoking status ex-smoker, nicotine dependence coded 'in remission'. No contraindication: "
                "all DLI policies met; no HPC-boost indication.",
    payer="centene", as_of="2026-03-09",
    patient={"name": ("Priya Lakshmi", "Raghunathan"), "gender": "female", "birthDate": "1976-10-01",
             "mrn": "MRN-43790235", "phone": "(314) 555-0125",
             "address": ("4512 Lindell Boulevard", "St. Louis", "MO", "63108")},
    coverage=("centene", "Ambetter from Home State Health", "AMB-M66211093"),
    facts={"indication_icd10cm": ["C91.00"], "disease_status": "relapsed"},
    expected=exp((M, M, M, M, M), (DNM, DNM)),
)
def _exs(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2024-07-22")
    b.transplant([(CPT, "38240"), (PCS, "30243Y4")], "2025-01-28", all_, "MAC")
    b.condition([(ICD10CM, "F17.211")], "2019-06-01", kind="tob", recorded="2024-07-22")
    b.condition([(ICD10CM, "Z87.891")], "2019-06-01", kind="tobhx", recorded="2024-07-22")
    b.condition([(ICD10CM, "C91.02")], "2026-02-10", kind="rel")
    b.chimerism("2026-02-12", donor=100)
    b.smoking("2026-02-20", "8517006")
    b.normal_counts(before(b.as_of, 17), before(b.as_of, 45))
    b.orders(STD, STD, all_)


@scenario(
    id="genetically-modified-product", tag="gmp",
    title="Relapsed AML, DLI product genetically modified (suicide-gene donor T cells)",
    description="AML relapse after a myeloablative transplant; the DLI order names a genetically modified "
                "product (iCasp9-transduced donor T cells). Every DLI policy excludes genetic modification; "
                "the HPC-boost order (unmanipulated) is met through chimerism 93 %.",
    payer="anthem", as_of="2026-02-04",
    patient={"name": ("Walter Henrik", "Lindqvist"), "gender": "male", "birthDate": "1959-01-26",
             "mrn": "MRN-54018876", "phone": "(317) 555-0162",
             "address": ("6020 North College Avenue", "Indianapolis", "IN", "46220")},
    coverage=("anthem", "Anthem Blue Cross and Blue Shield", "ANT-YRK443019876"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "relapsed", "donor_chimerism_pct": 93},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (M, M)),
)
def _gmp(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-09-30")
    b.transplant([(CPT, "38240")], "2025-03-04", aml, "MAC")
    b.condition([(ICD10CM, "C92.02")], "2026-01-12", kind="rel")
    b.chimerism("2026-01-14", donor=93)
    b.smoking("2026-01-14", NEVER)
    b.normal_counts(before(b.as_of, 21), before(b.as_of, 50))
    b.orders(["original-donor", "genetically-modified-product"], STD, aml)


@scenario(
    id="ex-vivo-manipulated-product", tag="evm",
    title="Relapsed AML, DLI product manipulated ex vivo (CD45RA-depleted)",
    description="AML relapse after a RIC transplant; the DLI order names an ex vivo manipulated, not "
                "genetically modified, product. Centene II.B and BCBSMS ('other modification') exclude it; "
                "Wellmark, Molina and Anthem exclude only genetic modification.",
    payer="bcbsms", as_of="2026-01-15",
    patient={"name": ("Cordelia Faye", "Ridgeway"), "gender": "female", "birthDate": "1982-08-09",
             "mrn": "MRN-65123407", "phone": "(228) 555-0173",
             "address": ("311 Beach Boulevard", "Biloxi", "MS", "39530")},
    coverage=("bcbsms", "Blue Cross & Blue Shield of Mississippi", "BMS-5521990417"),
    facts={"indication_icd10cm": ["C92.00"], "conditioning_intensity": "RIC", "disease_status": "relapsed"},
    expected=exp((M, M, DNM, M, DNM), (DNM, DNM)),
)
def _evm(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-10-14")
    b.transplant([(CPT, "38240"), (PCS, "30243Y2")], "2025-02-18", aml, "RIC")
    b.condition([(ICD10CM, "C92.02")], "2025-12-29", kind="rel")
    b.chimerism("2025-12-30", donor=100)
    b.smoking("2025-12-30", NEVER)
    b.normal_counts(before(b.as_of, 10), before(b.as_of, 38))
    b.orders(["original-donor", "ex-vivo-manipulated-product"], STD, aml)


@scenario(
    id="different-donor", tag="ddn",
    title="Relapsed AML, lymphocytes and boost from a different donor",
    description="AML relapse after a myeloablative MUD transplant; the unrelated donor is unavailable and "
                "both orders name a haploidentical relative (different-donor). Wellmark, Molina and Anthem "
                "require the original donor for DLI (Molina also for the boost); Centene and BCBSMS do not.",
    payer="wellmark", as_of="2026-03-30",
    patient={"name": ("Harlan Bernard", "Ostrowski"), "gender": "male", "birthDate": "1970-12-03",
             "mrn": "MRN-76240918", "phone": "(605) 555-0140",
             "address": ("822 South Minnesota Avenue", "Sioux Falls", "SD", "57104")},
    coverage=("wellmark", "Wellmark Blue Cross and Blue Shield of South Dakota", "WMK-SD5510294"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "relapsed", "donor_chimerism_pct": 64},
    expected=exp((DNM, DNM, M, DNM, M), (M, DNM)),
)
def _ddn(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-08-05")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-01-07", aml, "MAC",
                 note="MUD PBSCT; the unrelated donor has since declined a second donation")
    b.condition([(ICD10CM, "C92.02")], "2026-03-02", kind="rel")
    b.chimerism("2026-03-04", donor=64)
    b.smoking("2026-03-04", NEVER)
    b.normal_counts(before(b.as_of, 8), before(b.as_of, 36))
    dd = ["different-donor", "unmanipulated-product"]
    b.orders(dd, dd, aml)


@scenario(
    id="autologous-only-poor-graft", tag="aut",
    title="Myeloma after autologous transplant only, poor graft function",
    description="Multiple myeloma, melphalan-200 autologous PBSC transplant (09/2025), ANC < 0.5 and "
                "platelets < 30 for 4 weeks at day +90-115. DLI fails every policy (no allogeneic HSCT); "
                "the autologous HPC boost is met for Wellmark and Molina (donor criterion not applicable).",
    payer="wellmark", as_of="2026-01-12",
    patient={"name": ("Eugenia Clare", "Vandermeer"), "gender": "female", "birthDate": "1955-05-11",
             "mrn": "MRN-87355124", "phone": "(319) 555-0118",
             "address": ("1408 Muscatine Avenue", "Iowa City", "IA", "52240")},
    coverage=("wellmark", "Wellmark Blue Cross and Blue Shield of Iowa", "WMK-882047719"),
    facts={"indication_icd10cm": ["C90.00"], "hsct_type": "autologous", "t_cell_depleted_graft": None,
           "donor_chimerism_pct": None, "poor_graft_function": True},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (M, M)),
)
def _aut(b: Builder):
    mm = b.condition([(ICD10CM, "C90.00"), (SCT, "109989006")], "2025-01-21")
    b.transplant([(CPT, "38241"), (SCT, "425983008")], "2025-09-16", mm, "MAC",
                 note="Melphalan 200 mg/m2, autologous PBSC rescue")
    low_series(b, "anc", [(32, 0.31), (18, 0.42), (4, 0.36)])
    low_series(b, "plt", [(32, 19), (18, 23), (4, 17)])
    low_series(b, "hgb", [(32, 8.6), (18, 8.4), (4, 8.2)])
    b.smoking("2025-12-10", NEVER)
    b.orders(STD, STD, mm)


@scenario(
    id="breast-cancer-allo-nma", tag="brc",
    title="Metastatic breast cancer after nonmyeloablative allogeneic HSCT (non-hematologic malignancy)",
    description="Investigational NMA allogeneic transplant for metastatic breast cancer (04/2025); "
                "progression (mCODE worsened) with 78 % donor chimerism. DLI is excluded or unsupported for "
                "a non-hematologic malignancy everywhere; Molina's HPC boost has no diagnosis limit and is met.",
    payer=None, as_of="2026-02-02",
    patient={"name": ("Annabelle Grace", "Fairweather"), "gender": "female", "birthDate": "1974-03-15",
             "mrn": "MRN-98461350", "phone": "(206) 555-0166",
             "address": ("1100 Fairview Avenue North", "Seattle", "WA", "98109")},
    coverage=None,
    facts={"diagnosis_class": "other-malignancy", "indication_icd10cm": ["C50.911"],
           "conditioning_intensity": "NMA", "disease_status": "progressive", "donor_chimerism_pct": 78},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (DNM, M)),
)
def _brc(b: Builder):
    bc = b.condition([(ICD10CM, "C50.911"), (SCT, "254837009")], "2022-06-14")
    b.transplant([(CPT, "38240"), (SCT, "425843001")], "2025-04-08", bc, "NMA",
                 note="Fludarabine / 2 Gy TBI nonmyeloablative allograft on a clinical trial")
    b.chimerism("2025-10-20", donor=84)
    b.disease_status("2026-01-12", "271299001", bc)
    b.chimerism("2026-01-12", donor=78)
    b.smoking("2026-01-12", NEVER)
    b.normal_counts(before(b.as_of, 21), before(b.as_of, 49))
    b.orders(STD, STD, bc)


@scenario(
    id="sickle-cell-mixed-chimerism", tag="scd",
    title="Sickle cell disease after haploidentical NMA HSCT with mixed chimerism (non-malignant)",
    description="Sickle cell disease transplanted with a nonmyeloablative haploidentical graft (02/2025); "
                "stable mixed chimerism 45 % donor. DLI is not for a malignancy and fails every policy; "
                "Molina's HPC boost (chimerism < 100 %) is met, Wellmark's needs a hematologic malignancy.",
    payer="molina", as_of="2026-01-06",
    patient={"name": ("Jamal Terrence", "Whitfield"), "gender": "male", "birthDate": "2003-09-21",
             "mrn": "MRN-19572684", "phone": "(662) 555-0137",
             "address": ("207 Clayton Street", "Tupelo", "MS", "38804")},
    coverage=("molina", "Molina Healthcare of Mississippi", "MMS-110287563"),
    facts={"diagnosis_class": "non-malignant", "indication_icd10cm": ["D57.1"], "conditioning_intensity": "NMA",
           "donor_chimerism_pct": 45},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (DNM, M)),
)
def _scd(b: Builder):
    scd = b.condition([(ICD10CM, "D57.1"), (SCT, "417357006")], "2003-11-02", recorded="2015-03-10")
    b.transplant([(CPT, "38240"), (PCS, "30243G2")], "2025-02-25", scd, "NMA",
                 note="Haploidentical (mother) bone marrow, ATG/Flu/Cy/2 Gy TBI, PTCy")
    b.chimerism("2025-06-05", donor=61)
    b.chimerism("2025-12-08", donor=45)
    b.normal_counts(before(b.as_of, 29), before(b.as_of, 57), anc=3.1, plt=245, hgb=10.9)
    b.smoking("2025-12-08", NEVER)
    b.orders(STD, STD, scd)


@scenario(
    id="aplastic-anemia-poor-graft", tag="saa",
    title="Severe aplastic anemia after sibling HSCT with poor graft function (non-malignant)",
    description="Idiopathic severe aplastic anemia, RIC matched-sibling marrow transplant (08/2025); full "
                "donor chimerism but platelets < 30 and hemoglobin < 8 for > 4 weeks. Molina's HPC boost is met; "
                "Wellmark's HPC boost and every DLI policy need a hematologic malignancy.",
    payer=None, as_of="2026-01-08",
    patient={"name": ("Soledad Ines", "Barrientos"), "gender": "female", "birthDate": "1998-02-17",
             "mrn": "MRN-20683795", "phone": "(505) 555-0182",
             "address": ("1801 Lomas Boulevard NE", "Albuquerque", "NM", "87106")},
    coverage=None,
    facts={"diagnosis_class": "non-malignant", "indication_icd10cm": ["D61.3"], "conditioning_intensity": "RIC",
           "poor_graft_function": True},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (DNM, M)),
)
def _saa(b: Builder):
    saa = b.condition([(ICD10CM, "D61.3"), (SCT, "55907008")], "2025-03-03")
    b.transplant([(CPT, "38240"), (SCT, "426425001")], "2025-08-12", saa, "RIC",
                 note="Flu/Cy/ATG, matched sibling bone marrow")
    b.chimerism("2025-11-17", donor=100)
    b.chimerism("2025-12-29", donor=100)
    low_series(b, "plt", [(42, 14), (28, 11), (14, 16), (2, 12)])
    low_series(b, "hgb", [(42, 7.6), (28, 7.2), (14, 7.8), (2, 7.4)])
    for days in (42, 28, 14, 2):
        b.count("anc", before(b.as_of, days), 0.9)
    b.smoking("2025-11-17", NEVER)
    b.orders(STD, STD, saa)


@scenario(
    id="graft-failure-cord-blood", tag="gft",
    title="Secondary graft failure after cord blood transplant for AML",
    description="AML, myeloablative unrelated cord blood transplant (10/2025), in remission at day +60, "
                "secondary graft failure (T86.02) with profound cytopenias. The HPC boost is met for Wellmark and "
                "Molina; DLI has no relapse/high-risk/chimerism indication (Centene I.A and Anthem are met).",
    payer="anthem", as_of="2026-01-27",
    patient={"name": ("Benedikt Aurelio", "Sandoval"), "gender": "male", "birthDate": "1988-07-04",
             "mrn": "MRN-31794806", "phone": "(303) 555-0159",
             "address": ("1555 Race Street", "Denver", "CO", "80206")},
    coverage=("anthem", "Anthem Blue Cross and Blue Shield", "ANT-XCO501227734"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "remission", "poor_graft_function": True},
    expected=exp((DNM, DNM, M, M, DNM), (M, M)),
)
def _gft(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2025-05-12")
    b.transplant([(SCT, "427615008"), (PCS, "30243X3")], "2025-10-21", aml, "MAC")
    b.disease_status("2025-12-22", "550991000124107", aml)
    b.chimerism("2025-12-22", donor=100)
    b.condition([(ICD10CM, "T86.02"), (SCT, "234520000")], "2026-01-05", kind="gf")
    low_series(b, "anc", [(48, 0.4), (34, 0.3), (20, 0.2), (6, 0.2)])
    low_series(b, "plt", [(48, 18), (34, 12), (20, 9), (6, 11)])
    low_series(b, "hgb", [(48, 7.9), (34, 7.5), (20, 7.1), (6, 7.6)])
    b.smoking("2025-12-22", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="car-t-cytopenia-no-hsct", tag="ctc",
    title="Prolonged cytopenias after BCMA CAR T for myeloma, no HSCT",
    description="Multiple myeloma treated with BCMA CAR T (11/2025), never transplanted; ANC < 0.5 and "
                "platelets < 30 persisting for 6 weeks. Molina 1b + 2c meet the HPC boost (stored autologous "
                "HPC). The record shows no transplant at all (hsct_type none), so Wellmark's HPC boost and "
                "every DLI policy are not met.",
    payer="molina", as_of="2026-01-21",
    patient={"name": ("Vernon Lee", "Ashcroft"), "gender": "male", "birthDate": "1958-10-29",
             "mrn": "MRN-42805917", "phone": "(419) 555-0121",
             "address": ("3042 West Sylvania Avenue", "Toledo", "OH", "43613")},
    coverage=("molina", "Molina Healthcare of Ohio", "MOH-778190215"),
    facts={"indication_icd10cm": ["C90.00"], "hsct_type": "none", "t_cell_depleted_graft": None,
           "conditioning_intensity": None, "donor_chimerism_pct": None, "poor_graft_function": False,
           "prior_car_t": True, "cytopenia_after_car_t": True},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (DNM, M)),
)
def _ctc(b: Builder):
    mm = b.condition([(ICD10CM, "C90.00"), (SCT, "109989006")], "2021-04-06",
                     note="Autologous HPC collected 2021 and cryopreserved; no transplant performed")
    b.car_t([(SCT, "1156961008"), (CPT, "38228")], "2025-11-04", mm, "Ciltacabtagene autoleucel")
    low_series(b, "anc", [(45, 0.28), (31, 0.35), (17, 0.41), (3, 0.38)])
    low_series(b, "plt", [(45, 15), (31, 14), (17, 20), (3, 18)])
    low_series(b, "hgb", [(45, 8.7), (31, 8.5), (17, 8.9), (3, 8.8)])
    b.smoking("2025-11-04", NEVER)
    b.orders(STD, STD, mm)


@scenario(
    id="aml-induction-no-transplant", tag="ind",
    title="AML in induction, never transplanted: DLI and HPC boost ordered prematurely",
    description="Newly diagnosed AML (C92.00, 01/2026) with chemotherapy-induced cytopenias during "
                "induction; no stem cell transplant, no transplant history and no CAR T on record. "
                "Both orders precede any graft, so every policy's transplant criterion is not met.",
    payer="bcbsms", as_of="2026-02-20",
    patient={"name": ("Dwayne Everett", "Holloway"), "gender": "male", "birthDate": "1971-06-02",
             "mrn": "MRN-61730294", "phone": "(601) 555-0188",
             "address": ("418 North State Street", "Jackson", "MS", "39201")},
    coverage=("bcbsms", "Blue Cross & Blue Shield of Mississippi", "BMS-330918442"),
    facts={"indication_icd10cm": ["C92.00"], "hsct_type": "none", "t_cell_depleted_graft": None,
           "conditioning_intensity": None, "disease_status": None, "donor_chimerism_pct": None,
           "poor_graft_function": False, "prior_car_t": False, "cytopenia_after_car_t": False},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (DNM, DNM)),
)
def _ind(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2026-01-08", recorded="2026-01-09")
    low_series(b, "anc", [(30, 0.12), (16, 0.2), (2, 0.31)])
    low_series(b, "plt", [(30, 11), (16, 18), (2, 24)])
    b.smoking("2026-01-09", NEVER)
    b.orders(STD, STD, aml)


@scenario(
    id="mds-relapse-anthem-unlisted", tag="mds",
    title="Relapsed MDS (EB-2) after RIC transplant: diagnosis not on Anthem's ICD-10 list",
    description="MDS with excess blasts-2 (D46.22), RIC transplant (05/2025), relapse (01/2026) with 91 % "
                "donor chimerism. MDS is a hematologic malignancy for every policy, but Anthem's Coding "
                "list (C81-C92, Z85.6-Z85.79) omits D46, so Anthem fails; the others are met.",
    payer="anthem", as_of="2026-02-23",
    patient={"name": ("Florence Adaeze", "Nwachukwu"), "gender": "female", "birthDate": "1953-12-19",
             "mrn": "MRN-53916028", "phone": "(502) 555-0145",
             "address": ("2400 Bardstown Road", "Louisville", "KY", "40205")},
    coverage=("anthem", "Anthem Blue Cross and Blue Shield", "ANT-KYB602218845"),
    facts={"indication_icd10cm": ["D46.22"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "donor_chimerism_pct": 91},
    expected=exp((M, M, M, DNM, M), (M, M)),
)
def _mds(b: Builder):
    mds = b.condition([(ICD10CM, "D46.22"), (SCT, "109995007")], "2024-12-09")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-05-27", mds, "RIC")
    b.condition([(SCT, "1251564008")], "2026-01-29", kind="rel", note="Marrow blasts 14 %")
    b.chimerism("2026-01-30", donor=91)
    b.smoking("2026-01-30", NEVER)
    b.normal_counts(before(b.as_of, 15), before(b.as_of, 43))
    b.orders(STD, STD, mds)


@scenario(
    id="snomed-only-diagnosis", tag="sno",
    title="Relapsed AML coded in SNOMED CT only, orders without product source, no blood counts",
    description="AML and its post-transplant relapse are coded only in SNOMED CT; no blood counts are on "
                "file after the transplant and neither order states the cell source. Anthem's ICD-10 list "
                "and the same-donor criteria cannot be settled (needs-information); Centene and BCBSMS are met.",
    payer="anthem", as_of="2026-03-12",
    patient={"name": ("Oskar Matthias", "Brennecke"), "gender": "male", "birthDate": "1967-01-09",
             "mrn": "MRN-64027139", "phone": "(775) 555-0190",
             "address": ("1690 Plumas Street", "Reno", "NV", "89509")},
    coverage=("anthem", "Anthem Blue Cross and Blue Shield", "ANT-NVA703319956"),
    facts={"indication_icd10cm": None, "disease_status": "relapsed", "donor_chimerism_pct": 87,
           "poor_graft_function": None},
    expected=exp((NI, NI, M, NI, M), (M, NI)),
)
def _sno(b: Builder):
    aml = b.condition([(SCT, "91861009")], "2024-11-25")
    b.transplant([(SCT, "425843001")], "2025-04-29", aml, "MAC")
    b.condition([(SCT, "12281000132104")], "2026-02-16", kind="rel")
    b.chimerism("2026-02-18", donor=87)
    b.smoking("2026-02-18", NEVER)
    b.orders(["unmanipulated-product"], ["unmanipulated-product"], aml)


@scenario(
    id="missing-transplant-documentation", tag="mis",
    title="AML with transplant status only: no transplant procedure, counts, chimerism or order details",
    description="Referred patient: AML and 'stem cell transplant status' (Z94.84) on the problem list, but "
                "no transplant Procedure, blood counts, chimerism, disease status or smoking status, and orders "
                "without details. Every determination is needs-information; the payer is not recognised.",
    payer="unrecognised", as_of="2026-03-02",
    patient={"name": ("Henrietta Joy", "Mbeki-Larsson"), "gender": "female", "birthDate": "1971-04-04",
             "mrn": "MRN-75138240", "phone": "(802) 555-0103",
             "address": ("58 Pearl Street", "Burlington", "VT", "05401")},
    coverage=(None, "Acme Health Mutual", "ACME-0045512"),
    facts={"indication_icd10cm": ["C92.00"], "hsct_type": None, "t_cell_depleted_graft": None,
           "conditioning_intensity": None, "donor_chimerism_pct": None, "poor_graft_function": None,
           "current_substance_use": None},
    expected=exp((NI, NI, NI, NI, NI), (NI, NI)),
)
def _mis(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-09-16")
    b.condition([(ICD10CM, "Z94.84")], "2025-03-01", kind="txstat",
                note="Allogeneic transplant at an outside centre; records requested")
    b.orders([], [], aml)


@scenario(
    id="resistant-infection", tag="rin",
    title="Relapsed AML with active multidrug-resistant sepsis",
    description="AML relapse after a RIC transplant (donor 80 %); active sepsis (A41.9) with resistance to "
                "multiple antibiotics (Z16.24, MDR Pseudomonas). Centene I.C.1 (poorly controlled resistant "
                "infection) fails; the other policies have no such criterion.",
    payer="centene", as_of="2026-02-13",
    patient={"name": ("Ignatius Paul", "Delacroix"), "gender": "male", "birthDate": "1964-08-22",
             "mrn": "MRN-86249351", "phone": "(504) 555-0177",
             "address": ("3700 Magazine Street", "New Orleans", "LA", "70115")},
    coverage=("centene", "Ambetter from Louisiana Healthcare Connections", "AMB-L88314027"),
    facts={"indication_icd10cm": ["C92.00"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "donor_chimerism_pct": 80, "uncontrolled_resistant_infection": True},
    expected=exp((M, M, DNM, M, M), (M, M)),
)
def _rin(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-10-21")
    b.transplant([(CPT, "38240")], "2025-03-11", aml, "RIC")
    b.condition([(ICD10CM, "C92.02")], "2026-01-26", kind="rel")
    b.chimerism("2026-01-27", donor=80)
    b.condition([(ICD10CM, "A41.9")], "2026-02-06", kind="inf", category="encounter-diagnosis",
                note="Bacteremia, multidrug-resistant Pseudomonas aeruginosa; febrile on meropenem")
    b.condition([(ICD10CM, "Z16.24")], "2026-02-08", kind="res", category="encounter-diagnosis")
    b.smoking("2026-01-27", NEVER)
    b.normal_counts(before(b.as_of, 6), before(b.as_of, 34))
    b.orders(STD, STD, aml)


@scenario(
    id="nonadherence", tag="nad",
    title="Relapsed ALL with documented nonadherence",
    description="ALL relapse (C91.02) after a myeloablative transplant; repeated missed visits and "
                "immunosuppressant doses coded Z91.19. Centene I.C.2 fails; all other DLI policies are met; "
                "no HPC-boost indication (full chimerism, normal counts).",
    payer="centene", as_of="2026-03-18",
    patient={"name": ("Brayden Cole", "McAllister"), "gender": "male", "birthDate": "1999-11-11",
             "mrn": "MRN-97350462", "phone": "(904) 555-0151",
             "address": ("1045 Riverside Avenue Unit 12", "Jacksonville", "FL", "32204")},
    coverage=("centene", "Wellcare by Allwell", "WCA-99021376"),
    facts={"indication_icd10cm": ["C91.00"], "disease_status": "relapsed", "nonadherence": True},
    expected=exp((M, M, DNM, M, M), (DNM, DNM)),
)
def _nad(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2024-05-28")
    b.transplant([(CPT, "38240"), (PCS, "30243Y2")], "2024-11-19", all_, "MAC")
    b.condition([(ICD10CM, "Z91.19")], "2025-06-02", kind="nonadh",
                note="Missed 4 of 7 clinic visits; tacrolimus levels undetectable twice")
    b.condition([(ICD10CM, "C91.02")], "2026-02-27", kind="rel")
    b.chimerism("2026-03-02", donor=100)
    b.smoking("2026-03-02", NEVER)
    b.normal_counts(before(b.as_of, 16), before(b.as_of, 44))
    b.orders(STD, STD, all_)


@scenario(
    id="no-social-support", tag="nss",
    title="Relapsed Hodgkin lymphoma after RIC transplant, no caregiver support",
    description="Classical Hodgkin lymphoma, RIC transplant (04/2025), relapse (SNOMED relapsing classical "
                "Hodgkin) in 01/2026; lives alone with no caregiver (Z60.2, Z63.8). Centene I.C.3 fails; the "
                "other DLI policies are met (Anthem lists C81).",
    payer="centene", as_of="2026-02-12",
    patient={"name": ("Mildred Constance", "Ebersole"), "gender": "female", "birthDate": "1960-02-29",
             "mrn": "MRN-08461573", "phone": "(402) 555-0128",
             "address": ("4820 Dodge Street", "Omaha", "NE", "68132")},
    coverage=("centene", "Ambetter from Nebraska Total Care", "AMB-N33048812"),
    facts={"indication_icd10cm": ["C81.10"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "lacks_social_support": True},
    expected=exp((M, M, DNM, M, M), (DNM, DNM)),
)
def _nss(b: Builder):
    hl = b.condition([(ICD10CM, "C81.10"), (SCT, "118599009")], "2022-09-12")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-04-29", hl, "RIC")
    b.condition([(ICD10CM, "Z60.2")], "2025-10-14", kind="sdoh")
    b.condition([(ICD10CM, "Z63.8")], "2025-10-14", kind="sdoh",
                note="Sole caregiver (sister) moved out of state; no alternative caregiver identified")
    b.condition([(SCT, "830057003")], "2026-01-27", kind="rel")
    b.chimerism("2026-01-28", donor=100)
    b.smoking("2026-01-28", NEVER)
    b.normal_counts(before(b.as_of, 14), before(b.as_of, 42))
    b.orders(STD, STD, hl)


@scenario(
    id="refractory-aml-resistance-only", tag="ref",
    title="Refractory AML after transplant; carbapenem resistance without active infection",
    description="AML with persistent blasts after a myeloablative transplant (refractory, SNOMED "
                "1251565009, 12/2025), donor 94 %; a carbapenem-resistance code (Z16.13) with no active "
                "infection leaves Centene I.C.1 unsettled (needs-information). The other DLI policies are met.",
    payer=None, as_of="2026-01-13",
    patient={"name": ("Thaddeus Orrin", "Kilbride"), "gender": "male", "birthDate": "1981-06-06",
             "mrn": "MRN-19572601", "phone": "(207) 555-0114",
             "address": ("92 Congress Street", "Portland", "ME", "04101")},
    coverage=None,
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "refractory", "donor_chimerism_pct": 94,
           "uncontrolled_resistant_infection": None},
    expected=exp((M, M, NI, M, M), (M, M)),
)
def _ref(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2025-05-19")
    b.transplant([(CPT, "38240"), (PCS, "30243Y4")], "2025-11-04", aml, "MAC")
    b.condition([(SCT, "1251565009")], "2025-12-09", kind="refr", note="Day +35 marrow: 18 % blasts")
    b.chimerism("2025-12-09", donor=94)
    b.condition([(ICD10CM, "Z16.13")], "2025-11-28", kind="res",
                note="Rectal surveillance swab: carbapenem-resistant Klebsiella colonisation; no infection")
    b.smoking("2025-12-09", NEVER)
    b.normal_counts(before(b.as_of, 7), before(b.as_of, 28), anc=1.2, plt=66, hgb=9.0)
    b.orders(STD, STD, aml)


@scenario(
    id="persistent-disease-mcode-stable", tag="per",
    title="Persistent MRD-positive ALL after myeloablative transplant (mCODE 'stable')",
    description="ALL, myeloablative transplant (07/2025), MRD persisting without progression (mCODE stable → "
                "persistent disease), full donor chimerism. Molina 2a and Centene accept persistent disease; "
                "Wellmark and BCBSMS name only relapsed/refractory disease.",
    payer="wellmark", as_of="2026-03-05",
    patient={"name": ("Cassandra Leigh", "Vollmer"), "gender": "female", "birthDate": "1993-01-18",
             "mrn": "MRN-20683712", "phone": "(563) 555-0133",
             "address": ("1717 Brady Street", "Davenport", "IA", "52803")},
    coverage=("wellmark", "Wellmark Blue Cross and Blue Shield of Iowa", "WMK-882061580"),
    facts={"indication_icd10cm": ["C91.00"], "disease_status": "persistent"},
    expected=exp((DNM, M, M, M, DNM), (DNM, DNM)),
)
def _per(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2025-01-13")
    b.transplant([(CPT, "38240"), (PCS, "30243Y4")], "2025-07-15", all_, "MAC")
    b.disease_status("2025-10-23", "359746009", all_)
    b.disease_status("2026-02-16", "359746009", all_)
    b.chimerism("2026-02-16", donor=100)
    b.smoking("2026-02-16", NEVER)
    b.normal_counts(before(b.as_of, 17), before(b.as_of, 45))
    b.orders(STD, STD, all_)


@scenario(
    id="remission-after-post-transplant-relapse", tag="rem",
    title="AML back in remission after a post-transplant relapse (latest evidence wins)",
    description="AML relapse 5 months after a myeloablative sibling-marrow transplant, treated; mCODE remission "
                "01/2026 is the latest status, chimerism 100 %. A further DLI has no indication for Wellmark, "
                "Molina or BCBSMS; Centene I.A and Anthem (no indication list) are met.",
    payer=None, as_of="2026-02-24",
    patient={"name": ("Augustin Pierre", "Lemaire"), "gender": "male", "birthDate": "1975-09-09",
             "mrn": "MRN-31794823", "phone": "(603) 555-0170",
             "address": ("41 Elm Street", "Manchester", "NH", "03101")},
    coverage=None,
    facts={"indication_icd10cm": ["C92.00"], "disease_status": "remission"},
    expected=exp((DNM, DNM, M, M, DNM), (DNM, DNM)),
)
def _rem(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-10-07")
    b.transplant([(CPT, "38240"), (PCS, "30243G2")], "2025-03-25", aml, "MAC")
    b.condition([(ICD10CM, "C92.02")], "2025-08-26", kind="rel", status="remission",
                note="Relapse treated with azacitidine/venetoclax")
    b.disease_status("2026-01-20", "550991000124107", aml)
    b.chimerism("2026-01-20", donor=100)
    b.smoking("2026-01-20", NEVER)
    b.normal_counts(before(b.as_of, 13), before(b.as_of, 41))
    b.orders(STD, STD, aml)


@scenario(
    id="relapse-before-transplant-only", tag="rbt",
    title="AML relapse documented only before the transplant (CR2 transplant)",
    description="AML relapsed in 12/2024 and was transplanted in second remission (myeloablative, 03/2025); "
                "nothing about disease status since. The pre-transplant relapse does not count: Wellmark, "
                "Molina and BCBSMS need post-transplant status (needs-information).",
    payer="molina", as_of="2026-01-26",
    patient={"name": ("Rebecca Louise", "Tannenbaum"), "gender": "female", "birthDate": "1969-07-12",
             "mrn": "MRN-42805934", "phone": "(216) 555-0196",
             "address": ("2780 Euclid Heights Boulevard", "Cleveland Heights", "OH", "44106")},
    coverage=("molina", "Molina Healthcare of Ohio", "MOH-778155402"),
    facts={"indication_icd10cm": ["C92.00"], "disease_status": None},
    expected=exp((NI, NI, M, M, NI), (DNM, DNM)),
)
def _rbt(b: Builder):
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2023-08-14")
    b.condition([(ICD10CM, "C92.02")], "2024-12-03", kind="rel", status="remission")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-03-18", aml, "MAC")
    b.chimerism("2025-06-25", donor=100)
    b.chimerism("2026-01-05", donor=100)
    b.smoking("2026-01-05", NEVER)
    b.normal_counts(before(b.as_of, 21), before(b.as_of, 49))
    b.orders(STD, STD, aml)


@scenario(
    id="breast-cancer-history-with-aml", tag="bca",
    title="Therapy-related AML in a breast cancer survivor: AML is the transplant reason",
    description="Breast cancer 2018 (resolved, history Z85.3) then therapy-related AML, RIC transplant "
                "(06/2025) whose reason is the AML; relapse 02/2026, donor 89 %. The transplant reason wins: "
                "hematologic malignancy, every DLI policy and both HPC-boost policies are met.",
    payer="bcbsms", as_of="2026-03-11",
    patient={"name": ("Georgina Ruth", "Abernathy"), "gender": "female", "birthDate": "1962-04-03",
             "mrn": "MRN-53916045", "phone": "(601) 555-0102",
             "address": ("118 Lakeland Heights Drive", "Flowood", "MS", "39232")},
    coverage=("bcbsms", "Blue Cross & Blue Shield of Mississippi", "BMS-5522014468"),
    facts={"indication_icd10cm": ["C92.00"], "conditioning_intensity": "RIC", "disease_status": "relapsed",
           "donor_chimerism_pct": 89},
    expected=exp((M, M, M, M, M), (M, M)),
)
def _bca(b: Builder):
    b.condition([(ICD10CM, "C50.911"), (SCT, "254837009")], "2018-02-20", kind="bc", status="resolved",
                abatement="2018-11-30")
    b.condition([(ICD10CM, "Z85.3")], "2018-11-30", kind="bchx", recorded="2024-12-02")
    aml = b.condition([(ICD10CM, "C92.00"), (SCT, "91861009")], "2024-12-02",
                      note="Therapy-related AML after anthracycline/cyclophosphamide adjuvant chemotherapy")
    b.transplant([(CPT, "38240"), (SCT, "425843001")], "2025-06-03", aml, "RIC")
    b.condition([(ICD10CM, "C92.02")], "2026-02-17", kind="rel")
    b.chimerism("2026-02-19", donor=89)
    b.smoking("2026-02-19", NEVER)
    b.normal_counts(before(b.as_of, 19), before(b.as_of, 47))
    b.orders(STD, STD, aml)


@scenario(
    id="outside-transplant-no-indication", tag="oti",
    title="Outside allogeneic transplant recorded without indication or conditioning; mixed chimerism",
    description="Allogeneic transplant (05/2025) imported from an outside centre without reason, conditioning "
                "or diagnosis codes; donor chimerism 76 %, normal counts; the DLI order carries conflicting product "
                "details. The diagnosis class is unknown, so DLI is needs-information everywhere; Molina's "
                "HPC boost (chimerism < 100 %) is met.",
    payer=None, as_of="2026-02-19",
    patient={"name": ("Lucinda Marie", "Haverford"), "gender": "female", "birthDate": "1977-08-25",
             "mrn": "MRN-64027156", "phone": "(401) 555-0185",
             "address": ("260 Hope Street", "Providence", "RI", "02906")},
    coverage=None,
    facts={"diagnosis_class": None, "indication_icd10cm": None, "conditioning_intensity": None,
           "donor_chimerism_pct": 76},
    expected=exp((NI, NI, NI, NI, NI), (NI, M)),
)
def _oti(b: Builder):
    b.transplant([(CPT, "38240")], "2025-05-13", None, None,
                 note="Outside records: allogeneic HCT; details not imported")
    b.chimerism("2025-09-02", donor=90)
    b.chimerism("2026-02-03", donor=76)
    b.smoking("2026-02-03", NEVER)
    b.normal_counts(before(b.as_of, 16), before(b.as_of, 44))
    b.orders(["original-donor", "unmanipulated-product", "ex-vivo-manipulated-product"], STD, None)


@scenario(
    id="car-t-then-allo-relapse", tag="cta",
    title="B-ALL: CAR T then allogeneic HSCT, now relapsed with mixed chimerism",
    description="B-ALL given tisagenlecleucel (11/2024), consolidated with a myeloablative transplant "
                "(03/2025); relapse 02/2026 with 84 % donor chimerism, normal counts since CAR T (no "
                "CAR T cytopenia). All DLI policies and both HPC-boost policies are met.",
    payer="wellmark", as_of="2026-02-27",
    patient={"name": ("Elliot Jameson", "Thorsby"), "gender": "male", "birthDate": "2001-03-08",
             "mrn": "MRN-75138257", "phone": "(712) 555-0164",
             "address": ("611 Pierce Street", "Sioux City", "IA", "51101")},
    coverage=("wellmark", "Wellmark Blue Cross and Blue Shield of Iowa", "WMK-882077136"),
    facts={"indication_icd10cm": ["C91.00"], "disease_status": "relapsed", "donor_chimerism_pct": 84,
           "prior_car_t": True, "cytopenia_after_car_t": False},
    expected=exp((M, M, M, M, M), (M, M)),
)
def _cta(b: Builder):
    all_ = b.condition([(ICD10CM, "C91.00"), (SCT, "91857003")], "2023-10-30")
    b.car_t([(SCT, "1156961008")], "2024-11-12", all_, "Tisagenlecleucel")
    b.transplant([(CPT, "38240"), (PCS, "30243Y3")], "2025-03-04", all_, "MAC")
    b.condition([(ICD10CM, "C91.02")], "2026-02-09", kind="rel")
    b.chimerism("2026-02-10", donor=84)
    b.smoking("2026-02-10", NEVER)
    b.normal_counts(before(b.as_of, 12), before(b.as_of, 40), before(b.as_of, 68))
    b.orders(STD, STD, all_)


@scenario(
    id="myeloma-auto-then-car-t-no-counts", tag="mac",
    title="Myeloma: autologous HSCT then CAR T, no blood counts on file",
    description="Multiple myeloma, autologous transplant (2023) then BCMA CAR T (10/2025); no blood counts "
                "or chimerism on file since. DLI fails (no allogeneic HSCT); both HPC-boost policies need "
                "information (graft function and cytopenia after CAR T unknown).",
    payer=None, as_of="2026-01-30",
    patient={"name": ("Reginald Otis", "Fairbanks"), "gender": "male", "birthDate": "1956-12-01",
             "mrn": "MRN-86249368", "phone": "(302) 555-0148",
             "address": ("1903 Delaware Avenue", "Wilmington", "DE", "19806")},
    coverage=None,
    facts={"indication_icd10cm": ["C90.00"], "hsct_type": "autologous", "t_cell_depleted_graft": None,
           "donor_chimerism_pct": None, "poor_graft_function": None, "prior_car_t": True,
           "cytopenia_after_car_t": None},
    expected=exp((DNM, DNM, DNM, DNM, DNM), (NI, NI)),
)
def _mac(b: Builder):
    mm = b.condition([(ICD10CM, "C90.00"), (SCT, "109989006")], "2022-11-14")
    b.transplant([(CPT, "38241"), (PCS, "30243Y0")], "2023-04-18", mm, "MAC")
    b.car_t([(SCT, "1156961008"), (CPT, "38228")], "2025-10-21", mm, "Idecabtagene vicleucel")
    b.smoking("2025-10-21", NEVER)
    b.orders(STD, STD, mm)


# --- order facts ------------------------------------------------------------------------------
def order_facts(details: list[str]) -> dict:
    """Absent source = unknown; absent product = the plain CPT code, read as unmanipulated
    (terminology.md section 6.7); two conflicting codes = unknown."""
    src = [c for c in details if c in ("original-donor", "different-donor")]
    man = [c for c in details if c.endswith("-product")] or ["unmanipulated-product"]
    return {
        "product_source": src[0] if len(src) == 1 else None,
        "product_manipulation": man[0] if len(man) == 1 else None,
        "high_relapse_risk_attested": "high-relapse-risk" in details,
    }


def build_all() -> list[dict]:
    out = []
    seen_ids: set[str] = set()
    tags = set()
    for sc in SCENARIOS:
        assert sc["tag"] not in tags, sc["tag"]
        tags.add(sc["tag"])
        b = Builder(sc)
        b.patient(sc["patient"])
        b.practitioner(*PRACTITIONERS[sc["tag"]])
        if sc["coverage"]:
            b.coverage(*sc["coverage"])
        sc["build"](b)
        bundle = b.bundle()
        orders = {}
        for e in bundle["entry"]:
            r = e["resource"]
            key = (r["resourceType"], r["id"])
            assert key not in seen_ids, key
            seen_ids.add(key)
            if r["resourceType"] == "ServiceRequest":
                svc = "dli" if r["id"].endswith("-dli") else "hpc-boost"
                orders[svc] = order_facts([od["coding"][0]["code"] for od in r.get("orderDetail", [])])
        facts = dict(DEFAULT_FACTS)
        facts.update(sc["facts"])
        out.append({"sc": sc, "bundle": bundle, "facts": facts, "order_facts": orders})
    return out


PRACTITIONERS = {
    "ind": (("Lorraine", "Castellano"), "1376520948"),
    "ram": (("Helena", "Marchetti"), "1548302917"), "pric": (("Samuel", "Okafor"), "1730294461"),
    "mhr": (("Ingrid", "Solberg"), "1962047735"), "tcd": (("Rajesh", "Venkataraman"), "1093817462"),
    "mix": (("Claire", "Dubois-Hart"), "1285730196"), "ag3": (("Miguel", "Santacruz"), "1477039258"),
    "agu": (("Naomi", "Feldstein"), "1669205843"), "thc": (("Arjun", "Mehta"), "1851394027"),
    "smk": (("Beatrice", "Holloway"), "1043628915"), "exs": (("Tobias", "Wernicke"), "1235806742"),
    "gmp": (("Yolanda", "Pritchard"), "1427913580"), "evm": (("Desmond", "Achterberg"), "1619027364"),
    "ddn": (("Fiona", "Gallagher"), "1801135297"), "aut": (("Kenji", "Watanabe"), "1993240851"),
    "brc": (("Marguerite", "Lafleur"), "1154378026"), "scd": (("Olusegun", "Adeyemi"), "1346482019"),
    "saa": (("Teresa", "Villanueva"), "1538593472"), "gft": (("Anders", "Nyberg"), "1720604185"),
    "ctc": (("Priscilla", "Montague"), "1912716538"), "mds": (("Hassan", "El-Amin"), "1083827641"),
    "sno": (("Ursula", "Brandt"), "1275939804"), "mis": (("Cyrus", "Farahani"), "1467041327"),
    "rin": (("Genevieve", "Thibodeaux"), "1659153860"), "nad": (("Marcus", "Lindgren"), "1841265093"),
    "nss": (("Evelyn", "Hargrove"), "1033376418"), "ref": (("Nikolai", "Petrov"), "1225487951"),
    "per": (("Aisha", "Rahman"), "1417599274"), "rem": (("Joaquin", "Esparza"), "1609600816"),
    "rbt": (("Lillian", "Strand"), "1891712349"), "bca": (("Wesley", "Beaumont"), "1083924762"),
    "oti": (("Daphne", "Kowalczyk"), "1376035187"), "cta": (("Emeka", "Obi"), "1568146520"),
    "mac": (("Harriet", "Quinlan"), "1750258943"),
}


# --- writing ----------------------------------------------------------------------------------
def manifest_entry(item: dict) -> dict:
    sc = item["sc"]
    return {
        "id": sc["id"],
        "title": sc["title"],
        "description": sc["description"],
        "payer": PAYER_POLICY.get(sc["payer"], sc["payer"]) if sc["payer"] else None,
        "as_of": sc["as_of"],
        "expected": sc["expected"],
        "facts": {
            "record": item["facts"],
            "dli": item["order_facts"]["dli"],
            "hpc-boost": item["order_facts"]["hpc-boost"],
        },
    }


MANIFEST_HEADER = """\
# Scenario patients for the DLI / HPC-boost CDS service. GENERATED by tools/build_fixtures.py:
# edit the generator, then run `python tools/build_fixtures.py`; do not edit by hand.
#
# id        bundle file fhir_fixtures/<id>.json and Patient.id
# payer     policy id whose payer the Coverage names; null = no Coverage; "unrecognised" = a payer
#           no policy file knows
# as_of     authoredOn of both draft orders (ServiceRequest <tag>-dli = CPT 38242, <tag>-hpc = 38243)
# expected  determination per service and policy, evaluating ALL five policies regardless of payer,
#           derived by hand from cards/*.yaml
# facts     the facts the record is meant to yield (record-level, then per order); null = unknown.
#           Documentation for extractor tests, not an input to the expectations.
"""


def write_all(items: list[dict]) -> None:
    OUT.mkdir(exist_ok=True)
    for item in items:
        path = OUT / f"{item['sc']['id']}.json"
        path.write_text(json.dumps(item["bundle"], indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    manifest = [manifest_entry(i) for i in items]
    text = MANIFEST_HEADER + "\n" + yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True, width=100)
    (OUT / "scenarios.yaml").write_text(text, encoding="utf-8")
    (OUT / "README.md").write_text(readme(items), encoding="utf-8")


def readme(items: list[dict]) -> str:
    rows = "\n".join(
        f"| `{i['sc']['id']}` | {i['sc']['title']} | "
        f"{(PAYER_POLICY.get(i['sc']['payer'], i['sc']['payer']) if i['sc']['payer'] else '—')} |"
        for i in items
    )
    return README_TEMPLATE.replace("{COUNT}", str(len(items))).replace("{ROWS}", rows)


README_TEMPLATE = """\
# FHIR fixtures: scenario patients

Synthetic patients for testing the DLI / HPC-boost CDS service end to end. Each `<id>.json` is a
FHIR R4 `Bundle` of `"type": "collection"` holding one patient's record and the two draft orders
the EHR would send on `order-sign`. `scenarios.yaml` lists every scenario with the determinations
the five payer policies (`cards/*.yaml`) must produce. The demographics (names, birth dates, MRNs,
addresses, phone numbers) are invented but deliberately PHI-like, so tests can assert that none of
it reaches a log.

**Generated files.** Everything here is written by `tools/build_fixtures.py` (stdlib + PyYAML,
deterministic). Change the generator and re-run `python tools/build_fixtures.py`; never edit the
JSON, the manifest or this README by hand. `python tools/build_fixtures.py --check` additionally
walks the policy trees over each scenario's intended `facts` and prints criterion coverage; it is a
cross-check of the hand-derived `expected` values, not their source.

## Conventions

- `fullUrl` = `http://fixtures.dli-hpc-cds.org/fhir/<Type>/<id>`. `Patient.id` is the scenario id;
  every other id starts with the scenario's short tag (`ram-tx`, `ram-chim2`, …) so all bundles can
  be loaded into one FHIR server.
- **Orders**: exactly two draft `ServiceRequest`s, `<tag>-dli` (CPT 38242) and `<tag>-hpc`
  (CPT 38243), `status` draft, `intent` order, same `authoredOn` (= `as_of`), a `requester`
  Practitioner (included) and `orderDetail` codes in
  `http://dli-hpc-cds.org/fhir/CodeSystem/order-detail`: `original-donor` | `different-donor`,
  `unmanipulated-product` | `genetically-modified-product` | `ex-vivo-manipulated-product`,
  optionally `high-relapse-risk`. A missing code leaves that order fact unknown (the attestation
  is false when absent).
- **Transplant**: `Procedure` `completed`, CPT 38240/38241, SNOMED (58390007, 425843001, 234332000
  T-cell depleted, 426425001, 427615008, 425983008) and/or ICD-10-PCS 3024 3 codes (Y/G/X
  allogeneic with qualifier 2/3/4, U = T-cell depleted, Y0 autologous); `performedDateTime`;
  `reasonReference` → the disease `Condition` (the transplant's reason decides the diagnosis class);
  conditioning in the extension `http://dli-hpc-cds.org/fhir/StructureDefinition/conditioning-intensity`
  (`MAC` / `RIC` / `NMA`).
- **Diagnoses**: `Condition` with ICD-10-CM and/or SNOMED CT, `clinicalStatus`, `onsetDateTime`,
  `recordedDate`.
- **Disease status** (counts only when dated after the transplant; latest wins): relapse
  Conditions (C9x.x2, SNOMED 234522008 / 1251564008 / 12281000132104 / 830057003), refractory
  (SNOMED 1251565009), remission (C92.01), or mCODE `Observation` LOINC 97509-4 with SNOMED
  271299001 worsened (progressive), 359746009 stable (persistent), 268910001 improved (responding),
  550991000124107 (remission).
- **Chimerism**: LOINC 102113-8 (% donor) or 104480-9 (% recipient; donor = 100 − value), UCUM `%`.
- **GVHD**: SNOMED 402355000 / ICD-10-CM D89.810, grade in `stage[0].summary` with
  `http://dli-hpc-cds.org/fhir/CodeSystem/gvhd-grade` (`aGVHD-III`); no stage = grade unknown.
- **Blood counts**: LOINC 751-8 ANC and 777-3 platelets (`10*3/uL`), 718-7 hemoglobin (`g/dL`).
  Poor graft function = a lineage below 0.5 / 30 / 8.0 over ≥ 14 days in the 90 days before the
  order (latest still low), or graft failure (T86.02 / SNOMED 234520000).
- **CAR T**: `Procedure` SNOMED 1156961008 (± CPT 38228), cytopenias dated after it.
- **Centene contraindications**: smoking status LOINC 72166-2 (449868002 current, 8517006 ex,
  266919005 never); Conditions F17.210 (F17.211 is in remission), Z91.19, Z60.2 / Z63.8, A41.9 + Z16.24
  (Z16.x without an active infection = unknown).
- **Coverage**: `status` active, `beneficiary`, `payor` → contained `Organization` `#payer` with an
  identifier in `http://dli-hpc-cds.org/fhir/sid/payer` (`molina`, `wellmark`, `centene`, `anthem`,
  `bcbsms`; `acme-health-mutual` for the unrecognised payer). Some scenarios have no Coverage.

## Readings the expectations rest on

- A fact the record cannot settle is unknown; `hsct_type` has no "none" value, so a record without
  any transplant is unknown, never "not allogeneic".
- Without a CAR T procedure, `prior_car_t` and `cytopenia_after_car_t` are false; without GVHD,
  `acute_gvhd_grade` is 0; without a non-adherence / support / infection code those contraindications
  are false; without a smoking-status Observation and substance Conditions substance use is unknown.
- An allogeneic transplant coded without a T-cell-depletion code (CPT 38240, PCS substance Y/G/X,
  SNOMED non-TCD concepts) is read as not T-cell depleted (`t_cell_depleted_graft` false).
- Molina HPC criterion 3 (original donor) is not applicable after an autologous-only transplant.
- An order without a product code (`*-product`) is a plain CPT 38242/38243 order and is read as an
  unmanipulated product; two conflicting product codes leave the product unknown. An order without
  a source code leaves the source unknown.
- An ICD-10-CM x0 code ("not in remission") or any other disease status counts only when dated after
  an index transplant; with no transplant on record, disease status is unknown. Poor graft function
  likewise needs a transplant to be "after".

## Scenarios ({COUNT})

| id | title | payer policy |
|---|---|---|
{ROWS}
"""


# --- cross-check: evaluate the trees over the intended facts ----------------------------------
def _test(test: dict, facts: dict) -> str:
    value = facts[test["fact"]]
    if value is None:
        return "unknown"
    op, arg = next((k, v) for k, v in test.items() if k != "fact")
    if op == "equals":
        ok = value == arg
    elif op == "in":
        ok = value in arg
    elif op == "lt":
        ok = value < arg
    elif op == "le":
        ok = value <= arg
    elif op == "gt":
        ok = value > arg
    elif op == "ge":
        ok = value >= arg
    elif op == "any_prefix":
        ok = any(c.startswith(p) for c in value for p in arg)
    else:
        raise ValueError(op)
    return "met" if ok else "not-met"


def _all(st: list[str]) -> str:
    st = [s for s in st if s != "not-applicable"]
    if "not-met" in st:
        return "not-met"
    if "unknown" in st:
        return "unknown"
    return "met"


def _any(st: list[str]) -> str:
    if "met" in st:
        return "met"
    if "unknown" in st:
        return "unknown"
    return "not-met"


def evaluate(node: dict, facts: dict, out: dict, negate: bool = False) -> str:
    if "test" in node:
        if "applies_if" in node:
            a = _test(node["applies_if"], facts)
            if a == "not-met":
                out[node["id"]] = "not-applicable"
                return "not-applicable"
        s = _test(node["test"], facts)
        if negate:
            s = {"met": "not-met", "not-met": "met", "unknown": "unknown"}[s]
        if s == "unknown" and node.get("when_unknown") == "not-met":
            s = "not-met"
        if "applies_if" in node and _test(node["applies_if"], facts) == "unknown" and s != "met":
            s = "unknown"
        out[node["id"]] = s
        return s
    parts = []
    if "all_of" in node:
        parts.append(_all([evaluate(c, facts, out) for c in node["all_of"]]))
    if "any_of" in node:
        parts.append(_any([evaluate(c, facts, out) for c in node["any_of"]]))
    if "none_of" in node:
        parts.append(_all([evaluate(c, facts, out, negate=True) for c in node["none_of"]]))
    s = _all(parts)
    out[node["id"]] = s
    return s


DET = {"met": M, "not-met": DNM, "unknown": NI}


def check(items: list[dict]) -> int:
    policies = {p: yaml.safe_load((ROOT / "cards" / f"{p}.yaml").read_text()) for p in POLICIES}
    coverage: dict[str, dict[str, set[str]]] = {}
    problems = 0
    for item in items:
        sc = item["sc"]
        for svc in ("dli", "hpc-boost"):
            facts = dict(item["facts"])
            facts.update(item["order_facts"][svc])
            for pid, pol in policies.items():
                tree = pol["services"][svc]
                if "not_addressed" in tree:
                    got = NA
                else:
                    out: dict[str, str] = {}
                    got = DET[evaluate(tree, facts, out)]
                    for nid, s in out.items():
                        coverage.setdefault(pid, {}).setdefault(nid, set()).add(s)
                want = sc["expected"][svc][pid]
                if got != want:
                    problems += 1
                    print(f"MISMATCH {sc['id']} {svc} {pid}: hand={want} tree-walk={got}")
    print(f"\n{len(items)} scenarios; {problems} mismatches\n")
    for pid in POLICIES:
        for nid, seen in coverage[pid].items():
            missing = [s for s in ("met", "not-met", "unknown") if s not in seen]
            flag = "  <-- missing " + ", ".join(missing) if missing else ""
            print(f"{pid:20s} {nid:45s} {','.join(sorted(seen))}{flag}")
    return problems


def main(argv: list[str]) -> int:
    items = build_all()
    write_all(items)
    print(f"wrote {len(items)} bundles, scenarios.yaml and README.md to {OUT.relative_to(ROOT)}/")
    if "--check" in argv:
        return 1 if check(items) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
