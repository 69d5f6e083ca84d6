"""Which raw FHIR resources can affect a fact, decided from the JSON before validation.

Validating a resource with fhir.resources costs about 0.1 ms; a long record holds thousands the
evaluation never reads (unrelated problems and procedures, blood counts from years ago). Each
fact module declares what it reads in `READS`; a resource none of them reads is skipped
unvalidated. A resource whose codes cannot be sniffed is always validated, so a broken one is
still recorded. tests/test_facts.py checks that facts are identical with and without the filter.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from functools import lru_cache

from cds_service.core.facts import RECORD_READERS, Thresholds, cytopenia
from cds_service.core.model import Order
from cds_service.core.record import Keep

_READS: dict[str, list[Callable[[str, str], bool]]] = {}
for _module in RECORD_READERS:
    for _type, _test in _module.READS.items():
        _READS.setdefault(_type, []).append(_test)


# A long record repeats a few dozen codings thousands of times; the caches are bounded because
# the codings come from the client.
@lru_cache(maxsize=8192)
def reads(resource_type: str, system: str, code: str) -> bool:
    return any(test(system, code) for test in _READS.get(resource_type, ()))


_SKIP, _KEEP, _COUNTS = range(3)


@lru_cache(maxsize=8192)
def _verdict(resource_type: str, codings: tuple[tuple[str, str], ...]) -> int:
    """_SKIP: no fact reads these codes; _COUNTS: only as a blood count; _KEEP: read."""
    relevant = [(s, c) for s, c in codings if reads(resource_type, s, c)]
    if not relevant:
        return _SKIP
    return _COUNTS if all(cytopenia.is_count(s, c) for s, c in relevant) else _KEEP


def relevance_filter(counts_since: date | None) -> Keep:
    """Keep a resource unless no fact can read it. Blood counts dated before `counts_since`
    (the earliest as-of date minus the cytopenia look-back) are outside every window."""

    def keep(resource_type: str, codings: tuple[tuple[str, str], ...], when: date | None) -> bool:
        if resource_type not in _READS or not codings:
            return True  # Coverage, Organization, or nothing to judge by: read it
        verdict = _verdict(resource_type, codings)
        if verdict == _COUNTS and counts_since is not None:
            return when is None or when >= counts_since
        return verdict != _SKIP

    return keep


def relevant_resources(orders: list[Order], today: date, thresholds: Thresholds) -> Keep:
    """The relevance filter for one call: counts older than every order's look-back window
    (from its authoredOn, else `today`) cannot matter either."""
    earliest = min(order.authored_on or today for order in orders)
    return relevance_filter(earliest - timedelta(days=thresholds.cytopenia_lookback_days))
