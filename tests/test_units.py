"""The unit reader (core/units.py) and the latest-assessment rule (core/facts/latest.py),
table-driven: every accepted unit spelling, unreadable ones, and the rule's cases."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B.quantity import Quantity

from cds_service.core.facts.latest import Reading, Span, latest, span
from cds_service.core.model import Evidence
from cds_service.core.units import Dimension, factor, read_quantity

UCUM = "http://unitsofmeasure.org"
COUNT, MASS, FRACTION = Dimension.COUNT, Dimension.MASS_CONCENTRATION, Dimension.FRACTION

# (unit as sent, dimension, factor to 10*9/L, g/dL or %)
ACCEPTED = [
    ("10*3/uL", COUNT, 1.0), ("10*9/L", COUNT, 1.0), ("10*3/mm3", COUNT, 1.0),
    ("10*6/L", COUNT, 0.001), ("/uL", COUNT, 0.001), ("{cells}/uL", COUNT, 0.001),
    ("/mm3", COUNT, 0.001),
    # texts EHRs send in Quantity.unit
    ("cells/uL", COUNT, 0.001), ("cells/µL", COUNT, 0.001), ("K/uL", COUNT, 1.0),
    ("k/uL", COUNT, 1.0), ("10^3/uL", COUNT, 1.0), ("10E3/uL", COUNT, 1.0),
    ("x10*9/L", COUNT, 1.0), ("x10^9/L", COUNT, 1.0), ("×10^9/L", COUNT, 1.0),
    ("10^9/L", COUNT, 1.0), ("thou/uL", COUNT, 1.0), ("/cumm", COUNT, 0.001),
    ("10^3/ul", COUNT, 1.0), ("K/µL", COUNT, 1.0),
    ("g/dL", MASS, 1.0), ("g/dl", MASS, 1.0), ("g/L", MASS, 0.1), ("mg/dL", MASS, 0.001),
    ("mmol/L", MASS, 1.61145),
    ("%", FRACTION, 1.0),
]  # fmt: skip

UNREADABLE = [
    ("furlongs", COUNT), ("cells", COUNT), ("g/dL", COUNT), ("%", COUNT), ("mg", MASS),
    ("10*3/uL", MASS), ("/uL", FRACTION), ("", COUNT), ("K", COUNT), ("mmol", MASS),
]  # fmt: skip


@pytest.mark.parametrize(("unit", "dimension", "expected"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_an_accepted_unit_spelling_converts(
    unit: str, dimension: Dimension, expected: float
) -> None:
    found = factor(unit, dimension)
    assert found == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("unit", "dimension"), UNREADABLE, ids=[f"{u or 'empty'}-{d.name}" for u, d in UNREADABLE]
)
def test_an_unreadable_unit_has_no_factor(unit: str, dimension: Dimension) -> None:
    assert factor(unit, dimension) is None


QUANTITIES: list[tuple[dict[str, Any], Dimension, float | None, str]] = [
    ({"value": 350, "unit": "cells/uL"}, COUNT, 0.35, ""),  # text only, no code
    ({"value": 0.4, "unit": "K/uL", "system": UCUM, "code": "10*3/uL"}, COUNT, 0.4, ""),
    ({"value": 12, "unit": "whatever", "system": UCUM, "code": "g/dL"}, MASS, 12.0, ""),
    ({"value": 120, "unit": "g/L", "system": "http://local/units", "code": "GPL"}, MASS, 12.0, ""),
    ({"value": 2, "unit": "furlongs"}, COUNT, None, 'unit "furlongs" cannot be converted to 10*9/L'),
    ({"value": 2}, COUNT, None, "no unit"),
    ({"unit": "g/dL"}, MASS, None, "no numeric value"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "dimension", "value", "why"), QUANTITIES)
def test_a_quantity_is_read_by_its_ucum_code_else_its_unit_text(
    raw: dict[str, Any], dimension: Dimension, value: float | None, why: str
) -> None:
    found, reason = read_quantity(Quantity.model_validate(raw), dimension)
    assert (found if found is None else pytest.approx(found)) == value and reason == why


# --- the latest assessment -------------------------------------------------------------------
def _r(when: str, value: Any, rid: str) -> Reading[Any]:
    at = span(when)
    assert at is not None
    return Reading(at, value, Evidence(f"Observation/{rid}", f"says {value}", at.start))


LATEST = [
    ("the newest decides", [_r("2025-01-01", 100, "a"), _r("2026-01-01", 72, "b")], 72, ""),
    ("a newer unreadable result: unknown, naming it", [_r("2025-01-01", 100, "a"), _r("2026-01-01", None, "b")], None, "could not be read: Observation/b (2026-01-01)"),
    ("an older unreadable result does not matter", [_r("2025-01-01", None, "a"), _r("2026-01-01", 72, "b")], 72, ""),
    ("same day, disagreeing: conflict", [_r("2026-01-01", 100, "a"), _r("2026-01-01", 72, "b")], None, "Conflict"),
    ("same day, agreeing: that value", [_r("2026-01-01", 72, "a"), _r("2026-01-01", 72, "b")], 72, ""),
    ("a partial date covering the newest day is the same time", [_r("2026-01", 100, "a"), _r("2026-01-15", 72, "b")], None, "Conflict"),
    ("a partial month before the newest day is older", [_r("2025-12", 100, "a"), _r("2026-01-15", 72, "b")], 72, ""),
    ("a year reaches every day in it", [_r("2026", 100, "a"), _r("2026-06-01", 100, "b")], 100, ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "readings", "value", "problem"), LATEST, ids=[c[0] for c in LATEST]
)
def test_the_latest_assessment(
    case: str, readings: list[Reading[Any]], value: Any, problem: str
) -> None:
    for ordering in (readings, readings[::-1]):  # never the order they came in
        found = latest(ordering)
        assert found is not None and found.value == value, case
        assert problem in found.problem and (problem == "") is (found.problem == "")


def test_no_readings_is_no_assessment_and_spans_read_partial_dates() -> None:
    assert latest([]) is None
    assert span("2024-02") == Span(date(2024, 2, 1), date(2024, 2, 29))
    assert span("2025") == Span(date(2025, 1, 1), date(2025, 12, 31))
    assert span("2025-12-31T23:00:00Z") == Span.day(date(2025, 12, 31))
    assert span("garbage") is None and span(None) is None
