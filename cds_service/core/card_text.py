"""What the clinician reads on a card (pure): the summary, and a detail that leads with the next
step, then the determination, then the criteria.

Rules (issue 21):
- The first detail line is what to do: attach / record / answer the worksheet (needs-information),
  or what the answer means for the order.
- Evidence in clinical words with dates; no resource ids, code-system URLs or coding hints. Those
  stay in the machine-readable extension (`dli-hpc-cds.evaluations`) and in the SMART app's
  integrator view, which also shows every criterion, reading and citation.
- The visible detail fits a budget (VISIBLE_BUDGET characters, about one screen of an EHR side
  panel); what does not fit is behind the app link.
- One status vocabulary everywhere (card, CLI, payer comparison, worksheet): STATUS_WORDS.
  Words carry the meaning; nothing depends on a symbol or an emoji font.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from cds_service.core.evaluate import CriterionResult, Evaluation
from cds_service.core.model import Determination, Evidence, Status

VISIBLE_BUDGET = 1400
# Room kept for the notes added after the criteria (coverage, unretrieved data, other patient).
NOTES_RESERVE = 220
NEXT_STEPS_BUDGET = 650  # the actions listed on the card; the rest are in the app
NOT_NEEDED = "not needed"
STATUS_WORDS = {
    Status.MET: "met",
    Status.NOT_MET: "not met",
    Status.UNKNOWN: "unknown",
    Status.NOT_APPLICABLE: "not applicable",
}
DETERMINATION_WORDS = {
    Determination.MEETS: "meets the criteria",
    Determination.DOES_NOT_MEET: "does not meet the criteria",
    Determination.NEEDS_INFORMATION: "needs documentation",
    Determination.NOT_ADDRESSED: "not addressed by this policy",
}
# The verbs a next step starts with (tests/test_card_text.py checks every card against them).
ACTIONS = ("Attach", "Record", "Answer", "State", "Ask", "Document", "Review", "Sign", "Check")

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_RESOURCE_NOUN = {
    "QuestionnaireResponse": "the worksheet",
    "ServiceRequest": "the order",
    "Observation": "a result",
    "Condition": "a diagnosis",
    "Procedure": "a procedure",
    "Coverage": "a coverage",
    "MedicationAdministration": "a medication given",
    "MedicationRequest": "a medication order",
    "Organization": "an organization",
    "Practitioner": "a clinician",
    "PractitionerRole": "a clinician",
    "Patient": "a patient",
    "BiologicallyDerivedProduct": "a cell product",
    "Encounter": "an encounter",
    "DocumentReference": "a document",
    "Questionnaire": "a worksheet",
    "Task": "a task",
}
RESOURCE_REFERENCE = re.compile(r"\b(" + "|".join(_RESOURCE_NOUN) + r")/[A-Za-z0-9\-.]{1,64}")
URL = re.compile(r"\b(?:https?|urn):[^\s)\]]+")
_SYSTEM = r"(?:LOINC|SNOMED CT|SNOMED|ICD-10-CM|ICD-10-PCS|ICD-10|CPT|HCPCS|RxNorm|mCODE)"
_CODED_PAREN = re.compile(r"\s*\(" + _SYSTEM + r"\s[^)]*\)")
_CODED_BARE = re.compile(r"\b" + _SYSTEM + r"\s+(?=[A-Z0-9])")
_CHIMERISM = re.compile(r"^Chimerism:\s*([\d.]+) % donor")
_TYPE_PREFIX = re.compile(r"^(?:Condition|Procedure): ")
_STATE_PREFIX = re.compile(r"^(?:documented present|documented absent|not documented):\s*")
ORDER_DETAIL_WORDS = {
    "original-donor": "cells from the original donor",
    "different-donor": "cells from a different donor",
    "genetically-modified-product": "a genetically modified product",
    "ex-vivo-manipulated-product": "a product manipulated ex vivo",
    "unmanipulated-product": "an unmanipulated product",
    "high-relapse-risk": "high risk of relapse",
    "not-high-relapse-risk": "not at high risk of relapse",
}
_ORDER_SOURCE = re.compile(
    r"^(Order detail|Order detail text|Order question): (" + "|".join(ORDER_DETAIL_WORDS) + r")$"
)
_DETAIL_CODES = "|".join(ORDER_DETAIL_WORDS)
_ORDER_DETAIL_NOTE = re.compile(r"\(order details? (" + _DETAIL_CODES + r")\)")
_ORDER_DETAIL_MENTION = re.compile(r"\border details? (" + _DETAIL_CODES + r")\b")
_INTENSITY = {"MAC": "myeloablative (MAC)", "RIC": "reduced intensity (RIC)",
              "NMA": "non-myeloablative (NMA)"}  # fmt: skip


def md(text: str) -> str:
    """Escape record or policy text before it goes into Markdown (no injected links or HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " "))


