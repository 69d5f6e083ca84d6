"""Units of measure: a lab value's unit, as UCUM code or as the text EHRs send, to a factor.

The conversion itself is UCUM's, through ucumvert (a UCUM grammar and the UCUM unit table
turned into a pint registry): `10*3/uL`, `10*9/L`, `/mm3`, `g/L`, `mg/dL` ... are converted by
the library, never by a table of ours. What is ours is only the step from the unit *texts* EHRs
send in `Quantity.unit` without a `code` ("K/uL", "cells/uL", "10^3/uL", "x10E9/L", "thou/uL")
to UCUM, written as a few spelling rules below. A unit that does not parse, or whose dimension
is not the one asked for, has no factor (None): the value is unreadable, and the fact that
needs it says which result and why.

Hemoglobin in mmol/L (used in the Netherlands and Scandinavia) is an amount of substance: UCUM
converts it to mmol/L, and the molar mass of the hemoglobin monomer (16,114.5 g/mol: Hb as four
Fe-binding subunits, the convention of the mmol/L reporting) turns it into mass; 1 mmol/L =
1.61145 g/dL.

Factors are computed once per unit spelling (a handful per deployment) and kept: a unit string
is not patient data, and parsing one costs about a millisecond.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import cache, lru_cache
from typing import Any

from cds_service.core import codes

HEMOGLOBIN_G_PER_MOL = 16114.5


class Dimension(Enum):
    """What a value measures, and the unit the thresholds are written in."""

    COUNT = "10*9/L"  # cells per volume (ANC, platelets)
    MASS_CONCENTRATION = "g/dL"  # hemoglobin
    FRACTION = "%"  # chimerism


# EHR unit texts -> UCUM. Order matters: the first rules strip decoration, the last rename.
_SPELLINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\s+"), ""),
    (re.compile(r"^[x×*]"), ""),  # "x10*9/L", "×10^9/L"
    (re.compile(r"\^|[eE](?=\d)"), "*"),  # "10^3/uL", "10E3/uL" -> "10*3/uL"
    (re.compile(r"µ|μ|mc(?=[lL]$)"), "u"),  # "µL", "mcL" -> "uL"
    (re.compile(r"^(?:K|k|thou|THOU|thous)/"), "10*3/"),
    (re.compile(r"^(?:cells|cell|CELLS)/"), "{cells}/"),
    (re.compile(r"/cumm$|/cmm$"), "/mm3"),
    (re.compile(r"(?<=/)(?:ul|UL)$"), "uL"),
    (re.compile(r"(?<=/)(?:dl|DL)$"), "dL"),
    (re.compile(r"(?<=/)l$"), "L"),
)


def to_ucum(text: str) -> str:
    """An EHR unit text rewritten as UCUM (a UCUM code passes unchanged)."""
    for pattern, replacement in _SPELLINGS:
        text = pattern.sub(replacement, text)
    return text


@cache
def _registry() -> Any:
    from ucumvert import PintUcumRegistry  # type: ignore[import-untyped]  # no type hints

    return PintUcumRegistry()


def warm_up() -> None:
    """Load the UCUM registry and the usual spellings before the first call (start-up)."""
    for text in ("10*3/uL", "10*9/L", "/uL", "g/dL", "g/L", "mmol/L", "%"):
        for dimension in Dimension:
            factor(text, dimension)


@lru_cache(maxsize=512)
def factor(unit: str, dimension: Dimension) -> float | None:
    """The factor that turns a value in `unit` into the dimension's unit, or None when the
    unit cannot be read or measures something else."""
    if not unit:
        return None
    registry = _registry()
    try:
        given = registry.from_ucum(to_ucum(unit))
        quantity = registry.Quantity(1.0, given)
        if dimension is Dimension.MASS_CONCENTRATION and quantity.check("[substance]/[length]**3"):
            grams_per_litre = quantity.to("mmol/L").magnitude * HEMOGLOBIN_G_PER_MOL / 1000
            return float(grams_per_litre / 10)
        target = registry.from_ucum(dimension.value)
        return float(quantity.to(target).magnitude)
    except Exception:  # any parse or dimensionality error: the unit cannot be read
        return None


def read_quantity(quantity: Any, dimension: Dimension) -> tuple[float | None, str]:
    """(value in the dimension's unit, "") or (None, why it cannot be read) for a Quantity.

    The UCUM code is read when the system is UCUM (or absent); else the unit text."""
    if quantity is None or quantity.value is None:
        return None, "no numeric value"
    system = quantity.system
    code = quantity.code if system in (None, codes.UCUM) else None
    unit = str(code or quantity.unit or "")
    if not unit:
        return None, "no unit"
    found = factor(unit, dimension)
    if found is None:
        return None, f'unit "{unit}" cannot be converted to {dimension.value}'
    return float(quantity.value) * found, ""
