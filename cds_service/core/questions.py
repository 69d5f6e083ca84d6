"""The worksheet question for each fact, in plain clinical language (one place, not one per item).

A worksheet item asks for the fact its criterion tests; the criterion's own statement stays on
the item as its policy citation ("Policy criterion: ... Policy: ..."), so a reviewer can trace
the question to the policy line. A choice, number or code question asks the fact's value, so
the same question serves every criterion on that fact (the threshold lives in the statement).

A yes/no question may ask the opposite of its fact (an exclusion such as "no documented
non-adherence": questionnaire.answer_value): `ASKED_NEGATED` holds that form, worded so that
"yes" means exactly what it means today (the fact is false). Every fact has both forms where it
is boolean (tests/test_questions.py), so no policy file can need a question that is missing.
"""

from __future__ import annotations

from cds_service.core.facts import CATALOGUE

# Yes (or the value given) states the fact: "yes" = the fact is true.
ASKED: dict[str, str] = {
    "diagnosis_class": "What kind of disease did the transplant treat?",
    "indication_icd10cm": "What is the ICD-10-CM code of the disease the transplant treated?",
    "hsct_type": "What type of stem cell transplant has the patient had?",
    "t_cell_depleted_graft": "Was the allogeneic graft T-cell depleted?",
    "conditioning_intensity": "What was the conditioning intensity before the transplant?",
    "disease_status": "What is the disease status after the transplant "
    "(relapsed if it has relapsed at any time since)?",
    "donor_chimerism_pct": "What is the latest donor chimerism after the transplant "
    "(% donor cells)?",
    "donor_chimerism_applicable": "Do the chimerism criteria apply (an allogeneic graft)?",
    "acute_gvhd_grade": "What is the highest grade (0-4) of active acute GVHD (0 if none)?",
    "acute_gvhd_active": "Does the patient have active acute GVHD?",
    "chronic_gvhd_active": "Does the patient have active chronic GVHD?",
    "poor_graft_function": "Does the patient have poor graft function after the transplant "
    "(graft failure or rejection, persistent cytopenia or transfusion dependence)?",
    "prior_car_t": "Has the patient received CAR T-cell therapy?",
    "cytopenia_after_car_t": "Does the patient have persistent cytopenia after the latest "
    "CAR T-cell therapy?",
    "current_substance_use": "Does the patient have active substance use or dependence, "
    "including current tobacco use or vaping?",
    "nonadherence": "Is non-adherence to the treatment regimen documented?",
    "lacks_social_support": "Does the patient lack adequate social or caregiver support?",
    "uncontrolled_resistant_infection": "Does the patient have an active infection with a "
    "drug-resistant organism or an invasive mould infection?",
    "product_source": "Whose cells does the product contain: the original transplant donor's "
    "or a different donor's?",
    "product_manipulation": "How was the cell product processed?",
    "high_relapse_risk_attested": "Does the ordering clinician attest that the patient is at "
    "high risk of relapse?",
    "other_high_risk_setting": "Does the ordering clinician attest high relapse risk in a "
    "setting the policy does not name (for medical director review)?",
}

# Yes = the (boolean) fact is false: the question an exclusion or an `equals: false` test asks.
ASKED_NEGATED: dict[str, str] = {
    "t_cell_depleted_graft": "Was the allogeneic graft given without T-cell depletion?",
    "donor_chimerism_applicable": "Do the chimerism criteria not apply (no allogeneic graft)?",
    "acute_gvhd_active": "Is the patient free of active acute GVHD?",
    "chronic_gvhd_active": "Is the patient free of active chronic GVHD?",
    "poor_graft_function": "Has the graft functioned well after the transplant (counts "
    "recovered, no graft failure or rejection)?",
    "prior_car_t": "Has the patient never received CAR T-cell therapy?",
    "cytopenia_after_car_t": "Have blood counts recovered after the latest CAR T-cell therapy "
    "(no persistent cytopenia)?",
    "current_substance_use": "Is the patient free of active substance use or dependence, "
    "including current tobacco use or vaping?",
    "nonadherence": "Can the patient adhere to the treatment regimen, with caregiver support "
    "if needed?",
    "lacks_social_support": "Does the patient have an adequate, reliable social and caregiver "
    "support system?",
    "uncontrolled_resistant_infection": "Is the patient free of active infection with "
    "drug-resistant organisms and of invasive mould infection?",
    "high_relapse_risk_attested": "Does the ordering clinician attest that the patient is not "
    "at high risk of relapse?",
    "other_high_risk_setting": "Does the ordering clinician claim no other high relapse risk "
    "setting?",
}


def question(fact: str, negated: bool) -> str:
    """The question for a fact; `negated` (boolean facts only) = "yes" means the fact is false."""
    if negated:
        if CATALOGUE[fact].kind != "boolean":
            raise ValueError(f"{fact} is not a yes/no fact: its question cannot be negated")
        return ASKED_NEGATED[fact]
    return ASKED[fact]
