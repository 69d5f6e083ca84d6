"""What the card tells a clinician: guidance for every unknown criterion, written for the people
who read the card (coding hints only after "Coding:"), thresholds stated, and any_of branches that
cannot change the answer shown as not needed."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest

from cds_service.core.card_text import action_text, criterion_line, md, shown_criteria
from cds_service.core.cards import detail
from cds_service.core.case import criterion_view
from cds_service.core.evaluate import Evaluation, evaluate
from cds_service.core.model import Fact, Order, Service, Status
from cds_service.core.policy import Node, Policy
from cds_service.policy_store import load

STORE = load()
RULES = [(p, s, rule) for p in STORE.policies for s in Service if (rule := p.rule(s)) is not None]
RULE_IDS = [f"{p.id}-{s.value}" for p, s, _ in RULES]
LEAVES = [(p, n) for p, _, rule in RULES for n in rule.walk() if n.test is not None]
LEAF_IDS = [n.id for _, n in LEAVES]
# Words a clinician should not need in order to act; they belong in the "Coding:" sentence.
_JARGON = re.compile(
    r"LOINC|SNOMED|CPT|PCS|orderDetail|order detail|reasonReference|extension|"
    r"Observation|Condition\b|Procedure\b|stage\.summary"
)


class NothingKnown:
    """A record that settles nothing: every fact unknown."""

    def __getitem__(self, name: str) -> Fact:
        return Fact(None)


def _order(service: Service) -> Order:
    code = "38242" if service is Service.DLI else "38243"
    return Order(f"ServiceRequest/{service.value}", service, code, "cpt", date(2026, 3, 1),
                 frozenset(), {})  # fmt: skip


@pytest.mark.parametrize(("policy", "service", "rule"), RULES, ids=RULE_IDS)
def test_every_unknown_criterion_shows_its_guidance(
    policy: Policy, service: Service, rule: Node
) -> None:
    evaluation = evaluate(policy, service, _order(service), NothingKnown())  # type: ignore[arg-type]
    card = detail(evaluation)
    unknown = [c for c in evaluation.criteria if c.status is Status.UNKNOWN]
    leaves = {n.id for n in rule.walk() if n.test is not None}
    assert {c.id for c in unknown} >= leaves - {
        n.id for n in rule.walk() if n.when_unknown == "not-met"
    }
    for c in unknown:
        if c.id in leaves:
            assert c.to_settle, f"{c.id} can be unknown and says nothing about what settles it"
            # the app shows every one; the card leads with the first (core/card_text.py)
            assert criterion_view(c)["toSettle"] == action_text(c.to_settle)
    if evaluation.unknown:
        assert md(action_text(evaluation.unknown[0].to_settle or "")) in card


@pytest.mark.parametrize(("policy", "node"), LEAVES, ids=LEAF_IDS)
def test_guidance_is_written_for_clinicians(policy: Policy, node: Node) -> None:
    text = node.to_settle or ""
    action, _, coding = text.partition("Coding:")
    assert not _JARGON.search(action), f"{node.id}: coding detail before 'Coding:': {action!r}"
    assert re.match(r"(Attach|Record|State|If|Ask)\b", action), f"{node.id}: starts with an action"
    if _JARGON.search(text):
        assert coding.strip(), f"{node.id}: the coding hint is its own 'Coding:' sentence"


@pytest.mark.parametrize(("policy", "node"), LEAVES, ids=LEAF_IDS)
def test_a_threshold_is_stated_where_it_decides(policy: Policy, node: Node) -> None:
    """A numeric test shows its threshold in the criterion text (the evidence shows the value)."""
    assert node.test is not None
    op = node.test.operator
    if op in ("lt", "le", "gt", "ge"):
        assert f"{node.test.operand(op):g}" in node.text, node.id


def _fmt(value: float) -> str:
    return f"{value:g}"


@pytest.mark.parametrize(("policy", "node"), LEAVES, ids=LEAF_IDS)
def test_count_windows_in_guidance_match_the_thresholds(policy: Policy, node: Node) -> None:
    """The windows and limits the card states are the ones the facts use."""
    assert node.test is not None
    if node.test.fact not in ("poor_graft_function", "cytopenia_after_car_t"):
        return
    t = STORE.thresholds
    window = f"at least {t.persistence_days} days within the last {t.cytopenia_lookback_days}"
    assert window in (node.to_settle or "")
    reading = node.reading or ""
    for limit in (t.anc_below, t.platelets_below, t.hemoglobin_below):
        assert f"< {_fmt(limit)}" in reading, (node.id, limit)
    assert window in reading


def _evaluated(policy_id: str, service: Service, values: dict[str, Any]) -> Evaluation:
    class Given:
        def __getitem__(self, name: str) -> Fact:
            return Fact(values.get(name))

    policy = next(p for p in STORE.policies if p.id == policy_id)
    return evaluate(policy, service, _order(service), Given())  # type: ignore[arg-type]


def _rendered(policy_id: str, service: Service, values: dict[str, Any]) -> str:
    return detail(_evaluated(policy_id, service, values))


def test_centene_i_b_is_not_needed_when_i_a_carries_the_answer() -> None:
    values = {"hsct_type": "allogeneic", "diagnosis_class": "hematologic-malignancy",
              "donor_chimerism_pct": 100.0, "disease_status": "remission"}  # fmt: skip
    card = _rendered("centene-cp.mp.101", Service.DLI, values)
    evaluation = _evaluated("centene-cp.mp.101", Service.DLI, values)
    shown = shown_criteria(evaluation.criteria)
    line = next(criterion_line(c) for c in shown if c.text.startswith("To convert mixed"))
    assert "- **Not needed** (another option is met): To convert mixed to full donor" in line
    # I.B's sub-criteria are not listed, and nothing before the contraindications is not met
    assert not any(c.text.startswith("Mixed chimerism (latest donor") for c in shown)
    before = next(i for i, c in enumerate(shown) if c.text.startswith("Does not have ANY"))
    assert all(c.status is not Status.NOT_MET for c in shown[:before])
    assert "**Not met**" not in card.split("Does not have ANY")[0]
