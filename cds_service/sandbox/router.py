"""Sandbox routes: the page, its static files, and a JSON API that builds hook requests from the
scenario patients (cds_service.scenarios). The page then POSTs each request to
/cds-services/{id} itself, exactly as an EHR would, so the sandbox adds no path around the API.

The worksheet loop (issue 13): /sandbox/api/package builds the DTR $questionnaire-package input
for a scenario (the page POSTs it to /fhir/Questionnaire/$questionnaire-package itself);
/sandbox/api/worksheet stores the completed QuestionnaireResponse in the sandbox FHIR server,
as the EHR's DTR client would; and the next /sandbox/api/request puts the patient's stored
worksheets into the optional prefetch key, as the EHR would (without prefetch the service
fetches them from the FHIR server itself)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cds_service.api.errors import HookError
from cds_service.api.hooks import explain
from cds_service.core import Service
from cds_service.fixture_server import (
    SESSION_HEADER,
    SESSION_PATTERN,
    SESSION_TAG,
    create_fixture_server,
)
from cds_service.policy_store import Knowledge
from cds_service.scenarios import (
    Scenario,
    build_request,
    draft_orders,
    load_scenarios,
    point_at_fhir_server,
    resources,
    service_id,
    set_payer,
)
from cds_service.smart.links import LAUNCH_PATH

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
    # The page's sandbox session: only the worksheets stored under it are sent (none without).
    session: str | None = Field(None, pattern=SESSION_PATTERN)


class LaunchSpec(BaseModel):
    """An EHR launch of the SMART app from a card's `smart` link."""

    model_config = ConfigDict(extra="forbid")
    launchUrl: str  # the card link the page followed (its path must be /smart/launch)
    patient: str = Field(pattern=r"^[A-Za-z0-9\-.]{1,64}$")
    orders: list[str] = Field(default_factory=list, max_length=10)
    session: str | None = Field(None, pattern=SESSION_PATTERN)


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


class PackageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenario: str
    services: Literal["dli", "hpc-boost", "both"] = "dli"
    payer: str = "fixture"


def package_parameters(
    scenario: Scenario, services: tuple[Service, ...], prefetch: dict[str, Any]
) -> dict[str, Any]:
    """DTR $questionnaire-package input: the Coverage (as the hook's prefetch has it, else one
    naming no payer, so every policy's worksheet comes back), the orders and the record."""
    found = resources(scenario.bundle())
    patient = next(r["id"] for r in found if r["resourceType"] == "Patient")
    coverage = next(
        (e["resource"] for e in (prefetch.get("coverage") or {}).get("entry", [])), None
    )
    coverage = coverage or {
        "resourceType": "Coverage",
        "id": f"{patient}-coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient}"},
        "payor": [{"display": "No payer on record"}],
    }
    kinds = ("Condition", "Procedure", "Observation", "Organization")
    record = [{"resource": r} for r in found if r["resourceType"] in kinds]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "coverage", "resource": coverage},
            *({"name": "order", "resource": o} for o in draft_orders(scenario.bundle(), services)),
            {
                "name": "patientRecord",
                "resource": {"resourceType": "Bundle", "type": "collection", "entry": record},
            },
        ],
    }


