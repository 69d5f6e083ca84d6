"""Our CDS Hooks / CRD checker: a response body (or the discovery document) against CDS Hooks 2.0,
the CRD rules, and the checks of Inferno's CRD server suite that can run without a FHIR
validator (../shared/reference/cds-hooks-and-crd.md §1.8, §2.8-2.11, §3).

Inferno (inferno-framework/davinci-crd-test-kit, lib/davinci_crd_test_kit/, read at commit
1d1f2c43) validates against CRD 2.0.1. Each check below names the Inferno test id it mirrors:
- `crd_discovery_services_validation` (server_tests/discovery_services_validation_test.rb)
- `crd_service_response_validation` (service_response_validation_test.rb, cards_validation.rb,
  suggestion_actions_validation.rb)
- `crd_card_optional_fields_validation` (card_optional_fields_validation_test.rb)
- `crd_coverage_info_system_action_received` / `crd_coverage_info_system_action_validation`
  (coverage_information_system_action_{received,validation}_test.rb). Inferno's
  `assert_valid_resource` runs the HL7 validator with the CRD 2.0.1 package; here the
  ServiceRequest profile's and ext-coverage-information's 2.0.1 rules (cardinalities, required
  value sets, crd-ci-q1..q5) are encoded by hand, and tests/test_conformance.py validates the
  resources with fhir.resources.
- `crd_external_reference_card_validation`, `crd_valid_instructions_card_received` and the
  "required card response" group: `card_types`.
- `crd_request_form_completion_response_validation` (form_completion_response_validation_test.rb,
  cards_identification.rb): `form_completion_problems`, the Tasks against CRD
  profile-taskquestionnaire of the client's version (2.0.1: afterCompletion 1..*; 2.2: none).
- `crd_service_response_validation`'s "systemActions must be present" for order-sign (and
  appointment-book, order-dispatch), on every 200 answer, as Inferno has it.
- The appointment-book and order-dispatch groups (server_appointment_book_group.rb,
  server_order_dispatch_group.rb) run the same server tests as order-sign; what differs is
  `crd_coverage_info_system_action_received`'s target types (`resources_by_hook`: Appointment for
  appointment-book) and the profile the updated resource is validated against: CRD 2.0.1
  profile-appointment, and profile-servicerequest with its `status = #draft (exactly)`, which
  CRD 2.1 dropped (FHIR-45295). `coverage_info_received_problems` encodes the first per version:
  for a CRD 2.2 client the update is of the ServiceRequest the Appointment is basedOn (CRD 2.2.1
  cards.md, FHIR-50318).
Every check takes the client's CRD version ("2.0.1" or "2.2"): card-type and detail code systems,
value sets and Task profile differ. The coverage-information invariants themselves are run from
the IG's own FHIRPath by fhirpathpy in tests/test_crd_invariants.py; the hand-written ones here
are kept as readable messages.
Not applicable to a server test without Inferno: TLS (`crd_server_tls_version_stu2`) and the
tester's own request checks (`crd_service_request_*`, run on our requests in
tests/test_conformance.py instead).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COVERAGE_INFO = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
REQUEST_TYPES = (
    "DeviceRequest",
    "MedicationRequest",
    "NutritionOrder",
    "ServiceRequest",
    "VisionPrescription",
)
SYSTEM_ACTIONS_HOOKS = ("appointment-book", "order-sign", "order-dispatch")  # Inferno's list
CRD_TEMP = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
SDC_TEMP = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
CARD_TYPE_SYSTEM = {
    "2.0.1": CRD_TEMP,
    "2.2": "http://terminology.hl7.org/CodeSystem/cdshooks-card-type",
}
# ext-coverage-information detail.code: CRD 2.0.1 binds coverageDetail (CRD temp codes, none
# for "what is needed", extensible); CRD 2.2 binds coverageDetailNew = THO crd-coverage-detail.
DETAIL_SYSTEMS = {
    "2.0.1": {CRD_TEMP, "http://dli-hpc-cds.org/fhir/CodeSystem/coverage-detail"},
    "2.2": {"http://terminology.hl7.org/CodeSystem/crd-coverage-detail"},
}
# RFC 3986 URI-reference characters (what Ruby's URI::RFC3986_Parser accepts), for valid_url?.
RFC3986_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
# Required value sets of ext-coverage-information, CRD 2.0.1 (package davinci-crd-2.0.1 that
# Inferno loads) and 2.2.1 (HL7/davinci-crd input/fsh @2.2.1).
CODES = {
    "2.0.1": {
        "covered": {"covered", "not-covered", "conditional"},
        "pa-needed": {"no-auth", "auth-needed", "satisfied", "performpa", "conditional"},
        "doc-needed": {"clinical", "admin", "both", "conditional"},
        "doc-purpose": {"withpa", "withclaim", "withorder", "retain-doc", "OTH"},
        "info-needed": {"performer", "location", "timeframe", "contract-window", "OTH"},
    },
    "2.2": {
        "covered": {"covered", "not-covered", "conditional", "indeterminate"},
        "pa-needed": {
            *("no-auth", "auth-needed", "satisfied", "performpa", "conditional"),
            "indeterminate",
        },
        "doc-needed": {"clinical", "admin", "patient", "conditional", "indeterminate"},
        "doc-purpose": {"withpa", "withclaim", "withorder", "retain-doc", "OTH"},
        "info-needed": {
            *("performer", "location", "timeframe", "contract-window", "detail-code"),
            "OTH",
        },
    },
}
# Sub-extension cardinalities (min, max); None = unbounded. Same in both versions for these.
CARDINALITY = {
    "coverage": (1, 1),
    "covered": (1, 1),
    "pa-needed": (0, 1),
    "date": (1, 1),
    "coverage-assertion-id": (1, 1),
    "satisfied-pa-id": (0, 1),
}


def _no_empty(value: Any, path: str, problems: list[str]) -> None:
    """CDS Hooks §use-of-json: no null, "", [] or {} anywhere (cards: [] is the one exception)."""
    if value is None or value == "" or value == [] or value == {}:
        problems.append(f"{path} is empty")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_empty(item, f"{path}.{key}", problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_empty(item, f"{path}[{i}]", problems)


def discovery_problems(document: dict[str, Any]) -> list[str]:
    """crd_discovery_services_validation, plus CRD dev-4/5/7/8 on configuration-options."""
    services = document.get("services")
    if not isinstance(services, list):
        return ["services missing or not an array"]
    found: list[str] = []
    for i, service in enumerate(services):
        for field in ("hook", "description", "id"):
            if not isinstance(service.get(field), str):
                found.append(f"services[{i}].{field} missing or not a string")
        options = (service.get("extension") or {}).get("davinci-crd.configuration-options", [])
        for key in ("code", "name", "description"):  # dev-8: unique per service
            values = [o.get(key) for o in options]
            if len(set(values)) != len(values):
                found.append(f"services[{i}]: configuration-options {key}s repeat")
        for option in options:
            if not {"code", "type", "name", "description", "default"} <= set(option):  # dev-4
                found.append(f"services[{i}]: option {option.get('code')} lacks a field")
            if not re.fullmatch(r"[A-Za-z_$][\w$-]*", str(option.get("code"))):  # dev-7
                found.append(f"services[{i}]: option code {option.get('code')!r} not a name")
            if option.get("type") not in ("boolean", "integer"):
                found.append(f"services[{i}]: option {option.get('code')} type invalid")
    return found


def _card_problems(card: dict[str, Any], where: str) -> list[str]:
    """crd_service_response_validation (required fields) and CRD resp-3/5/13/25."""
    found: list[str] = []
    _no_empty(card, where, found)
    if not isinstance(card.get("summary"), str) or len(card["summary"]) >= 140:
        found.append(f"{where}.summary missing or >= 140 characters")
    if card.get("indicator") not in ("info", "warning", "critical"):
        found.append(f"{where}.indicator invalid")
    if not UUID.match(str(card.get("uuid", ""))):
        found.append(f"{where}.uuid missing")
    source = card.get("source")
    topic = source.get("topic") if isinstance(source, dict) else None
    if not isinstance(source, dict) or not isinstance(source.get("label"), str):
        found.append(f"{where}.source.label missing")
    if not isinstance(topic, dict) or not all(
        isinstance(topic.get(k), str) for k in ("code", "system")
    ):
        found.append(f"{where}.source.topic needs code and system")
    elif topic["code"] == "coverage-info":
        # CRD resp-25: coverage information is a systemAction, never a card.
        found.append(f"{where}.source.topic: a card is not the coverage-info response type")
    for suggestion in card.get("suggestions", []):
        if not UUID.match(str(suggestion.get("uuid", ""))):
            found.append(f"{where}.suggestions.uuid missing")
    return found + _optional_field_problems(card, where)


def _optional_field_problems(card: dict[str, Any], where: str) -> list[str]:
    """crd_card_optional_fields_validation."""
    found: list[str] = []
    types = {
        "uuid": str,
        "detail": str,
        "suggestions": list,
        "overrideReasons": list,
        "links": list,
    }
    for field, kind in types.items():
        if field in card and (not isinstance(card[field], kind) or not card[field]):
            found.append(f"{where}.{field} must be a non-empty {kind.__name__}")
    if card.get("suggestions") and card.get("selectionBehavior") not in ("at-most-one", "any"):
        found.append(f"{where}.selectionBehavior missing or invalid")
    for reason in card.get("overrideReasons", []):
        if not all(isinstance(reason.get(k), str) for k in ("code", "system", "display")):
            found.append(f"{where}.overrideReasons need code, system and display")
    for link in card.get("links", []):
        url = urlparse(str(link.get("url", "")))
        if not isinstance(link.get("label"), str) or url.scheme not in ("http", "https"):
            found.append(f"{where}.links need a label and an http(s) url")
        elif not url.netloc:
            found.append(f"{where}.links url has no host")
        if link.get("type") not in ("absolute", "smart"):
            found.append(f"{where}.links.type invalid")
        if link.get("type") == "absolute" and "appContext" in link:
            found.append(f"{where}.links: appContext on an absolute link")
    for suggestion in card.get("suggestions", []):
        if not isinstance(suggestion.get("label"), str):
            found.append(f"{where}.suggestions.label missing")
        for i, action in enumerate(suggestion.get("actions", [])):
            found += _action_problems(action, f"{where}.suggestions.actions[{i}]")
    return found


def _action_problems(action: dict[str, Any], where: str) -> list[str]:
    """action_fields_validation (suggestion_actions_validation.rb)."""
    kind = action.get("type")
    if kind not in ("create", "update", "delete") or not isinstance(action.get("description"), str):
        return [f"{where}: type and description are required"]
    if kind == "delete":
        target = str(action.get("resourceId", ""))
        return (
            []
            if re.fullmatch(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}", target)
            else [f"{where}: a delete needs resourceId Type/id"]
        )
    resource = action.get("resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return [f"{where}: a {kind} needs a FHIR resource"]
    return []


def _service_request_problems(resource: dict[str, Any], where: str, crd: str) -> list[str]:
    """What CRD profile-servicerequest adds to base R4 (Inferno validates the updated resource
    against it): code, authoredOn, requester 1..; requester a Practitioner or PractitionerRole;
    subject a Patient; and in CRD 2.0.1 only, status fixed draft (2.1 dropped it, FHIR-45295)."""
    found: list[str] = []
    if crd == "2.0.1" and resource.get("status") != "draft":
        found.append(f"{where}.resource.status must be draft (CRD 2.0.1 profile)")
    for field in ("code", "authoredOn", "requester"):
        if field not in resource:
            found.append(f"{where}.resource.{field} missing (CRD 2.0.1 profile)")
    requester = str((resource.get("requester") or {}).get("reference", ""))
    if requester and not requester.startswith(("Practitioner/", "PractitionerRole/")):
        found.append(f"{where}.resource.requester must be a Practitioner(Role)")
    subject = str((resource.get("subject") or {}).get("reference", ""))
    if not subject.startswith("Patient/"):
        found.append(f"{where}.resource.subject must be a Patient")
    return found


def _appointment_problems(resource: dict[str, Any], where: str) -> list[str]:
    """CRD 2.0.1 profile-appointment (input/fsh/profiles/Appointment.fsh @2.0.1): start, end and
    requestedPeriod 1..1; basedOn only ServiceRequest; participant actors Patient, Practitioner
    or Location."""
    found: list[str] = []
    for field in ("start", "end"):
        if not isinstance(resource.get(field), str):
            found.append(f"{where}.resource.{field} missing (CRD 2.0.1 profile-appointment)")
    if len(resource.get("requestedPeriod") or []) != 1:
        found.append(f"{where}.resource.requestedPeriod must occur once (profile-appointment)")
    for ref in resource.get("basedOn") or []:
        if not str(ref.get("reference", "")).startswith("ServiceRequest/"):
            found.append(f"{where}.resource.basedOn must reference a ServiceRequest")
    for participant in resource.get("participant") or []:
        actor = str((participant.get("actor") or {}).get("reference", ""))
        if actor and not actor.startswith(("Patient/", "Practitioner/", "Location/")):
            found.append(f"{where}.resource.participant.actor {actor.split('/')[0]} not allowed")
    return found


def coverage_information_problems(ext: dict[str, Any], where: str, crd: str) -> list[str]:
    """One ext-coverage-information: the version's required value sets and cardinalities, and
    the invariants of both versions (2.0.1 crd-ci-q1..q5; 2.2 q1..q9), plus the CRD 2.2 note
    "If this element is set to OTH, then there must be at least one detail element"."""
    found: list[str] = []
    by_url: dict[str, list[dict[str, Any]]] = {}
    for part in ext.get("extension", []):
        by_url.setdefault(part.get("url", ""), []).append(part)
    for url, (low, high) in CARDINALITY.items():
        if not low <= len(by_url.get(url, [])) <= high:
            found.append(f"{where}: {url} must occur {low}..{high}")
    if crd == "2.0.1" and len(by_url.get("doc-needed", [])) > 1:
        found.append(f"{where}: doc-needed is 0..1 in CRD 2.0.1")
    for url, allowed in CODES[crd].items():
        for part in by_url.get(url, []):
            if part.get("valueCode") not in allowed:
                found.append(f"{where}: {url} {part.get('valueCode')!r} not in CRD {crd}")
    codes = {u: {p.get("valueCode") for p in parts} for u, parts in by_url.items()}
    covered = next(iter(codes.get("covered", {None})))
    conditional = any(
        "conditional" in codes.get(u, ()) for u in ("covered", "pa-needed", "doc-needed")
    )
    if "questionnaire" in by_url and "doc-needed" not in by_url:
        found.append(f"{where}: questionnaire needs doc-needed (q1)")
    if crd == "2.2" and (covered == "not-covered") == ("pa-needed" in by_url):
        # 2.2 q2 forbids pa-needed on not-covered (and we give it otherwise).
        found.append(f"{where}: pa-needed must be present exactly when not not-covered (q2)")
    if crd == "2.0.1" and "pa-needed" not in by_url:
        # 2.0.1 crd-ci-q2 is true on not-covered only with pa-needed (see crd_invariants.json).
        found.append(f"{where}: pa-needed is needed for crd-ci-q2 to be true (2.0.1)")
    if conditional != ("info-needed" in by_url):
        # 2.0.1 crd-ci-q3: info-needed only with a conditional; 2.2 q3: always with one.
        found.append(f"{where}: info-needed exactly when something is conditional (q3)")
    if ("satisfied" in codes.get("pa-needed", ())) != ("satisfied-pa-id" in by_url):
        found.append(f"{where}: satisfied-pa-id exactly when pa-needed is satisfied (q5)")
    if "OTH" in codes.get("info-needed", ()):
        if "reason" not in by_url:
            found.append(f"{where}: info-needed OTH needs a reason (q6)")
        if "detail" not in by_url:
            found.append(f"{where}: info-needed OTH needs a detail saying what is needed")
    if any("indeterminate" in values for values in codes.values()) and "reason" not in by_url:
        found.append(f"{where}: indeterminate needs a reason (q9)")
    return found + _detail_problems(by_url.get("detail", []), where, crd)


def _detail_problems(details: list[dict[str, Any]], where: str, crd: str) -> list[str]:
    """`detail`: code 1..1 and value 1..1 (both versions); category 1..1 in CRD 2.2 only (2.0.1
    defines no category)."""
    found: list[str] = []
    for detail in details:
        parts = [p.get("url") for p in detail.get("extension", [])]
        if parts.count("code") != 1 or parts.count("value") != 1:
            found.append(f"{where}: a detail needs one code and one value")
        if parts.count("category") != (1 if crd == "2.2" else 0):
            found.append(f"{where}: detail.category is 1..1 in CRD 2.2 and undefined in 2.0.1")
        for part in detail.get("extension", []):
            codings = (part.get("valueCodeableConcept") or {}).get("coding") or []
            if (
                part.get("url") == "code"
                and not {c.get("system") for c in codings} <= (DETAIL_SYSTEMS[crd])
            ):
                found.append(f"{where}: detail.code is not from CRD {crd}'s detail systems")
    return found


# crd_coverage_info_system_action_received `resources_by_hook` (Inferno, CRD 2.0.1); for CRD 2.2
# an appointment-book update goes on the ServiceRequest the Appointment is basedOn (FHIR-50318).
# (This service annotates only Appointments basedOn an order, so for 2.2 that is the request.)
TARGETS: dict[str, dict[str, tuple[str, ...]]] = {
    "2.0.1": {"appointment-book": ("Appointment",)},
    "2.2": {},
}


def _targets(hook: str, crd: str) -> tuple[str, ...]:
    return TARGETS[crd].get(hook, REQUEST_TYPES)


def coverage_info_received_problems(body: dict[str, Any], hook: str, crd: str) -> list[str]:
    """crd_coverage_info_system_action_received: among the systemActions whose resource is of
    the hook's target types, at least one carries ext-coverage-information."""
    targets = _targets(hook, crd)
    if any(
        (a.get("resource") or {}).get("resourceType") in targets
        and any(x.get("url") == COVERAGE_INFO for x in a["resource"].get("extension", []))
        for a in body.get("systemActions", [])
    ):
        return []
    return [f"Coverage Information system action was not returned in the {hook} hook response"]


