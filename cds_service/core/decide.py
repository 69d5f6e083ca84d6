"""The whole decision, pure: orders + patient record + policies in, CDS Hooks response out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.core.attestation import Attestations, Ignored, read_attestations
from cds_service.core.cards import (
    EVALUATIONS_EXT,
    NOT_EVALUATED_EXT,
    CardOptions,
    build_cards,
    coverage_action,
    coverage_note,
    not_evaluated_note,
    other_patient_note,
)
from cds_service.core.evaluate import Evaluation, evaluate
from cds_service.core.facts import Facts, Thresholds
from cds_service.core.model import Order, PatientRecord
from cds_service.core.payer import Route, route, service_date
from cds_service.core.payer_scope import PRIMARY_HOOKS
from cds_service.core.policy import Policy
from cds_service.core.policy_versions import policies_in_force
from cds_service.core.questionnaire import worksheet_for, worksheets
from cds_service.core.record import supporting_responses


@dataclass(frozen=True)
class DecisionInputs:
    """Everything one decision reads; `today` is the request date (an order's as-of date is
    its authoredOn, else today). `unretrieved` names data the EHR could not supply."""

    hook: str
    orders: list[Order]
    record: PatientRecord
    policies: tuple[Policy, ...]
    thresholds: Thresholds
    options: CardOptions
    today: date
    new_uuid: Callable[[], str]
    unretrieved: tuple[str, ...] = ()
    patient_id: str = ""  # the hook's patient: a worksheet for anyone else is not read
    # order reference -> the resources its coverage information goes on instead of the order
    # (the Appointments booked for it, for a CRD 2.0.1 appointment-book client)
    targets: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    # orders the call named by reference that were not evaluated, and why (named on the cards)
    not_evaluated: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Decision:
    body: dict[str, Any]
    evaluations: list[Evaluation]
    route: Route
    # (order reference, policy id) -> uuid of the card that shows that evaluation
    card_uuids: dict[tuple[str, str], str] = field(default_factory=dict)
    # order reference -> CRD coverage-assertion-id of its coverage-information systemAction
    assertion_ids: dict[str, str] = field(default_factory=dict)
    # Worksheet answers (or whole QuestionnaireResponses) not read, and why: ids only, for the log
    ignored_answers: tuple[Ignored, ...] = ()


def decide(inputs: DecisionInputs) -> Decision:
    """Evaluate every order against the routed policies and render the response.

    The cards and coverage information say which data was unretrieved (the record already
    marks those types unavailable, so their facts are unknown).
    """
    on = service_date(inputs.orders, inputs.today)
    # each policy in the version in force on the date of service (core/policy_versions.py)
    routed = route(inputs.record, policies_in_force(inputs.policies, on), on)
    attested, ignored = _attestations(inputs, routed.policies)
    evaluations: list[Evaluation] = []
    for order in inputs.orders:
        facts = Facts(inputs.record, order, order.authored_on or inputs.today, inputs.thresholds)
        for p in routed.policies:
            sheet = worksheet_for(p, order.service)
            answers = attested.get(sheet.id) if sheet is not None else None
            evaluations.append(evaluate(p, order.service, order, facts, answers))
    cards = build_cards(
        evaluations,
        inputs.options,
        inputs.new_uuid,
        inputs.unretrieved,
        comparison=not routed.recognised,
        today=inputs.today,
        hook=inputs.hook,
    )
    if routed.coverage is not None and (routed.in_force > 1 or routed.passed_over):
        for card in cards:
            card["detail"] += "\n\n" + coverage_note(routed)
    if inputs.record.other_patient:
        for card in cards:
            card["detail"] += "\n\n" + other_patient_note(len(inputs.record.other_patient))
    if inputs.not_evaluated:
        for card in cards:
            card["detail"] += "\n\n" + not_evaluated_note(inputs.not_evaluated)
            card["extension"][NOT_EVALUATED_EXT] = [
                {"reference": r, "reason": why} for r, why in inputs.not_evaluated
            ]
    body: dict[str, Any] = {"cards": cards}
    card_uuids = {
        (item["order"], item["policyId"]): card["uuid"]
        for card in cards
        for item in card["extension"][EVALUATIONS_EXT]
    }
    assertion_ids: dict[str, str] = {}
    actions = _coverage_actions(inputs, routed, evaluations, assertion_ids)
    if actions:
        body["systemActions"] = actions
    return Decision(body, evaluations, routed, card_uuids, assertion_ids, tuple(ignored))


def _attestations(
    inputs: DecisionInputs, policies: tuple[Policy, ...]
) -> tuple[dict[str, Attestations], list[Ignored]]:
    """The worksheet answers in the record and in the orders' supportingInfo."""
    responses = list(inputs.record.questionnaire_responses)
    mistyped = list(inputs.record.mistyped_answers)
    for order in inputs.orders:
        responses += supporting_responses(order.resource, mistyped)
    not_valid = [Ignored(response, "invalid answer", link) for response, link in mistyped]
    if not responses:
        return {}, not_valid
    attested, ignored = read_attestations(responses, inputs.patient_id, worksheets(policies))
    return attested, not_valid + ignored


def _coverage_actions(
    inputs: DecisionInputs,
    routed: Route,
    evaluations: list[Evaluation],
    assertion_ids: dict[str, str],
) -> list[dict[str, Any]]:
    """The CRD coverage-information systemActions; fills `assertion_ids` per order."""
    coverage, options = routed.coverage, inputs.options
    if inputs.hook not in PRIMARY_HOOKS or not options.coverage_info or coverage is None:
        # CRD: order-select is a supporting hook, so coverage information goes on the primary
        # hooks only (order-sign, appointment-book, order-dispatch).
        return []
    if not coverage.id:
        return []
    # One assertion id per coverage and response: CRD 2.0.1 (Inferno) requires repetitions
    # for the same coverage to share it, and CRD 2.2 allows it.
    payer_policy, assertion_id = routed.policies[0], inputs.new_uuid()
    actions = []
    for e in evaluations:
        if e.policy is not payer_policy:
            continue
        for target in inputs.targets.get(e.order.reference, (None,)):
            actions.append(
                coverage_action(
                    e,
                    str(coverage.id),
                    inputs.today,
                    assertion_id,
                    "; ".join(inputs.unretrieved),
                    options.crd_2_2,
                    target,
                )
            )
        assertion_ids[e.order.reference] = assertion_id
    return actions
