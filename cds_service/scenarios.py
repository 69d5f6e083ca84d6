"""Scenario patients (fhir_fixtures/<id>.yaml): load them and build CDS Hooks requests from them.

A scenario file is two YAML documents: a header (story, payer, as-of date, the expected
determination per service and policy with its reason, the intended facts) validated by
`_Header`, then the patient's FHIR resources. The format is in fhir_fixtures/README.md.

Used by the CLI, the tests and the sandbox, so all three send exactly what an EHR would.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import yaml
from pydantic import BaseModel, ConfigDict, Field

from cds_service.api.discovery import ORDERS_KEY, PREFETCH, SERVICES
from cds_service.core import Determination, Policy, Service, recognise
from cds_service.policy_store import bundled

FIXTURES_DIR = bundled("fhir_fixtures")
_BASE = "http://fixtures.dli-hpc-cds.org/fhir"  # the fixtures' fullUrl base
# libyaml when PyYAML was built with it: the fixtures are read at start-up and by many tests
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    description: str
    payer: str | None
    as_of: str
    expected: dict[str, dict[str, str]]  # service -> policy id -> determination
    facts: dict[str, dict[str, Any]]  # "record" / service -> fact name -> intended value
    reasons: dict[str, dict[str, str]] = field(default_factory=dict)  # why each determination
    folder: Path = FIXTURES_DIR

    def bundle(self, folder: Path | None = None) -> dict[str, Any]:
        """The scenario's resources as a FHIR collection Bundle (a fresh copy on every call)."""
        resources: list[dict[str, Any]] = json.loads(_resources(folder or self.folder, self.id))
        return {
            "resourceType": "Bundle",
            "id": f"{self.id}-bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"{_BASE}/{r['resourceType']}/{r['id']}", "resource": r}
                for r in resources
            ],
        }


@lru_cache(maxsize=128)
def _resources(folder: Path, scenario_id: str) -> str:
    """The file's second YAML document as JSON text: tests build thousands of requests from the
    same few files, and decoding JSON is about ten times faster than parsing YAML."""
    text = (folder / f"{scenario_id}.yaml").read_text(encoding="utf-8")
    documents = yaml.load_all(text, Loader=_LOADER)
    next(documents)  # the header
    return json.dumps(next(documents))


class _Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    determination: Determination = Field(alias="is")
    because: str = Field(min_length=1)


class _Header(BaseModel):
    """The first YAML document of a scenario file (format: fhir_fixtures/README.md)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    story: str = Field(min_length=1)
    payer: str | None
    as_of: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    expected: dict[Service, dict[str, _Expectation]]
    facts: dict[str, dict[str, Any]]


def _read(path: Path) -> Scenario:
    text = path.read_text(encoding="utf-8")
    raw = next(yaml.load_all(text, Loader=_LOADER))
    try:
        header = _Header.model_validate(raw)
    except ValueError as error:
        raise ValueError(f"{path.name}: {error}") from error
    return Scenario(
        id=path.stem,
        title=header.title,
        description=header.story,
        payer=header.payer,
        as_of=header.as_of,
        expected={
            s.value: {p: e.determination.value for p, e in d.items()}
            for s, d in header.expected.items()
        },
        facts=header.facts,
        reasons={s.value: {p: e.because for p, e in d.items()} for s, d in header.expected.items()},
        folder=path.parent,
    )


def load_scenarios(folder: Path | None = None) -> list[Scenario]:
    """Every `<id>.yaml` in the fixtures folder, by id: adding a scenario is adding a file.
    The bundled scenarios are read once per process, on first use."""
    if folder is None:
        return list(_bundled_scenarios())
    return [_read(path) for path in sorted(folder.glob("*.yaml"))]


@cache
def _bundled_scenarios() -> tuple[Scenario, ...]:
    return tuple(_read(path) for path in sorted(FIXTURES_DIR.glob("*.yaml")))


def find_scenario(name: str, folder: Path | None = None) -> Scenario:
    scenarios = load_scenarios(folder)
    for scenario in scenarios:
        if scenario.id == name:
            return scenario
    matches = [s for s in scenarios if name in s.id]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(s.id for s in scenarios)
    raise KeyError(f"no single scenario matches {name!r}; scenarios: {known}")


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry") or () if isinstance(e.get("resource"), dict)]


def _searchset(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(items),
        "entry": [{"fullUrl": f"{r['resourceType']}/{r.get('id')}", "resource": r} for r in items],
    }


def _template_codes(key: str) -> set[tuple[str, str]]:
    """The (system, code) pairs a code-filtered prefetch template asks for."""
    query = PREFETCH[key].split("?", 1)[1]
    tokens = parse_qs(query)["code"][0].split(",")
    return {(system, code) for system, _, code in (t.partition("|") for t in tokens)}


def _has_code(resource: dict[str, Any], wanted: set[tuple[str, str]]) -> bool:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    return any((c.get("system"), c.get("code")) in wanted for c in concept.get("coding") or ())


def _coded(
    by_type: dict[str, list[dict[str, Any]]], resource_type: str, key: str
) -> dict[str, Any]:
    """The searchset a code-filtered template `key` returns for `resource_type`."""
    wanted = _template_codes(key)
    return _searchset([r for r in by_type.get(resource_type, []) if _has_code(r, wanted)])


def _coverage_with_payors(by_type: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The active Coverages and, as `_include=Coverage:payor` asks, the Organizations they name."""
    coverages = [c for c in by_type.get("Coverage", []) if c.get("status") == "active"]
    organizations = {o.get("id"): o for o in by_type.get("Organization", [])}
    named = {
        ref.get("reference", "").partition("/")[2]
        for c in coverages
        for ref in c.get("payor") or ()
        if isinstance(ref, dict) and str(ref.get("reference", "")).startswith("Organization/")
    }
    return _searchset(coverages + [o for i, o in organizations.items() if i in named])


