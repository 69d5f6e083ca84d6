"""SDC population for the worksheets: what a standard SDC / DTR client fills from the EHR itself.

The Questionnaire names its launch context (`patient`, SDC sdc-questionnaire-launchContext) and
reads the record from the EHR's FHIR server with `x-fhir-query` variables: `%order` (the draft
order of its service), `%conditionBundle`, `%procedureBundle` and, where a question needs it,
`%chimerismBundle` (this patient's resources; the client sends its own token). FHIRPath
variables at the root then apply the service's rules to them, once per Questionnaire, and each
question's `initialExpression` names the variable of its fact (`.not()` where the question asks
the opposite of the fact). Everything is generated from the code sets of core/codes.py and the
fact values of core/facts CATALOGUE; tests/test_population.py checks the few copied category
ranges against the fact modules' own classifiers.

The rules applied, as far as FHIRPath can, per fact (open = the expression gives no answer, so
the item stays for the clinician or the service's own pre-fill):
- Common to all: Conditions not refuted / entered in error, dated (onset, else recorded) on or
  before the order's authoredOn or undated; Procedures completed / in progress, dated (performed)
  on or before it or undated; active = clinicalStatus not inactive / remission / resolved, or no
  clinicalStatus and no abatement. The index transplant is the latest dated HSCT (allogeneic
  ones first); several on the same day leave everything that reads it open (the service would
  take the first listed, which depends on record order).
- hsct_type: allogeneic (allogeneic HSCT, allogeneic history code, any GVHD), else autologous
  (autologous HSCT or history); a transplant of uncoded type alone: open.
- donor_chimerism_applicable: true after an allogeneic, false after an autologous-only
  transplant or for CAR T with no transplant; else open.
- prior_car_t, acute_gvhd_active, chronic_gvhd_active, nonadherence, lacks_social_support,
  uncontrolled_resistant_infection: present on a matching (active) code, else documented absent,
  as the service reads a completely read problem list; a resistance code without an active
  infection: open.
- acute_gvhd_grade: 0 when no acute GVHD is active; a graded or ungraded active one: open (the
  grade is the latest assessment across stage summaries and staging Observations with MAGIC
  organ stages, which needs more than FHIRPath should carry).
- current_substance_use: true on an active substance-use code; otherwise open (the smoking
  status is a latest assessment with reviewer cases, and absence needs both sources).
- cytopenia_after_car_t: false when no CAR T is on record; otherwise open (counts, units and
  persistence over days are not expressible without unit conversion).
- poor_graft_function: open (count series with unit conversion and persistence over days).
- indication_icd10cm: the ICD-10-CM code of the conditions that gave diagnosis_class, when there
  is one; several: open (their sorted order needs sort(), which FHIRPath R4 lacks).
- t_cell_depleted_graft: the index allogeneic transplant's code: PCS substance U / the depleted
  SNOMED CT concepts true, substance Y false, else open.
- conditioning_intensity: the intensity recorded on the index transplant's extension; a
  conditioning Procedure or a regimen the service infers MAC from: open.
- diagnosis_class: the index transplant's reason (its reasonReference Conditions, else its
  reasonCode), else the problem list; the most specific class (haematological first).
- disease_status: relapsed when a relapse is documented after the dated index transplant (a
  relapse code dated after it, or a current clinicalStatus relapse / recurrence on a
  haematological malignancy); any other status (the latest assessment, with same-day conflicts):
  open.
- donor_chimerism_pct: the latest chimerism results after the index transplant, when every one
  of them is a UCUM % value from 0 to 100 and they agree (recipient % read as 100 - value); a
  result in another unit, a partial date, a missing status or a same-day disagreement: open.
- Order details (product_source, product_manipulation, high_relapse_risk_attested): the codes
  the draft order states; order text, order questions and a contained product's donor: open.
- other_high_risk_setting: false when the one order claims no high relapse risk and carries no
  uncoded detail text and no contained order questions (both of which the service also reads);
  otherwise open.
A search the EHR answers in more than one page leaves every record fact open
(`%recordComplete`: the engine reads the first page, and a later one could hold what decides).
What the EHR cannot tell a FHIRPath engine (a resource the service could not parse) may still
make the service say "not documented" where the expression answers;
tests/test_sdc_population.py names every such case it meets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cds_service.core import codes
from cds_service.core.facts import CATALOGUE
from cds_service.core.model import Service

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
LAUNCH_CONTEXT = SDC + "sdc-questionnaire-launchContext"
INITIAL_EXPRESSION = SDC + "sdc-questionnaire-initialExpression"
VARIABLE = "http://hl7.org/fhir/StructureDefinition/variable"
CATEGORY_FACTS = ("product_source", "product_manipulation")
_CPT = {Service.DLI: codes.DLI_CPT, Service.HPC_BOOST: codes.HPC_BOOST_CPT}
QUERY, FHIRPATH = "application/x-fhir-query", "text/fhirpath"
PAGE = 100  # the most a search page holds on the sandbox server (fixture_server.MAX_COUNT)


# --- FHIRPath building blocks ---------------------------------------------------------------
def literal(text: str) -> str:
    """A FHIRPath string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _one_of(values: Iterable[str]) -> str:
    return "(" + " | ".join(literal(v) for v in sorted(values)) + ")"


