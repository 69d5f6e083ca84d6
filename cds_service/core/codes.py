"""Code systems and value sets the fact extractors recognise.

Sources: ../shared/reference/terminology.md (sections cited per block; V = verified there).
Rules key on (system, code), never on the code alone: ICD-10-GM T86.02 means something else.
"""

from __future__ import annotations

import re

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
HCPCS_SYSTEMS = frozenset(
    {
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",
        "http://www.nlm.nih.gov/research/umls/hcpcs",
    }
)
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"

# Project-local systems (terminology.md §0.3 recommends local codes where no standard exists).
LOCAL = "http://dli-hpc-cds.org/fhir"
CONDITIONING_EXT = f"{LOCAL}/StructureDefinition/conditioning-intensity"
CONDITIONING_SYSTEM = f"{LOCAL}/CodeSystem/conditioning-intensity"
GVHD_GRADE_SYSTEM = f"{LOCAL}/CodeSystem/gvhd-grade"
ORDER_DETAIL_SYSTEM = f"{LOCAL}/CodeSystem/order-detail"

# --- Orders (issue scope 4; terminology.md §4.1, §4.3) -------------------------------------
DLI_CPT = "38242"
HPC_BOOST_CPT = "38243"
DLI_PCS = frozenset({"30233Q1", "30243Q1"})

# --- Diagnosis class (terminology.md §2.1, §2.5, §2.7, §3.4, §6.9) -------------------------
HEME_ICD_EXACT = frozenset({"D45", "D47.1", "D47.3", "D47.4", "D47.Z9", "D47.9", "D75.81"})
HEME_ICD_PREFIXES = ("D46", "Z85.6", "Z85.71", "Z85.72", "Z85.79")
NON_MALIGNANT_ICD_PREFIXES = (
    "D56.1",
    "D57",
    "D59.5",
    "D60",
    "D61",
    "D76.1",
    "D81",
    "D82.0",
    "D84.1",
    "E71.520",
    "E75.25",
    "E76.01",
)
# SNOMED: the verified members of << 269475001 / << 109995007 listed in terminology.md §3.4.
HEME_SNOMED = frozenset(
    {
        "269475001",
        "109995007",
        "91861009",
        "91857003",
        "92818009",
        "127225006",
        "109989006",
        "118599009",
        "118601006",
        "12281000132104",
        "12291000132102",
        "12301000132103",
        "12311000132101",
        "415287001",
        "452291000124109",
        "830057003",
        "461311000124107",
        "122901000119109",
        "122951000119108",
        "123781000119107",
        "91860005",
        "91856007",
        "92817004",
        "94704006",
        "1162531007",
    }
)
OTHER_MALIGNANCY_SNOMED = frozenset({"254837009", "363346000"})
NON_MALIGNANT_SNOMED = frozenset({"55907008", "306058006", "417357006", "31323000"})

_C_CODE = re.compile(r"^C(\d\d)")


def icd_c_category(code: str) -> int | None:
    """The numeric category of a C-chapter ICD-10-CM code (C92.02 -> 92), else None."""
    match = _C_CODE.match(code)
    return int(match.group(1)) if match else None


# --- Disease status (terminology.md §2.2, §3.4, §6.3) --------------------------------------
RELAPSE_SNOMED = frozenset(
    {
        "1251564008",
        "234522008",
        "12281000132104",
        "12301000132103",
        "415287001",
        "452291000124109",
        "830057003",
        "122901000119109",
        "122951000119108",
        "123781000119107",
    }
)
REFRACTORY_SNOMED = frozenset({"1251565009", "12291000132102", "12311000132101", "461311000124107"})
REMISSION_SNOMED = frozenset(
    {
        "91860005",
        "91856007",
        "92817004",
        "94704006",
        "1162531007",
        "550991000124107",
        "551001000124108",
    }
)
DISEASE_STATUS_LOINC = "97509-4"  # mCODE CancerDiseaseStatus
DISEASE_STATUS_VALUES = {
    "271299001": "progressive",  # worsened
    "359746009": "persistent",  # stable after therapy = persistent disease (terminology §3.4)
    "268910001": "responding",  # improved
    "550991000124107": "remission",
    "551001000124108": "remission",
    "103338009": "remission",
    "103337004": "remission",
}

