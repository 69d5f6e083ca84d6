"""The CDS services and their discovery document (CDS Hooks 2.0 §discovery, CRD §2.11): the
three primary CRD hooks (order-sign, appointment-book, order-dispatch) and order-select."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.core import OBSERVATION_CODES, codes

# Observation codes the facts read, declared once in the fact modules, so the client sends only
# those (CRD found-27/28).
_OBS_CODES = ",".join(f"{s}|{c}" for s, c in sorted(OBSERVATION_CODES))
# The conditioning regimen's drugs (RxNorm, codes.REGIMEN_RXNORM): the service infers the
# intensity from them when none is recorded (core/facts/conditioning.py).
_REGIMEN_CODES = ",".join(
    f"{codes.RXNORM}|{c}" for c in sorted(set().union(*codes.REGIMEN_RXNORM.values()))
)

# CDS Hooks 2.0-legal templates: {{context.patientId}} only, type-level search with token params.
PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    # The payer Organization along with the Coverage: EHRs mostly record the payor as a bare
    # reference (CRD found-27: prefetch what the service will need; _include is a plain search
    # parameter, so the template stays 2.0-legal).
    "coverage": "Coverage?patient={{context.patientId}}&status=active&_include=Coverage:payor",
    "conditions": "Condition?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code=" + _OBS_CODES,
    # Optional: fetched like the others when absent, but only from a fhirServer the call names:
    # without one they are skipped, never a 412 (a missing regimen can only leave the inferred
    # intensity unknown, which it is without them).
    "medication-administrations": "MedicationAdministration?patient={{context.patientId}}&code="
    + _REGIMEN_CODES,
    "medication-requests": "MedicationRequest?patient={{context.patientId}}&code=" + _REGIMEN_CODES,
    # Completed worksheets (our per-policy Questionnaires), read back as attested answers.
    "questionnaireResponses": "QuestionnaireResponse?subject={{context.patientId}}&status=completed,amended",
}
# Prefetch key -> the resource type it carries; the evaluation needs these four.
REQUIRED_PREFETCH: dict[str, str] = {
    "coverage": "Coverage",
    "conditions": "Condition",
    "procedures": "Procedure",
    "observations": "Observation",
}
# Keys the evaluation can do without. Absent, they are fetched only from a fhirServer the call
# names (without one they are skipped, never a 412): a missing regimen can only leave the inferred
# intensity unknown, which it is without them, and no worksheet answers leaves criteria open.
OPTIONAL_PREFETCH: dict[str, str] = {
    "medication-administrations": "MedicationAdministration",
    "medication-requests": "MedicationRequest",
    "questionnaireResponses": "QuestionnaireResponse",
}
# Optional keys whose failed fetch is not a gap in the record (so not reported on the cards):
# worksheet answers only add attestations; a failure is logged and the criteria stay as they are.
UNREPORTED_OPTIONAL = frozenset({"questionnaireResponses"})

# CRD dev-5: one boolean per card type returned, coded from cardType; `false` turns that type off.
CONFIGURATION_OPTIONS: list[dict[str, Any]] = [
    {
        "code": "guideline",
        "type": "boolean",
        "name": "Policy criteria cards",
        "description": "Return the cards that show, per payer policy, which medical-necessity "
        "criteria the record meets, with evidence and a link to the policy.",
        "default": True,
    },
    {
        "code": "coverage-info",
        "type": "boolean",
        "name": "Coverage information",
        "description": "On order-sign, appointment-book and order-dispatch, return the "
        "coverage-information system action for each DLI / HPC boost order.",
        "default": True,
    },
    {
        "code": "max-cards",
        "type": "integer",
        "name": "Maximum cards",
        "description": "At most this many cards; further evaluations are merged into the last card.",
        "default": 10,
    },
]


# The orders appointment-book and order-dispatch name only by reference: the CRD 2.2.1 standard
# prefetch templates (HL7/davinci-crd input/resources/CRDServices.json at 2.2.1), key and query
# as CRD has them. A CDS Hooks 2.0 token may name only a first-level primitive context field, so
# no 2.0 template can carry `appointments` (a Bundle) or `dispatchedOrders` (an array): these
# use the FHIRPath tokens of CDS Hooks 3.0 (ballot) that CRD 2.2 builds on. A client that cannot
# fill them leaves the key out, and the service reads the orders from fhirServer itself
# (api/resolve.py).
ORDERS_KEY = "serviceRequests"
APPOINTMENT_PREFETCH = {
    ORDERS_KEY: "ServiceRequest?_id={{context.appointments.entry.resource.basedOn"
    ".resolve().ofType(ServiceRequest).id}}"
}
DISPATCH_PREFETCH = {
    ORDERS_KEY: "ServiceRequest?_id={{context.dispatchedOrders.resolve().ofType(ServiceRequest).id}}"
}


@dataclass(frozen=True)
class ServiceDef:
    id: str
    hook: str
    title: str
    description: str
    # templates beyond PREFETCH: how the hook's referenced orders can be prefetched
    order_prefetch: tuple[tuple[str, str], ...] = ()

    @property
    def prefetch(self) -> dict[str, str]:
        return {**PREFETCH, **dict(self.order_prefetch)}


SERVICES = {
    s.id: s
    for s in (
        ServiceDef(
            "dli-hpc-order-sign",
            "order-sign",
            "DLI / HPC boost medical-necessity check (order sign)",
            "When a donor lymphocyte infusion (CPT 38242) or HPC boost (CPT 38243) is signed, "
            "shows which of the health plan's medical-necessity criteria are met, not met or "
            "undocumented, with evidence and policy citations, and returns CRD coverage information.",
        ),
        ServiceDef(
            "dli-hpc-order-select",
            "order-select",
            "DLI / HPC boost medical-necessity check (order select)",
            "When a donor lymphocyte infusion or HPC boost order is selected, shows which of the "
            "health plan's medical-necessity criteria the record already supports.",
        ),
        ServiceDef(
            "dli-hpc-appointment-book",
            "appointment-book",
            "DLI / HPC boost medical-necessity check (appointment book)",
            "When an infusion appointment is booked for a donor lymphocyte infusion or HPC boost "
            "order, shows which of the health plan's medical-necessity criteria are met, not met "
            "or undocumented, and returns CRD coverage information for the order.",
            tuple(APPOINTMENT_PREFETCH.items()),
        ),
        ServiceDef(
            "dli-hpc-order-dispatch",
            "order-dispatch",
            "DLI / HPC boost medical-necessity check (order dispatch)",
            "When a donor lymphocyte infusion or HPC boost order is sent to a cell-therapy centre, "
            "shows which of the health plan's medical-necessity criteria are met, not met or "
            "undocumented, and returns CRD coverage information for the order.",
            tuple(DISPATCH_PREFETCH.items()),
        ),
    )
}


def discovery_document() -> dict[str, Any]:
    return {
        "services": [
            {
                "hook": s.hook,
                "id": s.id,
                "title": s.title,
                "description": s.description,
                "prefetch": s.prefetch,
                "extension": {
                    # CRD dev-2: every version served, as two nodes (2.0 = 2.0.1 clients,
                    # which send no requestedVersion; 2.2 with requestedVersion).
                    "davinci-crd.version": ["2.0", "2.2"],
                    "davinci-crd.configuration-options": CONFIGURATION_OPTIONS,
                },
            }
            for s in SERVICES.values()
        ]
    }