def _in(system: str, values: Iterable[str]) -> str:
    """Coding test: `system` and one of `values`."""
    return f"(system = {literal(system)} and code in {_one_of(values)})"


def _regex(system: str, pattern: str) -> str:
    """Coding test: `system` and a code matching `pattern` (anchored with ^, as re.match is)."""
    if not pattern.startswith("^"):
        raise ValueError(f"{pattern} must be anchored: fhirpath.js matches() searches")
    return f"(system = {literal(system)} and code.matches({literal(pattern)}))"


def _prefixed(system: str, prefixes: Iterable[str]) -> str:
    starts = " or ".join(f"code.startsWith({literal(p)})" for p in sorted(prefixes))
    return f"(system = {literal(system)} and ({starts}))"


def _either(*tests: str) -> str:
    return "(" + " or ".join(tests) + ")"


def coded(test: str) -> str:
    """Resource test: a coding of `code` passes the Coding test."""
    return f"code.coding.where({test}).exists()"


def pcs(substance: str = "[GXYU]", qualifier: str = "[01234]") -> str:
    """codes.HSCT_PCS with its substance / qualifier groups narrowed (one source of truth)."""
    pattern = codes.HSCT_PCS.pattern
    if "([GXYU])" not in pattern or "([01234])" not in pattern:
        raise ValueError(f"codes.HSCT_PCS changed shape: {pattern}")
    return pattern.replace("([GXYU])", substance).replace("([01234])", qualifier)


def _max(dates: str) -> str:
    """The greatest of `dates` (ISO strings sort as dates); empty when there is none."""
    return f"{dates}.aggregate(iif($total.empty() or $this > $total, $this, $total))"


def _day(path: str) -> str:
    return f"{path}.toString().substring(0, 10)"


def _on_or_before(path: str) -> str:
    """Undated, or dated on or before the as-of date (the order's authoredOn)."""
    return f"({path}.empty() or {_day(path)} <= %asOf)"


CONDITION_DATE = "(onsetDateTime | onsetPeriod.start | recordedDate).first()"
PROCEDURE_DATE = "(performedDateTime | performedPeriod.start).first()"
OBSERVATION_DATE = "(effectiveDateTime | effectiveInstant | effectivePeriod.start | issued).first()"
_STATUS = f"clinicalStatus.coding.where(system = {literal(codes.CONDITION_CLINICAL)}).code.first()"
ACTIVE = (
    f"iif({_STATUS}.exists(), ({_STATUS} in {_one_of(('inactive', 'remission', 'resolved'))})"
    ".not(), (abatementDateTime | abatementPeriod).empty())"
)

