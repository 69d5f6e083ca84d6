"""Errors as FHIR OperationOutcome bodies (CDS Hooks 3.0 "Returning OperationOutcome")."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

ISSUE_CODES = {
    400: "invalid",
    401: "security",
    404: "not-found",
    405: "not-supported",
    408: "timeout",
    412: "incomplete",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    500: "exception",
}


def operation_outcome(
    diagnostics: str, code: str = "invalid", severity: str = "error"
) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def error_response(
    status: int, diagnostics: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        operation_outcome(diagnostics, ISSUE_CODES.get(status, "processing")),
        status_code=status,
        media_type="application/fhir+json",
        headers=headers,
    )


class HookError(Exception):
    """A client error to answer with `status` and an OperationOutcome."""

    def __init__(self, status: int, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics

    def __reduce__(self) -> tuple[type[HookError], tuple[int, str]]:
        return HookError, (self.status, self.diagnostics)  # raised in a large-call worker
