"""disease_status: the latest dated status of the malignancy after the index transplant.

Sources (terminology reference §6.3): the mCODE disease-status Observation (LOINC 97509-4);
Conditions whose code carries status (ICD-10-CM final character x2 relapse / x1 or "A"
remission / x0 not in remission; SNOMED relapse, refractory and remission disorders); and
Condition.clinicalStatus relapse / recurrence / remission on a hematologic malignancy.
Only evidence dated after the index transplant counts, so an x0 code is read as refractory
disease only when it was recorded after the transplant. Latest date wins; on the same date an
Observation beats a Condition.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.facts.diagnosis import HEME, classify_coding
from cds_service.core.fhir_util import clinical_status, codings, display, fmt, ref
from cds_service.core.model import Evidence, Fact

_RELAPSE_CHARACTER = {"0": "refractory", "1": "remission", "2": "relapsed"}


def coded_status(system: str, code: str) -> str | None:
    """Disease status carried by one diagnosis code, if any."""
    if system == codes.SNOMED:
        if code in codes.RELAPSE_SNOMED:
            return "relapsed"
        if code in codes.REFRACTORY_SNOMED:
            return "refractory"
        if code in codes.REMISSION_SNOMED:
            return "remission"
        return None
    if system != codes.ICD10CM:
        return None
    category = codes.icd_c_category(code)
    if category is None:
        return None
    if 81 <= category <= 85:  # lymphoma: final "A" (and C84.7B) = in remission; no relapse code
        return (
            "remission" if (code.endswith("A") and code != "C84.7A") or code == "C84.7B" else None
        )
    has_status_character = "." in code and len(code.split(".")[1]) == 2
    if (category in (86, 88) or 90 <= category <= 95) and has_status_character:
        return _RELAPSE_CHARACTER.get(code[-1])
    return None


def _relevant(system: str, code: str) -> bool:
    return coded_status(system, code) is not None or classify_coding(system, code) == HEME


def _condition_status(condition: Any) -> str | None:
    status = clinical_status(condition)
    if status in ("inactive", "resolved"):
        return None
    is_heme = any(classify_coding(s, c) == HEME for s, c in codings(condition.code))
    if status in ("relapse", "recurrence") and is_heme:
        return "relapsed"
    if status == "remission" and is_heme:
        return "remission"
    return next((st for s, c in codings(condition.code) if (st := coded_status(s, c))), None)


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = frozenset({codes.DISEASE_STATUS_LOINC})


def _is_status_observation(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def disease_status(ctx: Context) -> Fact:
    index = ctx.index_transplant
    if index is None or index.when is None:
        return Fact(None, note="no dated transplant, so no status can be placed after it")
    found: list[tuple[date, int, str, Evidence]] = []
    for condition, when, _ in ctx.conditions(_relevant):
        status = _condition_status(condition)
        if status and ctx.after_transplant(when):
            summary = f"Condition: {display(condition.code)} ({status})"
            found.append((when or date.min, 0, status, Evidence(ref(condition), summary, when)))
    for obs, when, _ in ctx.observations(_is_status_observation):
        value = next(
            (
                codes.DISEASE_STATUS_VALUES[c]
                for s, c in codings(obs.valueCodeableConcept)
                if s == codes.SNOMED and c in codes.DISEASE_STATUS_VALUES
            ),
            None,
        )
        if value and ctx.after_transplant(when):
            summary = f"Disease status: {display(obs.valueCodeableConcept)} ({value})"
            found.append((when or date.min, 1, value, Evidence(ref(obs), summary, when)))
    gap = ctx.unreadable("Condition", _relevant) or ctx.unreadable(
        "Observation", lambda s, c: c == codes.DISEASE_STATUS_LOINC
    )
    if gap:
        return Fact(None, tuple(e for *_, e in found), note=gap)
    if not found:
        return Fact(None, note=f"no dated disease status after the {fmt(index.when)} transplant")
    when, _, status, evidence = max(found, key=lambda item: (item[0], item[1]))
    return Fact(status, (evidence,), note=f"latest status, {fmt(when)}")


READS = {"Condition": _relevant, "Observation": _is_status_observation}
