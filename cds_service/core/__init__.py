"""The pure core: FHIR in, facts out; facts + policy in, determination out. No I/O here.

What other layers may use is named here (`__all__`); everything else in `cds_service.core` is
internal and may change without notice (tests/test_layering.py holds other layers to this).
"""

from cds_service.core import codes
from cds_service.core.card_text import status_word
from cds_service.core.cards import COVERAGE_INFO_URL, CardOptions, not_evaluated_card
from cds_service.core.case import case_view
from cds_service.core.decide import Decision, DecisionInputs, decide
from cds_service.core.facts import OBSERVATION_CODES, OBSERVATION_LOINC, Thresholds
from cds_service.core.facts.relevance import relevant_resources
from cds_service.core.fhir_util import INVALID_FHIR, patient_of
from cds_service.core.model import Determination, Order, PatientRecord, Service
from cds_service.core.orders import recognise
from cds_service.core.payer import payer_organizations_to_read
from cds_service.core.payer_scope import unhandled_payer
from cds_service.core.policy import Node, Policy
from cds_service.core.policy_versions import version_named, versions
from cds_service.core.prefill import BUNDLE_PROFILE, questionnaire_package
from cds_service.core.questionnaire import Worksheet, worksheets
from cds_service.core.record import (
    MODELS,
    Keep,
    add_prefetch_value,
    add_resource,
    is_operation_outcome,
    prefetch_value_steps,
)
from cds_service.core.structure import StructureLimits, TooLarge
from cds_service.core.units import warm_up as warm_up_units

__all__ = [
    "BUNDLE_PROFILE",
    "COVERAGE_INFO_URL",
    "INVALID_FHIR",
    "MODELS",
    "OBSERVATION_CODES",
    "OBSERVATION_LOINC",
    "CardOptions",
    "Decision",
    "DecisionInputs",
    "Determination",
    "Keep",
    "Node",
    "Order",
    "PatientRecord",
    "Policy",
    "Service",
    "StructureLimits",
    "Thresholds",
    "TooLarge",
    "Worksheet",
    "add_prefetch_value",
    "add_resource",
    "case_view",
    "codes",
    "decide",
    "is_operation_outcome",
    "not_evaluated_card",
    "patient_of",
    "payer_organizations_to_read",
    "prefetch_value_steps",
    "questionnaire_package",
    "recognise",
    "relevant_resources",
    "status_word",
    "unhandled_payer",
    "version_named",
    "versions",
    "warm_up_units",
    "worksheets",
]
