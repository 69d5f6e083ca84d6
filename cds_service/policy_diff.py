"""`cds-service policy diff <id> <v1> <v2>`: which criteria changed between two versions of a
policy, and which scenario fixtures' answers change.

The answers come from the real service, in process: every fixture's order-sign request (DLI and
HPC boost orders apart), its Coverage's payer set to this policy, answered once with each
version pinned (whatever the date of service says).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from cds_service.core import Node, Policy, Service, version_named
from cds_service.policy_store import Knowledge
from cds_service.scenarios import Scenario, build_request, load_scenarios, service_id, set_payer
from cds_service.settings import Settings

EVALUATIONS_EXT = "dli-hpc-cds.evaluations"


class UnknownVersion(ValueError):
    pass


@dataclass(frozen=True)
class CriterionChange:
    change: str  # added | removed | changed
    id: str
    text: str


@dataclass(frozen=True)
class AnswerChange:
    scenario: str
    service: str
    before: str
    after: str


def pinned(policy: Policy, version: str) -> Policy:
    """That version alone, in force on every date."""
    found = version_named(policy, version)
    if found is None:
        known = [policy.policy.version, *(v.version for v in policy.earlier_versions)]
        raise UnknownVersion(f"{policy.id} has no version {version!r}; versions: {known}")
    return found.model_copy(update={"earlier_versions": []})


def _nodes(policy: Policy) -> dict[str, Node]:
    return {n.id: n for s in Service if (rule := policy.rule(s)) for n in rule.walk()}


def _own(node: Node) -> dict[str, Any]:
    """A node without its children: a changed child is reported as itself."""
    return node.model_dump(exclude={"all_of", "any_of", "none_of"})


def criteria_changes(before: Policy, after: Policy) -> list[CriterionChange]:
    old, new = _nodes(before), _nodes(after)
    changes = [CriterionChange("added", i, new[i].text) for i in new if i not in old]
    changes += [CriterionChange("removed", i, old[i].text) for i in old if i not in new]
    changes += [
        CriterionChange("changed", i, new[i].text)
        for i in new
        if i in old and _own(new[i]) != _own(old[i])
    ]
    return changes


def _determination(body: dict[str, Any], policy_id: str) -> str:
    found = {
        item["determination"]
        for card in body.get("cards") or ()
        for item in (card.get("extension") or {}).get(EVALUATIONS_EXT) or ()
        if item.get("policyId") == policy_id
    }
    return ", ".join(sorted(found)) or "(no answer)"


def _requests(policy: Policy) -> Iterator[tuple[Scenario, Service, dict[str, Any]]]:
    for scenario in load_scenarios():
        for service in Service:
            try:
                request = build_request(scenario.bundle(), "order-sign", (service,))
            except ValueError:
                continue  # no draft order for this service
            set_payer(request["prefetch"], policy)
            yield scenario, service, request


def answer_changes(
    knowledge: Knowledge,
    before: Policy,
    after: Policy,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[int, list[AnswerChange]]:
    """(fixture answers compared, those that differ between the two versions)."""
    return asyncio.run(_answer_changes(knowledge, before, after, progress))


async def _answer_changes(
    knowledge: Knowledge, before: Policy, after: Policy, progress: Callable[[str], None]
) -> tuple[int, list[AnswerChange]]:
    from cds_service.api.app import create_app

    with tempfile.TemporaryDirectory() as data:
        apps = [create_app(_settings(Path(data)), _with(knowledge, p)) for p in (before, after)]
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a)) for a in apps]
        compared, changes = 0, []
        path = f"http://in-process/cds-services/{service_id('order-sign')}"
        try:
            for scenario, service, request in _requests(after):
                progress(f"{scenario.id} {service.value}")
                answers = [
                    _determination((await c.post(path, json=request)).json(), after.id)
                    for c in clients
                ]
                compared += 1
                if answers[0] != answers[1]:
                    changes.append(AnswerChange(scenario.id, service.value, *answers))
        finally:
            for client, app in zip(clients, apps, strict=True):
                await client.aclose()
                app.state.audit.close()
    return compared, changes


def _settings(data_dir: Path) -> Settings:
    settings = Settings()
    settings.data_dir = data_dir  # the comparison's audit records are thrown away
    settings.auth = False  # in process, nobody else calls
    settings.database_url = None
    return settings


def _with(knowledge: Knowledge, policy: Policy) -> Knowledge:
    policies = tuple(policy if p.id == policy.id else p for p in knowledge.policies)
    return Knowledge(policies, knowledge.thresholds)