# --- Transplants (issue scope 5; terminology.md §3.1, §4.1, §4.3, §6.1) --------------------
ALLO_CPT = frozenset({"38240"})
AUTO_CPT = frozenset({"38241"})
ALLO_SNOMED = frozenset(
    {
        "58390007",
        "425843001",
        "234334004",
        "234335003",
        "427615008",
        "174241000112100",
        "426425001",
        "427423003",
        "442557006",
        "445757003",
        "446253009",
        "234332000",
        "234333005",
    }
)
AUTO_SNOMED = frozenset({"58776007", "425983008", "709115004", "19944001", "46280001", "711429001"})
GENERIC_HSCT_SNOMED = frozenset({"234336002", "23719005", "278257006", "1269349006"})
TCD_SNOMED = frozenset({"234332000", "234333005"})
HSCT_STATUS_ICD = frozenset({"Z94.81", "Z94.84"})
# History / status findings (terminology.md §3.1): a transplant happened, sometimes typed.
HSCT_HISTORY_ALLO_SNOMED = frozenset({"152621000119105", "174251000112102"})
HSCT_HISTORY_AUTO_SNOMED = frozenset({"108631000119101"})
HSCT_HISTORY_SNOMED = frozenset({"153351000119102", "2631000119108", "737300001"})
# ICD-10-PCS 302 table: 3023[34] + substance G/X/Y/U + qualifier (0 auto; 2/3/4 allo; 1 legacy).
HSCT_PCS = re.compile(r"^302[34]3([GXYU])([01234])$")
MAC_SNOMED = "870253002"

# --- GVHD (terminology.md §2.3, §3.3, §6.5) ------------------------------------------------
ACUTE_GVHD_SNOMED = frozenset({"402355000", "1144907001", "1144963000"})
CHRONIC_GVHD_SNOMED = frozenset({"402356004", "1144908006", "402357008", "402358003"})
ACUTE_GVHD_ICD = frozenset({"D89.810", "D89.812"})
CHRONIC_GVHD_ICD = frozenset({"D89.811", "D89.812"})
ANY_GVHD_SNOMED = frozenset({"234646005"}) | ACUTE_GVHD_SNOMED | CHRONIC_GVHD_SNOMED
ANY_GVHD_ICD = frozenset({"D89.81", "D89.813"}) | ACUTE_GVHD_ICD | CHRONIC_GVHD_ICD
ACUTE_GRADES = {"aGVHD-0": 0, "aGVHD-I": 1, "aGVHD-II": 2, "aGVHD-III": 3, "aGVHD-IV": 4}
CHRONIC_GRADES = ("cGVHD-mild", "cGVHD-moderate", "cGVHD-severe")

