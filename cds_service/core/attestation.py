"""Completed worksheets (QuestionnaireResponses) in, attested answers per criterion out (pure).

An answer is evidence for exactly the criterion (linkId) it answers; core/evaluate.py uses it
only where the record leaves that criterion's fact unknown, and a documented record value that
contradicts it wins (the card shows the conflict). The evidence line names the QR, who attested
(QR.author, else QR.source) and when (QR.authored).

Read: status completed or amended, `questionnaire` one of ours at the current policy version,
`subject` the hook's patient. Ignored, each with a reason for the log (ids only, never values):
another patient, a stale or missing version, an unknown Questionnaire of ours, no id (an
answer must be citable), an unknown linkId, an answer of the wrong type. A QR of another
canonical (e.g. the order questions) is not ours to read and is passed over without a word.
Of several QRs, the latest authored wins per question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cds_service.core.codes import ORDER_QUESTIONS
from cds_service.core.fhir_util import to_date
from cds_service.core.model import Evidence, Fact, FactValue
from cds_service.core.questionnaire import (
    CITATION_SUFFIX,
    ENABLED_BY,
    QUESTIONNAIRE_BASE,
    REPORT_SUFFIX,
    Leaf,
    Worksheet,
    display,
    fact_value,
)

READ_STATUSES = ("completed", "amended")


@dataclass(frozen=True)
class Ignored:
    """An answer (or a whole QR) that was not read, and why: ids only."""

    response: str  # QuestionnaireResponse/<id>
    reason: str
    link_id: str = ""


@dataclass
class Attestations:
    """The attested answers to one worksheet: criterion id -> (fact value, evidence)."""

    answers: dict[str, tuple[FactValue, Evidence]] = field(default_factory=dict)
    facts: dict[str, FactValue] = field(default_factory=dict)  # fact name -> first answer

    def for_criterion(self, criterion_id: str) -> Fact | None:
        found = self.answers.get(criterion_id)
        if found is None:
            return None
        value, evidence = found
        return Fact(value, (evidence,), note="attested: answered on the worksheet")

    def for_fact(self, name: str) -> Fact | None:
        """An attested value for `name` (for applies_if / review_if when the record is silent),
        read through the answer it depends on (donor chimerism applies after an allogeneic
        transplant), as the worksheet's enableWhen does."""
        source, mapping = ENABLED_BY.get(name, (name, {}))
        value = self.facts.get(source)
        if value is None:
            return None
        if source != name:
            return Fact(mapping.get(True) == value, note="attested: answered on the worksheet")
        return Fact(value, note="attested: answered on the worksheet")


def _who(qr: Any) -> str:
    for party in (qr.author, qr.source):
        if party is not None and (party.display or party.reference):
            if party.display and party.reference:
                return f"{party.display} ({party.reference})"
            return str(party.display or party.reference)
    return "an unnamed author"


def _answer(item: Any) -> Any:
    """The answer's value as Python (a tuple for repeated string answers), or None."""
    values = []
    for answer in item.answer or ():
        for attr in ("valueBoolean", "valueDecimal", "valueInteger", "valueString"):
            value = getattr(answer, attr, None)
            if value is not None:
                values.append(float(value) if attr == "valueDecimal" else value)
        if answer.valueCoding is not None and answer.valueCoding.code:
            values.append(str(answer.valueCoding.code))
    if not values:
        return None
    if all(isinstance(v, str) for v in values) and len(values) > 1:
        return tuple(values)
    return values[0]


def _items(items: Any) -> list[Any]:
    found: list[Any] = []
    for item in items or ():
        found.append(item)
        found += _items(item.item)
        for answer in item.answer or ():
            found += _items(answer.item)
    return found


def _shown(value: FactValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value)
    return display(value) if isinstance(value, str) else f"{value:g}"


def _check(qr: Any, patient_id: str, sheets: dict[str, Worksheet]) -> Worksheet | str | None:
    """The worksheet `qr` answers, a reason to ignore it, or None when it is not ours."""
    canonical = str(qr.questionnaire or "")
    url, _, version = canonical.partition("|")
    if not url.startswith(QUESTIONNAIRE_BASE) or url == ORDER_QUESTIONS:
        return None  # the order questions are read with the order (core/orders.py)
    sheet = sheets.get(url)
    if sheet is None:
        return "unknown questionnaire"
    if not qr.id:  # the evidence line must be able to cite it
        return "no id"
    if qr.status not in READ_STATUSES:
        return f"status {qr.status}"
    if version != sheet.version:
        return "stale policy version" if version else "no questionnaire version"
    subject = qr.subject.reference if qr.subject is not None else None
    if subject != f"Patient/{patient_id}":
        return "another patient"
    return sheet


def _read_one(qr: Any, sheet: Worksheet, into: Attestations, ignored: list[Ignored]) -> None:
    reference = f"QuestionnaireResponse/{qr.id}"
    when, who = to_date(qr.authored), _who(qr)
    for item in _items(qr.item):
        link = str(item.linkId)
        leaf: Leaf | None = sheet.leaves.get(link)
        if leaf is None:
            base = link.removesuffix(REPORT_SUFFIX).removesuffix(CITATION_SUFFIX)
            if base not in sheet.leaves and not any(n.id == link for n in sheet.root.walk()):
                ignored.append(Ignored(reference, "unknown item", link))
            continue
        raw = _answer(item)
        if raw is None:
            continue
        value = fact_value(leaf, raw)
        if value is None:
            ignored.append(Ignored(reference, "invalid answer", link))
            continue
        shown = _shown(raw if isinstance(raw, bool) else value)
        into.answers[link] = (value, Evidence(reference, f"Attested by {who}: {shown}", when))


def read_attestations(
    responses: list[Any], patient_id: str, sheets: tuple[Worksheet, ...]
) -> tuple[dict[str, Attestations], list[Ignored]]:
    """Worksheet id -> its attested answers, and what was ignored (validated QR models in)."""
    by_url = {s.url: s for s in sheets}
    found: dict[str, Attestations] = {}
    ignored: list[Ignored] = []
    ordered = sorted(responses, key=lambda qr: str(qr.authored or ""))
    for qr in ordered:
        checked = _check(qr, patient_id, by_url)
        if isinstance(checked, str):
            ignored.append(Ignored(f"QuestionnaireResponse/{qr.id or '(no id)'}", checked))
        elif checked is not None:
            _read_one(qr, checked, found.setdefault(checked.id, Attestations()), ignored)
    for sheet in sheets:  # per fact, the first question's answer decides applicability
        read = found.get(sheet.id)
        if read is not None:
            for link, (value, _) in read.answers.items():
                read.facts.setdefault(sheet.leaves[link].test.fact, value)
    return found, ignored
