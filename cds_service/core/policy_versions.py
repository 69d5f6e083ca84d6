"""Policy versions by date: the version of a payer policy in force on the date of service.

A policy file holds its current version and, under `earlier_versions`, the versions the payer
replaced, each told as what later revisions added (`omits`: criterion ids, counted against the
current text) and the day it took effect. An order is judged under the version in force on its
date of service (`payer.service_date`: the orders' occurrence, else authoredOn, else today); a
date before every known version gets the oldest known one.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.core.policy import EarlierVersion, Policy

_GROUPS = ("all_of", "any_of", "none_of")
# id(current policy) -> (it, its versions newest first): built once per loaded policy
_VERSIONS: dict[int, tuple[Policy, tuple[Policy, ...]]] = {}


def versions(policy: Policy) -> tuple[Policy, ...]:
    """Every version of `policy` as a Policy of its own, the current one first."""
    cached = _VERSIONS.get(id(policy))
    if cached is None or cached[0] is not policy:
        ordered = sorted(policy.earlier_versions, key=lambda v: v.effective_from, reverse=True)
        built, until = [policy], policy.policy.effective_from
        for earlier in ordered:
            built.append(_earlier(policy, earlier, until))
            until = earlier.effective_from
        cached = _VERSIONS[id(policy)] = (policy, tuple(built))
    return cached[1]


def in_force(policy: Policy, day: date) -> Policy:
    """The version in force on `day`."""
    known = versions(policy)
    for version in known:
        start = version.policy.effective_from
        if start is None or start <= day:
            return version
    return known[-1]


def policies_in_force(policies: tuple[Policy, ...], day: date) -> tuple[Policy, ...]:
    return tuple(in_force(p, day) for p in policies)


def version_named(policy: Policy, version: str) -> Policy | None:
    return next((v for v in versions(policy) if v.policy.version == version), None)


def _earlier(policy: Policy, earlier: EarlierVersion, until: date | None) -> Policy:
    data = policy.model_dump(by_alias=True, exclude_none=True, exclude={"earlier_versions"})
    data["policy"] |= {
        "version": earlier.version,
        "version_note": earlier.version_note,
        "effective_from": earlier.effective_from,
        "in_force_until": until,
    }
    omitted = set(earlier.omits)
    for service, rule in data["services"].items():
        if "id" in rule:
            data["services"][service] = _without(rule, omitted)
    return Policy.model_validate(data)


def _without(node: dict[str, Any], omitted: set[str]) -> dict[str, Any]:
    kept = dict(node)
    for group in _GROUPS:
        children = [_without(c, omitted) for c in node.get(group) or () if c["id"] not in omitted]
        if children:
            kept[group] = children
        else:
            kept.pop(group, None)
    return kept
