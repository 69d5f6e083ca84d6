"""disease_status: the malignancy's status after the index transplant.

Sources (terminology reference §6.3): the mCODE disease-status Observation (LOINC 97509-4);
Conditions whose code carries status (ICD-10-CM final character x2 relapse / x1 or "A"
remission; SNOMED relapse, refractory and remission disorders), dated by onset / recorded date;
and Condition.clinicalStatus relapse / recurrence / remission on a hematologic malignancy, which
FHIR defines as the patient's *current* status (so it counts as post-transplant whatever the
Condition's onset; meta.lastUpdated / abatementDateTime / recordedDate only order it).

- Any relapse documented after the index transplant makes the status "relapsed", even when a
  later remission followed (relapse -> reinduction -> DLI is the common path, and Wellmark's
  evidence section says DLI works best after cytoreduction).
- Otherwise the latest status decides (core/facts/latest.py), whatever its source (Condition
  code, Condition.clinicalStatus, mCODE Observation): no source wins by kind, and statuses of
  the same date that disagree are a conflict (unknown, stated on the card).
- ICD-10-CM x0 "not having achieved remission" is the coders' default (NOS): alone it is not
  proof of refractory disease, even dated after the transplant (§6.3), so it leaves the status
  not documented, with the marrow / MRD report as what settles it.
- A status dated before the transplant (a CR2 remission code, a pre-transplant relapse) is not
  a post-transplant status.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.facts.diagnosis import HEME, classify_coding
from cds_service.core.facts.latest import Reading, Span, latest
from cds_service.core.fhir_util import clinical_status, codings, display, fmt, ref, to_date
from cds_service.core.model import Evidence, Fact

# x0 is read as "not in remission (NOS)": a marker, never a status on its own (see above)
NOT_IN_REMISSION = "not-in-remission"
_RELAPSE_CHARACTER = {"0": NOT_IN_REMISSION, "1": "remission", "2": "relapsed"}


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


def _current_status(condition: Any) -> str | None:
    """The status Condition.clinicalStatus asserts now, on a hematologic malignancy."""
    status = clinical_status(condition)
    if not any(classify_coding(s, c) == HEME for s, c in codings(condition.code)):
        return None
    if status in ("relapse", "recurrence"):
        return "relapsed"
    return "remission" if status == "remission" else None


def _record_date(condition: Any, fallback: date) -> date:
    """When the record last said something about the Condition (orders current statuses)."""
    dates = [
        to_date(condition.meta.lastUpdated if condition.meta else None),
        to_date(condition.abatementDateTime),
        to_date(condition.recordedDate),
    ]
    return max((d for d in dates if d is not None), default=fallback)


def _coded_status(condition: Any) -> str | None:
    return next((st for s, c in codings(condition.code) if (st := coded_status(s, c))), None)


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = frozenset({codes.DISEASE_STATUS_LOINC})


def _is_status_observation(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


Found = tuple[date, int, str, Evidence]


def _condition_statuses(ctx: Context) -> list[Found]:
    found: list[Found] = []
    for condition, when, _ in ctx.conditions(_relevant):
        label = display(condition.code)
        if current := _current_status(condition):
            on = _record_date(condition, ctx.as_of)
            summary = f"Condition: {label} (current clinical status: {current})"
            found.append((on, 0, current, Evidence(ref(condition), summary, on)))
        # the code keeps what was true at onset (a relapse coded C92.02 in 09/2025 stays a
        # relapse after the transplant even when clinicalStatus now says remission)
        if (coded := _coded_status(condition)) and ctx.after_transplant(when):
            summary = f"Condition: {label} ({coded})"
            found.append((when or date.min, 0, coded, Evidence(ref(condition), summary, when)))
    return found


def _observation_statuses(ctx: Context) -> list[Found]:
    found: list[Found] = []
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
    return found


def disease_status(ctx: Context) -> Fact:
    index = ctx.index_transplant
    if index is None or index.when is None:
        return Fact(
            None,
            note="not documented: no dated transplant, so no status can be placed after it; "
            "attach the transplant summary (date, donor type, conditioning, graft processing)",
        )
    found = _condition_statuses(ctx) + _observation_statuses(ctx)
    gap = ctx.unreadable("Condition", _relevant) or ctx.unreadable(
        "Observation", _is_status_observation
    )
    if gap:
        return Fact(None, tuple(e for *_, e in found), note=f"not documented: {gap}")
    after = fmt(index.when)
    relapses = [item for item in found if item[2] == "relapsed"]
    statuses = [item for item in found if item[2] != NOT_IN_REMISSION]
    if relapses:
        when, _, status, evidence = max(relapses, key=lambda i: (i[0], i[2], i[3].reference))
        note = f"documented present: a relapse after the transplant, {fmt(when)}"
        return Fact(status, (evidence,), note=note)
    current = latest(Reading(Span.day(d), st, e) for d, _, st, e in statuses)
    if current is not None:
        latest_status, when = current.value, current.when
        if latest_status is None:  # same-day statuses that disagree
            note = f"not documented: {current.problem}"
            return Fact(None, current.evidence, note=note, conflict=current.conflict)
        if latest_status in ("responding", "remission"):  # documents the absence of active disease
            note = (
                f"documented absent (no active disease): latest status {latest_status}, {fmt(when)}"
            )
        else:
            note = f"documented present: latest status {latest_status}, {fmt(when)}"
        return Fact(latest_status, current.evidence, note=note)
    settle = (
        f"attach the post-transplant marrow / MRD report dated after {after}. The mCODE "
        "disease-status Observation (LOINC 97509-4) or a relapse / refractory SNOMED CT code "
        "also settles it."
    )
    if found:
        return Fact(
            None,
            tuple(e for *_, e in found),
            note="not documented: an ICD-10-CM 'not having achieved remission' code is the "
            f"default (NOS) code and does not show refractory disease; {settle}",
        )
    return Fact(
        None, note=f"not documented: no disease status after the {after} transplant; {settle}"
    )


READS = {"Condition": _relevant, "Observation": _is_status_observation}
