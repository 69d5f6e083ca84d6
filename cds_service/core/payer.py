"""Which policies apply: the payer on the active Coverage, matched by identifier or name alias
(cards/*.yaml `payer`). No Coverage or an unrecognised payer: every policy applies.

EHRs mostly record the payer as a bare `payor: [{"reference": "Organization/123"}]`. It is read,
in order, from the payor's own identifier and display, the contained Organization, and the
Organization in the record (prefetched through `_include=Coverage:payor`, or read from the FHIR
server by the api layer: `payer_organizations_to_read` says which).

A Coverage decides only while it is in force: status active and the date of service (the
orders' occurrence, else authoredOn, else today) inside `Coverage.period`. One that has ended,
has not begun or is not active is passed over, and the card says so. Several in force are
tried in `Coverage.order` (1 = primary; no order after those with one), then by id, so the
answer never depends on the order the EHR listed them in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.core.fhir_util import to_date
from cds_service.core.model import Order, PatientRecord
from cds_service.core.policy import Policy


def _normalise(name: str) -> str:
    return re.sub(r"\s+", " ", name.lower().replace("&", " and ")).strip()


@dataclass(frozen=True)
class Route:
    policies: tuple[Policy, ...]
    coverage: Any | None  # the Coverage whose payer was recognised
    recognised: bool
    in_force: int = 0  # Coverages in force on the date of service
    # (Coverage/<id>, why it was not routed) for every Coverage that is not in force
    passed_over: tuple[tuple[str, str], ...] = ()


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


def _not_in_force(coverage: Any, on: date | None) -> str:
    """Why `coverage` does not decide on `on` ("" when it is in force; `on` None: status only)."""
    if coverage.status != "active":
        return f"status {coverage.status}"
    period = coverage.period
    if on is None or period is None:
        return ""
    start, end = to_date(period.start), to_date(period.end)
    if end is not None and end < on:
        return f"ended {end.isoformat()}, before the date of service {on.isoformat()}"
    if start is not None and start > on:
        return f"begins {start.isoformat()}, after the date of service {on.isoformat()}"
    return ""


def active_coverages(record: PatientRecord, on: date | None = None) -> list[Any]:
    """The Coverages in force on `on` (active, period covering it), primary first
    (Coverage.order, then id: never the order the EHR listed them in)."""
    active = [c for c in record.coverages if not _not_in_force(c, on)]
    return sorted(
        active,
        key=lambda c: (c.order if c.order is not None else float("inf"), str(c.id or "")),
    )


def service_date(orders: list[Order], today: date) -> date:
    """The date of service: the orders' occurrence, else authoredOn, else today (the earliest
    when several orders say different dates, so the result does not depend on their order)."""
    dates = []
    for order in orders:
        occurrence = order.resource.get("occurrenceDateTime")
        period = order.resource.get("occurrencePeriod")
        if occurrence is None and isinstance(period, dict):
            occurrence = period.get("start")
        dates.append(to_date(occurrence) or order.authored_on or today)
    return min(dates, default=today)


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


def route(record: PatientRecord, policies: tuple[Policy, ...], on: date | None = None) -> Route:
    """The policies of the first Coverage in force on `on` whose payer is recognised."""
    passed = tuple(
        sorted((f"Coverage/{c.id}", why) for c in record.coverages if (why := _not_in_force(c, on)))
    )
    in_force = active_coverages(record, on)
    for coverage in in_force:
        for identifiers, name in _payer_organizations(coverage, record):
            matched = tuple(p for p in policies if _matches(p, identifiers, name))
            if matched:
                return Route(matched, coverage, True, len(in_force), passed)
    return Route(policies, None, False, len(in_force), passed)
