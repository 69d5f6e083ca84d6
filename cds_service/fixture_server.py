"""A sandbox FHIR R4 server over the scenario patients in fhir_fixtures/.

It stands in for an EHR's FHIR API so the fallback path (fetching what prefetch lacks) can be
run end to end without an EHR: `GET /{type}/{id}` reads, `GET /{type}?...` searches on the
parameters our prefetch templates use (`patient` / `subject`, `status`, `code` as comma-separated
`system|code` tokens) with `_count` / `_offset` paging and `next` links, and
`POST /QuestionnaireResponse` stores a completed worksheet (validated with fhir.resources) for
this process's lifetime. Every request needs `Authorization: Bearer <token>`. Synthetic data
only; not a general FHIR server.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from pydantic import ValidationError

from cds_service.api.errors import error_response
from cds_service.scenarios import FIXTURES_DIR, load_scenarios, resources
from cds_service.smart_auth import SmartAuthorization, server_base

SEARCH_PARAMETERS = frozenset(
    {"patient", "subject", "status", "code", "_count", "_offset", "_include", "_tag", "_id"}
)
# Sandbox sessions (issue 21): a stored worksheet is tagged with the page's session, and the
# sandbox reads back only its own (search `_tag=<SESSION_TAG>|<session>`).
SESSION_TAG = "http://dli-hpc-cds.org/fhir/CodeSystem/sandbox-session"
SESSION_HEADER = "X-Sandbox-Session"
SESSION_PATTERN = r"^[A-Za-z0-9\-]{1,64}$"
INCLUDES = {"Coverage:payor": ("payor", "Organization")}  # _include value -> (element, type)
PATIENT_REFERENCES = ("subject", "patient", "beneficiary")  # Coverage.beneficiary is `patient`
MAX_COUNT = 100
FHIR_JSON = "application/fhir+json"


def load_resources(folder: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Resource type -> id -> resource, over every scenario bundle."""
    store: dict[str, dict[str, dict[str, Any]]] = {"QuestionnaireResponse": {}}
    for scenario in load_scenarios(folder):
        for resource in resources(scenario.bundle(folder or FIXTURES_DIR)):
            store.setdefault(resource["resourceType"], {})[resource["id"]] = resource
    return store


def _tokens(value: str) -> list[tuple[str | None, str]]:
    """`system|code,code` -> [(system, code), (None, code)] (FHIR token search, OR by comma)."""
    return [
        (tuple(t.split("|", 1)) if "|" in t else (None, t))  # type: ignore[misc]
        for t in value.split(",")
        if t
    ]


def _matches(resource: dict[str, Any], name: str, value: str) -> bool:
    if name in ("patient", "subject"):
        wanted = value if "/" in value else f"Patient/{value}"
        return any(
            isinstance(resource.get(f), dict) and resource[f].get("reference") == wanted
            for f in PATIENT_REFERENCES
        )
    if name == "status":
        return resource.get("status") in value.split(",")
    if name == "_id":  # appointment-book / order-dispatch read their orders by id
        return resource.get("id") in value.split(",")
    if name == "_tag":
        tags = (resource.get("meta") or {}).get("tag") or ()
        return any((system is None or t.get("system") == system) and t.get("code") == code
                   for system, code in _tokens(value) for t in tags)  # fmt: skip
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    codings = concept.get("coding") or ()  # `code` of a medication resource is its drug
    return any(
        (system is None or c.get("system") == system) and c.get("code") == code
        for system, code in _tokens(value)
        for c in codings
    )