# --- Graft function (terminology.md §2.4, §2.6, §5.1, §6.6) --------------------------------
ANC_LOINC = frozenset({"751-8", "753-4", "26499-4"})
PLATELET_LOINC = frozenset({"777-3", "26515-7", "778-1"})
HEMOGLOBIN_LOINC = frozenset({"718-7"})
GRAFT_FAILURE_ICD = frozenset({"T86.02"})
GRAFT_FAILURE_SNOMED = frozenset({"234520000"})
PANCYTOPENIA_ICD_PREFIX = "D61.81"
PANCYTOPENIA_SNOMED = frozenset({"127034005"})
TRANSFUSION_PCS = frozenset({"30233N1", "30243N1", "30233R1", "30243R1"})
# Transfusions are also billed with CPT 36430 ("Transfusion, blood or blood components") and its
# infant sibling 36440; terminology.md §6.6 lists 36430 as UNVERIFIED, so both are cited from the
# CMS physician fee schedule code list, not the reference. Exchange transfusions (36450-36456) are
# not a transfusion-dependence signal.
TRANSFUSION_CPT = frozenset({"36430", "36440"})
# HCPCS Level II P9010-P9099 are blood products (e.g. P9016 leukocyte-reduced red cells, P9035
# apheresis platelets; CMS HCPCS quarterly file, P-codes "Pathology and laboratory: blood
# products"); P96xx (travel, catheterisation) are not.
TRANSFUSION_HCPCS = re.compile(r"^P90[1-9]\d$")
# SNOMED 116859006 "Transfusion of blood product (procedure)" (the concept the IHE BFDR and NAPKON
# FHIR value sets use for transfusion therapy) and 116863004 "Transfusion of red blood cells".
TRANSFUSION_SNOMED = frozenset({"116859006", "116863004"})
# Graft rejection / failure (ICD-10-CM T86.01, T86.02, terminology.md §2.4, verified) and the
# neutropenia / thrombocytopenia problems of §2.6 (verified): supporting evidence of poor graft
# function, read with the counts (a coded cytopenia alone is unknown, not proof of persistence).
GRAFT_REJECTION_ICD = frozenset({"T86.01"})
CYTOPENIA_DX_ICD = re.compile(r"^(D70\.[0-9]|D69\.59|D69\.6)$")

# --- Chimerism (terminology.md §5.2, §6.4): code -> which fraction the value reports --------
CHIMERISM_LOINC = {"102113-8": "donor", "104480-9": "recipient"}

# --- CAR T (issue scope 5; terminology.md §4.1, §4.2, §6.7) --------------------------------
CAR_T_SNOMED = frozenset({"1156961008", "824522871000119100"})
CAR_T_ICD = frozenset({"Z92.850"})
CAR_T_CPT = frozenset({"38228", "0540T"})
CAR_T_HCPCS = frozenset({"Q2041", "Q2042", "Q2053", "Q2054", "Q2055", "Q2056", "Q2058"})

# --- Contraindications, Centene I.C (terminology.md §2.8, §3.5, §6.8) ----------------------
SMOKING_STATUS_LOINC = frozenset({"72166-2"})
CURRENT_SMOKER_SNOMED = frozenset(
    {
        "449868002",
        "428041000124106",
        "77176002",
        "65568007",
        "722499006",
        "428071000124103",
        "428061000124105",
        "110483000",
        "59978006",
        "82302008",
    }
)
NON_SMOKER_SNOMED = frozenset({"266919005", "8392000", "8517006"})
# F11-F19 substance use; "in remission" codes (F1x.11, F1x.21, F17.2x1) are excluded in code.
# F10 alcohol (F10.20, terminology.md §2.8, verified) counts as substance use; F12 cannabis alone is
# left to the reviewer (CP.MP.101 names "substance abuse", and medical cannabis use is common).
SUBSTANCE_ICD = re.compile(r"^(F1[013-9]\.|Z72\.0|U07\.0)")
CANNABIS_ICD = re.compile(r"^F12\.")
SUBSTANCE_IN_REMISSION_ICD = re.compile(r"^(F1[0-9]\.[12]1|F17\.2\d1)")
NONADHERENCE_ICD_PREFIXES = ("Z91.1", "Z91.A")
NO_SUPPORT_ICD = frozenset({"Z60.2", "Z63.8", "Z63.9", "Z74.2"})
RESISTANCE_ICD_PREFIX = "Z16."
INFECTION_ICD = re.compile(r"^([AB]\d\d|R65\.2)")
# "Highly virulent and/or resistant microbes" (CP.MP.101 I.C) also covers active invasive mould
# infection: B44.0 invasive pulmonary, B44.1 other pulmonary, B44.7 disseminated aspergillosis,
# B44.9 (terminology.md §2.8, verified) and B46.x mucormycosis / zygomycosis (CDC ICD-10-CM
# tabular, category B46). B44.81 allergic bronchopulmonary aspergillosis is not an infection.
INVASIVE_FUNGAL_ICD = re.compile(r"^(B44\.[0179]|B46\.\d)$")

