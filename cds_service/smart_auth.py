"""SMART App Launch authorization for the fixture FHIR server (the EHR our browser tests use).

Built on Authlib's OAuth 2.0 authorization server (RFC 6749 authorization-code grant, RFC 7636
PKCE with S256 required, public clients), plus the SMART pieces around it:
`/.well-known/smart-configuration` discovery, the EHR launch context (`launch` -> patient and
the orders the card was about), standalone launch with a patient picker, and `patient` /
`fhirContext` in the token response. Authlib ships integrations for Flask and Django only, so the
Starlette request/response adapter is the few lines in `_Server`.

Synthetic data and a single sandbox clinician: the approve page is the consent screen, not a
login. Codes, launches and tokens live in memory for this process, and expire.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload, JsonRequest, OAuth2Request
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

CLIENT_ID = "dli-hpc-cds-app"
APP_PATH = "/smart/index.html"  # the app's redirect URI path, on the service that serves it
SCOPES = (
    "launch", "launch/patient", "openid", "fhirUser", "online_access",
    "patient/*.read", "patient/*.rs", "patient/QuestionnaireResponse.write",
    "patient/QuestionnaireResponse.c", "patient/QuestionnaireResponse.cu",
)  # fmt: skip
CLINICIAN = "Practitioner/sandbox-clinician"
TOKEN_SECONDS = 3600
CODE_SECONDS = 300
PUBLIC_PATHS = ("/.well-known/smart-configuration", "/smart/authorize", "/smart/token")
INTERNAL_PATHS = ("/smart/launch-context",)  # the EHR's own calls (the sandbox), not an app's


@dataclass(frozen=True)
class Grant:
    """What an access token may do: read and write this patient's records only."""

    patient: str
    scope: str
    orders: tuple[str, ...] = ()
    session: str | None = None
    expires: float = 0.0

    def allows(self, path: str, query: dict[str, str]) -> bool:
        """A search must name this patient; a read or a create is checked on the resource
        (`owns`), once the server has it."""
        parts = [p for p in path.split("/") if p]
        if len(parts) != 1 or (parts[0] == "QuestionnaireResponse" and not query):
            return True
        wanted = query.get("patient") or query.get("subject") or ""
        return wanted.removeprefix("Patient/") == self.patient

    def owns(self, resource: dict[str, Any]) -> bool:
        """The resource is this patient, or is about this patient."""
        if resource.get("resourceType") == "Patient":
            return resource.get("id") == self.patient
        return any(
            isinstance(resource.get(f), dict)
            and resource[f].get("reference") == f"Patient/{self.patient}"
            for f in ("subject", "patient", "beneficiary")
        )


@dataclass
class _Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    context: dict[str, Any]
    code_challenge: str | None
    code_challenge_method: str | None
    expires: float = field(default_factory=lambda: time.monotonic() + CODE_SECONDS)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_code_challenge(self) -> str | None:
        return self.code_challenge

    def get_code_challenge_method(self) -> str | None:
        return self.code_challenge_method


