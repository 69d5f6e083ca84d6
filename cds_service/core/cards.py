"""Evaluations in, CDS Hooks cards and CRD coverage-information systemActions out (pure).

Card rules: CDS Hooks 2.0 §card-attributes and CRD 2.2 cards.html (uuid on every card,
source.topic from the cdshooks-card-type code system, summary < 140 characters, no empty
arrays or strings). The criteria cards are CRD `guideline` cards: the payer's medical policy,
with an option to view it. They are not the Coverage Information response type, which CRD
carries only as a systemAction (resp-25) and whose content a card must not repeat (resp-12).
Coverage information: CRD StructureDefinition-ext-coverage-information, with codes valid for
both CRD 2.0.1 and 2.2 readers (../shared/reference/cds-hooks-and-crd.md items 131-132, 160-164).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.core import card_text
from cds_service.core.card_text import md
from cds_service.core.evaluate import CriterionResult, Evaluation
from cds_service.core.model import Determination, Status
from cds_service.core.payer import Route
from cds_service.core.questionnaire import worksheet_for

# Code systems per CRD version (HL7/davinci-crd input/fsh at tags 2.0.1 and 2.2.1):
# card types are CRD 2.0.1 CodeSystem `temp` (ValueSet cardType: descendants of #_cardType) and
# THO `cdshooks-card-type` in CRD 2.2 (same code). "guideline": "Indication that there is a
# guideline available for the proposed therapy (with an option to view)". Discovery's
# `guideline` configuration option turns these cards off.
CARD_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
CRD_TEMP_SYSTEM = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
COVERAGE_INFO_URL = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)
# CRD 2.2 detail codes live in THO; `instructions`: "details about information needed".
COVERAGE_DETAIL_SYSTEM = "http://terminology.hl7.org/CodeSystem/crd-coverage-detail"
# CRD 2.0.1's detail value set (coverageDetail, extensible) has no code for "what is needed"
# (allowed-quantity, allowed-period, copays, concurrent-review, appropriate-use-needed): a
# 2.0.1 reader gets the project's own code, with text, as an extensible binding allows.
DETAIL_SYSTEM_2_0_1 = "http://dli-hpc-cds.org/fhir/CodeSystem/coverage-detail"


def topic(crd_2_2: bool) -> dict[str, str]:
    """The card's `source.topic` in the code system of the client's CRD version."""
    system = CARD_TYPE_SYSTEM if crd_2_2 else CRD_TEMP_SYSTEM
    return {"system": system, "code": "guideline", "display": "Guideline"}


def detail_code(crd_2_2: bool) -> dict[str, Any]:
    """A coverage-information `detail.code` in the client's CRD version."""
    if crd_2_2:
        return {"coding": [{"system": COVERAGE_DETAIL_SYSTEM, "code": "instructions"}]}
    coding = {"system": DETAIL_SYSTEM_2_0_1, "code": "information-needed"}
    return {"coding": [{**coding, "display": "Information needed"}], "text": "Information needed"}


EVALUATIONS_EXT = "dli-hpc-cds.evaluations"
OVERRIDE_SYSTEM = "http://dli-hpc-cds.org/fhir/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("documentation-elsewhere", "Supporting documentation exists outside the EHR record"),
    ("medical-director-review", "Requesting peer-to-peer or medical-director review"),
    ("clinical-urgency", "Clinically urgent; proceeding pending payer review"),
)
MAX_SUMMARY = 139

_SEVERITY = {
    Determination.DOES_NOT_MEET: 0,
    Determination.NEEDS_INFORMATION: 1,
    Determination.MEETS: 2,
    Determination.NOT_ADDRESSED: 3,
}
APP_LINK_LABEL = "Open the case: timeline, all criteria, payer comparison, worksheet"


@dataclass(frozen=True)
class CardOptions:
    """The CRD configuration the client asked for (davinci-crd.configuration)."""

    guideline: bool = True  # the criteria cards
    coverage_info: bool = True  # the coverage-information systemActions
    max_cards: int = 10
    # The CRD 2.2-only codes and elements (`indeterminate`, reason `technical`, a detail's
    # `category`), only for a client that asked for CRD 2.1+ (davinci-crd.requestedVersion): a
    # 2.0.1 client cannot ask, and its coverage-information has none of them
    # (cds-hooks-and-crd.md items 124, 131, 163).
    crd_2_2: bool = False
    # The SMART app's launch URL (this service's /smart/launch): a `smart` link on every card.
    app_url: str = ""