def mount_sandbox(app: FastAPI, knowledge: Knowledge, fhir: SandboxFhir | None = None) -> None:
    """Add /sandbox (page), /sandbox/static (assets), /sandbox/api/* and, for a self-hosted
    SandboxFhir, the fixture FHIR server at /sandbox/fhir to `app`."""

    @cache
    def scenarios() -> dict[str, Scenario]:  # on first use: building the app reads no fixtures
        return {s.id: s for s in load_scenarios()}

    policies = {p.id: p for p in knowledge.policies}
    router = APIRouter(prefix="/sandbox", include_in_schema=False)
    fixture = create_fixture_server(fhir.token) if fhir is not None and fhir.url is None else None

    def fhir_client() -> httpx.AsyncClient | None:
        """The sandbox FHIR server, with its token (the page never holds it)."""
        if fhir is None:
            return None
        transport = httpx.ASGITransport(app=fixture) if fixture is not None else None
        return httpx.AsyncClient(
            transport=transport,
            base_url=fhir.url or "http://sandbox-fhir",
            headers={"Authorization": f"Bearer {fhir.token}"},
            timeout=10,
        )

    async def stored_worksheets(patient_id: str, session: str | None) -> dict[str, Any] | None:
        """The worksheets this sandbox session stored for the patient (none without a session:
        a request built for someone else's page, or the README loop, sees no one's answers)."""
        client = fhir_client()
        if client is None:
            return None
        query = {"subject": f"Patient/{patient_id}", "status": "completed"}
        query["_tag"] = f"{SESSION_TAG}|{session or 'none'}"
        async with client:
            response = await client.get("/QuestionnaireResponse", params=query)
        return response.json() if response.status_code == 200 else None

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
            if fhir.url is None:  # our own fixture server, seen by this session only
                own += f"/session/{spec.session or 'none'}"
            point_at_fhir_server(request, fhir.url or own, fhir.token)
        else:
            if spec.payer != "fixture":
                set_payer(request["prefetch"], policies.get(spec.payer))
            patient = request["context"]["patientId"]
            stored = await stored_worksheets(patient, spec.session)
            request["prefetch"]["questionnaireResponses"] = stored
        return {"service": f"/cds-services/{service_id(spec.hook)}", "request": request}

    @router.post("/api/package")
    async def make_package(http_request: Request) -> dict[str, Any]:
        try:
            spec = PackageSpec.model_validate_json(await http_request.body())
        except ValidationError as error:
            raise HookError(400, explain(error)) from error
        scenario = scenarios().get(spec.scenario)
        if scenario is None:
            raise HookError(404, f"no scenario {spec.scenario!r}; see GET /sandbox/api/scenarios")
        services = SERVICE_CHOICES[spec.services]
        prefetch = build_request(scenario.bundle(), "order-sign", services)["prefetch"]
        if spec.payer != "fixture":
            set_payer(prefetch, policies.get(spec.payer))
        parameters = package_parameters(scenario, services, prefetch)
        return {"url": "/fhir/Questionnaire/$questionnaire-package", "parameters": parameters}

    @router.post("/api/worksheet")
    async def store_worksheet(http_request: Request, session: str | None = None) -> JSONResponse:
        """Store a completed worksheet in the sandbox FHIR server (FHIR create), under the
        page's sandbox session."""
        client = fhir_client()
        if client is None:
            raise HookError(400, "no sandbox FHIR server is configured to store the worksheet")
        headers = {"Content-Type": "application/fhir+json"}
        if session is not None:
            headers[SESSION_HEADER] = session
        async with client:
            response = await client.post(
                "/QuestionnaireResponse", content=await http_request.body(), headers=headers
            )
        return JSONResponse(response.json(), status_code=response.status_code)

    @router.post("/api/launch")
    async def launch(http_request: Request) -> dict[str, str]:
        """Play the EHR's part of a SMART EHR launch: register the launch context (patient,
        the orders, the sandbox session) with the fixture FHIR server's authorization server,
        and answer the URL to open: the app's launch URL with `iss` and `launch`."""
        try:
            spec = LaunchSpec.model_validate_json(await http_request.body())
        except ValidationError as error:
            raise HookError(400, explain(error)) from error
        if urlsplit(spec.launchUrl).path != LAUNCH_PATH:
            raise HookError(400, f"launchUrl must be this service's {LAUNCH_PATH}")
        client = fhir_client()
        if client is None or fhir is None:
            raise HookError(400, "no sandbox FHIR server is configured to launch the app from")
        context = {"patient": spec.patient, "orders": spec.orders, "session": spec.session}
        async with client:
            response = await client.post("/smart/launch-context", json=context)
        if response.status_code != 200:
            raise HookError(502, "the sandbox FHIR server did not register the launch")
        own = str(http_request.base_url).rstrip("/")
        iss = fhir.url or own + "/sandbox/fhir"
        query = urlencode({"iss": iss, "launch": response.json()["launch"]})
        # the app of the service this page fires at (the card names CDS_PUBLIC_BASE_URL's)
        return {"url": f"{own}{LAUNCH_PATH}?{query}"}

    app.include_router(router)
    if fixture is not None:
        app.mount("/sandbox/fhir", fixture, name="sandbox-fhir")
    app.mount("/sandbox/static", StaticFiles(directory=STATIC_DIR), name="sandbox-static")
