"""acute_gvhd_grade, acute_gvhd_active and chronic_gvhd_active (terminology reference §2.3, §3.3,
§5.5, §6.5).

The acute grade is the latest assessment (core/facts/latest.py) across the GVHD Condition's
`stage.summary` (dated by the Condition's recordedDate, else onset) and every `Observation`
whose `focus` is that Condition: its value (the grade), else its organ-stage components, from
which the MAGIC overall grade is computed. No source wins by kind: a newer staging Observation
of grade IV supersedes an older grade II stage summary.
Chronic GVHD severity (`Condition.severity`, NIH mild / moderate / severe) is shown with the
chronic GVHD and is never read as an acute grade.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.facts.latest import Latest, Reading, latest, span
from cds_service.core.fhir_util import codings, condition_active, display, observation_time, ref
from cds_service.core.model import Evidence, Fact


def _acute(system: str, code: str) -> bool:
    return (system == codes.SNOMED and code in codes.ACUTE_GVHD_SNOMED) or (
        system == codes.ICD10CM and code in codes.ACUTE_GVHD_ICD
    )


def _chronic(system: str, code: str) -> bool:
    return (system == codes.SNOMED and code in codes.CHRONIC_GVHD_SNOMED) or (
        system == codes.ICD10CM and code in codes.CHRONIC_GVHD_ICD
    )


def _is_grade_observation(system: str, code: str) -> bool:
    return (system, code) in codes.ACUTE_GRADE_OBSERVATION


def _recorded_grade(condition: Any) -> int | None:
    for stage in condition.stage or ():
        for system, code in codings(stage.summary):
            if system == codes.GVHD_GRADE_SYSTEM and code in codes.ACUTE_GRADES:
                return codes.ACUTE_GRADES[code]
    return None


_GRADES = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "I": 1, "II": 2, "III": 3, "IV": 4}
# "III", "grade III", "Grade 3", "aGVHD grade II", "2": one grade and nothing else that counts.
_GRADE_TEXT = re.compile(
    r"^\s*(?:a?gvhd\s+)?(?:overall\s+)?(?:grade\s+)?([0-4]|IV|I{1,3})\s*$", re.I
)


def grade_value(observation: Any) -> int | None:
    """The acute grade an Observation's value states: our gvhd-grade code (aGVHD-0..IV), an
    integer 0-4, or text / a concept's text that is just the grade (roman or arabic). A chronic
    severity code or any other value is not an acute grade (None)."""
    concept = observation.valueCodeableConcept
    for system, code in codings(concept):
        if system == codes.GVHD_GRADE_SYSTEM:
            return codes.ACUTE_GRADES.get(code)  # a cGVHD-* code is no acute grade
    if observation.valueInteger is not None:
        value = int(observation.valueInteger)
        return value if 0 <= value <= 4 else None
    text = observation.valueString or (concept.text if concept is not None else None)
    match = _GRADE_TEXT.match(str(text)) if text else None
    return _GRADES.get(match.group(1).upper()) if match else None


def magic_grade(stages: dict[str, int]) -> int | None:
    """The MAGIC overall clinical grade from organ stages (Harris et al., Biol Blood Marrow
    Transplant 2016;22:4-10, overall grade table): IV = stage 4 skin, liver or lower GI;
    III = stage 2-3 liver or lower GI; II = stage 3 skin or stage 1 liver, upper GI or lower GI;
    I = stage 1-2 skin only; 0 = no organ involved. Upper GI has stages 0-1 only. All four
    organs must be staged, else the grade cannot be told (None).

    The paper's table itself could not be read here; the rules are checked against two
    independent reproductions of it (a MAGIC grading tool's spec and code, public GitHub source
    files) and the NCI PDQ staging table adapted from Harris et al. (stages, cancer.gov)."""
    if set(stages) != {"skin", "liver", "upper-gi", "lower-gi"}:
        return None
    skin, liver, upper, lower = (stages[k] for k in ("skin", "liver", "upper-gi", "lower-gi"))
    if not (0 <= skin <= 4 and 0 <= liver <= 4 and 0 <= upper <= 1 and 0 <= lower <= 4):
        return None
    if 4 in (skin, liver, lower):
        return 4
    if liver >= 2 or lower >= 2:
        return 3
    if skin == 3 or 1 in (liver, upper, lower):
        return 2
    return 1 if skin >= 1 else 0


def _stages(observation: Any) -> dict[str, int]:
    found: dict[str, int] = {}
    for component in observation.component or ():
        organ = next(
            (
                codes.ORGAN_STAGE_CODES[c]
                for c in codings(component.code)
                if c in codes.ORGAN_STAGE_CODES
            ),
            None,
        )
        if organ is not None and component.valueInteger is not None:
            found[organ] = int(component.valueInteger)
    return found


def _focused_grades(ctx: Context) -> dict[str, list[Reading[int]]]:
    """Condition id -> a reading per grade Observation focused on it (grade None: unreadable)."""
    found: dict[str, list[Reading[int]]] = {}
    for observation, _, _ in ctx.observations(_is_grade_observation):
        when = span(observation_time(observation))
        if when is None:
            continue  # an undated grade cannot be placed against the staging
        grade = grade_value(observation)
        if grade is None:
            grade = magic_grade(_stages(observation))
        how = f"grade {grade}" if grade is not None else "grade could not be read"
        evidence = Evidence(ref(observation), f"GVHD grade observation: {how}", when.start)
        for focus in observation.focus or ():
            target = str(focus.reference or "")
            if target.startswith("Condition/"):
                found.setdefault(target[10:], []).append(Reading(when, grade, evidence))
    return found


def _graded(
    condition: Any, when: date | None, observed: dict[str, list[Reading[int]]]
) -> tuple[int | None, list[Evidence], str]:
    """The condition's grade by the latest assessment (core/facts/latest.py) across its
    recorded stage (dated by recordedDate, else onset) and the grade Observations focused on
    it; a newer staging Observation supersedes an older stage summary, and the reverse."""
    readings = list(observed.get(str(condition.id), ()))
    staged = _recorded_grade(condition)
    staged_on = span(condition.recordedDate) or span(condition.onsetDateTime)
    if staged is not None and staged_on is not None:
        summary = f"Stage summary on the Condition: grade {staged}"
        readings.append(Reading(staged_on, staged, Evidence(ref(condition), summary, when)))
    found = latest(readings)
    if found is None and staged is not None:  # an undated stage, and no dated observation
        found = Latest(staged, ())
    grade = found.value if found is not None else None
    label = f"grade {grade}" if grade is not None else "grade not recorded"
    if found is not None and found.problem:
        label = "grade cannot be decided"
    evidence = [Evidence(ref(condition), f"Active {display(condition.code)}, {label}", when)]
    evidence += [e for e in (found.evidence if found else ()) if e.reference != ref(condition)]
    return grade, evidence, found.problem if found is not None else ""


def acute_gvhd_grade(ctx: Context) -> Fact:
    """Highest grade among active acute GVHD; 0 when none is active.

    An active acute GVHD without a recorded grade (or whose latest grading cannot be read or
    disagrees with itself) makes the value unknown unless another active one is already grade
    III or higher.
    """
    grades: list[int | None] = []
    evidence: list[Evidence] = []
    problems: list[str] = []
    observed: dict[str, list[Reading[int]]] | None = None
    for condition, when, _ in ctx.conditions(_acute):
        if not condition_active(condition):
            continue
        if observed is None:
            observed = _focused_grades(ctx)
        grade, seen, problem = _graded(condition, when, observed)
        grades.append(grade)
        evidence += seen
        if problem:
            problems.append(problem)
    known = [g for g in grades if g is not None]
    if None in grades and max(known, default=0) < 3:
        note = "; ".join(problems) or "active acute GVHD without a recorded grade"
        conflict = "; ".join(p for p in problems if p.startswith("Conflict"))
        return Fact(None, tuple(evidence), note=f"not documented: {note}", conflict=conflict)
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


def _severity(condition: Any) -> str:
    """The chronic GVHD global severity (Condition.severity), shown with the chronic GVHD."""
    found = next(
        (
            codes.SEVERITY_SNOMED[c]
            for s, c in codings(condition.severity)
            if s == codes.SNOMED and c in codes.SEVERITY_SNOMED
        ),
        None,
    )
    return f" (severity: {found})" if found else ""


def _active(ctx: Context, is_kind: Callable[[str, str], bool], kind: str) -> Fact:
    active = [
        Evidence(
            ref(c),
            f"Active {display(c.code)}{_severity(c) if kind == 'chronic' else ''}",
            when,
        )
        for c, when, _ in ctx.conditions(is_kind)
        if condition_active(c)
    ]
    if active:
        return Fact(True, tuple(active))
    if gap := ctx.unreadable("Condition", is_kind):
        return Fact(None, note=gap)
    return Fact(False, note=f"no active {kind} GVHD on record")


OBSERVATION_CODES = codes.ACUTE_GRADE_OBSERVATION
READS = {
    "Condition": lambda s, c: _acute(s, c) or _chronic(s, c),
    "Observation": _is_grade_observation,
}
