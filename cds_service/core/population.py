"""SDC population for the worksheets: what a standard SDC / DTR client fills from the EHR itself.

The Questionnaire names its launch context (`patient`, SDC sdc-questionnaire-launchContext) and
queries the draft order of its service from the EHR's FHIR server (an `x-fhir-query` variable,
`%order`). An item gets an FHIRPath `initialExpression` only where that read is the whole rule
the service applies: the order-detail facts (whose cells, how processed), which the order states
as a code. The service also reads those facts from order text, order questions and the donor of
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
ORDER_DETAIL_FACTS = ("product_source", "product_manipulation")
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


def initial_expression(fact: str) -> dict[str, Any] | None:
    """The FHIRPath that answers a question on `fact` from `%order`, or None. The answer is
    the one option the draft order states as an order-detail code (none, or two: no answer)."""
    if fact not in ORDER_DETAIL_FACTS:
        return None
    options = " | ".join(f"'{o}'" for o in CATALOGUE[fact].values or ())
    stated = (
        "%order.entry.resource.orderDetail.coding"
        f".where(system = '{codes.ORDER_DETAIL_SYSTEM}' and code in ({options})).code.distinct()"
    )
    return {
        "url": INITIAL_EXPRESSION,
        "valueExpression": {
            "language": "text/fhirpath",
            "expression": f"iif({stated}.count() = 1, {stated}, {{}})",
        },
    }