def clip(text: str, limit: int = MAX_SUMMARY) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def summary(evaluation: Evaluation) -> str:
    return clip(card_text.summary_text(evaluation))


def detail(evaluation: Evaluation, hook: str = "order-sign") -> str:
    """GitHub-Flavored Markdown, written for the clinician (core/card_text.py)."""
    context = card_text.Context(
        worksheet=worksheet_canonical(evaluation) is not None,
        app=card_text.wants_app(evaluation),
        hook=hook,
    )
    return card_text.detail_text(evaluation, context)


def machine_result(evaluation: Evaluation) -> dict[str, Any]:
    """The fixed machine-readable contract (card.extension["dli-hpc-cds.evaluations"] item)."""
    result: dict[str, Any] = {
        "policyId": evaluation.policy.id,
        "payer": evaluation.policy.payer.name,
        "service": evaluation.service.value,
        "order": evaluation.order.reference,
        "determination": evaluation.determination.value,
    }
    if evaluation.criteria:  # a not-addressed evaluation has none
        result["criteria"] = [_machine_criterion(c) for c in evaluation.criteria]
    return result


def _machine_criterion(c: CriterionResult) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": c.id,
        "text": c.text,
        "status": c.status.value,
        "citation": c.citation,
    }
    if c.superseded:  # another any_of branch is met: this one cannot change the answer
        item["notNeeded"] = True
    if c.evidence:  # CDS Hooks forbids empty arrays: no evidence, no key
        item["evidence"] = list(dict.fromkeys(e.reference for e in c.evidence))
    return item


def _card(
    evaluations: list[Evaluation],
    summary_text: str,
    detail_text: str,
    new_uuid: Callable[[], str],
    comparison: bool,
    app_url: str = "",
    crd_2_2: bool = False,
    today: date | None = None,
) -> dict[str, Any]:
    worst = min((e.determination for e in evaluations), key=_SEVERITY.__getitem__)
    card: dict[str, Any] = {
        "uuid": new_uuid(),
        "summary": clip(summary_text),
        "indicator": "info"
        if worst in (Determination.MEETS, Determination.NOT_ADDRESSED)
        else "warning",
        "detail": detail_text,
        "source": {"label": evaluations[0].policy.payer.name, "topic": topic(crd_2_2)},
        "extension": {
            EVALUATIONS_EXT: [machine_result(e) for e in evaluations],
            "davinci-crd.associated-resource": [
                {"reference": r} for r in dict.fromkeys(e.order.reference for e in evaluations)
            ],
        },
    }
    if comparison:
        # The patient's payer is unknown: a card labelled with one insurer's name would read as
        # the patient's plan (CRD resp-4: the label is the insurer the reader recognises,
        # reference item 101). Say it is a comparison, and whose policies the card covers.
        payers = sorted({e.policy.payer.name for e in evaluations})
        card["source"]["label"] = "Payer policy comparison: " + ", ".join(payers)
    addressed = [e for e in evaluations if e.determination is not Determination.NOT_ADDRESSED]
    links = [
        {
            "label": clip(f"{e.policy.payer.name} {e.policy.policy.number} policy", 80),
            "url": e.policy.policy.url,
            "type": "absolute",
        }
        for e in {e.policy.id: e for e in addressed}.values()
    ]
    if app_url and any(card_text.wants_app(e) for e in evaluations):
        # the whole case, behind the visible-detail budget (core/card_text.py)
        links.insert(0, {"label": APP_LINK_LABEL, "url": app_url, "type": "smart"})
    if links:
        card["links"] = links
    suggestions = [form_completion(e, new_uuid, crd_2_2, today) for e in evaluations]
    if any(suggestions):
        card["suggestions"] = [s for s in suggestions if s is not None]
        card["selectionBehavior"] = "any"
    if any(e.determination is Determination.DOES_NOT_MEET for e in evaluations):
        card["overrideReasons"] = [
            {"code": code, "system": OVERRIDE_SYSTEM, "display": text}
            for code, text in OVERRIDE_REASONS
        ]
    return card


