"""Posting an order hook call whose payer may not be one the service handles.

order-sign answers such a call with the 400 of CRD hook-13 (cds_service/core/payer_scope.py);
tests that need every policy's evaluation of it ask order-select, which compares them."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient

SIGN = "/cds-services/dli-hpc-order-sign"
SELECT = "/cds-services/dli-hpc-order-select"


def as_order_select(request: dict[str, Any]) -> dict[str, Any]:
    """The same call as order-select, selecting every draft order."""
    select = copy.deepcopy(request)
    select["hook"] = "order-select"
    entries = select["context"]["draftOrders"]["entry"]
    select["context"]["selections"] = [
        f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries
    ]
    return select


def post_order(client: TestClient, request: dict[str, Any], **kwargs: Any) -> Any:
    """The order-sign answer; where order-sign refuses the payer (CRD hook-13, checked), the
    order-select answer to the same call."""
    response = client.post(SIGN, json=request, **kwargs)
    if response.status_code != 400 or "CRD hook-13" not in response.text:
        return response
    return client.post(SELECT, json=as_order_select(request), **kwargs)
