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

from cds_service.core.facts import (
    car_t,
    chimerism,
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

    @property
    def module(self) -> str:
        """The module under core/facts/ that decides the fact (cards/README.md lists them)."""
        return self.extract.__module__.rsplit(".", 1)[-1]


# The fact modules that read the patient record; each declares in READS which resources it reads
# (by type and code), and core/facts/relevance.py skips the resources none of them reads.
RECORD_READERS = (
    car_t,
    chimerism,
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

CATALOGUE: dict[str, FactSpec] = {
    "diagnosis_class": FactSpec(
        diagnosis.diagnosis_class,
        ("hematologic-malignancy", "other-malignancy", "non-malignant"),
        "category",
        "Class of the disease the index transplant treated; its reason wins, else conditions.",
    ),
    "indication_icd10cm": FactSpec(
        diagnosis.indication_icd10cm,
        None,
        "codes",
        "ICD-10-CM codes of the conditions that gave diagnosis_class.",
    ),
    "hsct_type": FactSpec(
        transplant.hsct_type,
        ("allogeneic", "autologous", "none"),
        "category",
        "allogeneic if any allogeneic HSCT (or GVHD) is documented; autologous if only autologous; "
        "none if the record shows no transplant at all.",
    ),
    "t_cell_depleted_graft": FactSpec(
        graft.t_cell_depleted_graft,
        None,
        "boolean",
        "Whether the index allogeneic graft was T-cell depleted (coded on the transplant).",
    ),
    "conditioning_intensity": FactSpec(
        transplant.conditioning_intensity,
        ("MAC", "RIC", "NMA"),
        "category",
        "Conditioning intensity of the index transplant.",
    ),
    "disease_status": FactSpec(
        disease.disease_status,
        ("relapsed", "refractory", "persistent", "progressive", "responding", "remission"),
        "category",
        "Latest dated disease status after the index transplant.",
    ),
    "donor_chimerism_pct": FactSpec(
        chimerism.donor_chimerism_pct,
        None,
        "number",
        "Latest donor chimerism (% donor cells) after the index transplant.",
    ),
    "acute_gvhd_grade": FactSpec(
        gvhd.acute_gvhd_grade,
        None,
        "number",
        "Highest grade (0-4) of active acute GVHD; 0 when none is active.",
    ),
    "acute_gvhd_active": FactSpec(
        gvhd.acute_gvhd_active,
        None,
        "boolean",
        "Whether any acute GVHD is active, graded or not.",
    ),
    "chronic_gvhd_active": FactSpec(
        gvhd.chronic_gvhd_active, None, "boolean", "Whether chronic GVHD is active."
    ),
    "poor_graft_function": FactSpec(
        cytopenia.poor_graft_function,
        None,
        "boolean",
        "Graft failure, pancytopenia, persistent cytopenia or transfusion dependence after HSCT.",
    ),
    "prior_car_t": FactSpec(car_t.prior_car_t, None, "boolean", "Whether CAR T was given."),
    "cytopenia_after_car_t": FactSpec(
        cytopenia.cytopenia_after_car_t,
        None,
        "boolean",
        "Persistent cytopenia or pancytopenia documented after the latest CAR T.",
    ),
    "current_substance_use": FactSpec(
        contraindications.current_substance_use,
        None,
        "boolean",
        "Current tobacco / vaping / other substance use or dependence.",
    ),
    "nonadherence": FactSpec(
        contraindications.nonadherence, None, "boolean", "Documented non-adherence."
    ),
    "lacks_social_support": FactSpec(
        contraindications.lacks_social_support,
        None,
        "boolean",
        "Documented lack of social / caregiver support.",
    ),
    "uncontrolled_resistant_infection": FactSpec(
        contraindications.uncontrolled_resistant_infection,
        None,
        "boolean",
        "Active infection with a documented drug-resistant organism.",
    ),
    "product_source": FactSpec(
        order_details.product_source,
        ("original-donor", "different-donor"),
        "category",
        "Order detail: whose cells the product contains.",
    ),
    "product_manipulation": FactSpec(
        order_details.product_manipulation,
        ("unmanipulated-product", "genetically-modified-product", "ex-vivo-manipulated-product"),
        "category",
        "Order detail: how the product was processed.",
    ),
    "high_relapse_risk_attested": FactSpec(
        order_details.high_relapse_risk_attested,
        None,
        "boolean",
        "Order detail: the ordering clinician attests high relapse risk (absent = false).",
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
    "OBSERVATION_LOINC",
    "RECORD_READERS",
    "Context",
    "FactSpec",
    "Facts",
    "Thresholds",
]