# --- Worksheets (issue 13): the CRD "Request form completion" suggestion ---------------------
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
TASK_PROFILE = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-taskquestionnaire"
# CRD 2.0.1 profile-taskquestionnaire: `input contains afterCompletion 1..*`, type fixed to
# temp#after-completion-action, value from afterCompletionCode (extensible). CRD 2.2 removed the
# slice, its codes and value set (FHIR-50269), so a 2.2 Task has none.
AFTER_COMPLETION = {
    "auth-needed": ("prior-auth-include", "Include in prior authorization"),
    "other": ("initial-claim-include", "Include in initial claim"),
}


def worksheet_canonical(evaluation: Evaluation) -> str | None:
    """The canonical (url|version) of the worksheet that settles a needs-information answer."""
    if evaluation.determination is not Determination.NEEDS_INFORMATION:
        return None
    sheet = worksheet_for(evaluation.policy, evaluation.service)
    return sheet.canonical if sheet is not None else None


def _after_completion(evaluation: Evaluation) -> dict[str, Any]:
    """What to do with the completed worksheet (CRD 2.0.1): send it with the prior-authorization
    request where the policy requires one, else with the first claim."""
    rule = evaluation.policy.prior_authorization.value
    code, text = AFTER_COMPLETION["auth-needed" if rule == "auth-needed" else "other"]
    return {
        "type": {
            "coding": [{"system": CRD_TEMP_SYSTEM, "code": "after-completion-action"}],
            "text": "afterCompletion",
        },
        "valueCodeableConcept": {
            "coding": [{"system": CRD_TEMP_SYSTEM, "code": code, "display": text}]
        },
    }


def questionnaire_task(
    evaluation: Evaluation, canonical: str, crd_2_2: bool, today: date | None
) -> dict[str, Any]:
    """A CRD profile-taskquestionnaire Task of the client's CRD version (2.0.1 or 2.2): status
    ready, intent order, for the patient, authored today, requested by the payer."""
    order, p = evaluation.order, evaluation.policy
    payer: dict[str, Any] = {"type": "Organization", "display": p.payer.name}
    if p.payer.identifiers:
        ident = p.payer.identifiers[0]
        payer["identifier"] = {"system": ident.system, "value": ident.value}
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [TASK_PROFILE]},
        "basedOn": [{"reference": order.reference}],
        "status": "ready",
        "intent": "order",
        "code": {"coding": [{"system": SDC_TEMP, "code": "complete-questionnaire"}]},
        "description": clip(f"Complete the {p.payer.name} {p.policy.number} worksheet", 200),
        "requester": payer,
        "input": [
            {
                "type": {
                    "coding": [{"system": SDC_TEMP, "code": "questionnaire"}],
                    "text": "questionnaire",
                },
                "valueCanonical": canonical,
            }
        ],
    }
    if not crd_2_2:
        task["input"].append(_after_completion(evaluation))
    subject = order.resource.get("subject")
    if isinstance(subject, dict) and isinstance(subject.get("reference"), str):
        task["for"] = {"reference": subject["reference"]}
    authored = today or order.authored_on  # when the Task is made: the request date
    if authored is not None:
        task["authoredOn"] = authored.isoformat()
    return task


def form_completion(
    evaluation: Evaluation,
    new_uuid: Callable[[], str],
    crd_2_2: bool = False,
    today: date | None = None,
) -> dict[str, Any] | None:
    """A suggestion creating a CRD task-questionnaire Task (cds-hooks-and-crd.md item 119):
    complete the worksheet for the criteria the record leaves open."""
    canonical = worksheet_canonical(evaluation)
    if canonical is None:
        return None
    p = evaluation.policy
    label = f"Complete the {p.payer.name} {p.policy.number} worksheet ({evaluation.service.short})"
    return {
        "label": clip(label, 120),
        "uuid": new_uuid(),
        "actions": [
            {
                "type": "create",
                "description": clip(
                    f"Ask for the {p.policy.number} worksheet to be completed", 200
                ),
                "resource": questionnaire_task(evaluation, canonical, crd_2_2, today),
            }
        ],
    }


