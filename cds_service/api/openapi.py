"""OpenAPI descriptions of the hook call and its answers, for clients and for the fuzz tests.
The request schemas are generated from the pydantic models that validate the requests.

Documentation only: the route still reads the raw body and `hooks.parse_hook` validates it, so
an invalid request keeps its 400 + OperationOutcome (never FastAPI's 422 shape).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cds_service.api.discovery import ORDERS_KEY, PREFETCH, SERVICES
from cds_service.api.hooks import AppointmentContext, DispatchContext, HookRequest, OrderContext
from cds_service.audit.feedback import FeedbackRequest

OPERATION_OUTCOME: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {
                    "severity": {"type": "string"},
                    "code": {"type": "string"},
                    "diagnostics": {"type": "string"},
                },
            },
        },
    },
}

_REFERENCE = {"type": "object", "properties": {"reference": {"type": "string"}}}
_APPOINTMENT = {
    "type": "object",
    "required": ["resourceType", "id"],
    "properties": {
        "resourceType": {"const": "Appointment"},
        "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
        "status": {"const": "proposed"},
        "basedOn": {"type": "array", "items": _REFERENCE},
    },
}
_ORDER = {
    "type": "object",
    "required": ["resourceType", "id", "code"],
    "properties": {
        "resourceType": {"enum": ["ServiceRequest", "MedicationRequest", "DeviceRequest"]},
        "id": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
        "status": {"enum": ["draft", "active"]},
        "intent": {"enum": ["order", "proposal"]},
        "subject": _REFERENCE,
        "code": {
            "type": "object",
            "properties": {
                "coding": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "system": {"const": "http://www.ama-assn.org/go/cpt"},
                            "code": {"enum": ["38242", "38243", "85025"]},
                        },
                    },
                }
            },
        },
    },
}


def _bundle(resource: dict[str, Any], min_entries: int = 0) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["collection", "searchset"]},
            "entry": {
                "type": "array",
                "minItems": min_entries,
                "items": {
                    "type": "object",
                    "required": ["resource"],
                    "properties": {"resource": resource},
                },
            },
        },
    }


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its `$defs` inlined, so it stands alone inside the OpenAPI
    document (pydantic's local references would point at the document's root)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def _hook_request() -> dict[str, Any]:
    """The hook call as the pydantic models in api/hooks.py validate it. The FHIR content (draft
    orders, prefetch Bundles) is checked by hooks._entries and core, not by pydantic, so its shape
    is added here: enough for a fuzzer to build orders the service evaluates."""
    schema = model_schema(HookRequest)
    schema["properties"]["hook"] = {"enum": sorted({s.hook for s in SERVICES.values()})}
    context = model_schema(OrderContext)
    context["properties"]["draftOrders"] = _bundle(_ORDER, min_entries=1)
    booking = model_schema(AppointmentContext)  # appointment-book
    booking["properties"]["appointments"] = _bundle(_APPOINTMENT, min_entries=1)
    # order-dispatch; its ballot form (`order` for `dispatchedOrders`) is accepted, not published
    schema["properties"]["context"] = {
        "anyOf": [context, booking, model_schema(DispatchContext)]
    }
    schema["properties"]["prefetch"] = {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    key: {"anyOf": [_bundle({"type": "object"}), {"type": "null"}]}
                    for key in (*PREFETCH, ORDERS_KEY)
                    if key != "patient"
                },
            },
            {"type": "null"},
        ]
    }
    return schema


HOOK_REQUEST: dict[str, Any] = _hook_request()


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description + " (OperationOutcome)",
        "content": {"application/fhir+json": {"schema": OPERATION_OUTCOME}},
    }


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: _error("Missing or invalid client JWT; the same body whatever the reason"),
    503: _error("The client JWT could not be checked for replay (the database is unavailable)"),
}
REQUEST_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Not JSON, or a request that breaks CDS Hooks rules"),
    **UNAUTHORIZED,
    404: _error("No such CDS service"),
    408: _error("Request body not received in time"),
    412: _error("Required prefetch missing and not fetchable"),
    413: _error("Request body or one of its arrays is too large"),
}
HOOK_CALL_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": HOOK_REQUEST}}}
}
CARDS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CDS Hooks cards (and, on order-sign, CRD system actions)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["cards"],
                    "properties": {
                        "cards": {"type": "array", "items": {"type": "object"}},
                        "systemActions": {"type": "array", "items": {"type": "object"}},
                    },
                }
            }
        },
    }
}


# --- feedback (CDS Hooks 2.0 §feedback; validated by cds_service/audit/feedback.py) ----------
FEEDBACK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": model_schema(FeedbackRequest)}},
    }
}
FEEDBACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored; unknown card uuids are stored and listed",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["stored"],
                    "properties": {
                        "stored": {"type": "integer"},
                        "unknownCards": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    },
    400: _error("Not JSON, or feedback that breaks CDS Hooks rules"),
    **UNAUTHORIZED,
    404: _error("No such CDS service"),
    408: REQUEST_ERRORS[408],
    413: REQUEST_ERRORS[413],
    503: _error("The audit storage (or the JWT replay check) is unavailable; nothing was stored"),
}


# --- worksheets (api/questionnaires.py): FHIR JSON in and out --------------------------------
def _fhir_resource(description: str, resource_type: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": resource_type}},
    }
    return {"description": description, "content": {"application/fhir+json": {"schema": schema}}}


QUESTIONNAIRE_READ: dict[int | str, dict[str, Any]] = {
    200: _fhir_resource("The worksheet of one (policy, service)", "Questionnaire"),
    **UNAUTHORIZED,
    404: _error("No such Questionnaire"),
}
QUESTIONNAIRE_SEARCH: dict[int | str, dict[str, Any]] = {
    200: _fhir_resource("The worksheets matching url (and version)", "Bundle"),
    **UNAUTHORIZED,
    400: _error("Bad search parameters"),
}
PACKAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _fhir_resource(
        "One PackageBundle (DTR 2.0.1) / packagebundle (DTR 2.1+) per worksheet: the"
        " Questionnaire, then its pre-filled response",
        "Parameters",
    ),
    400: _error("Not a Parameters resource, no coverage, or no DLI / HPC boost order"),
    422: _error("A Coverage whose payer has no policy here, or (DTR 2.0.1) no worksheet"),
    **UNAUTHORIZED,
    408: REQUEST_ERRORS[408],
    413: REQUEST_ERRORS[413],
}
_PARAMETERS = {
    "type": "object",
    "required": ["resourceType", "parameter"],
    "properties": {
        "resourceType": {"const": "Parameters"},
        "parameter": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {
                        "enum": ["coverage", "order", "questionnaire", "context", "patientRecord"]
                    },
                    "resource": {"type": "object"},
                    "valueCanonical": {"type": "string"},
                    "valueString": {"type": "string"},
                },
            },
        },
    },
}
PACKAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/fhir+json": {"schema": _PARAMETERS},
            "application/json": {"schema": _PARAMETERS},
        },
    }
}
