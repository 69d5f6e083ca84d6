"""Which policies apply: the payer on the active Coverage, matched by identifier or name alias
(cards/*.yaml `payer`). No Coverage or an unrecognised payer: every policy applies.

EHRs mostly record the payer as a bare `payor: [{"reference": "Organization/123"}]`. It is read,
in order, from the payor's own identifier and display, the contained Organization, and the
Organization in the record (prefetched through `_include=Coverage:payor`, or read from the FHIR
server by the api layer: `payer_organizations_to_read` says which). Several active Coverages are
tried in `Coverage.order` (1 = primary; no order after those with one, as the EHR listed them).
"""

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
    # Last, the plan names: a marketplace or Medicare plan (Ambetter, WellCare) is often recorded
    # under its parent's Organization, or only as the plan in Coverage.class / Coverage.type.
    plans = [c.name or "" for c in coverage.class_fhir or ()]
    plans.append(coverage.type.text or "" if coverage.type is not None else "")
    found += [([], plan) for plan in plans if plan]
    return found


def _matches(policy: Policy, identifiers: list[Any], name: str) -> bool:
    wanted = {(i.system, i.value) for i in policy.payer.identifiers}
    if any((i.system, i.value) in wanted for i in identifiers):
        return True
    normalised = _normalise(name)
    return bool(normalised) and any(_normalise(a) in normalised for a in policy.payer.aliases)


def active_coverages(record: PatientRecord) -> list[Any]:
    """The active Coverages, primary first (Coverage.order; a stable sort keeps the EHR's order
    among Coverages without one, after those with one)."""
    active = [c for c in record.coverages if c.status == "active"]
    return sorted(active, key=lambda c: c.order if c.order is not None else float("inf"))


def payer_organizations_to_read(
    record: PatientRecord, policies: tuple[Policy, ...]
) -> tuple[str, ...]:
    """Ids of the `Organization/{id}` payors the record does not hold, when the payer is not
    recognised without them: the api layer reads these from the EHR's FHIR server."""
    if route(record, policies).recognised:
        return ()
    wanted = []
    for coverage in active_coverages(record):
        for payor in coverage.payor or ():
            reference = payor.reference or ""
            kind, _, org_id = reference.partition("/")
            held = org_id in record.organizations or org_id in wanted
            if kind == "Organization" and org_id and "/" not in org_id and not held:
                wanted.append(org_id)
    return tuple(wanted)


def route(record: PatientRecord, policies: tuple[Policy, ...]) -> Route:
    for coverage in active_coverages(record):
        for identifiers, name in _payer_organizations(coverage, record):
            matched = tuple(p for p in policies if _matches(p, identifiers, name))
            if matched:
                return Route(matched, coverage, True)
    return Route(policies, None, False)