def unretrieved_note(unretrieved: tuple[str, ...]) -> str:
    return card_text.unretrieved_note(unretrieved)


def coverage_note(routed: Route) -> str:
    """Which Coverage decided the payer, and why any other was passed over."""
    coverage = routed.coverage
    if coverage is None:
        return ""
    order = int(coverage.order) if coverage.order is not None else None
    return card_text.coverage_words(order, routed.in_force, [why for _, why in routed.passed_over])


def other_patient_note(count: int) -> str:
    return card_text.other_patient_note(count)


def build_cards(
    evaluations: list[Evaluation],
    options: CardOptions,
    new_uuid: Callable[[], str],
    unretrieved: tuple[str, ...] = (),
    comparison: bool = False,
    today: date | None = None,
    hook: str = "order-sign",
) -> list[dict[str, Any]]:
    """One card per addressed (order, policy); not-addressed ones share one card; at most
    `max_cards` cards (the overflow is merged into the last card, so nothing is dropped).
    `unretrieved` (data the EHR could not supply) is stated on every card. `comparison`: the
    payer is unknown, so the cards compare every policy and their labels say so."""
    if not options.guideline or not evaluations:
        return []
    addressed = sorted(
        (e for e in evaluations if e.determination is not Determination.NOT_ADDRESSED),
        key=lambda e: (_SEVERITY[e.determination], e.order.reference, e.policy.id),
    )
    groups: list[list[Evaluation]] = [[e] for e in addressed]
    skipped = [e for e in evaluations if e.determination is Determination.NOT_ADDRESSED]
    if skipped:
        groups.append(skipped)
    limit = max(1, options.max_cards)
    if len(groups) > limit:
        groups = [*groups[: limit - 1], [e for g in groups[limit - 1 :] for e in g]]

    def make_card(group: list[Evaluation], title: str, text: str) -> dict[str, Any]:
        return _card(
            group, title, text, new_uuid, comparison, options.app_url, options.crd_2_2, today
        )

    cards = []
    for group in groups:
        if len(group) == 1:
            cards.append(make_card(group, summary(group[0]), detail(group[0], hook)))
        elif all(e.determination is Determination.NOT_ADDRESSED for e in group):
            names = ", ".join(
                sorted({f"{e.policy.payer.name} {e.policy.policy.number}" for e in group})
            )
            lines = [
                card_text.not_addressed_line(e, e.policy.not_addressed(e.service) or "")
                for e in group
            ]
            text = "\n".join(["**Next step:** Check each plan's own rule for this order.", *lines])
            title = f"Not addressed by {names}"
            cards.append(make_card(group, title, text))
        else:
            title = f"{len(group)} more payer evaluations (card limit reached)"
            text = "\n\n".join([
                "**Next step:** Review each evaluation below; the app has their criteria.",
                *(f"**{md(summary(e))}**\n\n{card_text.next_step(e, card_text.Context())}"
                  for e in group),
            ])  # fmt: skip
            cards.append(make_card(group, title, text))
    if unretrieved:
        for card in cards:
            card["detail"] += "\n\n" + unretrieved_note(unretrieved)
    return cards


# --- CRD coverage information -------------------------------------------------------------
def _pa_needed(evaluation: Evaluation) -> str:
    value = evaluation.policy.prior_authorization.value
    return {"auth-needed": "auth-needed", "no-auth": "no-auth"}.get(value, "conditional")


def _determination_reasons(evaluation: Evaluation) -> list[str]:
    """The coverage-information reason text that explains the determination (if any)."""
    d, number = evaluation.determination, evaluation.policy.policy.number
    if d is Determination.NEEDS_INFORMATION:
        return ["Documentation needed: " + "; ".join(c.text for c in evaluation.unknown)]
    if d is Determination.DOES_NOT_MEET:
        failed = [
            c.text for c in evaluation.criteria if c.status is Status.NOT_MET and c.depth == 1
        ]
        return [f"Does not meet {number}: " + "; ".join(failed)]
    if d is Determination.NOT_ADDRESSED:
        return [f"{number} does not address {evaluation.service.label}"]
    return []