# --- Coding tests from core/codes.py ----------------------------------------------------------
ALLO = _either(
    _in(codes.CPT, codes.ALLO_CPT),
    _in(codes.SNOMED, codes.ALLO_SNOMED),
    _regex(codes.ICD10PCS, pcs(qualifier="[1234]")),  # qualifier 0 autologous, 1 legacy allo
)
AUTO = _either(
    _in(codes.CPT, codes.AUTO_CPT),
    _in(codes.SNOMED, codes.AUTO_SNOMED),
    _regex(codes.ICD10PCS, pcs(qualifier="0")),
)
HSCT = _either(ALLO, AUTO, _in(codes.SNOMED, codes.GENERIC_HSCT_SNOMED))
GVHD = _either(_in(codes.SNOMED, codes.ANY_GVHD_SNOMED), _in(codes.ICD10CM, codes.ANY_GVHD_ICD))
ACUTE_GVHD = _either(
    _in(codes.SNOMED, codes.ACUTE_GVHD_SNOMED), _in(codes.ICD10CM, codes.ACUTE_GVHD_ICD)
)
CHRONIC_GVHD = _either(
    _in(codes.SNOMED, codes.CHRONIC_GVHD_SNOMED), _in(codes.ICD10CM, codes.CHRONIC_GVHD_ICD)
)
CAR_T = _either(
    _in(codes.SNOMED, codes.CAR_T_SNOMED),
    _in(codes.CPT, codes.CAR_T_CPT),
    _in(codes.ICD10CM, codes.CAR_T_ICD),
    *(_in(system, codes.CAR_T_HCPCS) for system in sorted(codes.HCPCS_SYSTEMS)),
)
T_CELL_DEPLETED = _either(
    _in(codes.SNOMED, codes.TCD_SNOMED), _regex(codes.ICD10PCS, pcs(substance="U"))
)
NOT_DEPLETED = _regex(codes.ICD10PCS, pcs(substance="Y"))
# ICD-10-CM C81-C96 (diagnosis.classify_coding) and the relapse codes of C86, C88, C90-C95 with
# a status character 2 (disease.coded_status); tests/test_population.py checks both against them.
HEME_C_CATEGORIES = "^C(8[1-9]|9[0-6])"
RELAPSE_ICD = r"^C(86|88|9[0-5])\.[^.]2$"
# remission: a lymphoma (C81-C85) code ending in A (not C84.7A; and C84.7B), or status character 1
REMISSION_ICD = r"^(?!C84\.7A$)(C8[1-5].*A|C84\.7B|C(86|88|9[0-5])\.[^.]1)$"
NOT_IN_REMISSION_ICD = r"^C(86|88|9[0-5])\.[^.]0$"
HEME = _either(
    _regex(codes.ICD10CM, HEME_C_CATEGORIES),
    _in(codes.ICD10CM, codes.HEME_ICD_EXACT),
    _prefixed(codes.ICD10CM, codes.HEME_ICD_PREFIXES),
    _in(codes.SNOMED, codes.HEME_SNOMED),
)
# tested only when HEME is not: classify_coding ranks haematological first
OTHER_MALIGNANCY = _either(
    _regex(codes.ICD10CM, "^C"),
    _prefixed(codes.ICD10CM, ("Z85.",)),
    _in(codes.SNOMED, codes.OTHER_MALIGNANCY_SNOMED),
)
NON_MALIGNANT = _either(
    _prefixed(codes.ICD10CM, codes.NON_MALIGNANT_ICD_PREFIXES),
    _in(codes.SNOMED, codes.NON_MALIGNANT_SNOMED),
)
RELAPSE = _either(_in(codes.SNOMED, codes.RELAPSE_SNOMED), _regex(codes.ICD10CM, RELAPSE_ICD))
REFRACTORY = _in(codes.SNOMED, codes.REFRACTORY_SNOMED)
REMISSION = _either(_in(codes.SNOMED, codes.REMISSION_SNOMED), _regex(codes.ICD10CM, REMISSION_ICD))
NOT_IN_REMISSION = _regex(codes.ICD10CM, NOT_IN_REMISSION_ICD)
# disease.coded_status of a Coding, and of a Condition (its first coding that carries one)
_CODING_STATUS = (
    f"iif({RELAPSE}, 'relapsed', iif({REFRACTORY}, 'refractory', iif({REMISSION}, "
    "'remission', 'not-in-remission')))"
)
CODED_STATUS = (
    f"code.coding.where({_either(RELAPSE, REFRACTORY, REMISSION, NOT_IN_REMISSION)}).first()"
    f".select({_CODING_STATUS})"
)
DISEASE_STATUS = _in(codes.LOINC, (codes.DISEASE_STATUS_LOINC,))
_STATUS_VALUES = {
    status: sorted(c for c, s in codes.DISEASE_STATUS_VALUES.items() if s == status)
    for status in dict.fromkeys(codes.DISEASE_STATUS_VALUES.values())
}
_OBSERVED_STATUS = (
    f"valueCodeableConcept.coding.where({_in(codes.SNOMED, codes.DISEASE_STATUS_VALUES)})"
    ".first().code.select("
    + "".join(f"iif($this in {_one_of(v)}, {literal(k)}, " for k, v in _STATUS_VALUES.items())
    + "{}"
    + ")" * len(_STATUS_VALUES)
    + ")"
)
SUBSTANCE = (
    f"{_regex(codes.ICD10CM, codes.SUBSTANCE_ICD.pattern)} and "
    f"code.matches({literal(codes.SUBSTANCE_IN_REMISSION_ICD.pattern)}).not()"
)
CANNABIS = (
    f"{_regex(codes.ICD10CM, codes.CANNABIS_ICD.pattern)} and "
    f"code.matches({literal(codes.SUBSTANCE_IN_REMISSION_ICD.pattern)}).not()"
)
SMOKING_STATUS = _in(codes.LOINC, codes.SMOKING_STATUS_LOINC)
CURRENT_SMOKER = _in(codes.SNOMED, codes.CURRENT_SMOKER_SNOMED)
NON_SMOKER = _in(codes.SNOMED, codes.NON_SMOKER_SNOMED)
NONADHERENCE = _prefixed(codes.ICD10CM, codes.NONADHERENCE_ICD_PREFIXES)
NO_SUPPORT = _in(codes.ICD10CM, codes.NO_SUPPORT_ICD)
RESISTANCE = _prefixed(codes.ICD10CM, (codes.RESISTANCE_ICD_PREFIX,))
INFECTION = _regex(codes.ICD10CM, codes.INFECTION_ICD.pattern)
INVASIVE_FUNGAL = _regex(codes.ICD10CM, codes.INVASIVE_FUNGAL_ICD.pattern)
CHIMERISM = _in(codes.LOINC, codes.CHIMERISM_LOINC)
DONOR_CHIMERISM = _in(codes.LOINC, (c for c, r in codes.CHIMERISM_LOINC.items() if r == "donor"))


