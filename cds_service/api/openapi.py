"""OpenAPI descriptions of the hook call and its answers, for clients and for the fuzz tests.

Documentation only: the route still reads the raw body and `hooks.parse_hook` validates it, so
an invalid request keeps its 400 + OperationOutcome (never FastAPI's 422 shape).
"""

from __future__ import annotations

from typing import Any

from cds_service.api.discovery import SERVICES

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


def _bundle(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["collection", "searchset"]},
            "entry": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["resource"],
                    "properties": {"resource": resource},
                },
            },
        },
    }


HOOK_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["hook", "hookInstance", "context"],
    "properties": {
        "hook": {"enum": sorted({s.hook for s in SERVICES.values()})},
        "hookInstance": {"type": "string", "format": "uuid"},
        "fhirServer": {"type": "string", "format": "uri"},
        "context": {
            "type": "object",
            "required": ["userId", "patientId", "draftOrders"],
            "properties": {
                "userId": {"type": "string", "pattern": "^Practitioner/[A-Za-z0-9.-]{1,64}$"},
                "patientId": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
                "encounterId": {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"},
                "selections": {"type": "array", "items": {"type": "string"}},
                "draftOrders": _bundle(_ORDER),
            },
        },
        "prefetch": {
            "type": "object",
            "properties": {
                key: {"oneOf": [_bundle({"type": "object"}), {"type": "null"}]}
                for key in ("coverage", "conditions", "procedures", "observations")
            },
        },
        "extension": {"type": "object"},
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description + " (OperationOutcome)",
        "content": {"application/fhir+json": {"schema": OPERATION_OUTCOME}},
    }


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: _error("Missing or invalid client JWT; the same body whatever the reason")
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
_CODING = {
    "type": "object",
    "required": ["system", "code"],
    "properties": {"system": {"type": "string"}, "code": {"type": "string"}},
}
FEEDBACK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["feedback"],
                    "properties": {
                        "feedback": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["card", "outcome", "outcomeTimestamp"],
                                "properties": {
                                    "card": {"type": "string", "format": "uuid"},
                                    "outcome": {"enum": ["accepted", "overridden"]},
                                    "acceptedSuggestions": {
                                        "type": "array",
                                        "items": {"type": "object", "required": ["id"]},
                                    },
                                    "overrideReason": {
                                        "type": "object",
                                        "properties": {
                                            "reason": _CODING,
                                            "userComment": {"type": "string"},
                                        },
                                    },
                                    "outcomeTimestamp": {"type": "string", "format": "date-time"},
                                },
                            },
                        }
                    },
                }
            }
        },
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
    503: _error("The audit storage is unavailable; the feedback was not stored"),
}