def _system_action_problems(actions: list[Any], hook: str, crd: str) -> list[str]:
    """crd_service_response_validation (systemActions) and crd_coverage_info_system_action_
    validation: update only, the CRD 2.0.1 ServiceRequest profile, one coverage-assertion-id per
    coverage (and distinct across coverages)."""
    found: list[str] = []
    _no_empty(actions, "systemActions", found)
    ids_by_coverage: dict[str, set[str]] = {}
    for i, action in enumerate(actions):
        where = f"systemActions[{i}]"
        found += _action_problems(action, where)
        resource = action.get("resource") or {}
        infos = [x for x in resource.get("extension", []) if x.get("url") == COVERAGE_INFO]
        if not infos:
            continue
        if action.get("type") != "update" or resource.get("resourceType") not in _targets(
            hook, crd
        ):
            found.append(f"{where}: coverage information is an update of the {hook} resource")
        if resource.get("resourceType") == "ServiceRequest":
            found += _service_request_problems(resource, where, crd)
        if resource.get("resourceType") == "Appointment":
            found += _appointment_problems(resource, where)
        for ext in infos:
            found += coverage_information_problems(ext, where, crd)
            if hook == "order-select" and any(
                p.get("url") == "doc-needed" for p in ext["extension"]
            ):
                found.append(f"{where}: no doc-needed on a supporting hook (CRD hook-19)")
            parts = {p.get("url"): p for p in ext["extension"]}
            coverage = str(parts.get("coverage", {}).get("valueReference", {}).get("reference"))
            ids_by_coverage.setdefault(coverage, set()).add(
                str(parts.get("coverage-assertion-id", {}).get("valueString"))
            )
    found += [
        f"{c}: one coverage-assertion-id per coverage"
        for c, i in ids_by_coverage.items()
        if len(i) != 1
    ]
    every = [i for ids in ids_by_coverage.values() for i in ids]
    if len(every) != len(set(every)):
        found.append("coverage-assertion-ids repeat across coverages")
    return found