# The worksheet statuses the questionnaireResponses template asks for (completed, amended).
_QR_READ = frozenset(
    parse_qs(PREFETCH["questionnaireResponses"].split("?", 1)[1])["status"][0].split(",")
)


def prefetch_for(bundle: dict[str, Any]) -> dict[str, Any]:
    """What an EHR would send for each of our prefetch templates, from a scenario bundle."""
    items = resources(bundle)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in items:
        by_type.setdefault(r["resourceType"], []).append(r)
    patients = by_type.get("Patient", [])
    return {
        "patient": patients[0] if patients else None,
        "coverage": _coverage_with_payors(by_type),
        "conditions": _searchset(by_type.get("Condition", [])),
        "procedures": _searchset(by_type.get("Procedure", [])),
        "observations": _coded(by_type, "Observation", "observations"),
        "medication-administrations": _coded(
            by_type, "MedicationAdministration", "medication-administrations"
        ),
        "medication-requests": _coded(by_type, "MedicationRequest", "medication-requests"),
        "questionnaireResponses": _searchset(
            [r for r in by_type.get("QuestionnaireResponse", []) if r.get("status") in _QR_READ]
        ),
    }


def draft_orders(bundle: dict[str, Any], services: tuple[Service, ...]) -> list[dict[str, Any]]:
    orders = []
    for r in resources(bundle):
        if r["resourceType"] == "ServiceRequest" and r.get("status") == "draft":
            order = recognise(r)
            if order is not None and order.service in services:
                orders.append(copy.deepcopy(r))
    return orders


def set_payer(prefetch: dict[str, Any], policy: Policy | None) -> None:
    """Replace the Coverage's payer with `policy`'s payer, or drop the Coverage (None)."""
    if policy is None:
        prefetch["coverage"] = None
        return
    coverage = next((e["resource"] for e in (prefetch["coverage"] or {}).get("entry", [])), None)
    if coverage is None:
        patient = prefetch.get("patient") or {}
        coverage = {
            "resourceType": "Coverage",
            "id": f"{patient.get('id', 'patient')}-coverage",
            "status": "active",
            "beneficiary": {"reference": f"Patient/{patient.get('id')}"},
        }
    identifier = policy.payer.identifiers[0] if policy.payer.identifiers else None
    org: dict[str, Any] = {"resourceType": "Organization", "id": "payer", "name": policy.payer.name}
    if identifier is not None:
        org["identifier"] = [{"system": identifier.system, "value": identifier.value}]
    coverage = {**coverage, "contained": [org], "payor": [{"reference": "#payer"}]}
    prefetch["coverage"] = _searchset([coverage])


