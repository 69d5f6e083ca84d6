"""Centene CP.MP.101 I.C absolute contraindications, read from the problem list and the
smoking-status Observation (terminology reference §2.8, §3.5, §6.8)."""

from __future__ import annotations

from cds_service.core import codes
from cds_service.core.facts.context import CodingTest, Context
from cds_service.core.fhir_util import codings, condition_active, display, fmt, ref
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


# The Observation codes this module reads; the observations prefetch template asks for them.
OBSERVATION_LOINC = codes.SMOKING_STATUS_LOINC


def _smoking(system: str, code: str) -> bool:
    return system == codes.LOINC and code in OBSERVATION_LOINC


def current_substance_use(ctx: Context) -> Fact:
    """True on an active substance-use Condition or a current-use latest smoking status."""
    evidence = _active(ctx, _substance)
    statuses = [(when, obs) for obs, when, _ in ctx.observations(_smoking) if when is not None]
    latest = max(statuses, key=lambda item: item[0]) if statuses else None
    smoking: bool | None = None
    if latest:
        when, obs = latest
        values = {c for s, c in codings(obs.valueCodeableConcept) if s == codes.SNOMED}
        smoking = (
            True
            if values & codes.CURRENT_SMOKER_SNOMED
            else (False if values & codes.NON_SMOKER_SNOMED else None)
        )
        if smoking is not None:
            label = display(obs.valueCodeableConcept)
            item = Evidence(ref(obs), f"Smoking status: {label} ({fmt(when)})", when)
            if smoking:
                evidence.append(item)
            elif not evidence:
                return Fact(False, (item,))
    if evidence:
        return Fact(True, tuple(evidence))
    gap = ctx.unreadable("Observation", _smoking) or ctx.unreadable("Condition", _substance)
    return Fact(None, note=gap or "no smoking status (LOINC 72166-2) on record")


def _problem(ctx: Context, test: CodingTest, absent: str) -> Fact:
    if evidence := _active(ctx, test):
        return Fact(True, tuple(evidence))
    if gap := ctx.unreadable("Condition", test):
        return Fact(None, note=gap)
    return Fact(False, note=absent)


_nonadherence = _icd(lambda _, c: c.startswith(codes.NONADHERENCE_ICD_PREFIXES))
_no_support = _icd(lambda _, c: c in codes.NO_SUPPORT_ICD)
_resistance = _icd(lambda _, c: c.startswith(codes.RESISTANCE_ICD_PREFIX))
_infection = _icd(lambda _, c: bool(codes.INFECTION_ICD.match(c)))


def nonadherence(ctx: Context) -> Fact:
    return _problem(ctx, _nonadherence, "no non-adherence on the problem list")


def lacks_social_support(ctx: Context) -> Fact:
    return _problem(ctx, _no_support, "no support-system problem on the problem list")


def uncontrolled_resistant_infection(ctx: Context) -> Fact:
    """An active infection together with a drug-resistance code (Z16.*).

    A resistance code without an active infection is unknown: whether it is controlled needs
    the clinician.
    """
    resistance = _active(ctx, _resistance)
    infection = _active(ctx, _infection)
    if resistance and infection:
        return Fact(True, tuple(infection + resistance))
    if resistance:
        return Fact(None, tuple(resistance), note="resistance coded without an active infection")
    if gap := ctx.unreadable("Condition", lambda s, c: _resistance(s, c) or _infection(s, c)):
        return Fact(None, note=gap)
    return Fact(False, note="no active drug-resistant infection on the problem list")


READS = {
    "Observation": _smoking,
    "Condition": lambda s, c: any(
        t(s, c) for t in (_substance, _nonadherence, _no_support, _resistance, _infection)
    ),
}
