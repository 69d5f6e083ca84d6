"""acute_gvhd_grade, acute_gvhd_active and chronic_gvhd_active (terminology reference §2.3, §3.3,
§6.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import codings, condition_active, display, ref
from cds_service.core.model import Evidence, Fact


def _acute(system: str, code: str) -> bool:
    return (system == codes.SNOMED and code in codes.ACUTE_GVHD_SNOMED) or (
        system == codes.ICD10CM and code in codes.ACUTE_GVHD_ICD
    )


def _chronic(system: str, code: str) -> bool:
    return (system == codes.SNOMED and code in codes.CHRONIC_GVHD_SNOMED) or (
        system == codes.ICD10CM and code in codes.CHRONIC_GVHD_ICD
    )


def _grade(condition: Any) -> int | None:
    for stage in condition.stage or ():
        for system, code in codings(stage.summary):
            if system == codes.GVHD_GRADE_SYSTEM and code in codes.ACUTE_GRADES:
                return codes.ACUTE_GRADES[code]
    return None


def acute_gvhd_grade(ctx: Context) -> Fact:
    """Highest grade among active acute GVHD; 0 when none is active.

    An active acute GVHD without a recorded grade makes the value unknown unless another
    active one is already grade III or higher.
    """
    grades: list[int | None] = []
    evidence = []
    for condition, when, _ in ctx.conditions(_acute):
        if not condition_active(condition):
            continue
        grade = _grade(condition)
        grades.append(grade)
        label = f"grade {grade}" if grade is not None else "grade not recorded"
        evidence.append(
            Evidence(ref(condition), f"Active {display(condition.code)}, {label}", when)
        )
    known = [g for g in grades if g is not None]
    if None in grades and max(known, default=0) < 3:
        return Fact(None, tuple(evidence), note="active acute GVHD without a recorded grade")
    if grades:
        return Fact(float(max(known)), tuple(evidence))
    if gap := ctx.unreadable("Condition", _acute):
        return Fact(None, note=gap)
    return Fact(0.0, note="no active acute GVHD on record")


def acute_gvhd_active(ctx: Context) -> Fact:
    """Any active acute GVHD, graded or not (a missing grade does not make it unknown)."""
    return _active(ctx, _acute, "acute")


def chronic_gvhd_active(ctx: Context) -> Fact:
    return _active(ctx, _chronic, "chronic")


def _active(ctx: Context, is_kind: Callable[[str, str], bool], kind: str) -> Fact:
    active = [
        Evidence(ref(c), f"Active {display(c.code)}", when)
        for c, when, _ in ctx.conditions(is_kind)
        if condition_active(c)
    ]
    if active:
        return Fact(True, tuple(active))
    if gap := ctx.unreadable("Condition", is_kind):
        return Fact(None, note=gap)
    return Fact(False, note=f"no active {kind} GVHD on record")


READS = {"Condition": lambda s, c: _acute(s, c) or _chronic(s, c)}
