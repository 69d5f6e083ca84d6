"""Which policies apply: the payer on the active Coverage, matched by identifier or name alias
(cards/*.yaml `payer`). No Coverage or an unrecognised payer: every policy applies."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cds_service.core.model import PatientRecord
from cds_service.core.policy import Policy


def _normalise(name: str) -> str:
    return re.sub(r"\s+", " ", name.lower().replace("&", " and ")).strip()


@dataclass(frozen=True)
class Route:
    policies: tuple[Policy, ...]
    coverage: Any | None  # the Coverage whose payer was recognised
    recognised: bool


def _payer_organizations(coverage: Any, record: PatientRecord) -> list[tuple[list[Any], str]]:
    """(identifiers, name) for every payor on the Coverage."""
    contained = {
        r.id: r for r in coverage.contained or () if r.get_resource_type() == "Organization"
    }
    found = []
    for payor in coverage.payor or ():
        identifiers = [payor.identifier] if payor.identifier else []
        name = payor.display or ""
        reference = payor.reference or ""
        org = (
            contained.get(reference[1:])
            if reference.startswith("#")
            else record.organizations.get(reference.split("/")[-1])
            if reference.startswith("Organization/")
            else None
        )
        if org is not None:
            identifiers += list(org.identifier or ())
            name = org.name or name
        found.append((identifiers, name))
    return found


def _matches(policy: Policy, identifiers: list[Any], name: str) -> bool:
    wanted = {(i.system, i.value) for i in policy.payer.identifiers}
    if any((i.system, i.value) in wanted for i in identifiers):
        return True
    normalised = _normalise(name)
    return bool(normalised) and any(_normalise(a) in normalised for a in policy.payer.aliases)


def route(record: PatientRecord, policies: tuple[Policy, ...]) -> Route:
    for coverage in record.coverages:
        if coverage.status != "active":
            continue
        for identifiers, name in _payer_organizations(coverage, record):
            matched = tuple(p for p in policies if _matches(p, identifiers, name))
            if matched:
                return Route(matched, coverage, True)
    return Route(policies, None, False)