def problems(body: dict[str, Any], hook: str, crd: str = "2.0.1") -> list[str]:
    """Everything wrong with one 200 response body to `hook`, for a client of CRD version `crd`
    ("2.0.1": no davinci-crd.requestedVersion sent; "2.2": asked for it)."""
    if not isinstance(body.get("cards"), list):
        return ["cards missing or not an array"]
    found: list[str] = []
    for i, card in enumerate(body["cards"]):
        found += _card_problems(card, f"cards[{i}]") + _topic_problems(card, f"cards[{i}]", crd)
    found += form_completion_problems(body, crd)
    if "systemActions" not in body:
        if hook in SYSTEM_ACTIONS_HOOKS:
            # crd_service_response_validation: "did not have the `systemActions` field, which
            # must be present for the hook" (service_response_validation_test.rb), as Inferno
            # has it: every 200 answer to these hooks, with no exemption.
            found.append(f"systemActions missing: must be present for {hook}")
        return found
    if not isinstance(body["systemActions"], list):
        return [*found, "systemActions is not an array"]
    return found + _system_action_problems(body["systemActions"], hook, crd)


def _topic_problems(card: dict[str, Any], where: str, crd: str) -> list[str]:
    """CRD card types: CodeSystem temp in 2.0.1 (cardType = descendants of #_cardType), THO
    cdshooks-card-type in 2.2 (cardType = that whole system)."""
    system = ((card.get("source") or {}).get("topic") or {}).get("system")
    if system != CARD_TYPE_SYSTEM[crd]:
        return [f"{where}.source.topic.system {system!r} is not CRD {crd}'s card-type system"]
    return []