def _needed(evaluation: Evaluation, pa: str | None, technical: str) -> list[str]:
    """What would settle a conditional answer, in words for the people who act on it."""
    e, number = evaluation, evaluation.policy.policy.number
    items = [f"{c.text}: {c.to_settle}" if c.to_settle else c.text for c in e.unknown]
    if technical:
        items.append(f"The data the EHR could not supply: {technical}")
    if e.determination is Determination.NOT_ADDRESSED:
        items.append(f"The plan's own rule for {e.service.label}: {number} does not address it")
    if pa == "conditional":
        items.append(
            f"Whether {e.policy.payer.name} requires prior authorization: {number} sets no rule"
        )
    return items


def _detail(text: str, crd_2_2: bool) -> dict[str, Any]:
    """One ext-coverage-information `detail` (code `instructions`, value the text). CRD 2.2 adds
    `category` 1..1; CRD 2.0.1 defines no `category`, so a 2.0.1 reader gets code and value."""
    parts: list[dict[str, Any]] = [
        {
            "url": "code",
            "valueCodeableConcept": detail_code(crd_2_2),
        },
        {"url": "value", "valueString": clip(text, 1000)},
    ]
    if crd_2_2:
        # cat-limitation: the coverage statement cannot be read safely without this detail.
        parts.insert(0, {"url": "category", "valueCode": "cat-limitation"})
    return {"url": "detail", "extension": parts}


def _what_is_needed(
    evaluation: Evaluation, covered: str, pa: str | None, technical: str, crd_2_2: bool
) -> list[dict[str, Any]]:
    """The one rule for `doc-needed`, `info-needed` and `detail`.

    - `doc-needed` wherever documentation would settle the answer: a needs-information
      determination (its unknown criteria say what to attach), with the worksheet's
      `questionnaire` canonical; `indeterminate` with the CRD 2.2 technical form.
    - `info-needed` = `OTH` exactly when something is `conditional` (CRD 2.0.1 crd-ci-q3 allows it
      only then, CRD 2.2 q3 requires it then), always with a `detail` per thing needed (CRD 2.2:
      "If this element is set to OTH, then there must be at least one detail element that
      explains the nature of the additional information needed").
    """
    parts: list[dict[str, Any]] = []
    if evaluation.determination is Determination.NEEDS_INFORMATION:
        doc = "indeterminate" if covered == "indeterminate" else "clinical"
        parts.append({"url": "doc-needed", "valueCode": doc})
        parts += questionnaire_parts(evaluation)
    if "conditional" in (covered, pa):
        parts.append({"url": "info-needed", "valueCode": "OTH"})
        parts += [_detail(t, crd_2_2) for t in _needed(evaluation, pa, technical)]
    return parts


def questionnaire_parts(evaluation: Evaluation) -> list[dict[str, Any]]:
    """CRD resp-38: doc-needed carries the worksheet's canonical (invariant q1 holds: only
    alongside doc-needed)."""
    canonical = worksheet_canonical(evaluation)
    return [{"url": "questionnaire", "valueCanonical": canonical}] if canonical else []


