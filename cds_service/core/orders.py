"""Recognise DLI and HPC boost orders among context.draftOrders (issue scope 4), and what the
ordering clinician states on them (docs/integration.md, "Order details and order questions").

The order's statements are read, all of them, from: `orderDetail` codes in our order-detail
system; a plain reading of well-known phrases in `orderDetail.text` (only details without our
code; any negation or hedge makes the text unread); and our order-questions
`QuestionnaireResponse` (contained in the order and named in `supportingInfo`). Two sources that
disagree make the fact "conflicting", i.e. unknown (core/facts/order_details.py).
"""

from __future__ import annotations

import re
from typing import Any

from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from cds_service.core import codes
from cds_service.core.fhir_util import INVALID_FHIR, to_date, well_typed_answers
from cds_service.core.model import Order, Service

# Well-known phrases (lower case, whole words) -> the order-detail code they state.
PHRASES: dict[str, tuple[str, ...]] = {
    "original-donor": ("same donor", "original donor", "same stem cell donor"),
    "different-donor": ("different donor", "new donor", "second donor", "another donor"),
    "unmanipulated-product": ("unmanipulated",),
    "ex-vivo-manipulated-product": (
        "cd3+ selected",
        "cd34+ selected",
        "ex vivo manipulated",
        "ex-vivo manipulated",
        "ex vivo expanded",
        "ex-vivo expanded",
    ),
    "genetically-modified-product": ("genetically modified", "gene modified", "car t", "car-t"),
}
# Negations and hedges: text holding one says something we will not guess at.
_UNCLEAR = re.compile(r"\b(not|no|non|without|never|nor|maybe|possibly|unless|if|or)\b|\?")
_DETAIL_QUESTIONS = ("product-source", "product-manipulation")
_READ_QR = frozenset({"completed", "amended"})


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _service(code: Any) -> tuple[Service, str, str] | None:
    for coding in _list(code.get("coding")) if isinstance(code, dict) else ():
        if not isinstance(coding, dict):
            continue
        system, value = coding.get("system"), coding.get("code")
        if not isinstance(value, str):
            continue
        if system == codes.CPT and value == codes.DLI_CPT:
            return Service.DLI, value, system
        if system == codes.CPT and value == codes.HPC_BOOST_CPT:
            return Service.HPC_BOOST, value, system
        if system == codes.ICD10PCS and value in codes.DLI_PCS:
            return Service.DLI, value, system
    return None


def recognise(service_request: dict[str, Any]) -> Order | None:
    """The Order a draft ServiceRequest places, or None when it is not a DLI / HPC boost."""
    found = _service(service_request.get("code"))
    if found is None:
        return None
    service, code, system = found
    stated = _coded(service_request) + _from_text(service_request)
    stated += _from_questions(service_request)
    details = frozenset(c for c, _ in stated)
    return Order(
        reference=f"ServiceRequest/{service_request.get('id')}",
        service=service,
        billing_code=code,
        billing_system=system,
        authored_on=to_date(service_request.get("authoredOn")),
        details=details,
        resource=service_request,
        stated_in=tuple(dict.fromkeys(stated)),
    )


Stated = list[tuple[str, str]]  # (order-detail code, where the order states it)


def _coded(service_request: dict[str, Any]) -> Stated:
    return [
        (str(coding.get("code")), "Order detail")
        for detail in _list(service_request.get("orderDetail"))
        if isinstance(detail, dict)
        for coding in _list(detail.get("coding"))
        if isinstance(coding, dict) and coding.get("system") == codes.ORDER_DETAIL_SYSTEM
    ]


def phrase_codes(text: str) -> list[str]:
    """The order-detail codes a free-text detail plainly states; none when it is hedged or
    negated ("not the same donor", "CD3+ selected?")."""
    lowered = " ".join(text.lower().split())
    if _UNCLEAR.search(lowered):
        return []
    return [
        code
        for code, phrases in PHRASES.items()
        if any(re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", lowered) for p in phrases)
    ]


def _from_text(service_request: dict[str, Any]) -> Stated:
    found: Stated = []
    for detail in _list(service_request.get("orderDetail")):
        if not isinstance(detail, dict) or not isinstance(detail.get("text"), str):
            continue
        coded = any(
            isinstance(c, dict) and c.get("system") == codes.ORDER_DETAIL_SYSTEM
            for c in _list(detail.get("coding"))
        )
        if not coded:
            found += [(c, "Order detail text") for c in phrase_codes(detail["text"])]
    return found


def supporting(service_request: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """Contained resources of `resource_type` that the order names in `supportingInfo`."""
    named = {
        str(r.get("reference"))[1:]
        for r in _list(service_request.get("supportingInfo"))
        if isinstance(r, dict) and str(r.get("reference", "")).startswith("#")
    }
    return [
        r
        for r in _list(service_request.get("contained"))
        if isinstance(r, dict) and r.get("resourceType") == resource_type and r.get("id") in named
    ]


def _from_questions(service_request: dict[str, Any]) -> Stated:
    """Answers in our order-questions QuestionnaireResponse (validated; completed / amended)."""
    found: Stated = []
    for raw in supporting(service_request, "QuestionnaireResponse"):
        # an answer of the wrong JSON type ("true" for a boolean) is not valid FHIR: dropped
        typed = {**raw, "item": well_typed_answers(raw.get("item"), [])}
        try:
            response = QuestionnaireResponse.model_validate(typed)
        except (ValidationError, *INVALID_FHIR):
            continue  # an unreadable answer states nothing
        canonical = str(response.questionnaire or "").split("|", 1)[0]
        if canonical != codes.ORDER_QUESTIONS or response.status not in _READ_QR:
            continue
        for item in response.item or ():
            for answer in item.answer or ():
                found += [(c, "Order question") for c in _answer(str(item.linkId), answer)]
    return found


def _answer(link_id: str, answer: Any) -> list[str]:
    if link_id in _DETAIL_QUESTIONS and answer.valueCoding is not None:
        coding = answer.valueCoding
        return [str(coding.code)] if coding.system == codes.ORDER_DETAIL_SYSTEM else []
    if link_id == "high-relapse-risk" and answer.valueBoolean is not None:
        return ["high-relapse-risk" if answer.valueBoolean else "not-high-relapse-risk"]
    return []