# Policy text (criteria, actions, names) is the same on every call: escaped once. Only policy
# data goes through these caches, never the record's.
md_policy = lru_cache(maxsize=4096)(md)


def status_word(status: Status | str, not_needed: bool = False) -> str:
    """The one status vocabulary: met / not met / unknown / not needed / not applicable."""
    return NOT_NEEDED if not_needed else STATUS_WORDS[Status(status)]


def clinical(text: str) -> str:
    """Record-derived text in clinical words: resource ids become what they are ("a result"),
    code-system names, coding and URLs are dropped, order-detail codes become words."""
    text = _ORDER_DETAIL_NOTE.sub(lambda m: f"(the order states {ORDER_DETAIL_WORDS[m[1]]})", text)
    text = _ORDER_DETAIL_MENTION.sub(lambda m: f"the order's {ORDER_DETAIL_WORDS[m[1]]}", text)
    text = RESOURCE_REFERENCE.sub(lambda m: _RESOURCE_NOUN[m[1]], text)
    text = URL.sub("", text)
    text = _CODED_PAREN.sub("", text)
    return _CODED_BARE.sub("", text).strip()


def evidence_text(evidence: Evidence) -> str:
    """One piece of evidence as a clinician says it: what it shows, and when."""
    summary = evidence.summary
    source = _ORDER_SOURCE.match(summary)
    if source:
        where = {"Order question": "Order question answered"}.get(source[1], "Order states")
        summary = f"{where}: {ORDER_DETAIL_WORDS[source[2]]}"
    summary = _TYPE_PREFIX.sub("", clinical(summary))
    summary = _CHIMERISM.sub(r"Donor chimerism \1 %", summary)
    if summary.startswith("Conditioning: "):
        level = summary.removeprefix("Conditioning: ")
        summary = f"Conditioning {_INTENSITY.get(level, level)}"
    when = f" on {evidence.when.isoformat()}" if evidence.when else " (undated)"
    return f"{summary}{when}"


@lru_cache(maxsize=1024)
def action_text(to_settle: str) -> str:
    """What to do, without the coding hint (the part after "Coding:" is for integrators)."""
    action = to_settle.partition("Coding:")[0].strip()
    return clinical(action)


def note_text(note: str) -> str:
    text = clinical(_STATE_PREFIX.sub("", note))
    return text[:1].upper() + text[1:]


# --- the summary -------------------------------------------------------------------------------
def summary_text(evaluation: Evaluation) -> str:
    """"DLI: 1 item needs documenting for Molina Healthcare MCP-210" and the like."""
    e, short = evaluation, evaluation.service.short
    policy = f"{e.policy.payer.name} {e.policy.policy.number}"
    if e.determination is Determination.NEEDS_INFORMATION:
        n = len(e.unknown) or 1
        items = "1 item needs" if n == 1 else f"{n} items need"
        return f"{short}: {items} documenting for {policy}"
    if e.determination is Determination.DOES_NOT_MEET:
        failed = sum(1 for c in e.criteria if c.status is Status.NOT_MET and c.depth == 1)
        counts = f" ({failed} not met)" if failed else ""
        return f"{short} does not meet {policy} medical-necessity criteria{counts}"
    if e.determination is Determination.MEETS:
        return f"{short} meets {policy} medical-necessity criteria"
    return f"{short}: not addressed by {policy}"


# --- the detail --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Context:
    """What the detail mentions besides the evaluation: the worksheet that settles it, if any."""

    worksheet: bool = False
    app: bool = False  # the card links the SMART app (wants_app)
    hook: str = "order-sign"  # what the clinician is doing: signing, booking or sending


# What to do next when nothing is left to document, per hook (default: order-sign / -select).
PROCEED = {"appointment-book": "Book the appointment", "order-dispatch": "Send the order"}


def wants_app(evaluation: Evaluation) -> bool:
    """Whether the card links the SMART app: when something is open or not met. A met or
    not-addressed card keeps only absolute links (or none), which is also what Inferno's card
    type checks read as external-reference / instructions cards (tests/conformance.py)."""
    return evaluation.determination in (Determination.NEEDS_INFORMATION,
                                        Determination.DOES_NOT_MEET)  # fmt: skip


