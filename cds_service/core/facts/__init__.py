"""Clinical facts: FHIR record in, named facts out. Pure functions, no I/O.

Each policy criterion in cards/*.yaml reads a fact by name (`test: {fact: <name>, ...}`); the
function of that name lives in the module named after its clinical concept (`CATALOGUE[name].module`,
tabled in cards/README.md), which holds everything that decides it. A fact's value is `None`
when the record does not settle it; evidence lists the resources it came from.

Time: everything is relative to `as_of` (the order's authoredOn, else the request time) and,
where stated, to the *index transplant* = the latest HSCT on or before `as_of` (the latest
allogeneic one when there is one). Evidence dated after `as_of` is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from cds_service.core import codes
from cds_service.core.facts import (
    car_t,
    chimerism,
    conditioning,
    contraindications,
    cytopenia,
    diagnosis,
    disease,
    graft,
    gvhd,
    order_details,
    transplant,
)
from cds_service.core.facts.context import Context, Thresholds
from cds_service.core.model import Fact, Order, PatientRecord


@dataclass(frozen=True)
class FactSpec:
    """What a fact means and which values it can take (None = numeric / boolean / codes)."""

    extract: Callable[[Context], Fact]
    values: tuple[str, ...] | None
    kind: str  # "category" | "number" | "boolean" | "codes"
    meaning: str
    # What counts as *documented absence* (the fact's negative value); anything short of it is
    # "not documented" (unknown), never a negative (cards/README.md, "The evidence rule").
    absence: str

    @property
    def module(self) -> str:
        """The module under core/facts/ that decides the fact (cards/README.md lists them)."""
        return self.extract.__module__.rsplit(".", 1)[-1]


# The fact modules that read the patient record; each declares in READS which resources it reads
# (by type and code), and core/facts/relevance.py skips the resources none of them reads.
RECORD_READERS = (
    car_t,
    chimerism,
    conditioning,
    contraindications,
    cytopenia,
    diagnosis,
    disease,
    graft,
    gvhd,
    transplant,
)
# Every Observation code a fact reads: each reader of Observations declares OBSERVATION_LOINC
# (and tests it in READS), and the observations prefetch template asks for exactly these.
OBSERVATION_LOINC: frozenset[str] = frozenset(
    code for module in RECORD_READERS for code in getattr(module, "OBSERVATION_LOINC", ())
)
# (system, code) of every Observation a fact reads: the LOINC codes above and the codes of
# other systems a reader declares in OBSERVATION_CODES (e.g. the GVHD grade, terminology §5.5).
OBSERVATION_CODES: frozenset[tuple[str, str]] = frozenset(
    {(codes.LOINC, code) for code in OBSERVATION_LOINC}
    | {pair for module in RECORD_READERS for pair in getattr(module, "OBSERVATION_CODES", ())}
)

CATALOGUE: dict[str, FactSpec] = {
    "diagnosis_class": FactSpec(
        diagnosis.diagnosis_class,
        ("hematologic-malignancy", "other-malignancy", "non-malignant"),
        "category",
        "Class of the disease the index transplant treated; its reason wins, else conditions.",
        "a transplant reason or problem-list diagnosis of another class (other malignancy / "
        "non-malignant); no classifiable diagnosis is not documented",
    ),
    "indication_icd10cm": FactSpec(
        diagnosis.indication_icd10cm,
        None,
        "codes",
        "ICD-10-CM codes of the conditions that gave diagnosis_class.",
        "the ICD-10-CM codes of the indication (a code outside a list is read against it); no "
        "ICD-10-CM code on the indication is not documented",
    ),
    "hsct_type": FactSpec(
        transplant.hsct_type,
        ("allogeneic", "autologous"),
        "category",
        "allogeneic if any allogeneic HSCT (or GVHD) is documented; autologous if only autologous "
        "ones are; no transplant on record, or one of uncoded type, is not documented.",
        "a documented autologous-only transplant (procedure or Z94.84-type history) is the "
        "documented absence of an allogeneic one; no transplant on record is not documented",
    ),
    "t_cell_depleted_graft": FactSpec(
        graft.t_cell_depleted_graft,
        None,
        "boolean",
        "Whether the index allogeneic graft was T-cell depleted (coded on the transplant).",
        "an ICD-10-PCS transplant code with substance Y (stem cells, chosen against U = "
        "T-cell depleted); CPT 38240, the other allogeneic SNOMED CT concepts and PCS G / X "
        "say nothing about processing (not documented)",
    ),
    "conditioning_intensity": FactSpec(
        transplant.conditioning_intensity,
        ("MAC", "RIC", "NMA"),
        "category",
        "Conditioning intensity of the index transplant: recorded, else MAC inferred from a "
        "myeloablative dose in the regimen given before it (core/facts/conditioning.py).",
        "a recorded or inferred intensity (MAC is the documented absence of RIC / NMA); none "
        "recorded and none inferable is not documented (RIC / NMA are never inferred)",
    ),
    "disease_status": FactSpec(
        disease.disease_status,
        ("relapsed", "refractory", "persistent", "progressive", "responding", "remission"),
        "category",
        "relapsed if any relapse is documented after the index transplant; else the latest "
        "post-transplant status (clinicalStatus = current status).",
        "a post-transplant (or current) status other than relapse, e.g. a current remission "
        "with no relapse after the transplant; an x0 'not in remission' code alone, or a "
        "pre-transplant status only, is not documented",
    ),
    "donor_chimerism_pct": FactSpec(
        chimerism.donor_chimerism_pct,
        None,
        "number",
        "Latest donor chimerism (% donor cells) after the index transplant.",
        "a post-transplant chimerism result (100 % donor is full chimerism); no result is not "
        "documented",
    ),
    "donor_chimerism_applicable": FactSpec(
        chimerism.donor_chimerism_applicable,
        None,
        "boolean",
        "Whether the chimerism criteria apply: an allogeneic graft (not autologous-only or "
        "CAR-T-only).",
        "a documented autologous-only transplant, or CAR T with no stem cell transplant on record",
    ),
    "acute_gvhd_grade": FactSpec(
        gvhd.acute_gvhd_grade,
        None,
        "number",
        "Highest grade (0-4) of active acute GVHD (stage summary, else a grade Observation on the "
        "Condition: its value or its MAGIC organ stages); 0 when none is active.",
        "no active acute GVHD on a completely read problem list (grade 0); active acute GVHD "
        "without a grade is not documented",
    ),
    "acute_gvhd_active": FactSpec(
        gvhd.acute_gvhd_active,
        None,
        "boolean",
        "Whether any acute GVHD is active, graded or not.",
        "no active acute GVHD on a completely read problem list",
    ),
    "chronic_gvhd_active": FactSpec(
        gvhd.chronic_gvhd_active,
        None,
        "boolean",
        "Whether chronic GVHD is active.",
        "no active chronic GVHD on a completely read problem list",
    ),
    "poor_graft_function": FactSpec(
        cytopenia.poor_graft_function,
        None,
        "boolean",
        "Graft failure / rejection, pancytopenia, cytopenia persisting >= 14 days or "
        "transfusion dependence after HSCT.",
        "post-transplant counts in the look-back window whose newest value in every lineage read "
        "is normal (recovery); a short run of low counts, a single severe count, a coded "
        "cytopenia, no counts, or a lineage whose newest count cannot be read (unit, value) or "
        "disagrees with itself that day is not documented",
    ),
    "prior_car_t": FactSpec(
        car_t.prior_car_t,
        None,
        "boolean",
        "Whether CAR T was given.",
        "no CAR T procedure or history code in completely read Procedures and Conditions",
    ),
    "cytopenia_after_car_t": FactSpec(
        cytopenia.cytopenia_after_car_t,
        None,
        "boolean",
        "Persistent cytopenia or pancytopenia documented after the latest CAR T.",
        "no CAR T on record, or counts after the CAR T whose newest values are normal; a short "
        "run of low counts or no counts after it is not documented",
    ),
    "current_substance_use": FactSpec(
        contraindications.current_substance_use,
        None,
        "boolean",
        "Current tobacco / vaping / alcohol / other substance use or dependence.",
        "no active substance-use code on a completely read problem list and no current-use "
        "smoking status (the same rule as the other contraindications), and, when a smoking "
        "status is on record, a latest one saying never / ex; a cannabis code alone, or a latest "
        "status saying neither, is not documented (reviewer)",
    ),
    "nonadherence": FactSpec(
        contraindications.nonadherence,
        None,
        "boolean",
        "Documented non-adherence.",
        "no non-adherence code on a completely read problem list",
    ),
    "lacks_social_support": FactSpec(
        contraindications.lacks_social_support,
        None,
        "boolean",
        "Documented lack of social / caregiver support.",
        "no support-system problem code on a completely read problem list",
    ),
    "uncontrolled_resistant_infection": FactSpec(
        contraindications.uncontrolled_resistant_infection,
        None,
        "boolean",
        "Active infection with a drug-resistant organism, or an active invasive mould infection.",
        "no active resistance-coded infection and no invasive fungal infection on a completely "
        "read problem list; a resistance code without an active infection is not documented",
    ),
    "product_source": FactSpec(
        order_details.product_source,
        ("original-donor", "different-donor"),
        "category",
        "Order detail: whose cells the product contains.",
        "the order states the other source; no source stated is not documented",
    ),
    "product_manipulation": FactSpec(
        order_details.product_manipulation,
        ("unmanipulated-product", "genetically-modified-product", "ex-vivo-manipulated-product"),
        "category",
        "Order detail: how the product was processed.",
        "the order states unmanipulated-product (code, readable text or order question); a "
        "plain CPT 38242 / 38243 order, unreadable text or conflicting details are not "
        "documented",
    ),
    "high_relapse_risk_attested": FactSpec(
        order_details.high_relapse_risk_attested,
        None,
        "boolean",
        "Order detail: the ordering clinician attests high relapse risk.",
        "the order detail not-high-relapse-risk (the clinician answered 'no'); a missing "
        "attestation is not documented",
    ),
    "other_high_risk_setting": FactSpec(
        order_details.other_high_risk_setting,
        None,
        "boolean",
        "BCBSMS: high relapse risk attested in a setting the policy does not name (after "
        "myeloablative conditioning): medical director review, so never true from the record.",
        "an order with no high-risk attestation claims no other setting",
    ),
}


class Facts:
    """Facts for one (record, order, as_of), computed on first use and then kept."""

    def __init__(
        self, record: PatientRecord, order: Order | None, as_of: date, thresholds: Thresholds
    ) -> None:
        self._context = Context(record, order, as_of, thresholds)
        self._cache: dict[str, Fact] = {}

    def __getitem__(self, name: str) -> Fact:
        fact = self._cache.get(name)
        if fact is None:
            fact = self._cache[name] = CATALOGUE[name].extract(self._context)
        return fact


__all__ = [
    "CATALOGUE",
    "OBSERVATION_CODES",
    "OBSERVATION_LOINC",
    "RECORD_READERS",
    "Context",
    "FactSpec",
    "Facts",
    "Thresholds",
]
