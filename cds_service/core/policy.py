"""Schema of a payer policy file (cards/*.yaml). Documented in cards/README.md.

Validation here is strict: unknown keys, unknown facts, values outside a fact's domain,
duplicate ids and a missing citation are all load errors, so a typo never becomes a silently
unmet criterion.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cds_service.core.facts import CATALOGUE
from cds_service.core.model import Service

Scalar = str | float | bool
OPERATORS = ("equals", "in", "lt", "le", "gt", "ge", "any_prefix")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FactTest(_Strict):
    fact: str
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None
    any_prefix: list[str] | None = None

    @model_validator(mode="after")
    def _check(self) -> FactTest:
        spec = CATALOGUE.get(self.fact)
        if spec is None:
            raise ValueError(f"unknown fact {self.fact!r}; facts: {', '.join(sorted(CATALOGUE))}")
        used = [op for op in OPERATORS if self.operand(op) is not None]
        if len(used) != 1:
            raise ValueError(f"test on {self.fact!r} needs exactly one operator of {OPERATORS}")
        op = used[0]
        allowed = {
            "category": ("equals", "in"),
            "boolean": ("equals",),
            "number": ("equals", "lt", "le", "gt", "ge"),
            "codes": ("any_prefix",),
        }[spec.kind]
        if op not in allowed:
            raise ValueError(f"operator {op!r} does not apply to {spec.kind} fact {self.fact!r}")
        values = self.in_ if op == "in" else [self.equals] if op == "equals" else []
        if spec.values is not None and any(v not in spec.values for v in values or ()):
            raise ValueError(f"{self.fact!r} takes {spec.values}, got {values}")
        if spec.kind == "boolean" and not isinstance(self.equals, bool):
            raise ValueError(f"{self.fact!r} is boolean: use equals: true/false")
        return self

    @property
    def operator(self) -> str:
        return next(op for op in OPERATORS if self.operand(op) is not None)

    def operand(self, op: str) -> Any:
        return self.in_ if op == "in" else getattr(self, op)


class Node(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    text: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    reading: str | None = None
    to_settle: str | None = None
    test: FactTest | None = None
    applies_if: FactTest | None = None
    # Where the policy leaves a case to reviewer judgement: when this test holds (or its fact is
    # unknown), a not-met becomes unknown, because the record cannot show the policy says no.
    review_if: FactTest | None = None
    when_unknown: Literal["unknown", "not-met"] = "unknown"
    all_of: list[Node] | None = None
    any_of: list[Node] | None = None
    none_of: list[Node] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Node:
        groups = [g for g in (self.all_of, self.any_of, self.none_of) if g is not None]
        if self.test is not None and groups:
            raise ValueError(f"{self.id}: a node has a test or groups, not both")
        if self.test is None and not groups:
            raise ValueError(f"{self.id}: a node needs a test or all_of / any_of / none_of")
        if self.any_of is not None and (self.all_of is not None or self.none_of is not None):
            raise ValueError(f"{self.id}: any_of cannot be combined with other groups")
        if any(g == [] for g in groups):
            raise ValueError(f"{self.id}: empty group")
        if any(child.test is None for child in self.none_of or ()):
            raise ValueError(f"{self.id}: none_of items must be single tests")
        if self.review_if is not None and not (self.reading and self.to_settle):
            raise ValueError(
                f"{self.id}: review_if needs a reading and a to_settle for the reviewer"
            )
        return self

    def walk(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.walk())]

    @property
    def children(self) -> list[Node]:
        return [*(self.all_of or ()), *(self.any_of or ()), *(self.none_of or ())]


class NotAddressed(_Strict):
    not_addressed: str = Field(min_length=1)


class Identifier(_Strict):
    system: str
    value: str


class Payer(_Strict):
    name: str
    aliases: list[str] = Field(min_length=1)
    identifiers: list[Identifier] = []


class PolicyInfo(_Strict):
    title: str
    number: str
    version: str
    version_note: str
    source_document: str
    url: str = Field(pattern=r"^https://")
    url_note: str | None = None
    # The first day this version is in force; None: always (a policy without earlier versions).
    effective_from: date | None = None
    # Set by the loader on an earlier version (core/policy_versions.py): the day the next took over
    in_force_until: date | None = None


class PriorAuthorization(_Strict):
    value: Literal["auth-needed", "no-auth", "not-stated"]
    citation: str


class Advisory(_Strict):
    id: str
    text: str
    citation: str
    services: list[Service]
    when_any: list[FactTest] = Field(min_length=1)


class EarlierVersion(_Strict):
    """A version the payer replaced, told as what the later revision added (its revision log):
    the current criteria without `omits` (criterion ids, with their sub-criteria)."""

    version: str = Field(min_length=1)
    version_note: str = Field(min_length=1)
    effective_from: date
    citation: str = Field(min_length=1)  # where the source documents the revision
    omits: list[str] = Field(min_length=1)


class Policy(_Strict):
    id: str
    payer: Payer
    policy: PolicyInfo
    prior_authorization: PriorAuthorization
    assumptions: list[str] = []
    advisories: list[Advisory] = []
    services: dict[Service, Node | NotAddressed]
    earlier_versions: list[EarlierVersion] = []

    @model_validator(mode="after")
    def _unique(self) -> Policy:
        if set(self.services) != set(Service):
            raise ValueError(f"{self.id}: services must list both {[s.value for s in Service]}")
        ids = [
            n.id for rule in self.services.values() if isinstance(rule, Node) for n in rule.walk()
        ]
        ids += [a.id for a in self.advisories]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"{self.id}: duplicate criterion ids {duplicates}")
        self._check_versions(set(ids))
        return self

    def _check_versions(self, ids: set[str]) -> None:
        if not self.earlier_versions:
            return
        start = self.policy.effective_from
        if start is None:
            raise ValueError(f"{self.id}: earlier_versions need policy.effective_from")
        versions = [self.policy.version, *(v.version for v in self.earlier_versions)]
        if len(set(versions)) != len(versions):
            raise ValueError(f"{self.id}: policy versions must differ: {versions}")
        for earlier in self.earlier_versions:
            if earlier.effective_from >= start:
                raise ValueError(f"{self.id}: version {earlier.version} must start before {start}")
            if unknown := sorted(set(earlier.omits) - ids):
                raise ValueError(f"{self.id}: version {earlier.version} omits unknown {unknown}")

    def rule(self, service: Service) -> Node | None:
        rule = self.services[service]
        return rule if isinstance(rule, Node) else None

    def not_addressed(self, service: Service) -> str | None:
        """Why the policy states no criteria for `service`, or None when it does."""
        rule = self.services[service]
        return rule.not_addressed if isinstance(rule, NotAddressed) else None