def next_step(evaluation: Evaluation, context: Context) -> str:
    """The first detail line: what to do now."""
    e = evaluation
    policy = f"{md(e.policy.payer.name)} {md(e.policy.policy.number)}"
    if e.determination is Determination.NEEDS_INFORMATION:
        actions = [md_policy(action_text(c.to_settle or "")) for c in e.unknown]
        sheet = f"Answer the {policy} worksheet (button below)" if context.worksheet else ""
        if len(actions) == 1:
            also = f" Or: {sheet[0].lower()}{sheet[1:]}." if sheet else ""
            return f"**Next step:** {actions[0]}{also}"
        lead = f"{sheet}, or document each item:" if sheet else "Document each item:"
        shown = _within(actions, NEXT_STEPS_BUDGET)
        lines = [f"**Next steps:** {lead}", *(f"- {a}" for a in shown)]
        if len(shown) < len(actions):
            lines.append(f"- {_more_steps(len(actions) - len(shown))}")
        return "\n".join(lines)
    if e.determination is Determination.DOES_NOT_MEET:
        return (
            "**Next step:** Review the criteria not met below; if the record is incomplete, "
            "attach what documents them, or dismiss with a reason (for example peer-to-peer review)."
        )
    if e.determination is Determination.MEETS:
        proceed = PROCEED.get(context.hook, "Sign the order")
        return f"**Next step:** {proceed}: nothing more to document for this policy."
    return f"**Next step:** Check the plan's own rule: {policy} does not address this order."


def _within(lines: list[str], budget: int) -> list[str]:
    """The first lines that fit `budget` characters (at least one)."""
    kept: list[str] = []
    for line in lines:
        if kept and sum(len(k) + 3 for k in kept) + len(line) > budget:
            break
        kept.append(line)
    return kept


def _more_steps(hidden: int) -> str:
    what = "1 more item" if hidden == 1 else f"{hidden} more items"
    return f"*{what} to document: open the case in the app.*"


def _evidence_clause(c: CriterionResult) -> str:
    if c.evidence:
        shown = md(evidence_text(c.evidence[0]))
        more = f" (+{len(c.evidence) - 1} more)" if len(c.evidence) > 1 else ""
        return f": {shown}{more}"
    if c.note and c.status is not Status.MET and not c.attested:
        return f": {md(note_text(c.note))}"
    return ""


def criterion_line(c: CriterionResult) -> str:
    indent = "  " * (c.depth - 1)
    if c.superseded:
        return f"{indent}- **{NOT_NEEDED.capitalize()}** (another option is met): {md_policy(c.text)}"
    word = status_word(c.status).capitalize()
    return f"{indent}- **{word}**: {md_policy(c.text)}{_evidence_clause(c)}"


def conflict_lines(criteria: tuple[CriterionResult, ...]) -> list[str]:
    """Results that disagree, or a worksheet answer the record contradicts: always on the card
    (outside the criteria budget), once each."""
    texts = dict.fromkeys(clinical(c.conflict.removeprefix("Conflict: ")) for c in criteria
                          if c.conflict and not c.superseded)  # fmt: skip
    return [f"Conflict: {md(text)}" for text in texts]


def shown_criteria(criteria: tuple[CriterionResult, ...]) -> list[CriterionResult]:
    """The criteria a card lists: an any_of branch that cannot change the answer is one
    "not needed" line, without what is inside it."""
    shown: list[CriterionResult] = []
    head_depth: int | None = None
    for c in criteria:
        if c.superseded and head_depth is not None and c.depth > head_depth:
            continue
        head_depth = c.depth if c.superseded else None
        shown.append(c)
    return shown


_PRIORITY = {Status.UNKNOWN: 0, Status.NOT_MET: 1, Status.MET: 2, Status.NOT_APPLICABLE: 3}


def _parents(shown: list[CriterionResult]) -> list[int | None]:
    """The index (in `shown`) of each criterion's parent, None at the top level."""
    parents: list[int | None] = []
    stack: list[int] = []
    for i, c in enumerate(shown):
        while stack and shown[stack[-1]].depth >= c.depth:
            stack.pop()
        parents.append(stack[-1] if stack else None)
        stack.append(i)
    return parents


