"""Centene CP.MP.101 I.C absolute contraindications, read from the problem list and the
smoking-status Observation (terminology reference §2.8, §3.5, §6.8).

One rule for all four: a contraindication is *documented present* on an active problem-list
code (or a current smoking status), *documented absent* when the problem list (read completely)
carries none of its codes (or the latest smoking status is never / ex), and *not documented*
when the Conditions could not all be read, or when what is coded needs a reviewer's judgement
(a cannabis code alone; a resistance code without an active infection). A missing smoking
status is therefore handled like a missing adherence code.
"""

from __future__ import annotations

from cds_service.core import codes
from cds_service.core.facts.context import CodingTest, Context
from cds_service.core.facts.latest import Latest, Reading, latest, span
from cds_service.core.fhir_util import codings, condition_active, display, observation_time, ref
from cds_service.core.model import Evidence, Fact


def _icd(test: CodingTest) -> CodingTest:
    return lambda system, code: system == codes.ICD10CM and test(system, code)


def _active(ctx: Context, test: CodingTest) -> list[Evidence]:
    return [
        Evidence(ref(c), f"Active {display(c.code)}", when)
        for c, when, _ in ctx.conditions(test)
        if condition_active(c)
    ]


_substance = _icd(
    lambda _, c: (
        bool(codes.SUBSTANCE_ICD.match(c)) and not codes.SUBSTANCE_IN_REMISSION_ICD.match(c)
    )
)
_cannabis = _icd(
    lambda _, c: bool(codes.CANNABIS_ICD.match(c)) and not codes.SUBSTANCE_IN_REMISSION_ICD.match(c)
)


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = codes.SMOKING_STATUS_LOINC


def _smoking(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def _smoking_status(ctx: Context) -> Latest[bool] | None:
    """The latest smoking status (core/facts/latest.py): current use True, never / ex False; a
    status whose value is neither (e.g. "unknown if ever smoked") says nothing, so when it is
    the latest the smoking status is not documented. None when there is no dated status."""
    readings = []
    for obs, _, _ in ctx.observations(_smoking):
        when = span(observation_time(obs))
        if when is None:
            continue
        values = {c for s, c in codings(obs.valueCodeableConcept) if s == codes.SNOMED}
        current = (
            True
            if values & codes.CURRENT_SMOKER_SNOMED
            else (False if values & codes.NON_SMOKER_SNOMED else None)
        )
        label = display(obs.valueCodeableConcept) or "no value"
        summary = f"Smoking status: {label}" + (
            "" if current is not None else " (not a use status)"
        )
        readings.append(Reading(when, current, Evidence(ref(obs), summary, when.start)))
    return latest(readings)


def current_substance_use(ctx: Context) -> Fact:
    """True on an active substance-use Condition (tobacco, alcohol F10, opioids ...) or a
    current-use latest smoking status; a cannabis code alone is left to the reviewer. False
    needs the problem list read completely and, when a smoking status is on record, its latest
    to say never / ex; a latest status that says neither, or same-day statuses that disagree,
    leave it not documented."""
    evidence = _active(ctx, _substance)
    smoking = _smoking_status(ctx)
    if smoking is not None and smoking.value is True:
        evidence += smoking.evidence
    if evidence:
        return Fact(True, tuple(evidence), note="documented present")
    gap = ctx.unreadable("Observation", _smoking) or ctx.unreadable(
        "Condition", lambda s, c: _substance(s, c) or _cannabis(s, c)
    )
    if gap:
        return Fact(None, note=f"not documented: {gap}")
    if cannabis := _active(ctx, _cannabis):
        return Fact(
            None,
            tuple(cannabis),
            note="not documented: a cannabis code alone does not show a contraindication; "
            "reviewer judgement (record whether use is current and medically supervised)",
        )
    if smoking is not None and smoking.value is None:
        return Fact(
            None,
            smoking.evidence,
            note=f"not documented: {smoking.problem.replace('result', 'smoking status')}",
            conflict=smoking.conflict,
        )
    absent = "documented absent: " + (
        "the latest smoking status is not current use and no substance use is on the problem list"
        if smoking is not None
        else "no substance use on the problem list"
    )
    return Fact(False, smoking.evidence if smoking is not None else (), note=absent)


def _problem(ctx: Context, test: CodingTest, absent: str) -> Fact:
    if evidence := _active(ctx, test):
        return Fact(True, tuple(evidence), note="documented present")
    if gap := ctx.unreadable("Condition", test):
        return Fact(None, note=f"not documented: {gap}")
    return Fact(False, note=f"documented absent: {absent}")


_nonadherence = _icd(lambda _, c: c.startswith(codes.NONADHERENCE_ICD_PREFIXES))
_no_support = _icd(lambda _, c: c in codes.NO_SUPPORT_ICD)
_resistance = _icd(lambda _, c: c.startswith(codes.RESISTANCE_ICD_PREFIX))
_infection = _icd(lambda _, c: bool(codes.INFECTION_ICD.match(c)))
_invasive_fungal = _icd(lambda _, c: bool(codes.INVASIVE_FUNGAL_ICD.match(c)))


def nonadherence(ctx: Context) -> Fact:
    return _problem(ctx, _nonadherence, "no non-adherence on the problem list")


def lacks_social_support(ctx: Context) -> Fact:
    return _problem(ctx, _no_support, "no support-system problem on the problem list")


def uncontrolled_resistant_infection(ctx: Context) -> Fact:
    """ "Highly virulent and/or resistant microbes": an active infection together with a
    drug-resistance code (Z16.*), or an active invasive mould infection (invasive aspergillosis,
    mucormycosis), virulent in itself. A resistance code without an active infection is unknown:
    whether it is controlled needs the clinician."""
    resistance = _active(ctx, _resistance)
    infection = _active(ctx, _infection)
    virulent = _active(ctx, _invasive_fungal)
    if virulent or (resistance and infection):
        found = virulent + (infection + resistance if resistance and infection else [])
        return Fact(True, tuple(dict.fromkeys(found)), note="documented present")
    if resistance:
        return Fact(
            None,
            tuple(resistance),
            note="not documented: resistance is coded without an active infection; record "
            "whether an infection with this organism is active and controlled",
        )
    if gap := ctx.unreadable("Condition", lambda s, c: _resistance(s, c) or _infection(s, c)):
        return Fact(None, note=f"not documented: {gap}")
    return Fact(
        False, note="documented absent: no active drug-resistant or invasive fungal infection"
    )


READS = {
    "Observation": _smoking,
    "Condition": lambda s, c: any(
        t(s, c)
        for t in (_substance, _cannabis, _nonadherence, _no_support, _resistance, _infection)
    ),
}