# --- GVHD as EHRs record it (terminology.md §5.5, §6.5) ------------------------------------
# A grade Observation whose `focus` is the GVHD Condition. Its code: the CIBMTR caDSR CDE
# 2603692 "Acute GVHD maximum overall grade" (§5.5, C) or our local code. Organ stages arrive as
# components: caDSR 2797618 skin, 2797671 liver, 5040179 upper GI, 2797633 lower GI (§5.5, C) or
# our local codes. There is no LOINC or SNOMED CT code for either (§5.5 NOT FOUND).
CADSR = "http://cdebrowser.nci.nih.gov"
GVHD_OBSERVATION_SYSTEM = f"{LOCAL}/CodeSystem/gvhd-observation"
ACUTE_GRADE_OBSERVATION = frozenset(
    {(CADSR, "2603692"), (GVHD_OBSERVATION_SYSTEM, "acute-gvhd-grade")}
)
ORGAN_STAGE_CODES = {
    (CADSR, "2797618"): "skin",
    (CADSR, "2797671"): "liver",
    (CADSR, "5040179"): "upper-gi",
    (CADSR, "2797633"): "lower-gi",
    (GVHD_OBSERVATION_SYSTEM, "skin-stage"): "skin",
    (GVHD_OBSERVATION_SYSTEM, "liver-stage"): "liver",
    (GVHD_OBSERVATION_SYSTEM, "upper-gi-stage"): "upper-gi",
    (GVHD_OBSERVATION_SYSTEM, "lower-gi-stage"): "lower-gi",
}
# Condition.severity (FHIR condition-severity value set, §6.5): chronic GVHD global severity,
# never an acute grade. 24484000 / 6736007 V, 255604002 C.
SEVERITY_SNOMED = {"255604002": "mild", "6736007": "moderate", "24484000": "severe"}

# --- Conditioning regimen drugs (RxNorm; CIBMTR Reporting IG value sets, terminology.md §6.2)
# Source: GitHub nmdp-ig/cibmtr-reporting-ig build/input/fsh/terminology/medications/
# med-{busulfan,melphalan,fludarabine,treosulfan}-valueset.fsh (ingredient code first).
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
REGIMEN_RXNORM = {
    "busulfan": frozenset(
        {
            "1828",
            "284676",
            "203010",
            "284425",
            "332701",
            "564077",
            "105550",
            "317620",
            "564078",
            "105551",
            "315503",
            "574864",
            "1729356",
            "1151374",
            "1729351",
            "1729353",
            "1151375",
            "371165",
            "368542",
            "1151376",
            "1168702",
            "1185666",
            "1185667",
        }
    ),
    "melphalan": frozenset(
        {
            "6718",
            "151325",
            "1745086",
            "317646",
            "332190",
            "1740948",
            "446276",
            "1159787",
            "1740949",
            "1159788",
            "372756",
            "1159789",
        }
    ),
    "fludarabine": frozenset(
        {
            "24698",
            "877487",
            "1165043",
            "1740863",
            "828708",
            "1165044",
            "393413",
            "828705",
            "328431",
            "1740862",
            "1165045",
        }
    ),
    "treosulfan": frozenset(
        {"38508", "336841", "393483", "1162765", "377198", "374186", "1162766", "1162767"}
    ),
}
# Busulfan products that are injections (the same value set): their route is intravenous.
BUSULFAN_IV_RXNORM = frozenset(
    {"284676", "284425", "315503", "574864", "1729356", "1151374", "1729351", "1729353", "1168702"}
)
# Dosage.route (FHIR R4 SNOMED CT route codes value set): intravenous / oral.
ROUTE_IV_SNOMED = "47625008"
ROUTE_ORAL_SNOMED = "26643006"
# Body weight, for a dose given in mg (FHIR R4 vital signs profile, LOINC 29463-7).
BODY_WEIGHT_LOINC = "29463-7"

# --- Order questions and products (docs/integration.md, "Order questions") -----------------
ORDER_QUESTIONS = f"{LOCAL}/Questionnaire/order-questions"