# --- Root variables: the record read once, then one variable per fact -------------------------
def _class_of(codings: str) -> str:
    """The diagnosis class of a set of codings: the first class any of them has."""
    return (
        f"iif({codings}.where({HEME}).exists(), 'hematologic-malignancy', "
        f"iif({codings}.where({OTHER_MALIGNANCY}).exists(), 'other-malignancy', "
        f"iif({codings}.where({NON_MALIGNANT}).exists(), 'non-malignant', {{}})))"
    )


def _present(found: str, absent: str = "false") -> str:
    """true when `found` has a resource, else `absent` (`{}`: open)."""
    return f"iif({found}.exists(), true, {absent})"


def _conditions(test: str, active: bool = False) -> str:
    source = "%activeConditions" if active else "%conditions"
    return f"{source}.where({coded(test)})"


_INDEX = "%indexTransplant"
_OBSERVATION_DAY = _CHIMERISM_DAY = _day(OBSERVATION_DATE)
_USABLE = _one_of(("final", "amended", "corrected", "preliminary"))  # Context.observations
_UCUM_PERCENT = (
    f"valueQuantity.code = '%' and (valueQuantity.system.empty() or valueQuantity.system = "
    f"{literal(codes.UCUM)}) and valueQuantity.value >= 0 and valueQuantity.value <= 100"
)
_CURRENT_RELAPSE = f"%conditions.where({_STATUS} in ('relapse' | 'recurrence') and {coded(HEME)})"
_CODED_AFTER = f"%conditions.where({_day(CONDITION_DATE)} > %indexDate)"
_CODED_RELAPSE = f"{_CODED_AFTER}.where({CODED_STATUS} = 'relapsed')"
# When the record last spoke about a Condition (disease._record_date), else the as-of date
_RECORD_DAYS = (
    "(meta.lastUpdated | abatementDateTime | recordedDate).select(toString().substring(0, 10))"
)
_RECORD_DAY = f"iif({_RECORD_DAYS}.exists(), {_max(_RECORD_DAYS)}, %asOf)"
_RECORD: dict[str, str] = {
    "asOf": "iif(%order.entry.resource.authoredOn.exists(), "
    f"{_day('%order.entry.resource.authoredOn.first()')}, today().toString())",
    "validConditions": "%conditionBundle.entry.resource.where(verificationStatus.coding.where("
    "code = 'refuted' or code = 'entered-in-error').empty())",
    "conditions": f"%validConditions.where({_on_or_before(CONDITION_DATE)})",
    "activeConditions": f"%conditions.where({ACTIVE})",
    "procedures": "%procedureBundle.entry.resource.where((status = 'completed' or "
    f"status = 'in-progress') and {_on_or_before(PROCEDURE_DATE)})",
    "transplants": f"%procedures.where({coded(HSCT)})",
    "alloTransplants": f"%transplants.where({coded(ALLO)} and {coded(AUTO)}.not())",
    "autoTransplants": f"%transplants.where({coded(AUTO)} and {coded(ALLO)}.not())",
    "transplantPool": "iif(%alloTransplants.exists(), %alloTransplants, %transplants)",
    "indexDate": _max(f"%transplantPool.select({_day(PROCEDURE_DATE)})"),
    "indexTransplant": "iif(%indexDate.exists(), %transplantPool.where("
    f"{_day(PROCEDURE_DATE)} = %indexDate), %transplantPool.where({PROCEDURE_DATE}.empty()))",
    "chimerismResults": f"%chimerismBundle.entry.resource.where(status in {_USABLE} and "
    f"{coded(CHIMERISM)} and {OBSERVATION_DATE}.exists() and "
    f"{_CHIMERISM_DAY} <= %asOf and (%indexDate.empty() or {_CHIMERISM_DAY} > %indexDate))",
    "chimerismLatest": "%chimerismResults.where("
    f"{_CHIMERISM_DAY} = {_max(f'%chimerismResults.select({_CHIMERISM_DAY})')})",
    "chimerismValues": f"%chimerismLatest.select(iif({_UCUM_PERCENT}, "
    f"iif({coded(DONOR_CHIMERISM)}, valueQuantity.value, 100 - valueQuantity.value), {{}}))",
    # diagnosis_class: the index transplant's reasons (Conditions, else codes) and their class
    "indicationReasons": f"%validConditions.where({_INDEX}.reasonReference.reference"
    ".replaceMatches('^.*/', '') contains id)",
    "indicationReasonClass": _class_of("%indicationReasons.code.coding"),
    "indicationCodeClass": _class_of(f"{_INDEX}.reasonCode.coding"),
    # disease_status: every status reading as 'day|status', the newest day's statuses
    "statusResults": f"%statusBundle.entry.resource.where(status in {_USABLE} and "
    f"{coded(DISEASE_STATUS)} and {OBSERVATION_DATE}.exists() and {_OBSERVATION_DAY} <= %asOf "
    f"and {_OBSERVATION_DAY} > %indexDate)",
    "statusReadings": f"(%conditions.where({coded(HEME)} and {_STATUS} = 'remission')"
    f".select({_RECORD_DAY} + '|remission') | {_CODED_AFTER}.select({_day(CONDITION_DATE)} + "
    f"'|' + {CODED_STATUS}) | %statusResults.select({_OBSERVATION_DAY} + '|' + "
    f"{_OBSERVED_STATUS})).where(endsWith('|not-in-remission').not())",
    "statusUnreadable": "%statusBundle.entry.resource.where(status.empty()).exists() or "
    "%statusReadings.where(indexOf('|') < 10).exists()",
    "statusNewest": "%statusReadings.where(substring(0, 10) = "
    f"{_max('%statusReadings.select(substring(0, 10))')}).select("
    "substring(11)).distinct()",
    "smokingResults": f"%smokingBundle.entry.resource.where(status in {_USABLE} and "
    f"{coded(SMOKING_STATUS)} and "
    f"{OBSERVATION_DATE}.exists() and {_OBSERVATION_DAY} <= %asOf)",
    "smokingLatest": "%smokingResults.where("
    f"{_OBSERVATION_DAY} = {_max(f'%smokingResults.select({_OBSERVATION_DAY})')})",
    "smokingValues": f"%smokingLatest.select(iif(valueCodeableConcept.coding.where({CURRENT_SMOKER}).exists(), "
    f"'current', iif(valueCodeableConcept.coding.where({NON_SMOKER}).exists(), 'non', 'neither')))",
    # 'unreadable' where the service may see a problem the engine cannot (no status, a partial
    # date whose span the latest-assessment rule reads), else 'none' or the latest statuses
    "smoking": "iif(%smokingBundle.entry.resource.where(status.empty()).exists() or "
    f"%smokingResults.where({_OBSERVATION_DAY}.length() < 10).exists(), 'unreadable', "
    "iif(%smokingLatest.empty(), 'none', iif(%smokingValues.distinct().count() = 1, "
    "%smokingValues.first(), 'neither')))",
}
_ALLO_EVIDENCE = f"%alloTransplants | {_conditions(_either(_in(codes.SNOMED, codes.HSCT_HISTORY_ALLO_SNOMED), GVHD))}"
_AUTO_EVIDENCE = (
    f"%autoTransplants | {_conditions(_in(codes.SNOMED, codes.HSCT_HISTORY_AUTO_SNOMED))}"
)
_CAR_T = f"%procedures.where({coded(CAR_T)}) | {_conditions(CAR_T)}"
_INDICATION = (
    "iif(%indicationReasonClass.exists(), %indicationReasons, iif(%indicationCodeClass.exists(), "
    f"{{}}, %conditions)).where({_class_of('code.coding')} = %diagnosisClass).code.coding.where("
    f"system = {literal(codes.ICD10CM)}).code.distinct()"
)
_FACTS: dict[str, str] = {
    "hsct_type": f"iif(({_ALLO_EVIDENCE}).exists(), 'allogeneic', "
    f"iif(({_AUTO_EVIDENCE}).exists(), 'autologous', {{}}))",
    "prior_car_t": _present(f"({_CAR_T})"),
    "donor_chimerism_applicable": "iif(%hsctType = 'allogeneic', true, "
    "iif(%hsctType = 'autologous', false, "
    "iif(%priorCarT and %transplants.empty(), false, {})))",
    "acute_gvhd_active": _present(_conditions(ACUTE_GVHD, active=True)),
    "chronic_gvhd_active": _present(_conditions(CHRONIC_GVHD, active=True)),
    "acute_gvhd_grade": f"iif({_conditions(ACUTE_GVHD, active=True)}.exists(), {{}}, 0)",
    "nonadherence": _present(_conditions(NONADHERENCE, active=True)),
    "lacks_social_support": _present(_conditions(NO_SUPPORT, active=True)),
    "uncontrolled_resistant_infection": (
        f"iif({_conditions(INVASIVE_FUNGAL, True)}.exists() or "
        f"({_conditions(RESISTANCE, True)}.exists() and {_conditions(INFECTION, True)}.exists()),"
        f" true, iif({_conditions(RESISTANCE, True)}.exists(), {{}}, false))"
    ),
    "current_substance_use": f"iif({_conditions(SUBSTANCE, True)}.exists() or "
    f"%smoking = 'current', true, iif(%smoking = 'none' or %smoking = 'non', "
    f"iif({_conditions(CANNABIS, True)}.exists(), {{}}, false), {{}}))",
    "cytopenia_after_car_t": "iif(%priorCarT, {}, false)",
    "t_cell_depleted_graft": f"iif(%alloTransplants.exists() and {_INDEX}.count() = 1, "
    f"iif({_INDEX}.{coded(T_CELL_DEPLETED)}, true, iif({_INDEX}.{coded(NOT_DEPLETED)}, false, "
    "{})), {})",
    "conditioning_intensity": f"iif({_INDEX}.count() = 1, {_INDEX}.extension.where(url = "
    f"{literal(codes.CONDITIONING_EXT)}).select(valueCodeableConcept.coding.where(system = "
    f"{literal(codes.CONDITIONING_SYSTEM)}).code.first())"
    f".where($this in {_one_of(CATALOGUE['conditioning_intensity'].values or ())}).first(), {{}})",
    "diagnosis_class": f"iif({_INDEX}.count() > 1 and ({_INDEX}.reasonReference | "
    f"{_INDEX}.reasonCode).exists(), {{}}, iif(%indicationReasonClass.exists(), "
    "%indicationReasonClass, iif(%indicationCodeClass.exists(), %indicationCodeClass, "
    f"{_class_of('%conditions.code.coding')})))",
    # the conditions that gave the class, as diagnosis.indication_icd10cm reads them; one code
    # only (several would need sort(), which FHIRPath R4 engines need not have)
    "indication_icd10cm": f"iif({_INDICATION}.count() = 1, {_INDICATION}, {{}})",
    "disease_status": f"iif(%indexDate.exists().not() or %statusUnreadable, {{}}, "
    f"iif({_CURRENT_RELAPSE}.exists() or {_CODED_RELAPSE}.exists(), 'relapsed', "
    "iif(%statusNewest.count() = 1, %statusNewest, {})))",
    "donor_chimerism_pct": "iif(%chimerismBundle.entry.resource.where(status.empty()).empty() "
    f"and %chimerismResults.where({_CHIMERISM_DAY}.length() < 10).empty() and "
    "%chimerismValues.count() = %chimerismLatest.count() and "
    "%chimerismValues.distinct().count() = 1, %chimerismValues.first(), {})",
}
# The record facts a population expression answers (the others, and any fact the expression
# leaves open for a record, are for the clinician or the service's pre-fill)
EXPRESSED_FACTS = tuple(_FACTS)
# What each fact variable reads besides the record basics (`asOf` .. `indexTransplant`).
_NEEDS: dict[str, tuple[str, ...]] = {
    "donor_chimerism_applicable": ("hsct_type", "prior_car_t"),
    "cytopenia_after_car_t": ("prior_car_t",),
    "indication_icd10cm": ("diagnosis_class",),
    "diagnosis_class": ("indicationReasons", "indicationReasonClass", "indicationCodeClass"),
    "disease_status": ("statusResults", "statusReadings", "statusUnreadable", "statusNewest"),
    "donor_chimerism_pct": ("chimerismResults", "chimerismLatest", "chimerismValues"),
    "current_substance_use": ("smokingResults", "smokingLatest", "smokingValues", "smoking"),
}
# Observation searches by LOINC code, read only by the facts that need them (and their variables)
_OBSERVATIONS = {
    "chimerismBundle": frozenset(codes.CHIMERISM_LOINC),
    "statusBundle": frozenset({codes.DISEASE_STATUS_LOINC}),
    "smokingBundle": codes.SMOKING_STATUS_LOINC,
}
_OPTIONAL = ("chimerism", "smoking", "status", "indication")
_QUERIES = {
    "conditionBundle": "Condition",
    "procedureBundle": "Procedure",
}


