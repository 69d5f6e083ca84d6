"""SDC population for the worksheets: what a standard SDC / DTR client fills from the EHR itself.

The Questionnaire names its launch context (`patient`, SDC sdc-questionnaire-launchContext) and
queries the draft order of its service from the EHR's FHIR server (an `x-fhir-query` variable,
`%order`). An item gets an FHIRPath `initialExpression` only where that read is the whole rule
the service applies: the order-detail facts (whose cells, how processed, the high-relapse-risk
attestation), which the order states as a code. The service also reads those facts from order text, order questions and the donor of
a contained product; where only those say it, SDC population leaves the item open and the
service's own pre-fill answers it (tests/test_sdc_population.py counts both). Every other
criterion rests on record logic (latest assessment, clinical status, code sets) that the service
applies and a population expression would only approximate, so it has none.
"""

from __future__ import annotations

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


def root_extensions(service: Service) -> list[dict[str, Any]]:
    """The patient launch context and the `%order` query of the worksheet's service."""
    patient = {"system": "http://hl7.org/fhir/uv/sdc/CodeSystem/launchContext", "code": "patient"}
    query = f"ServiceRequest?patient={{{{%patient.id}}}}&code={codes.CPT}|{_CPT[service]}"
    return [
        {
            "url": LAUNCH_CONTEXT,
            "extension": [
                {"url": "name", "valueCoding": patient},
                {"url": "type", "valueCode": "Patient"},
                {"url": "description", "valueString": "The patient the order is for"},
            ],
        },
        {
            "url": VARIABLE,
            "valueExpression": {
                "name": "order",
                "language": "application/x-fhir-query",
                "expression": query,
            },
        },
    ]


def _order_codes(options: tuple[str, ...]) -> str:
    """FHIRPath: the distinct order-detail codes among `options` the draft order states."""
    listed = " | ".join(f"'{o}'" for o in options)
    return (
        "%order.entry.resource.orderDetail.coding"
        f".where(system = '{codes.ORDER_DETAIL_SYSTEM}' and code in ({listed})).code.distinct()"
    )


def initial_expression(fact: str, negate: bool = False) -> dict[str, Any] | None:
    """The FHIRPath that answers a question on `fact` from `%order`, or None. A category fact:
    the one option the order states as an order-detail code (none, or two: no answer). The
    high-relapse-risk attestation: true for `high-relapse-risk`, else false for
    `not-high-relapse-risk` (as the service reads it); `negate` for a question that asks the
    opposite of the fact (core/questionnaire.py answer_value)."""
    if fact in CATEGORY_FACTS:
        stated = _order_codes(CATALOGUE[fact].values or ())
        expression = f"iif({stated}.count() = 1, {stated}, {{}})"
    elif fact == "high_relapse_risk_attested":
        stated = _order_codes(("high-relapse-risk", "not-high-relapse-risk"))
        expression = (
            f"iif({stated} contains 'high-relapse-risk', true, "
            f"iif({stated} contains 'not-high-relapse-risk', false, {{}}))"
        )
        expression = f"({expression}).not()" if negate else expression
    else:
        return None
    return {
        "url": INITIAL_EXPRESSION,
        "valueExpression": {"language": "text/fhirpath", "expression": expression},
    }
