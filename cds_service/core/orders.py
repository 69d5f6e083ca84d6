"""Recognise DLI and HPC boost orders among context.draftOrders (issue scope 4)."""

from __future__ import annotations

from typing import Any

from cds_service.core import codes
from cds_service.core.fhir_util import to_date
from cds_service.core.model import Order, Service


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
    details = frozenset(
        str(coding.get("code"))
        for detail in _list(service_request.get("orderDetail"))
        if isinstance(detail, dict)
        for coding in _list(detail.get("coding"))
        if isinstance(coding, dict) and coding.get("system") == codes.ORDER_DETAIL_SYSTEM
    )
    return Order(
        reference=f"ServiceRequest/{service_request.get('id')}",
        service=service,
        billing_code=code,
        billing_system=system,
        authored_on=to_date(service_request.get("authoredOn")),
        details=details,
        resource=service_request,
    )
