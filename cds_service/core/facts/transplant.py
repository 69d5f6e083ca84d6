"""hsct_type and conditioning_intensity of the index transplant, and what counts as an HSCT.

The index transplant (the latest HSCT on or before as-of, the latest allogeneic one when there
is one) is chosen in `Context.index_transplant` from the `Transplant`s that `classify` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from cds_service.core import codes
from cds_service.core.facts.conditioning import inferred_intensity
from cds_service.core.fhir_util import codings, display, procedure_date, ref
from cds_service.core.model import Evidence, Fact

if TYPE_CHECKING:  # Context builds its transplants with classify() below
    from cds_service.core.facts.context import Context

Kind = Literal["allogeneic", "autologous"]


@dataclass(frozen=True)
class Transplant:
    reference: str
    kind: Kind | None  # None: an HSCT whose donor type the code does not say
    when: date | None
    label: str
    procedure: Any

    def as_evidence(self) -> Evidence:
        return Evidence(self.reference, f"Procedure: {self.label}", self.when)


def classify(procedure: Any) -> Transplant | None:
    """The transplant a Procedure records, or None if it is not an HSCT (the caller passes only
    Procedures that happened: Context.procedures)."""
    kinds: set[Kind] = set()
    found = False
    for system, code in codings(procedure.code):
        if system == codes.CPT and code in codes.ALLO_CPT | codes.AUTO_CPT:
            found = True
            kinds.add("allogeneic" if code in codes.ALLO_CPT else "autologous")
        elif system == codes.SNOMED and code in codes.ALLO_SNOMED:
            found = True
            kinds.add("allogeneic")
        elif system == codes.SNOMED and code in codes.AUTO_SNOMED:
            found = True
            kinds.add("autologous")
        elif system == codes.SNOMED and code in codes.GENERIC_HSCT_SNOMED:
            found = True
        elif system == codes.ICD10PCS and (match := codes.HSCT_PCS.match(code)):
            found = True
            kinds.add("autologous" if match.group(2) == "0" else "allogeneic")
    if not found:
        return None
    # codes that disagree on the donor type say neither (whatever order they are listed in)
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    when = procedure_date(procedure)
    return Transplant(ref(procedure), kind, when, display(procedure.code), procedure)


def is_hsct_coding(system: str, code: str) -> bool:
    return (
        (system == codes.CPT and code in codes.ALLO_CPT | codes.AUTO_CPT)
        or (
            system == codes.SNOMED
            and code in codes.ALLO_SNOMED | codes.AUTO_SNOMED | codes.GENERIC_HSCT_SNOMED
        )
        or (system == codes.ICD10PCS and codes.HSCT_PCS.match(code) is not None)
    )


def _is_gvhd(system: str, code: str) -> bool:
    return (system == codes.SNOMED and code in codes.ANY_GVHD_SNOMED) or (
        system == codes.ICD10CM and code in codes.ANY_GVHD_ICD
    )


def _history(kind: str | None) -> Callable[[str, str], bool]:
    """Transplant history / status Conditions implying a transplant of `kind` (None: untyped)."""
    snomed = {
        "allogeneic": codes.HSCT_HISTORY_ALLO_SNOMED,
        "autologous": codes.HSCT_HISTORY_AUTO_SNOMED,
        None: codes.HSCT_HISTORY_SNOMED,
    }[kind]
    return lambda s, c: (
        (s == codes.SNOMED and c in snomed)
        or (kind is None and s == codes.ICD10CM and c in codes.HSCT_STATUS_ICD)
    )


def _conditions(ctx: Context, test: Callable[[str, str], bool], why: str = "") -> list[Evidence]:
    return [
        Evidence(ref(c), f"Condition: {display(c.code)}{why}", when)
        for c, when, _ in ctx.conditions(test)
    ]


def _any_hsct_evidence(system: str, code: str) -> bool:
    return is_hsct_coding(system, code) or any(
        _history(k)(system, code) for k in ("allogeneic", "autologous", None)
    )


TRANSPLANT_NOT_DOCUMENTED = (
    "not documented: no stem cell transplant, transplant history or GVHD on record; attach the "
    "transplant summary (date, donor type, conditioning, graft processing)"
)


def hsct_type(ctx: Context) -> Fact:
    """allogeneic / autologous from procedures or history. No HSCT procedure, no transplant
    history or status code (Z94.81/Z94.84) and no GVHD is *not documented*, never "no
    transplant": outside and note-only transplants are common. A transplant of uncoded type is
    unknown too. Only a documented autologous-only transplant is a documented absence of an
    allogeneic one."""
    allo = [t.as_evidence() for t in ctx.transplants if t.kind == "allogeneic"]
    allo += _conditions(ctx, _history("allogeneic"))
    allo += _conditions(ctx, _is_gvhd, " (implies an allogeneic graft)")
    if allo:
        return Fact("allogeneic", tuple(allo), note="documented present: allogeneic transplant")
    gap = ctx.unreadable("Procedure", is_hsct_coding) or ctx.unreadable(
        "Condition", lambda s, c: _any_hsct_evidence(s, c) or _is_gvhd(s, c)
    )
    auto = [t.as_evidence() for t in ctx.transplants if t.kind == "autologous"]
    auto += _conditions(ctx, _history("autologous"))
    if auto and not gap:
        return Fact(
            "autologous", tuple(auto), note="documented absent: autologous-only transplant(s)"
        )
    untyped = [t.as_evidence() for t in ctx.transplants if t.kind is None]
    untyped += _conditions(ctx, _history(None))
    if untyped:
        return Fact(
            None,
            tuple(untyped),
            note="not documented: a transplant is on record but not its donor type; attach the "
            "transplant summary (donor type: allogeneic or autologous)",
        )
    return Fact(None, note=f"not documented: {gap}" if gap else TRANSPLANT_NOT_DOCUMENTED)


def conditioning_intensity(ctx: Context) -> Fact:
    """From the extension on the index transplant, else a conditioning Procedure before it, else
    inferred from the regimen given before it (core/facts/conditioning.py): recorded wins."""
    index = ctx.index_transplant
    if index is None:
        return Fact(None, note="no transplant documented")
    for extension in index.procedure.extension or ():
        if extension.url == codes.CONDITIONING_EXT:
            code = next(
                (
                    c
                    for s, c in codings(extension.valueCodeableConcept)
                    if s == codes.CONDITIONING_SYSTEM
                ),
                None,
            )
            if code in ("MAC", "RIC", "NMA"):
                return Fact(code, (Evidence(index.reference, f"Conditioning: {code}", index.when),))
    limit = ctx.thresholds.conditioning_max_days_before
    for procedure in ctx.procedures:
        part_of = {r.reference.split("/")[-1] for r in procedure.partOf or () if r.reference}
        when = procedure_date(procedure)
        near = (
            when is not None and index.when is not None and 0 <= (index.when - when).days <= limit
        )
        if index.procedure.id not in part_of and not near:
            continue
        for system, code in codings(procedure.code):
            intensity = (
                "MAC"
                if system == codes.SNOMED and code == codes.MAC_SNOMED
                else code
                if system == codes.CONDITIONING_SYSTEM
                else None
            )
            if intensity in ("MAC", "RIC", "NMA"):
                summary = f"Conditioning procedure: {display(procedure.code)} ({intensity})"
                return Fact(intensity, (Evidence(ref(procedure), summary, when),))
    return inferred_intensity(ctx, index)


def _is_conditioning(system: str, code: str) -> bool:
    return (
        system == codes.SNOMED and code == codes.MAC_SNOMED
    ) or system == codes.CONDITIONING_SYSTEM


READS = {
    "Procedure": lambda s, c: is_hsct_coding(s, c) or _is_conditioning(s, c),
    "Condition": lambda s, c: _any_hsct_evidence(s, c) or _is_gvhd(s, c),
}