def _inferno_valid_url(url: Any) -> bool:
    """hook_request_field_validation.rb `valid_url?`: Ruby `URI.parse` (RFC 3986) with an http(s)
    scheme and a host. A `|` is outside RFC 3986, so `URI.parse` raises on a versioned canonical
    (`url|version`) and Inferno answers false."""
    if not isinstance(url, str) or not RFC3986_URI.fullmatch(url):
        return False
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.hostname)


def _is_questionnaire_task(resource: Any, url_check: bool = True) -> bool:
    """cards_identification.rb `form_completion_task_questionnaire?`: code complete-questionnaire
    and an input whose type.text is "questionnaire" with a valid URL valueCanonical."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Task":
        return False
    codes = (resource.get("code") or {}).get("coding") or []
    return any(c.get("code") == "complete-questionnaire" for c in codes) and any(
        (i.get("type") or {}).get("text") == "questionnaire"
        and (not url_check or _inferno_valid_url(i.get("valueCanonical")))
        for i in resource.get("input") or []
    )


def questionnaire_tasks(body: dict[str, Any], url_check: bool = True) -> list[dict[str, Any]]:
    """The Tasks Inferno's crd_request_form_completion_response_validation validates: `create`
    Task actions of cards whose every suggestion has exactly one (form_completion_card_response_
    type?), and of systemActions. `url_check=False` drops only `valid_url?` (see
    form_completion_problems)."""

    def is_form(action: dict[str, Any]) -> bool:
        return action.get("type") == "create" and _is_questionnaire_task(
            action.get("resource"), url_check
        )

    tasks = [a["resource"] for a in body.get("systemActions", []) if is_form(a)]
    for card in body.get("cards", []):
        suggestions = card.get("suggestions") or []
        if suggestions and all(
            sum(is_form(a) for a in s.get("actions", [])) == 1 for s in suggestions
        ):
            tasks += [a["resource"] for s in suggestions for a in s["actions"] if is_form(a)]
    return tasks


def form_completion_problems(body: dict[str, Any], crd: str) -> list[str]:
    """crd_request_form_completion_response_validation (form_completion_response_validation_
    test.rb): every Request Form Completion Task validates against profile-taskquestionnaire.

    Inferno identifies those Tasks with `valid_url?` on the canonical, which rejects `url|version`
    (even the CRD IG's own example), so Inferno itself would skip this optional test for our
    versioned canonicals. That would hide every defect, so the Tasks are found here without
    the URL parse (stricter than Inferno, never looser); the profile is checked per version."""
    found: list[str] = []
    for i, task in enumerate(questionnaire_tasks(body, url_check=False)):
        found += task_profile_problems(task, f"form-completion Task {i}", crd)
    return found


def task_profile_problems(task: dict[str, Any], where: str, crd: str) -> list[str]:
    """CRD profile-taskquestionnaire on SDCTaskQuestionnaire (HL7/davinci-crd
    input/fsh/profiles/TaskQuestionnaire.fsh at 2.0.1 and 2.2.1, HL7/sdc SDCTaskQuestionnaire):
    status ready, intent order, code complete-questionnaire, for a Patient, authoredOn and a
    payer Organization requester (1..1), no focus (sdc-t1), one questionnaire input with the SDC
    type coding and a canonical; CRD 2.0.1 afterCompletion 1..* (type temp#after-completion-
    action, value a CodeableConcept), which CRD 2.2 removed with its codes (FHIR-50269)."""
    found: list[str] = []
    for field, fixed in (("status", "ready"), ("intent", "order")):
        if task.get(field) != fixed:
            found.append(f"{where}: {field} must be {fixed}")
    if not any(
        c.get("system") == SDC_TEMP and c.get("code") == "complete-questionnaire"
        for c in (task.get("code") or {}).get("coding") or []
    ):
        found.append(f"{where}: code must be SDC temp#complete-questionnaire")
    if not str((task.get("for") or {}).get("reference", "")).startswith("Patient/"):
        found.append(f"{where}: for must reference the Patient (1..1)")
    if not isinstance(task.get("authoredOn"), str):
        found.append(f"{where}: authoredOn missing (1..1)")
    requester = task.get("requester") or {}
    if (
        not requester
        or str(requester.get("reference", "Organization/")).split("/")[0] != ("Organization")
        or requester.get("type", "Organization") != "Organization"
    ):
        found.append(f"{where}: requester must be the payer Organization (1..1)")
    if "focus" in task:
        found.append(f"{where}: no focus on a complete-questionnaire Task (sdc-t1)")
    inputs = task.get("input") or []
    asks = [i for i in inputs if _typed(i, SDC_TEMP, "questionnaire")]
    if len(asks) != 1 or not isinstance(asks[0].get("valueCanonical"), str):
        found.append(f"{where}: one input[questionnaire] with a valueCanonical (1..1)")
    after = [i for i in inputs if _typed(i, CRD_TEMP, "after-completion-action")]
    if crd == "2.0.1" and (
        not after or not all(isinstance(i.get("valueCodeableConcept"), dict) for i in after)
    ):
        found.append(f"{where}: input[afterCompletion] 1..* with a valueCodeableConcept (2.0.1)")
    if crd == "2.2" and after:
        found.append(f"{where}: after-completion-action is not a CRD 2.2 code (FHIR-50269)")
    return found


def _typed(task_input: dict[str, Any], system: str, code: str) -> bool:
    codings = (task_input.get("type") or {}).get("coding") or []
    return any(c.get("system") == system and c.get("code") == code for c in codings)


def card_types(body: dict[str, Any]) -> set[str]:
    """The CRD response types Inferno identifies in a body (cards_identification.rb), for the
    "required card response validation" group: CRD 2.0.1 servers SHALL demonstrate Coverage
    Information, External Reference and Instructions."""
    found = set()
    for card in body.get("cards", []):
        if card.get("links") and all(link.get("type") == "absolute" for link in card["links"]):
            found.add("external-reference")  # crd_external_reference_card_validation
        if not card.get("links") and not card.get("suggestions"):
            found.add("instructions")  # crd_valid_instructions_card_received
    for action in body.get("systemActions", []):
        resource = action.get("resource") or {}
        if resource.get("resourceType") in (*REQUEST_TYPES, "Appointment") and any(
            x.get("url") == COVERAGE_INFO for x in resource.get("extension", [])
        ):
            found.add("coverage-information")  # crd_coverage_info_system_action_received
    return found


def request_problems(request: dict[str, Any]) -> list[str]:
    """Inferno's checks of the tester's request (hook_request_field_validation.rb):
    crd_service_request_required_fields_validation, crd_service_request_optional_fields_validation
    (fhirAuthorization) and crd_service_request_context_validation for order-sign / order-select /
    appointment-book / order-dispatch.
    """
    found: list[str] = []
    for field, kind in (("hook", str), ("hookInstance", str), ("context", dict)):
        if not isinstance(request.get(field), kind):
            found.append(f"{field} missing or not a {kind.__name__}")
    if not UUID.match(str(request.get("hookInstance", "")).lower()):
        found.append("hookInstance must be a UUID")
    auth = request.get("fhirAuthorization")
    if auth is not None:
        if not isinstance(request.get("fhirServer"), str):
            found.append("fhirAuthorization needs fhirServer")
        types = {
            "access_token": str,
            "token_type": str,
            "expires_in": int,
            "scope": str,
            "subject": str,
        }
        found += [
            f"fhirAuthorization.{k} missing"
            for k, t in types.items()
            if not isinstance(auth.get(k), t)
        ]
        if auth.get("token_type") != "Bearer":
            found.append("fhirAuthorization.token_type must be Bearer")
    context = request.get("context") or {}
    if not isinstance(context.get("patientId"), str) or "/" in context["patientId"]:
        found.append("context.patientId must be a plain id")
    if request.get("hook") == "appointment-book":
        return found + _appointment_book_context_problems(context)
    if request.get("hook") == "order-dispatch":
        return found + _order_dispatch_context_problems(context)
    if not re.fullmatch(r"(Practitioner|PractitionerRole)/[^/\s]+", str(context.get("userId"))):
        found.append("context.userId must be Practitioner/… or PractitionerRole/…")
    orders = context.get("draftOrders") or {}
    if orders.get("resourceType") != "Bundle":
        found.append("context.draftOrders must be a Bundle")
    refs = set()
    for entry in orders.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") not in REQUEST_TYPES or not resource.get("id"):
            found.append("context.draftOrders entries must be request resources with an id")
        refs.add(f"{resource.get('resourceType')}/{resource.get('id')}")
    if not refs:
        found.append("context.draftOrders has no request resource")
    if request.get("hook") == "order-select":
        selections = context.get("selections")
        if not isinstance(selections, list) or not set(selections) <= refs:
            found.append("context.selections must be draftOrders references")
    return found


def _appointment_book_context_problems(context: dict[str, Any]) -> list[str]:
    """appointment_book_context_check: userId a Patient, RelatedPerson, Practitioner or
    PractitionerRole; appointments a Bundle of Appointments in 'proposed' state."""
    found: list[str] = []
    user = r"(Patient|RelatedPerson|Practitioner|PractitionerRole)/[^/\s]+"
    if not re.fullmatch(user, str(context.get("userId"))):
        found.append("context.userId must be a Patient, RelatedPerson or Practitioner(Role)")
    bundle = context.get("appointments") or {}
    if bundle.get("resourceType") != "Bundle" or not bundle.get("entry"):
        return [*found, "context.appointments must be a Bundle of Appointments"]
    for entry in bundle["entry"]:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Appointment" or not resource.get("id"):
            found.append("context.appointments entries must be Appointments with an id")
        elif resource.get("status") != "proposed":
            found.append("context.appointments entries must be in 'proposed' state")
    return found


def _order_dispatch_context_problems(context: dict[str, Any]) -> list[str]:
    """order_dispatch_context_check, on the CDS Hooks order-dispatch 1.0 context. Inferno (at
    1d1f2c43) still checks the hook's 2023 ballot form (`order`: one reference, `task`); the
    service reads that form too (api/hooks.py DispatchContext), and the tests send 1.0's
    `dispatchedOrders` (request references), `performer` and `fulfillmentTasks`."""
    found: list[str] = []
    reference = r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}"
    orders = context.get("dispatchedOrders")
    if not isinstance(orders, list) or not orders:
        found.append("context.dispatchedOrders must be a non-empty array of references")
    else:
        for order in orders:
            kind = str(order).split("/")[0]
            if not re.fullmatch(reference, str(order)) or kind not in REQUEST_TYPES:
                found.append("context.dispatchedOrders items must be request references")
    if not re.fullmatch(reference, str(context.get("performer"))):
        found.append("context.performer must be a reference")
    for task in context.get("fulfillmentTasks") or []:
        if task.get("resourceType") != "Task":
            found.append("context.fulfillmentTasks items must be Tasks")
        elif (task.get("focus") or {}).get("reference") not in (orders or []):
            found.append("context.fulfillmentTasks must each reference a dispatched order")
    return found
