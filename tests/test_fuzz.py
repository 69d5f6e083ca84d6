"""Robustness: generated requests against the real app, in process. Whatever arrives, the
answer is never a 5xx and never a hang, and every 4xx is an OperationOutcome.

- schemathesis generates valid and invalid requests from the service's own OpenAPI;
- hypothesis mutates real scenario requests (any subtree replaced or removed), reaching the
  fact extractors and the evaluator with malformed FHIR;
- hypothesis throws arbitrary and JWT-shaped tokens at the service with auth on.
The request counts are printed in pytest's terminal summary.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.api.app import create_app
from cds_service.core.model import Service
from cds_service.policy_store import load
from cds_service.scenarios import build_request, load_scenarios, service_id
from cds_service.settings import Settings
from tests.clients import EC_KEY, ISS, JKU, JwksServer, auth_client, jwk_set
from tests.fuzz_report import REQUESTS
from tests.test_questionnaires import package_parameters

SIGN = "/cds-services/dli-hpc-order-sign"
EVIL_JKU = "https://attacker.example/jwks.json"
KNOWLEDGE = load()
APP = create_app(Settings(), KNOWLEDGE)
CLIENT = TestClient(APP)
FUZZ = settings(
    deadline=None,  # no timing in unit tests; a hang would still stop the run
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def assert_answer(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, body[:300]
    if status >= 400:
        assert content_type == "application/fhir+json", (status, content_type)
        outcome = json.loads(body)
        assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["diagnostics"]


SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]
CASES = st.one_of(
    *(op.as_strategy(generation_mode=mode) for op in OPERATIONS for mode in GenerationMode)
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_openapi_fuzz_at_least_1000_requests() -> None:
    @settings(FUZZ, max_examples=1050)
    @given(case=CASES)
    def one(case: Any) -> None:
        response = case.call()
        REQUESTS["schemathesis"] += 1
        case.validate_response(response, checks=CHECKS)
        assert_answer(
            response.status_code, response.headers.get("content-type", [""])[0], response.content
        )

    one()
    assert REQUESTS["schemathesis"] >= 1000
    assert {op.label for op in OPERATIONS} == {
        "GET /cds-services",
        "GET /healthz",
        "POST /cds-services/{service_id}",
        "POST /cds-services/{service_id}/feedback",
        "GET /fhir/Questionnaire",
        "GET /fhir/Questionnaire/{questionnaire_id}",
        "POST /fhir/Questionnaire/$questionnaire-package",
        "GET /audit/assertions/{assertion_id}",
    }


SCENARIO_REQUESTS = [
    (f"/cds-services/{service_id(hook)}", build_request(s.bundle(), hook))
    for s in load_scenarios()
    for hook in ("order-sign", "order-select")
]
# appointment-book / order-dispatch: Appointments, dispatched references and the orders prefetch
PRIMARY_HOOK_REQUESTS = [
    (f"/cds-services/{service_id(hook)}", build_request(s.bundle(), hook, tuple(Service)))
    for s in load_scenarios()[::4]
    for hook in ("appointment-book", "order-dispatch")
]
# A resource type R4B does not know (R5's Transport) or does: in `contained`, an entry, anywhere.
RESOURCE_TYPES = st.sampled_from(["Transport", "Condition", "Bundle", "Patient", "Basic", "Nope"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.fixed_dictionaries({"resourceType": RESOURCE_TYPES}, optional={"id": st.text(max_size=4), "contained": st.lists(inner, max_size=2)})
    ),
    max_leaves=12,
)  # fmt: skip
PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
PACKAGE_REQUESTS = [
    (PACKAGE, package_parameters(s.id, service))
    for s in load_scenarios()[:6]
    for service in Service
]
DELETE = object()


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    children = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated_requests(
    draw: st.DrawFn, pool: list[tuple[str, dict[str, Any]]] = SCENARIO_REQUESTS
) -> tuple[str, dict[str, Any]]:
    path, original = draw(st.sampled_from(pool))
    request = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        places = paths(request)
        if not places:  # everything was deleted already
            break
        where = draw(st.sampled_from(places))
        parent = request
        for key in where[:-1]:
            parent = parent[key]
        replacement = draw(st.just(DELETE) | JSON_VALUES)
        if replacement is DELETE:
            del parent[where[-1]]
        else:
            parent[where[-1]] = replacement
    return path, request


def post_mutated(call: tuple[str, dict[str, Any]], counter: str) -> None:
    path, request = call
    response = CLIENT.post(
        path, content=json.dumps(request), headers={"content-type": "application/json"}
    )
    REQUESTS[counter] += 1
    assert_answer(response.status_code, response.headers["content-type"], response.content)


@settings(FUZZ, max_examples=400)
@given(call=mutated_requests())
def test_mutated_scenario_requests(call: tuple[str, dict[str, Any]]) -> None:
    post_mutated(call, "mutations")


@settings(FUZZ, max_examples=300)
@given(call=mutated_requests(PRIMARY_HOOK_REQUESTS))
def test_mutated_primary_hook_requests(call: tuple[str, dict[str, Any]]) -> None:
    """appointment-book and order-dispatch: contexts, Appointments and the `serviceRequests`
    prefetch mutated; never a 5xx, every 4xx an OperationOutcome."""
    post_mutated(call, "primary-hook mutations")


@settings(FUZZ, max_examples=300)
@given(call=mutated_requests(PACKAGE_REQUESTS))
def test_mutated_questionnaire_package_requests(call: tuple[str, dict[str, Any]]) -> None:
    """Issue 24: $questionnaire-package answered 500 to 8 of 6,000 generated bodies."""
    post_mutated(call, "package mutations")


JWKS = JwksServer({JKU: jwk_set(("ec-1", EC_KEY))})
SECURED = auth_client(KNOWLEDGE, JWKS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


CLAIM = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.none(),
    st.lists(st.text(max_size=5), max_size=2),
)
JWT_SHAPED = st.builds(
    lambda header, claims, signature: ".".join(
        (b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature))
    ),
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["none", "HS256", "ES384", "RS384", "PS512"]) | CLAIM},
        optional={
            "kid": st.sampled_from(["ec-1"]) | CLAIM,
            "typ": st.just("JWT") | CLAIM,
            "jku": st.sampled_from([JKU, EVIL_JKU]) | CLAIM,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "iss": st.just(ISS) | CLAIM,
            "aud": st.just("https://cds.example.org" + SIGN) | CLAIM,
            "exp": CLAIM,
            "iat": CLAIM,
            "jti": CLAIM,
            "nbf": CLAIM,
        },
    ),
    st.binary(max_size=120),
)
TOKENS = JWT_SHAPED | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=200)


@settings(FUZZ, max_examples=300)
@given(token=TOKENS, scheme=st.sampled_from(["Bearer", "bearer", "Basic", ""]))
def test_arbitrary_tokens_are_refused(token: str, scheme: str) -> None:
    response = SECURED.get("/cds-services", headers={"Authorization": f"{scheme} {token}"})
    REQUESTS["tokens"] += 1
    assert response.status_code == 401
    assert_answer(response.status_code, response.headers["content-type"], response.content)
    assert EVIL_JKU not in JWKS.requested
