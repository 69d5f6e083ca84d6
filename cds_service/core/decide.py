"""The whole decision, pure: orders + patient record + policies in, CDS Hooks response out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.core.cards import CardOptions, build_cards, coverage_action
from cds_service.core.evaluate import Evaluation, evaluate
from cds_service.core.facts import Facts, Thresholds
from cds_service.core.model import Order, PatientRecord
from cds_service.core.payer import Route, route
from cds_service.core.policy import Policy


@dataclass(frozen=True)
class Decision:
    body: dict[str, Any]
    evaluations: list[Evaluation]
    route: Route


def decide(
    hook: str,
    orders: list[Order],
    record: PatientRecord,
    policies: tuple[Policy, ...],
    thresholds: Thresholds,
    options: CardOptions,
    today: date,
    new_uuid: Callable[[], str],
    unretrieved: tuple[str, ...] = (),
) -> Decision:
    """Evaluate every order against the routed policies and render the response.

    The as-of date of an order is its authoredOn, else `today` (the request date).
    `unretrieved` names data the EHR could not supply; the cards and coverage information
    say so (the record already marks those types unavailable, so their facts are unknown).
    """
    routed = route(record, policies)
    evaluations: list[Evaluation] = []
    for order in orders:
        facts = Facts(record, order, order.authored_on or today, thresholds)
        evaluations += [evaluate(p, order.service, order, facts) for p in routed.policies]
    body: dict[str, Any] = {"cards": build_cards(evaluations, options, new_uuid, unretrieved)}
    coverage = routed.coverage
    if hook == "order-sign" and options.coverage_info and coverage is not None and coverage.id:
        # CRD: order-select is a supporting hook, so coverage information goes on order-sign only.
        # One assertion id per coverage and response: CRD 2.0.1 (Inferno) requires repetitions
        # for the same coverage to share it, and CRD 2.2 allows it.
        payer_policy, assertion_id = routed.policies[0], new_uuid()
        actions = [
            coverage_action(
                e,
                str(coverage.id),
                today,
                assertion_id,
                "; ".join(unretrieved),
                options.indeterminate,
            )
            for e in evaluations
            if e.policy is payer_policy
        ]
        if actions:
            body["systemActions"] = actions
    return Decision(body, evaluations, routed)
