"""diagnosis_class and indication_icd10cm: what disease the index transplant treated."""

from __future__ import annotations

from typing import Any

from cds_service.core import codes
from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import codings, condition_date, display, fmt, ref
from cds_service.core.model import Evidence, Fact

HEME, OTHER, NON_MALIGNANT = "hematologic-malignancy", "other-malignancy", "non-malignant"
_RANK = {HEME: 0, OTHER: 1, NON_MALIGNANT: 2}


def classify_coding(system: str, code: str) -> str | None:
    """Diagnosis class of one code (terminology reference §2.1, §2.7, §6.9)."""
    if system == codes.ICD10CM:
        category = codes.icd_c_category(code)
        if category is not None:
            return HEME if 81 <= category <= 96 else OTHER
        if code in codes.HEME_ICD_EXACT or code.startswith(codes.HEME_ICD_PREFIXES):
            return HEME
        if code.startswith("Z85."):
            return OTHER
        if code.startswith(codes.NON_MALIGNANT_ICD_PREFIXES):
            return NON_MALIGNANT
    elif system == codes.SNOMED:
        if code in codes.HEME_SNOMED:
            return HEME
        if code in codes.OTHER_MALIGNANCY_SNOMED:
            return OTHER
        if code in codes.NON_MALIGNANT_SNOMED:
            return NON_MALIGNANT
    return None


def _is_diagnosis(system: str, code: str) -> bool:
    return classify_coding(system, code) is not None


def _condition_class(condition: Any) -> str | None:
    classes = {cls for s, c in codings(condition.code) if (cls := classify_coding(s, c))}
    return min(classes, key=_RANK.__getitem__) if classes else None


def _indication(ctx: Context) -> tuple[str, list[Any], str] | None:
    """(class, conditions, how found). The transplant's own reason wins over the problem list."""
    index = ctx.index_transplant
    if index is not None:
        by_id = {c.id: c for c in ctx.valid_conditions}
        reasons = [
            by_id[r.reference.split("/")[-1]]
            for r in index.procedure.reasonReference or ()
            if r.reference and r.reference.split("/")[-1] in by_id
        ]
        classes = {cls for c in reasons if (cls := _condition_class(c))}
        if classes:
            cls = min(classes, key=_RANK.__getitem__)
            return cls, [c for c in reasons if _condition_class(c) == cls], "transplant reason"
        coded = {
            cls
            for concept in index.procedure.reasonCode or ()
            for s, c in codings(concept)
            if (cls := classify_coding(s, c))
        }
        if coded:
            return min(coded, key=_RANK.__getitem__), [], "transplant reasonCode"
    found: dict[str, list[Any]] = {}
    for condition, _, _ in ctx.conditions(_is_diagnosis):
        cls = _condition_class(condition)
        if cls:
            found.setdefault(cls, []).append(condition)
    if not found:
        return None
    cls = min(found, key=_RANK.__getitem__)
    return cls, found[cls], "problem list"


def _evidence(conditions: list[Any]) -> tuple[Evidence, ...]:
    return tuple(
        Evidence(ref(c), f"Condition: {display(c.code)}", condition_date(c)) for c in conditions
    )


def diagnosis_class(ctx: Context) -> Fact:
    found = _indication(ctx)
    gap = ctx.unreadable("Condition", _is_diagnosis)
    if found is None:
        return Fact(
            None,
            note=f"not documented: {gap}"
            if gap
            else "not documented: no diagnosis that classifies the transplant indication; "
            "document the disease the transplant treated (the transplant's reason or the "
            "malignancy on the problem list)",
        )
    cls, conditions, how = found
    if gap and cls != HEME:
        return Fact(None, _evidence(conditions), note=gap)
    evidence = _evidence(conditions)
    if how == "transplant reasonCode" and ctx.index_transplant:
        index = ctx.index_transplant
        evidence = (Evidence(index.reference, f"Transplant reason: {cls}", index.when),)
    # a hematologic malignancy is what the criteria ask for; another class is its documented absence
    state = "documented present" if cls == HEME else "documented absent"
    dated = f"; dated {fmt(evidence[0].when)}" if evidence else ""
    note = f"{state}: {cls} from the {how}{dated}"
    return Fact(cls, evidence, note=note)


def indication_icd10cm(ctx: Context) -> Fact:
    found = _indication(ctx)
    if found is None:
        return Fact(None, note="not documented: no diagnosis that classifies the indication")
    _, conditions, _ = found
    icd = tuple(
        sorted({c for cond in conditions for s, c in codings(cond.code) if s == codes.ICD10CM})
    )
    if not icd:
        return Fact(None, _evidence(conditions), note="the indication has no ICD-10-CM code")
    return Fact(icd, _evidence(conditions))


# What this module reads, for the relevance filter (facts/relevance.py).
READS = {"Condition": _is_diagnosis}