def _entry(base: str, resource: dict[str, Any], mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _included(
    store: dict[str, dict[str, dict[str, Any]]], page: list[dict[str, Any]], include: str
) -> list[dict[str, Any]]:
    """The resources `include` names from the page's resources (relative references only)."""
    element, target = INCLUDES[include]
    found: dict[str, dict[str, Any]] = {}
    for resource in page:
        for ref in resource.get(element) or ():
            kind, _, ident = str((ref or {}).get("reference") or "").partition("/")
            if kind == target and ident in store.get(target, {}):
                found[ident] = store[target][ident]
    return list(found.values())


_SESSION_PREFIX = re.compile(r"^/session/([A-Za-z0-9\-]{1,64})(?=/)")


def _enter_session(request: Request) -> str | None:
    """`<base>/session/<id>/...` is this server seen by one sandbox session (the no-prefetch
    mode names it as fhirServer): the rest of the path is served as usual, and only that
    session's stored worksheets are found."""
    scope = request.scope
    root = scope.get("root_path", "")
    local = scope["path"][len(root) :] if scope["path"].startswith(root) else scope["path"]
    match = _SESSION_PREFIX.match(local)
    if match is None:
        return None
    scope["root_path"] = root + match.group(0)
    scope["path"] = root + match.group(0) + local[match.end() :]
    return match.group(1)


def _local_path(request: Request) -> str:
    """The path inside this server (it may be mounted, e.g. at /sandbox/fhir)."""
    path, root = request.url.path, request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def create_fixture_server(
    token: str, folder: Path | None = None, page_size: int = 20, delay: float = 0.0
) -> FastAPI:
    """The fixture FHIR server; `delay` seconds are added to every search (for benchmarks)."""

    @cache
    def store() -> dict[str, dict[str, dict[str, Any]]]:  # on first request, not when mounted
        return load_resources(folder)

    app = FastAPI(title="Fixture FHIR server", docs_url=None, redoc_url=None, openapi_url=None)
    # A SMART app served from another origin calls it from the browser with its Bearer token.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"],
                       allow_headers=["authorization", "content-type"])  # fmt: skip

    smart = SmartAuthorization(store)

    @app.middleware("http")
    async def _bearer(request: Request, call_next: Any) -> Any:
        """The EHR's own token (the CDS service, the sandbox), or an access token an app got by
        the SMART flow (that one reads and writes only its launch patient's records)."""
        request.state.smart = None
        request.state.session = _enter_session(request)
        if request.method == "OPTIONS" or smart.is_public(request.url.path):  # CORS preflight
            return await call_next(request)
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            grant = smart.grant_for(given.removeprefix("Bearer ").strip())
            if grant is None or smart.is_internal(request.url.path):
                response = error_response(401, "a valid 'Authorization: Bearer <token>' is required")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            if not grant.allows(_local_path(request), dict(request.query_params)):
                return error_response(403, "the token's patient context does not cover this request")
            request.state.smart = grant
        return await call_next(request)

    app.state.store = store  # the sandbox reads the worksheets it stored
    app.state.smart = smart
    app.include_router(smart.router())

    @app.post("/QuestionnaireResponse")
    async def create(request: Request) -> JSONResponse:
        """FHIR create: the server assigns the id (a sequence), as a FHIR server does."""
        try:
            resource = await request.json()
            QuestionnaireResponse.model_validate(resource)
        except (ValueError, ValidationError):
            return error_response(400, "the body is not a valid FHIR R4 QuestionnaireResponse")
        grant = request.state.smart
        if grant is not None and not grant.owns(resource):
            return error_response(403, "the token's patient context does not cover this subject")
        stored = store()["QuestionnaireResponse"]
        resource = {**resource, "id": f"ws-{len(stored) + 1}"}
        session = grant.session if grant is not None else request.headers.get(SESSION_HEADER)
        if session and re.match(SESSION_PATTERN, session):
            tag = {"system": SESSION_TAG, "code": session}
            resource["meta"] = {**(resource.get("meta") or {}), "tag": [tag]}
        stored[resource["id"]] = resource
        headers = {
            "Location": f"{server_base(request)}/QuestionnaireResponse/{resource['id']}"
        }
        return JSONResponse(resource, status_code=201, media_type=FHIR_JSON, headers=headers)

    @app.get("/{resource_type}/{resource_id}")
    async def read(resource_type: str, resource_id: str, request: Request) -> JSONResponse:
        resource = store().get(resource_type, {}).get(resource_id)
        grant = request.state.smart
        if resource is None or (grant is not None and not grant.owns(resource)):
            return error_response(404, f"{resource_type}/{resource_id} is not known")
        return JSONResponse(resource, media_type=FHIR_JSON)

    @app.get("/{resource_type}")
    async def search(resource_type: str, request: Request) -> JSONResponse:
        if resource_type not in store():
            return error_response(404, f"resource type {resource_type} is not served")
        if delay:
            await asyncio.sleep(delay)
        params = dict(request.query_params)
        session = request.state.session
        if session is not None and resource_type == "QuestionnaireResponse":
            params["_tag"] = f"{SESSION_TAG}|{session}"  # a session sees its own worksheets only
        unsupported = sorted(set(params) - SEARCH_PARAMETERS)
        if unsupported:
            return error_response(400, f"unsupported search parameters: {', '.join(unsupported)}")
        try:
            count = min(int(params.pop("_count", page_size)), MAX_COUNT)
            offset = int(params.pop("_offset", 0))
            include = params.pop("_include", None)
        except ValueError:
            return error_response(400, "_count and _offset must be integers")
        if include is not None and (
            include not in INCLUDES or not resource_type.startswith(include.split(":")[0])
        ):
            return error_response(400, f"unsupported _include: {include}")
        if count < 1 or offset < 0:
            return error_response(400, "_count must be positive and _offset not negative")
        found = [
            r
            for _, r in sorted(store()[resource_type].items())
            if all(_matches(r, name, value) for name, value in params.items())
        ]
        base = server_base(request)

        def page_url(at: int) -> str:
            return f"{base}/{resource_type}?{urlencode({**params, '_count': count, '_offset': at})}"

        links = [{"relation": "self", "url": page_url(offset)}]
        if offset + count < len(found):
            links.append({"relation": "next", "url": page_url(offset + count)})
        page = found[offset : offset + count]
        entries = [_entry(base, r, "match") for r in page]
        if include is not None:
            entries += [_entry(base, r, "include") for r in _included(store(), page, include)]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "link": links,
            "entry": entries,
        }
        return JSONResponse(bundle, media_type=FHIR_JSON)

    return app


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` with uvicorn on an ephemeral port in a background thread; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the fixture FHIR server did not start")
        time.sleep(0.01)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