def criteria_block(criteria: tuple[CriterionResult, ...], budget: int, app: bool = True) -> str:
    """The criteria within `budget` characters: every top-level criterion that fits, then level
    by level the sub-criteria under a shown parent, what is open or not met first. What is left
    out is counted, and shown in the app."""
    shown = shown_criteria(criteria)
    lines = [criterion_line(c) for c in shown]
    parents = _parents(shown)
    kept: set[int] = set()
    used = 0
    for depth in sorted({c.depth for c in shown}):
        level = [i for i, c in enumerate(shown) if c.depth == depth
                 and (parents[i] is None or parents[i] in kept)]  # fmt: skip
        level.sort(key=lambda i: (shown[i].superseded, _PRIORITY[shown[i].status], i))
        for i in level:
            if used + len(lines[i]) + 1 <= budget:
                kept.add(i)
                used += len(lines[i]) + 1
    text = "\n".join(lines[i] for i in sorted(kept))
    hidden = len(shown) - len(kept)
    return text + (f"\n\n{_more(hidden, app)}" if hidden else "")


def _more(hidden: int, app: bool) -> str:
    what = "1 more criterion" if hidden == 1 else f"{hidden} more criteria"
    if not app:
        return f"*{what} not listed here: the policy link below has them all.*"
    return f"*{what}, the evidence and the policy citations: open the case in the app.*"


def detail_text(evaluation: Evaluation, context: Context, budget: int = VISIBLE_BUDGET) -> str:
    """Next step, determination, criteria (within the budget), then the policy's notes."""
    e, policy = evaluation, evaluation.policy.policy
    # an earlier version decided (the order's date of service is before a revision): say which
    earlier = "" if policy.in_force_until is None else f" ({md_policy(policy.version_note)})"
    head = [
        next_step(e, context),
        f"**{md_policy(e.policy.payer.name)} {md_policy(policy.number)}{earlier}:** "
        f"{e.service.label} {DETERMINATION_WORDS[e.determination]}.",
    ]
    notes = conflict_lines(e.criteria) + [f"**Note:** {md(clinical(a))}" for a in e.advisories]
    used = sum(len(b) + 2 for b in head + notes) + NOTES_RESERVE
    blocks = [*head]
    if e.criteria:
        blocks.append(criteria_block(e.criteria, max(budget - used, 200), context.app))
    return "\n\n".join(blocks + notes)


def not_addressed_line(evaluation: Evaluation, why: str) -> str:
    p = evaluation.policy
    return (
        f"- {md(p.payer.name)} {md(p.policy.number)}: {md(clinical(why))} "
        f"({evaluation.service.short})"
    )


def unretrieved_note(unretrieved: tuple[str, ...]) -> str:
    return (
        "**Could not be retrieved from the EHR** (criteria that depend on it are unknown): "
        + "; ".join(md(clinical(u)) for u in unretrieved)
    )


def other_patient_note(count: int) -> str:
    """The call carried records of someone else (issue 24): they were not read."""
    records = "1 record names" if count == 1 else f"{count} records name"
    return (
        "**Check the patient context:** records for another patient were ignored ("
        f"{records} a different patient than this order's and were not used as evidence)."
    )


# Why an order named by reference was not evaluated (api/resolve.py), in words: (one, several).
_NOT_EVALUATED_WORDS = {
    "unreadable": ("could not be read from the EHR", "could not be read from the EHR"),
    "not-in-ehr": ("is not in the EHR", "are not in the EHR"),
    "other-patient": (
        "belongs to another patient and was not used",
        "belong to another patient and were not used",
    ),
    "conflicting": (
        "came from the EHR in two different versions",
        "came from the EHR in two different versions each",
    ),
}


def not_evaluated_summary(count: int) -> str:
    return f"Coverage not checked for {'1 linked order' if count == 1 else f'{count} linked orders'}"


def not_evaluated_note(reasons: list[str]) -> str:
    """Orders the call names that were not checked (the references are in the extension)."""
    lines = []
    for why in dict.fromkeys(reasons):
        n = reasons.count(why)
        one, several = _NOT_EVALUATED_WORDS.get(why, (why, why))
        lines.append(f"- {n} {'order' if n == 1 else 'orders'} {one if n == 1 else several}")
    return "\n".join(
        [
            "**Check the order:** make sure the order is in the EHR for this patient, then book "
            "or send it again to get the coverage check. Not checked:",
            *lines,
        ]
    )


def coverage_words(payer_order: int | None, in_force: int, passed_over: list[str]) -> str:
    """Which coverage decided the payer, in words (the Coverage ids are in the systemAction)."""
    rank = f" (coverage order {payer_order})" if payer_order is not None else ""
    note = f"**Coverage:** the payer of the patient's coverage{rank}"
    if in_force > 1:
        note += f", the first of {in_force} in force with a policy here"
    note += "."
    for why in passed_over:
        note += f" Another coverage was not used: {md(clinical(why))}."
    return note