def variable_name(fact: str) -> str:
    """The root variable of a fact: camelCase (an Expression.name is an FHIR id, no `_`)."""
    first, *rest = fact.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _closure(names: Iterable[str]) -> set[str]:
    """`names` and every variable they read (_NEEDS), transitively."""
    needed: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in needed:
            needed.add(name)
            pending += _NEEDS.get(name, ())
    return needed


def _variable(name: str, language: str, expression: str) -> dict[str, Any]:
    value = {"name": name, "language": language, "expression": expression}
    return {"url": VARIABLE, "valueExpression": value}


def _search(resource_type: str, extra: str = "") -> str:
    return f"{resource_type}?patient={{{{%patient.id}}}}{extra}&_count={PAGE}"


def root_extensions(service: Service, facts: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The patient launch context, the `%order` query of the worksheet's service, and (for the
    record facts among `facts`) the record queries and the variables that apply the rules."""
    patient = {"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext", "code": "patient"}
    order = f"ServiceRequest?patient={{{{%patient.id}}}}&code={codes.CPT}|{_CPT[service]}"
    extensions = [
        {
            "url": LAUNCH_CONTEXT,
            "extension": [
                {"url": "name", "valueCoding": patient},
                {"url": "type", "valueCode": "Patient"},
                {"url": "description", "valueString": "The patient the order is for"},
            ],
        },
        _variable("order", QUERY, order),
    ]
    asked = set(facts)
    wanted = [f for f in _FACTS if f in asked]
    if not wanted:
        return extensions
    searches = {name: _search(kind) for name, kind in _QUERIES.items()}
    needed = _closure(wanted)
    for name, observed in _OBSERVATIONS.items():
        if name.replace("Bundle", "Results") in needed:
            tokens = ",".join(f"{codes.LOINC}|{c}" for c in sorted(observed))
            searches[name] = _search("Observation", f"&code={tokens}")
    extensions += [_variable(name, QUERY, query) for name, query in searches.items()]
    basics = [n for n in _RECORD if not n.startswith(_OPTIONAL) or n in needed]
    extensions += [_variable(n, FHIRPATH, _RECORD[n]) for n in basics]
    # a search answered in pages: the engine reads the first; the rest could hold what decides
    read = " | ".join(f"%{name}" for name in searches)
    complete = f"({read}).link.where(relation = 'next').empty()"
    extensions.append(_variable("recordComplete", FHIRPATH, complete))
    extensions += [
        _variable(variable_name(f), FHIRPATH, f"iif(%recordComplete, {_FACTS[f]}, {{}})")
        for f in _FACTS
        if f in needed
    ]
    return extensions


def _order_codes(options: tuple[str, ...]) -> str:
    """FHIRPath: the distinct order-detail codes among `options` the draft order states."""
    listed = " | ".join(f"'{o}'" for o in options)
    return (
        "%order.entry.resource.orderDetail.coding"
        f".where(system = '{codes.ORDER_DETAIL_SYSTEM}' and code in ({listed})).code.distinct()"
    )


# BCBSMS "other high-risk setting": false when the one order claims no high relapse risk and
# says nothing the service reads besides its codes (orders.py also reads uncoded detail text and
# contained order questions, which this expression leaves to the service: open)
_ORDER = "%order.entry.resource"
_OTHER_SETTING = (
    f"iif({_ORDER}.count() = 1 and {_ORDER}.orderDetail.where(text.exists() and coding.where("
    f"system = {literal(codes.ORDER_DETAIL_SYSTEM)}).empty()).empty() and "
    f"{_ORDER}.supportingInfo.where(reference.startsWith('#')).empty() and "
    f"({_order_codes(('high-relapse-risk',))}).empty(), false, {{}})"
)


def _order_expression(fact: str) -> str | None:
    """A category fact: the one option the order states as an order-detail code (none, or two:
    no answer). The high-relapse-risk attestation: true for `high-relapse-risk`, else false for
    `not-high-relapse-risk` (as the service reads it)."""
    if fact in CATEGORY_FACTS:
        stated = _order_codes(CATALOGUE[fact].values or ())
        return f"iif({stated}.count() = 1, {stated}, {{}})"
    if fact == "high_relapse_risk_attested":
        stated = _order_codes(("high-relapse-risk", "not-high-relapse-risk"))
        return (
            f"iif({stated} contains 'high-relapse-risk', true, "
            f"iif({stated} contains 'not-high-relapse-risk', false, {{}}))"
        )
    if fact == "other_high_risk_setting":
        return _OTHER_SETTING
    return None


def initial_expression(fact: str, negate: bool = False) -> dict[str, Any] | None:
    """The FHIRPath that answers a question on `fact` (the order's codes, or the root variable
    of a record fact), or None; `negate` for a yes/no question that asks the opposite of the
    fact (core/questionnaire.py answer_value)."""
    expression = _order_expression(fact) or (f"%{variable_name(fact)}" if fact in _FACTS else None)
    if expression is None:
        return None
    if negate and CATALOGUE[fact].kind == "boolean":
        expression = f"({expression}).not()"
    return {
        "url": INITIAL_EXPRESSION,
        "valueExpression": {"language": FHIRPATH, "expression": expression},
    }