def coverage_information(
    evaluation: Evaluation,
    coverage_id: str,
    today: date,
    assertion_id: str,
    technical: str = "",
    crd_2_2: bool = False,
) -> dict[str, Any]:
    """One ext-coverage-information for one (order, coverage), valid for CRD 2.0.1 and 2.2.

    `technical` says which data could not be retrieved. When it left the criteria undecided,
    CRD 2.2 resp-43 asks for `indeterminate` with reason `technical`; a CRD 2.0.x reader gets
    the 2.0.1-valid `conditional` with the same explanation as reason text.
    """
    d = evaluation.determination
    covered = {Determination.MEETS: "covered", Determination.DOES_NOT_MEET: "not-covered"}.get(
        d, "conditional"
    )
    undetermined = bool(technical) and d is Determination.NEEDS_INFORMATION
    if undetermined and crd_2_2:
        covered = "indeterminate"
    # CRD 2.2 crd-ci-q2 forbids pa-needed on not-covered. CRD 2.0.1 crd-ci-q2 as published,
    # "extension.where(url = 'covered' and value != 'not-covered') implies
    # extension.where(url = 'pa-needed').exists()", is empty (not true) on not-covered unless
    # pa-needed exists, so a 2.0.1 reader gets the plan's prior-authorization rule there too.
    pa = None if covered == "not-covered" and crd_2_2 else _pa_needed(evaluation)
    parts: list[dict[str, Any]] = [
        {"url": "coverage", "valueReference": {"reference": f"Coverage/{coverage_id}"}},
        {"url": "covered", "valueCode": covered},
    ]
    reasons: list[str] = []
    if pa is not None:
        parts.append({"url": "pa-needed", "valueCode": pa})
        if pa == "conditional":
            reasons.append(
                f"{evaluation.policy.policy.number} sets no prior-authorization rule; the plan decides"
            )
    parts += _what_is_needed(evaluation, covered, pa, technical if undetermined else "", crd_2_2)
    reasons += _determination_reasons(evaluation)
    if evaluation.policy.policy.in_force_until is not None:  # an earlier version decided
        info = evaluation.policy.policy
        reasons.append(f"Assessed under {info.number} version {info.version} ({info.version_note})")
    order = evaluation.order
    billing = {"system": order.billing_system, "code": order.billing_code}
    parts.append({"url": "billingCode", "valueCoding": billing})
    parts += [{"url": "reason", "valueCodeableConcept": {"text": clip(r, 1000)}} for r in reasons]
    if undetermined:
        reason: dict[str, Any] = {"text": clip(f"Not retrieved from the EHR: {technical}", 1000)}
        if crd_2_2:
            reason["coding"] = [{"system": CRD_TEMP_SYSTEM, "code": "technical"}]
        parts.append({"url": "reason", "valueCodeableConcept": reason})
    parts += [
        {"url": "date", "valueDate": today.isoformat()},
        {"url": "coverage-assertion-id", "valueString": assertion_id},
    ]
    return {"url": COVERAGE_INFO_URL, "extension": parts}


def coverage_action(
    evaluation: Evaluation,
    coverage_id: str,
    today: date,
    assertion_id: str,
    technical: str = "",
    crd_2_2: bool = False,
    target: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An `update` systemAction: the whole order (or `target`, the Appointment booked for it,
    for a CRD 2.0.1 appointment-book client), plus the coverage information."""
    # only `extension` is replaced, never mutated
    resource = dict(target if target is not None else evaluation.order.resource)
    extensions = resource.get("extension")
    kept = [
        x
        for x in (extensions if isinstance(extensions, list) else ())
        if not (isinstance(x, dict) and x.get("url") == COVERAGE_INFO_URL)
    ]
    resource["extension"] = [
        *kept,
        coverage_information(evaluation, coverage_id, today, assertion_id, technical, crd_2_2),
    ]
    return {
        "type": "update",
        "description": clip(
            f"Record {evaluation.policy.payer.name} coverage information "
            f"({evaluation.determination.value}) on the {evaluation.service.short} "
            + ("appointment" if resource.get("resourceType") == "Appointment" else "order"),
            200,
        ),
        "resource": resource,
    }


# --- Orders named by reference that were not evaluated (appointment-book, order-dispatch) ------
NOT_EVALUATED_EXT = "dli-hpc-cds.not-evaluated"


def not_evaluated_note(not_evaluated: tuple[tuple[str, str], ...]) -> str:
    return card_text.not_evaluated_note([reason for _, reason in not_evaluated])


def not_evaluated_card(
    not_evaluated: tuple[tuple[str, str], ...], new_uuid: Callable[[], str], crd_2_2: bool
) -> dict[str, Any]:
    """The one card of a call none of whose referenced orders could be evaluated: what to check,
    in words; the references and reasons in the machine-readable extension."""
    return {
        "uuid": new_uuid(),
        "summary": clip(card_text.not_evaluated_summary(len(not_evaluated))),
        "indicator": "warning",
        "detail": not_evaluated_note(not_evaluated),
        "source": {"label": "DLI / HPC boost coverage check", "topic": topic(crd_2_2)},
        "extension": {
            NOT_EVALUATED_EXT: [{"reference": r, "reason": why} for r, why in not_evaluated]
        },
    }