class _App(ClientMixin):  # type: ignore[misc]
    """The one public client: our SMART app, redirecting to its own /smart/index.html."""

    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        url = urlsplit(redirect_uri)
        return url.scheme in ("http", "https") and url.path.endswith(APP_PATH)

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"  # a browser app keeps no secret: PKCE instead

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class _StarletteRequest(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: Request, form: dict[str, str]) -> None:
        super().__init__(request.method, str(request.url), headers=dict(request.headers))
        self._args = dict(request.query_params)
        self._form = form
        self.payload = BasicOAuth2Payload({**self._args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


def _response(status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
    if status == 302:
        return RedirectResponse(dict(headers)["Location"], status_code=302)
    return JSONResponse(body, status_code=status, headers=dict(headers))


class _CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (Authlib's class attribute)

    def save_authorization_code(self, code: str, request: Any) -> None:
        payload = request.payload.data
        self.server.codes[code] = _Code(
            code, CLIENT_ID, payload.get("redirect_uri", ""),
            self.server.client.get_allowed_scope(request.payload.scope or ""),
            request.user, payload.get("code_challenge"), payload.get("code_challenge_method"),
        )  # fmt: skip

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        found = self.server.codes.get(code)
        return found if found is not None and found.expires > time.monotonic() else None

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.server.codes.pop(authorization_code.code, None)  # a code is used once

    def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
        return authorization_code.context


class _Server(AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server with in-memory codes and tokens and the Starlette glue."""

    def __init__(self) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.codes: dict[str, _Code] = {}
        self.tokens: dict[str, Grant] = {}
        self.client = _App()
        self.register_grant(_CodeGrant, [CodeChallenge(required=True)])
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda **_: secrets.token_urlsafe(32))
        )

    def query_client(self, client_id: str) -> _App | None:
        return self.client if client_id == CLIENT_ID else None

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        context = request.authorization_code.context
        self.tokens[token["access_token"]] = Grant(
            context["patient"], token.get("scope", ""), tuple(context.get("orders", ())),
            context.get("session"), time.monotonic() + TOKEN_SECONDS,
        )  # fmt: skip
        # SMART App Launch: the launch context goes with the token response
        token["patient"] = context["patient"]
        if context.get("orders"):
            token["fhirContext"] = [{"reference": r} for r in context["orders"]]
        token["need_patient_banner"] = True

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # already a _StarletteRequest (the form was read asynchronously)

    def create_json_request(self, request: Any) -> JsonRequest:
        raise NotImplementedError  # no JSON endpoints here

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        return _response(status, body, list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None


class SmartAuthorization:
    """The fixture FHIR server's SMART authorization: routes, launches, and token lookup."""

    def __init__(self, store: Callable[[], dict[str, dict[str, dict[str, Any]]]]) -> None:
        self.server = _Server()
        self.launches: dict[str, dict[str, Any]] = {}
        self.store = store

    def is_public(self, path: str) -> bool:
        return path.endswith(PUBLIC_PATHS)

    def is_internal(self, path: str) -> bool:
        return path.endswith(INTERNAL_PATHS)

    def grant_for(self, token: str) -> Grant | None:
        grant = self.server.tokens.get(token) if token else None
        return grant if grant is not None and grant.expires > time.monotonic() else None

    def router(self) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/.well-known/smart-configuration", self.configuration)
        router.add_api_route("/smart/launch-context", self.register_launch, methods=["POST"])
        router.add_api_route("/smart/authorize", self.authorize, methods=["GET", "POST"])
        router.add_api_route("/smart/token", self.token, methods=["POST"])
        return router

    async def configuration(self, request: Request) -> JSONResponse:
        """SMART App Launch 2.x discovery (.well-known/smart-configuration)."""
        base = server_base(request)
        return JSONResponse({
            "authorization_endpoint": f"{base}/smart/authorize",
            "token_endpoint": f"{base}/smart/token",
            "grant_types_supported": ["authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "capabilities": [
                "launch-ehr", "launch-standalone", "client-public", "context-ehr-patient",
                "context-standalone-patient", "permission-patient", "permission-v1",
                "permission-v2",
            ],
        })  # fmt: skip

    async def register_launch(self, request: Request) -> JSONResponse:
        """The EHR (the sandbox, with the server's own token) opens a launch: patient, orders."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("patient"), str):
            return JSONResponse({"error": "a launch needs a patient"}, status_code=400)
        launch = secrets.token_urlsafe(16)
        orders = [o for o in body.get("orders") or () if isinstance(o, str)][:10]
        self.launches[launch] = {"patient": body["patient"], "orders": orders,
                                 "session": body.get("session")}  # fmt: skip
        return JSONResponse({"launch": launch})

    async def authorize(self, request: Request) -> Response:
        """GET: the consent page (with a patient picker on a standalone launch); POST: the
        clinician's decision, answered by redirecting to the app with a code (or an error)."""
        form = await _form(request) if request.method == "POST" else {}
        oauth = _StarletteRequest(request, form)
        try:
            grant = self.server.get_consent_grant(oauth)
        except OAuth2Error as error:
            return _page(400, "Cannot authorize", error.description or error.error)
        args = oauth.args
        if not args.get("code_challenge") or args.get("code_challenge_method") != "S256":
            # SMART App Launch 2: PKCE S256 on every authorization (Authlib checks the verifier)
            return _page(400, "Cannot authorize", "PKCE is required: code_challenge with S256")
        base = server_base(request)
        if args.get("aud", "").rstrip("/") != base:
            return _page(400, "Cannot authorize", f"aud must be this FHIR server ({base})")
        launch = self.launches.get(args.get("launch", "")) if args.get("launch") else None
        if args.get("launch") and launch is None:
            return _page(400, "Cannot authorize", "unknown or expired launch")
        patients = sorted(self.store().get("Patient", {}))
        if request.method == "GET":
            return _consent(launch, patients, args.get("scope", ""))
        context = launch or {"patient": form.get("patient", ""), "orders": []}
        approved = form.get("decision") == "approve" and context["patient"] in patients
        return self.server.create_authorization_response(  # type: ignore[no-any-return]
            oauth, grant_user=context if approved else None, grant=grant
        )

    async def token(self, request: Request) -> Response:
        form = await _form(request)
        return self.server.create_token_response(_StarletteRequest(request, form))  # type: ignore[no-any-return]


def server_base(request: Request) -> str:
    """This FHIR server's base URL as the client sees it (it may be mounted, e.g. at
    /sandbox/fhir: Starlette's base_url leaves the mount out)."""
    url, root = request.url, request.scope.get("root_path", "")
    return f"{url.scheme}://{url.netloc}{root}".rstrip("/")


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (what OAuth sends), first value of each key."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(reversed(parse_qsl(body, keep_blank_values=True)))


def _page(status: int, title: str, text: str) -> HTMLResponse:
    body = f"<!doctype html><title>{escape(title)}</title><h1>{escape(title)}</h1><p>{escape(text)}</p>"
    return HTMLResponse(body, status_code=status)


def _consent(launch: dict[str, Any] | None, patients: list[str], scope: str) -> HTMLResponse:
    """The consent screen; the form posts back to the same URL (its query is the request)."""
    if launch is not None:
        who = f"<p>Patient <strong id='launch-patient'>{escape(launch['patient'])}</strong></p>"
    else:
        options = "".join(f"<option>{escape(p)}</option>" for p in patients)
        who = f"<label>Patient <select name='patient' id='patient'>{options}</select></label>"
    return HTMLResponse(
        "<!doctype html><html lang='en'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Authorize · fixture EHR</title>"
        "<body style='font:15px system-ui,sans-serif;max-width:28rem;margin:2rem auto'>"
        "<h1>Authorize the DLI / HPC boost app</h1>"
        f"<form method='post'>{who}<p>Access: {escape(scope)}</p>"
        "<button name='decision' value='approve' id='approve'>Authorize</button> "
        "<button name='decision' value='deny' id='deny'>Deny</button></form></body></html>"
    )
