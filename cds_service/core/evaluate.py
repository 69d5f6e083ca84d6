"""Facts + policy in, determination out: three-valued evaluation of a criteria tree.

Logic and the none_of convention are documented in cards/README.md. Unknown is never
turned into met; the as-of date lives in the facts, never read from a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from cds_service.core.attestation import Attestations
from cds_service.core.facts import Facts
from cds_service.core.fhir_util import fmt
from cds_service.core.model import Determination, Evidence, Fact, Order, Service, Status
from cds_service.core.policy import FactTest, Node, Policy


@dataclass(frozen=True)
class CriterionResult:
    id: str
    text: str
    citation: str
    status: Status
    depth: int
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    to_settle: str | None = None
    reading: str | None = None
    exclusion: bool = False  # a none_of item: "met" means the excluded thing is absent
    # In an any_of another branch of which is met (or inside such a branch): it cannot change
    # the answer, so the card does not present it as a requirement.
    superseded: bool = False
    # A worksheet answer the record contradicts (the record wins): what to show the clinician.
    conflict: str = ""

    @property
    def attested(self) -> bool:
        """Whether the status rests on a worksheet answer (core/attestation.py)."""
        return self.note.startswith("attested")


@dataclass(frozen=True)
class Evaluation:
    policy: Policy
    service: Service
    order: Order
    determination: Determination
    criteria: tuple[CriterionResult, ...]
    advisories: tuple[str, ...] = ()

    @property
    def unknown(self) -> tuple[CriterionResult, ...]:
        return tuple(
            c
            for c in self.criteria
            if c.status is Status.UNKNOWN and c.to_settle and not c.superseded
        )


def check(test: FactTest, fact: Fact) -> Status:
    """Apply one test to one fact."""
    if fact.value is None:
        return Status.UNKNOWN
    value, op, operand = fact.value, test.operator, test.operand(test.operator)
    if op == "any_prefix":
        codes = value if isinstance(value, tuple) else (str(value),)
        holds = any(code.startswith(tuple(operand)) for code in codes)
    elif op == "equals":
        holds = value == operand
    elif op == "in":
        holds = value in operand
    else:
        number = float(value) if isinstance(value, int | float) else None
        if number is None:
            return Status.UNKNOWN
        holds = {
            "lt": number < operand,
            "le": number <= operand,
            "gt": number > operand,
            "ge": number >= operand,
        }[op]
    return Status.MET if holds else Status.NOT_MET


def combine_all(statuses: list[Status]) -> Status:
    relevant = [s for s in statuses if s is not Status.NOT_APPLICABLE]
    if not relevant:
        return Status.NOT_APPLICABLE
    if Status.NOT_MET in relevant:
        return Status.NOT_MET
    return Status.UNKNOWN if Status.UNKNOWN in relevant else Status.MET


def combine_any(statuses: list[Status]) -> Status:
    relevant = [s for s in statuses if s is not Status.NOT_APPLICABLE]
    if not relevant:
        return Status.NOT_APPLICABLE
    if Status.MET in relevant:
        return Status.MET
    return Status.UNKNOWN if Status.UNKNOWN in relevant else Status.NOT_MET


_NEGATE = {Status.MET: Status.NOT_MET, Status.NOT_MET: Status.MET}


class _Walker:
    def __init__(self, facts: Facts, attested: Attestations | None = None) -> None:
        self.facts = facts
        self.attested = attested or Attestations()
        self.results: list[CriterionResult] = []

    def fact(self, name: str) -> Fact:
        """The record's fact; when the record is silent, what the worksheet answers for it."""
        fact = self.facts[name]
        return fact if fact.known else self.attested.for_fact(name) or fact

    def leaf_fact(self, node: Node, test: FactTest) -> tuple[Fact, str]:
        """The fact a leaf is evaluated on, and a line for the card. An attested answer counts
        where the record leaves the fact unknown. Where the record disagrees, the record wins
        only with positive, dated evidence, which the card names: the absence of a code never
        outweighs an attestation."""
        fact, answer = self.facts[test.fact], self.attested.for_criterion(node.id)
        if answer is None:
            return fact, ""
        if not fact.known:
            return answer, ""
        if check(test, fact) is check(test, answer):
            return fact, ""
        said = answer.evidence[0]
        attested = f'{said.reference} ({fmt(said.when)}) says "{said.summary}"'
        dated = [e for e in fact.evidence if e.when is not None]
        if not dated:
            return answer, (
                f"{attested}; the record holds no dated entry that says otherwise, so the "
                "worksheet answer is used"
            )
        record = "; ".join(f"{e.reference} ({fmt(e.when)}): {e.summary}" for e in dated[:2])
        return (
            fact,
            f"Conflict: {attested}, but the record documents otherwise ({record}); the record is used",
        )

    def node(self, node: Node, depth: int, exclusion: bool = False) -> Status:
        slot = len(self.results)
        evidence: tuple[Evidence, ...] = ()
        note = conflict = ""
        if node.test is not None:
            fact, conflict = self.leaf_fact(node, node.test)
            status, evidence, note = check(node.test, fact), fact.evidence, fact.note
            conflict = conflict or fact.conflict
            if exclusion:
                status = _NEGATE.get(status, status)
            if status is Status.UNKNOWN and node.when_unknown == "not-met":
                status = Status.NOT_MET
            if node.review_if is not None and status is Status.NOT_MET:
                review = check(node.review_if, self.fact(node.review_if.fact))
                status = Status.NOT_MET if review is Status.NOT_MET else Status.UNKNOWN
            if node.applies_if is not None:
                status = self._applicability(node.applies_if, status)
        else:
            parts = [self.node(c, depth + 1) for c in node.all_of or ()]
            parts += [self.node(c, depth + 1, exclusion=True) for c in node.none_of or ()]
            anys = [self.node(c, depth + 1) for c in node.any_of or ()]
            status = combine_any(anys) if node.any_of else combine_all(parts)
            if Status.MET in anys:
                self._supersede(slot, anys)
        result = CriterionResult(
            node.id,
            node.text,
            node.citation,
            status,
            depth,
            evidence,
            note,
            node.to_settle,
            node.reading,
            exclusion,
            conflict=conflict,
        )
        self.results.insert(slot, result)  # a group precedes its children
        return status

    def _supersede(self, slot: int, branches: list[Status]) -> None:
        """Mark the any_of branches that are not met, with everything inside them. Called
        before the group's own result is inserted, so results[slot:] are the branches."""
        index = slot
        for branch in branches:
            end = index + 1
            while end < len(self.results) and self.results[end].depth > self.results[index].depth:
                end += 1
            if branch is not Status.MET:
                for i in range(index, end):
                    self.results[i] = replace(self.results[i], superseded=True)
            index = end

    def _applicability(self, applies_if: FactTest, status: Status) -> Status:
        applies = check(applies_if, self.fact(applies_if.fact))
        if applies is Status.NOT_MET:
            return Status.NOT_APPLICABLE
        if applies is Status.UNKNOWN and status is not Status.MET:
            return Status.UNKNOWN
        return status


_DETERMINATION = {
    Status.MET: Determination.MEETS,
    Status.NOT_APPLICABLE: Determination.MEETS,
    Status.NOT_MET: Determination.DOES_NOT_MEET,
    Status.UNKNOWN: Determination.NEEDS_INFORMATION,
}


def evaluate(
    policy: Policy,
    service: Service,
    order: Order,
    facts: Facts,
    attested: Attestations | None = None,
) -> Evaluation:
    """`attested`: the answers to this (policy, service) worksheet (core/attestation.py)."""
    rule = policy.rule(service)
    if rule is None:
        return Evaluation(policy, service, order, Determination.NOT_ADDRESSED, ())
    walker = _Walker(facts, attested)
    status = walker.node(rule, 0)
    advisories = tuple(
        f"{a.text} ({a.citation})"
        for a in policy.advisories
        if service in a.services and any(check(t, facts[t.fact]) is Status.MET for t in a.when_any)
    )
    criteria = tuple(r for r in walker.results if r.id != rule.id)
    return Evaluation(policy, service, order, _DETERMINATION[status], criteria, advisories)
