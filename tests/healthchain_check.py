"""Read our CDS Hooks JSON with HealthChain's models, and build requests with them.

Runs in HealthChain's own virtual environment (tests/test_conformance.py makes it), never in
ours: HealthChain pins fhir.resources, httpx and fastapi below what this service needs, so it
cannot share our environment. Imports nothing from this project. Input on stdin, one JSON
object: {"discovery": {...}, "responses": [body, ...], "requests": [our request, ...]}. Output
on stdout: {"discovery": error or null, "responses": [error or null, ...], "requests":
[the request as HealthChain's CDSRequest dumps it, ...]}.

Known HealthChain defects worked around here, without changing our output:
- `Link.autoLaunchable` and `Suggestion.isRecommended` are typed `Optional[bool]` with no default,
  so pydantic makes them required; CDS Hooks makes both optional and we omit them. They are set to
  null in a copy before validation.
- `CDSRequest.context` is typed `BaseHookContext` (userId, patientId), so pydantic v2 dumps an
  `OrderSignContext` without `draftOrders`; dumped with `serialize_as_any=True`.
- `OrderSignContext.encounterId` defaults to a random id; passed as None so none is invented.
- `CDSRequest.extension` is typed as a list, but a CDS Hooks extension is an object, so a
  request built with it cannot carry `davinci-crd.configuration`; our requests built here send
  none.
"""

import json
import sys
from copy import deepcopy
from typing import Any

from healthchain.models.hooks.orderselect import OrderSelectContext
from healthchain.models.hooks.ordersign import OrderSignContext
from healthchain.models.requests.cdsrequest import CDSRequest
from healthchain.models.responses.cdsdiscovery import CDSServiceInformation
from healthchain.models.responses.cdsresponse import CDSResponse
from pydantic import ValidationError

CONTEXTS = {"order-sign": OrderSignContext, "order-select": OrderSelectContext}


def with_optional_nulls(body: dict[str, Any]) -> dict[str, Any]:
    """A copy with the optional fields HealthChain wrongly requires set to null."""
    body = deepcopy(body)
    for card in body.get("cards", []):
        for link in card.get("links", []):
            link.setdefault("autoLaunchable", None)
        for suggestion in card.get("suggestions", []):
            suggestion.setdefault("isRecommended", None)
    return body


def error(model: Any, data: dict[str, Any]) -> str | None:
    try:
        model.model_validate(data)
    except ValidationError as failure:
        return str(failure)
    return None


def healthchain_request(ours: dict[str, Any]) -> dict[str, Any]:
    context = dict(ours["context"])
    context.setdefault("encounterId", None)
    request = CDSRequest(
        hook=ours["hook"],
        hookInstance=ours["hookInstance"],
        context=CONTEXTS[ours["hook"]](**context),
        prefetch=ours.get("prefetch"),
    )
    dumped: dict[str, Any] = request.model_dump(
        mode="json", exclude_none=True, serialize_as_any=True
    )
    return dumped


def main() -> None:
    given = json.load(sys.stdin)
    json.dump(
        {
            "discovery": error(CDSServiceInformation, given["discovery"]),
            "responses": [error(CDSResponse, with_optional_nulls(b)) for b in given["responses"]],
            "requests": [healthchain_request(r) for r in given["requests"]],
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
