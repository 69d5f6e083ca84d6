"""Worksheets: one FHIR R4 Questionnaire per (policy, service), generated from its criteria tree.

Nothing is hand-written per item: every leaf criterion becomes one question (linkId and item.code
= the criterion id, text = the question for the fact it tests from core/questions.py, the
criterion's statement and citation as a display item shown under it), typed by the fact the leaf
tests (CATALOGUE kind); every group becomes a group item. A question no SDC population expression
can answer says so first in that display item (OPEN_MARK). A chimerism or
transplant-type question is shown only when it applies (`applies_if` -> enableWhen on the question
of the fact it depends on). Where a report settles the criterion (its `to_settle` starts
"Attach"), an attachment question follows it. The canonical url is the service node id under the
project namespace, and `version` is the policy version, so an answer to an older policy version
is never read as current.

A yes/no answer means that the criterion's statement holds: for an exclusion (none_of) item such
as "No inability to adhere to the regimen", yes means the excluded thing (non-adherence) is
absent, so the question asked is the fact's negated form ("Can the patient adhere to the
treatment regimen ...?"). `fact_value` / `answer_value` translate between answers and fact values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.core.facts import CATALOGUE
from cds_service.core.model import FactValue, Service
from cds_service.core.policy import FactTest, Node, Policy
from cds_service.core.population import initial_expression, root_extensions
from cds_service.core.questions import question

QUESTIONNAIRE_BASE = "http://dli-hpc-cds.org/fhir/Questionnaire/"
CRITERION_SYSTEM = "http://dli-hpc-cds.org/fhir/CodeSystem/criterion"
VALUE_SYSTEM_BASE = "http://dli-hpc-cds.org/fhir/CodeSystem/"
DISPLAY_CATEGORY = "http://hl7.org/fhir/StructureDefinition/questionnaire-displayCategory"
DISPLAY_CATEGORY_SYSTEM = "http://hl7.org/fhir/questionnaire-display-category"
UNIT_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
REPORT_SUFFIX = ".report"
CITATION_SUFFIX = ".citation"
# Shown first under a question no population expression answers: the EHR's record cannot settle
# it, so the clinician answers it from the chart (docs/integration.md §7, "Open questions").
OPEN_MARK = "The record cannot answer this: answer from the chart."

# Facts whose applicability is another fact's answer: donor chimerism applies after an
# allogeneic graft (facts/chimerism.py donor_chimerism_applicable reads hsct_type).
ENABLED_BY: dict[str, tuple[str, dict[Any, str]]] = {
    "donor_chimerism_applicable": ("hsct_type", {True: "allogeneic"}),
    "hsct_type": ("hsct_type", {"allogeneic": "allogeneic", "autologous": "autologous"}),
}
_DISPLAY = {
    "MAC": "Myeloablative",
    "RIC": "Reduced intensity",
    "NMA": "Non-myeloablative",
    "none": "No stem cell transplant",
}
# Answers a person can give that the record has no code for: "no transplant" is a statement
# (documented absence), where the record's silence is only "not documented".
EXTRA_OPTIONS: dict[str, tuple[str, ...]] = {"hsct_type": ("none",)}


def options(fact: str) -> tuple[str, ...]:
    return (*(CATALOGUE[fact].values or ()), *EXTRA_OPTIONS.get(fact, ()))


@dataclass(frozen=True)
class Leaf:
    """One question: the criterion it answers and whether it is an exclusion (none_of)."""

    node: Node
    exclusion: bool

    @property
    def test(self) -> FactTest:
        if self.node.test is None:  # a Leaf is built from test nodes only
            raise TypeError(f"{self.node.id} is a group, not a question")
        return self.node.test


@dataclass(frozen=True)
class Worksheet:
    policy: Policy
    service: Service
    root: Node
    leaves: dict[str, Leaf]  # linkId (= criterion id) -> the criterion it answers
    questionnaire: dict[str, Any]

    @property
    def id(self) -> str:
        return self.root.id

    @property
    def url(self) -> str:
        return QUESTIONNAIRE_BASE + self.root.id

    @property
    def version(self) -> str:
        return self.policy.policy.version

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


def value_system(fact: str) -> str:
    return VALUE_SYSTEM_BASE + fact.replace("_", "-")


def display(value: str) -> str:
    return _DISPLAY.get(value, value.replace("-", " ").capitalize())


def item_type(test: FactTest) -> str:
    kind = CATALOGUE[test.fact].kind
    if kind == "number":
        return "integer" if test.fact == "acute_gvhd_grade" else "decimal"
    return {"category": "choice", "boolean": "boolean", "codes": "string"}[kind]


def _coding(node: Node) -> list[dict[str, str]]:
    return [{"system": CRITERION_SYSTEM, "code": node.id, "display": node.text[:250]}]


def _instructions(link: str, text: str) -> dict[str, Any]:
    """A display item shown under its question or group. SDC's displayCategory "instructions"
    is what renderers show inline under a question: Smart Forms hides a question's display
    children that carry an itemControl ("help" among them, which it does not render), so a
    "help" citation showed on groups only (tests/test_renderer.py)."""
    category = {"coding": [{"system": DISPLAY_CATEGORY_SYSTEM, "code": "instructions"}]}
    return {
        "linkId": link,
        "type": "display",
        "text": text,
        "extension": [{"url": DISPLAY_CATEGORY, "valueCodeableConcept": category}],
    }


def _citation(node: Node, open_mark: bool = False) -> dict[str, Any]:
    """The policy section a question or group comes from. A question's text asks for the fact,
    so its citation also carries the criterion's statement as the policy words it (traceability),
    after the open mark where the record cannot answer the question. One display item, not two:
    Smart Forms shows only the first "instructions" child of a question (its
    getTextDisplayInstructions), so a separate mark would hide the citation."""
    if node.test is None:  # a group's text is already the policy's statement
        return _instructions(node.id + CITATION_SUFFIX, f"Policy: {node.citation}")
    statement = node.text.rstrip(". ")
    text = f"Policy criterion: {statement}. Policy: {node.citation}"
    return _instructions(node.id + CITATION_SUFFIX, f"{OPEN_MARK} {text}" if open_mark else text)


def _question(leaf: Leaf) -> dict[str, Any]:
    node, test = leaf.node, leaf.test
    # the question asks the opposite of its fact where a "yes" means the fact is false
    negated = (test.equals is False) ^ leaf.exclusion
    item: dict[str, Any] = {
        "linkId": node.id,
        "code": _coding(node),
        "text": question(test.fact, negated and CATALOGUE[test.fact].kind == "boolean"),
        "type": item_type(test),
    }
    if item["type"] == "choice":
        item["answerOption"] = [
            {"valueCoding": {"system": value_system(test.fact), "code": v, "display": display(v)}}
            for v in options(test.fact)
        ]
    elif item["type"] == "decimal":
        unit = {"system": "http://unitsofmeasure.org", "code": "%", "display": "% donor cells"}
        item["extension"] = [{"url": UNIT_EXT, "valueCoding": unit}]
    elif item["type"] == "string":
        item["repeats"] = True
    # a yes/no question may ask the opposite of its fact (answer_value): so may its expression
    expression = initial_expression(test.fact, negated)
    if expression is not None:  # SDC population from the EHR (core/population.py)
        item["extension"] = [*item.get("extension", []), expression]
    item["item"] = [_citation(node, open_mark=expression is None)]
    return item


def _report(leaf: Leaf) -> dict[str, Any] | None:
    guidance = (leaf.node.to_settle or "").strip()
    if not guidance.startswith("Attach"):
        return None
    first = guidance.split(". ")[0].rstrip(".")
    return {
        "linkId": leaf.node.id + REPORT_SUFFIX,
        "code": _coding(leaf.node),
        "text": first,
        "type": "attachment",
    }


class _Builder:
    def __init__(self, root: Node) -> None:
        self.leaves: dict[str, Leaf] = {}
        self.by_fact: dict[str, str] = {}  # fact -> linkId of the first question on it
        for node, exclusion in _leaves(root):
            leaf = self.leaves[node.id] = Leaf(node, exclusion)
            self.by_fact.setdefault(leaf.test.fact, node.id)

    def items(self, node: Node) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for child in node.children:
            if child.test is None:
                group = {"linkId": child.id, "code": _coding(child), "text": child.text}
                items.append(
                    {**group, "type": "group", "item": [_citation(child), *self.items(child)]}
                )
                continue
            leaf = self.leaves[child.id]
            enable = self.enable_when(child)
            for item in (_question(leaf), _report(leaf)):
                if item is not None:
                    items.append({**item, "enableWhen": enable} if enable else item)
        return items

    def enable_when(self, node: Node) -> list[dict[str, Any]]:
        """The question is shown when the answer it depends on (applies_if) says it applies."""
        if node.applies_if is None:
            return []
        fact, answers = ENABLED_BY.get(node.applies_if.fact, (node.applies_if.fact, {}))
        source, wanted = self.by_fact.get(fact), answers.get(node.applies_if.equals)
        if source is None or source == node.id or wanted is None:
            return []
        coding = {"system": value_system(fact), "code": wanted}
        return [{"question": source, "operator": "=", "answerCoding": coding}]


def _leaves(node: Node, exclusion: bool = False) -> list[tuple[Node, bool]]:
    if node.test is not None:
        return [(node, exclusion)]
    found = [leaf for c in [*(node.all_of or ()), *(node.any_of or ())] for leaf in _leaves(c)]
    return found + [leaf for c in node.none_of or () for leaf in _leaves(c, True)]


def build_worksheet(policy: Policy, service: Service) -> Worksheet | None:
    root = policy.rule(service)
    if root is None:
        return None
    builder = _Builder(root)
    questionnaire: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": root.id,
        "url": QUESTIONNAIRE_BASE + root.id,
        "version": policy.policy.version,
        "title": f"{policy.payer.name} {policy.policy.number}: {service.label} worksheet",
        "status": "active",
        "subjectType": ["Patient"],
        "publisher": "dli-hpc-cds",
        "description": f"{root.text} ({policy.policy.title}, {policy.policy.version_note}). "
        "Generated from the policy's criteria; answer the questions the record leaves open.",
        "code": _coding(root),
        "extension": root_extensions(service, (leaf.test.fact for leaf in builder.leaves.values())),
        "item": builder.items(root),
    }
    return Worksheet(policy, service, root, builder.leaves, questionnaire)


_CACHE: dict[int, tuple[Policy, tuple[Worksheet, ...]]] = {}


def worksheets(policies: tuple[Policy, ...]) -> tuple[Worksheet, ...]:
    """Every (policy, service) worksheet, built once per loaded policy (policies never change)."""
    found: list[Worksheet] = []
    for policy in policies:
        cached = _CACHE.get(id(policy))
        if cached is None or cached[0] is not policy:
            built = (build_worksheet(policy, s) for s in Service)
            cached = _CACHE[id(policy)] = (policy, tuple(w for w in built if w is not None))
        found += cached[1]
    return tuple(found)


def worksheet_for(policy: Policy, service: Service) -> Worksheet | None:
    return next((w for w in worksheets((policy,)) if w.service is service), None)


def fact_value(leaf: Leaf, answer: Any) -> FactValue | None:
    """The fact value an answer states (None when it is not a valid answer to the question)."""
    kind, test = CATALOGUE[leaf.test.fact].kind, leaf.test
    if kind == "boolean" and isinstance(answer, bool):
        # the question asks whether the statement holds; the fact may be its negation
        return answer ^ (test.equals is False) ^ leaf.exclusion
    if kind == "category" and isinstance(answer, str) and answer in options(test.fact):
        return answer
    if kind == "number" and isinstance(answer, int | float) and not isinstance(answer, bool):
        return float(answer)
    if kind == "codes" and isinstance(answer, str | tuple):
        parts = (answer,) if isinstance(answer, str) else answer
        codes = [c.strip().upper() for p in parts if isinstance(p, str) for c in p.split(",")]
        return tuple(c for c in codes if c) or None
    return None


def answer_value(leaf: Leaf, value: FactValue) -> FactValue:
    """The inverse of fact_value: what a question's answer is for a known fact value."""
    if CATALOGUE[leaf.test.fact].kind == "boolean" and isinstance(value, bool):
        return value ^ (leaf.test.equals is False) ^ leaf.exclusion
    return value