def build_request(
    bundle: dict[str, Any],
    hook: str = "order-sign",
    services: tuple[Service, ...] = (Service.DLI,),
    prefetch_keys: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks request for the scenario's draft orders of `services`: on order-sign and
    order-select as draftOrders; on appointment-book and order-dispatch as the signed orders an
    infusion appointment is booked for / that are sent to a cell-therapy centre.

    `prefetch_keys` limits the prefetch to those keys (None: all of them).
    """
    orders = draft_orders(bundle, services)
    if not orders:
        raise ValueError(f"the scenario has no draft order for {[s.value for s in services]}")
    patient_id = next(r["id"] for r in resources(bundle) if r["resourceType"] == "Patient")
    requester = (orders[0].get("requester") or {}).get("reference") or "Practitioner/unknown"
    prefetch = prefetch_for(bundle)
    if hook in ("appointment-book", "order-dispatch"):
        orders = [{**o, "status": "active"} for o in orders]  # signed before it is booked or sent
        prefetch[ORDERS_KEY] = _searchset(orders)
        context = (_appointment_context if hook == "appointment-book" else _dispatch_context)(
            orders, patient_id, requester
        )
    else:
        context = {
            "userId": requester,
            "patientId": patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"fullUrl": f"ServiceRequest/{o['id']}", "resource": o} for o in orders],
            },
        }
    if hook == "order-select":
        context["selections"] = [f"ServiceRequest/{o['id']}" for o in orders]
    keys = prefetch_keys if prefetch_keys is not None else tuple(prefetch)
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": {k: prefetch[k] for k in keys if k in prefetch},
    }


# Where the fixtures' orders are sent and infused (order-dispatch `performer`).
CELL_THERAPY_CENTRE = "Organization/cell-therapy-centre"


def _appointment_context(
    orders: list[dict[str, Any]], patient_id: str, user: str
) -> dict[str, Any]:
    """appointment-book: one proposed infusion Appointment per order, a week after it was
    written (CRD 2.0.1 profile-appointment: start, end and requestedPeriod 1..1)."""
    entries = []
    for order in orders:
        day = _a_week_after(order)
        appointment = {
            "resourceType": "Appointment",
            "id": f"{order['id']}-infusion",
            "status": "proposed",
            "serviceType": [{"text": "Cellular therapy infusion"}],
            "basedOn": [{"reference": f"ServiceRequest/{order['id']}"}],
            "start": f"{day}T09:00:00Z",
            "end": f"{day}T13:00:00Z",
            "requestedPeriod": [{"start": day, "end": day}],
            "participant": [
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "tentative"},
                {"actor": {"reference": user}, "status": "accepted"},
            ],
        }
        entries.append({"fullUrl": f"Appointment/{appointment['id']}", "resource": appointment})
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return {"userId": user, "patientId": patient_id, "appointments": bundle}


def _a_week_after(order: dict[str, Any]) -> str:
    written = str(order.get("authoredOn") or "2026-01-01")[:10]
    return (date.fromisoformat(written) + timedelta(days=7)).isoformat()


def _dispatch_context(
    orders: list[dict[str, Any]], patient_id: str, user: str
) -> dict[str, Any]:
    """order-dispatch: the orders sent to the cell-therapy centre, one fulfilment Task each."""
    references = [f"ServiceRequest/{o['id']}" for o in orders]
    tasks = [
        {
            "resourceType": "Task",
            "id": f"{order['id']}-dispatch",
            "status": "requested",
            "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                                 "code": "fulfill"}]},
            "focus": {"reference": reference},
            "for": {"reference": f"Patient/{patient_id}"},
            "requester": {"reference": user},
            "owner": {"reference": CELL_THERAPY_CENTRE},
        }
        for order, reference in zip(orders, references, strict=True)
    ]  # fmt: skip
    return {
        "patientId": patient_id,
        "dispatchedOrders": references,
        "performer": CELL_THERAPY_CENTRE,
        "fulfillmentTasks": tasks,
    }


def service_id(hook: str) -> str:
    return next(s.id for s in SERVICES.values() if s.hook == hook)


# What `fire --partial-prefetch` sends: demographics and coverage, as many EHRs do; the clinical
# keys are left for the service to fetch.
PARTIAL_PREFETCH_KEYS = ("patient", "coverage")


def point_at_fhir_server(request: dict[str, Any], fhir_server: str, token: str) -> None:
    """Let the service fetch what the request's prefetch lacks from `fhir_server`."""
    request["fhirServer"] = fhir_server
    request["fhirAuthorization"] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Coverage.read patient/Condition.read patient/Procedure.read "
        "patient/Observation.read patient/Organization.read",
        "subject": "dli-hpc-cds",
    }
