"""Sandbox routes: the page, its static files, and a JSON API that builds hook requests from the
scenario patients (cds_service.scenarios). The page then POSTs each request to
/cds-services/{id} itself, exactly as an EHR would, so the sandbox adds no path around the API."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError

from cds_service.api.errors import HookError
from cds_service.api.hooks import explain
from cds_service.core import Service
from cds_service.fixture_server import create_fixture_server
from cds_service.policy_store import Knowledge
from cds_service.scenarios import (
    Scenario,
    build_request,
    load_scenarios,
    point_at_fhir_server,
    service_id,
    set_payer,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
SERVICE_CHOICES: dict[str, tuple[Service, ...]] = {
    "dli": (Service.DLI,),
    "hpc-boost": (Service.HPC_BOOST,),
    "both": (Service.DLI, Service.HPC_BOOST),
}


class RequestSpec(BaseModel):
    """What the page asks for; every field is one control on the page."""

    model_config = ConfigDict(extra="forbid")
    scenario: str
    services: Literal["dli", "hpc-boost", "both"] = "dli"
    hook: Literal["order-sign", "order-select"] = "order-sign"
    payer: str = "fixture"  # "fixture" (the scenario's Coverage), "none", or a policy id
    prefetch: Literal["full", "none"] = "full"


@dataclass(frozen=True)
class SandboxFhir:
    """The FHIR server the "no prefetch" mode sends the service to, and its bearer token.
    With no `url` the app serves the fixture FHIR server itself at /sandbox/fhir."""

    token: str
    url: str | None = None


def prefetch_modes(fhir: SandboxFhir | None) -> list[dict[str, Any]]:
    """The prefetch modes and whether this server can serve them.

    "none" sends no prefetch and names a FHIR server the service must query instead; it is
    offered only when the sandbox has one (SandboxFhir).
    """
    return [
        {"id": "full", "label": "Full prefetch (as the EHR would send it)", "available": True},
        {
            "id": "none",
            "label": "No prefetch: the service reads the fixture FHIR server",
            "available": fhir is not None,
            **({} if fhir else {"reason": "no fixture FHIR server is configured"}),
        },
    ]


def _parse_spec(body: bytes) -> RequestSpec:
    try:
        return RequestSpec.model_validate_json(body)
    except ValidationError as error:
        raise HookError(400, explain(error)) from error


def _scenario_summary(scenario: Scenario) -> dict[str, Any]:
    return {
        "id": scenario.id,
        "title": scenario.title,
        "description": scenario.description,
        "payer": scenario.payer,
        "services": list(scenario.expected),
        "expected": scenario.expected,
    }


def mount_sandbox(app: FastAPI, knowledge: Knowledge, fhir: SandboxFhir | None = None) -> None:
    """Add /sandbox (page), /sandbox/static (assets), /sandbox/api/* and, for a self-hosted
    SandboxFhir, the fixture FHIR server at /sandbox/fhir to `app`."""

    @cache
    def scenarios() -> dict[str, Scenario]:  # on first use: building the app reads no fixtures
        return {s.id: s for s in load_scenarios()}

    policies = {p.id: p for p in knowledge.policies}
    router = APIRouter(prefix="/sandbox", include_in_schema=False)

    @router.get("")
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @router.get("/api/scenarios")
    async def list_scenarios() -> dict[str, Any]:
        return {
            "scenarios": [_scenario_summary(s) for s in scenarios().values()],
            "policies": [{"id": p.id, "payer": p.payer.name} for p in policies.values()],
            "prefetchModes": prefetch_modes(fhir),
        }

    @router.post("/api/request")
    async def make_request(http_request: Request) -> dict[str, Any]:
        spec = _parse_spec(await http_request.body())
        scenario = scenarios().get(spec.scenario)
        if scenario is None:
            raise HookError(404, f"no scenario {spec.scenario!r}; see GET /sandbox/api/scenarios")
        if spec.payer not in ("fixture", "none", *policies):
            raise HookError(400, f"payer must be 'fixture', 'none' or one of {', '.join(policies)}")
        if spec.prefetch == "none" and fhir is None:
            raise HookError(400, "prefetch mode 'none' needs a fixture FHIR server; none is set")
        if spec.prefetch == "none" and spec.payer != "fixture":
            raise HookError(400, "without prefetch the payer comes from the FHIR server's Coverage")
        keys = () if spec.prefetch == "none" else None
        try:
            request = build_request(
                scenario.bundle(), spec.hook, SERVICE_CHOICES[spec.services], keys
            )
        except ValueError as error:
            raise HookError(400, f"{scenario.id}: {error}") from error
        if spec.prefetch == "none" and fhir is not None:
            del request["prefetch"]
            own = str(http_request.base_url).rstrip("/") + "/sandbox/fhir"
            point_at_fhir_server(request, fhir.url or own, fhir.token)
        elif spec.payer != "fixture":
            set_payer(request["prefetch"], policies.get(spec.payer))
        return {"service": f"/cds-services/{service_id(spec.hook)}", "request": request}

    app.include_router(router)
    if fhir is not None and fhir.url is None:
        app.mount("/sandbox/fhir", create_fixture_server(fhir.token), name="sandbox-fhir")
    app.mount("/sandbox/static", StaticFiles(directory=STATIC_DIR), name="sandbox-static")
