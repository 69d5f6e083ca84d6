"""The whole case for the SMART app (pure): the record the app read in, everything the card has
no room for out: every criterion per policy with its evidence, reading and citation, the payer
comparison, the pre-filled worksheets, and the timeline.

Clinician text uses the card's words (core/card_text.py); the resource ids and the coding hints
are kept apart in `integrator` fields, which the app shows in its integrator section.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date
from typing import Any

from cds_service.core.card_text import (
    DETERMINATION_WORDS,
    Context,
    action_text,
    clinical,
    evidence_text,
    next_step,
    note_text,
    status_word,
    summary_text,
)
from cds_service.core.cards import CardOptions, worksheet_canonical
from cds_service.core.decide import DecisionInputs, decide
from cds_service.core.evaluate import CriterionResult, Evaluation
from cds_service.core.facts import Thresholds
from cds_service.core.model import Order, PatientRecord
from cds_service.core.policy import Policy
from cds_service.core.prefill import questionnaire_package
from cds_service.core.timeline import timeline


def criterion_view(c: CriterionResult) -> dict[str, Any]:
    action, _, coding = (c.to_settle or "").partition("Coding:")
    view: dict[str, Any] = {
        "id": c.id,
        "text": c.text,
        "depth": c.depth,
        "status": "not-needed" if c.superseded else c.status.value,
        "statusWord": status_word(c.status, c.superseded),
        "citation": c.citation,
        "evidence": [evidence_text(e) for e in c.evidence],
        "integrator": {"evidence": [e.reference for e in c.evidence], "coding": coding.strip()},
    }
    if c.note and not c.evidence:
        view["note"] = note_text(c.note)
    if action.strip():
        view["toSettle"] = action_text(action)
    if c.reading:
        view["reading"] = c.reading
    if c.conflict:
        view["conflict"] = clinical(c.conflict)
    return view


def evaluation_view(e: Evaluation) -> dict[str, Any]:
    p = e.policy
    canonical = worksheet_canonical(e)
    return {
        "policyId": p.id,
        "payer": p.payer.name,
        "policy": {"number": p.policy.number, "title": p.policy.title, "url": p.policy.url},
        "service": e.service.value,
        "serviceLabel": e.service.label,
        "order": e.order.reference,
        "determination": e.determination.value,
        "determinationWords": DETERMINATION_WORDS[e.determination],
        "summary": summary_text(e),
        "nextStep": next_step(e, Context(worksheet=canonical is not None, app=True)),
        "worksheet": canonical,
        "criteria": [criterion_view(c) for c in e.criteria],
        "advisories": [clinical(a) for a in e.advisories],
    }


def case_view(
    record: PatientRecord,
    orders: list[Order],
    policies: tuple[Policy, ...],
    thresholds: Thresholds,
    today: date,
    new_uuid: Callable[[], str],
) -> dict[str, Any]:
    """The app's whole view of one patient's orders. `comparison` evaluates every policy (as
    if the payer were unknown); `ownPayer` only the policy of the patient's Coverage, if any."""

    def evaluations(of: PatientRecord) -> list[Evaluation]:
        inputs = DecisionInputs("order-select", orders, of, policies, thresholds,
                                CardOptions(), today, new_uuid, patient_id=of.patient_id)  # fmt: skip
        return decide(inputs).evaluations

    own = decide(DecisionInputs("order-select", orders, record, policies, thresholds,
                                CardOptions(), today, new_uuid, patient_id=record.patient_id))  # fmt: skip
    everyone = evaluations(dataclasses.replace(record, coverages=[]))
    packages = questionnaire_package(
        record, orders, policies, thresholds, today, record.patient_id
    )
    return {
        "patient": record.patient_id,
        "ownPayer": [evaluation_view(e) for e in own.evaluations] if own.route.recognised else [],
        "comparison": [evaluation_view(e) for e in everyone],
        "worksheets": [
            {"questionnaire": sheet.questionnaire, "response": response}
            for sheet, response in packages.entries
        ],
        "timeline": [event.as_json() for event in timeline(record, orders)],
    }
