"""Check a response body against CDS Hooks 2.0 and the CRD rules Inferno's server suite checks
(../shared/reference/cds-hooks-and-crd.md §1.8, §2.8, §3.3 items 142-148)."""

from __future__ import annotations

import re
from typing import Any

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
COVERAGE_INFO = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"


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


def problems(body: dict[str, Any], hook: str) -> list[str]:
    found: list[str] = []
    if not isinstance(body.get("cards"), list):
        return ["cards missing"]
    for i, card in enumerate(body["cards"]):
        where = f"cards[{i}]"
        _no_empty(card, where, found)
        if not isinstance(card.get("summary"), str) or len(card["summary"]) >= 140:
            found.append(f"{where}.summary missing or >= 140 characters")
        if card.get("indicator") not in ("info", "warning", "critical"):
            found.append(f"{where}.indicator invalid")
        if not UUID.match(str(card.get("uuid", ""))):
            found.append(f"{where}.uuid missing")
        source = card.get("source") or {}
        if not source.get("label") or not (source.get("topic") or {}).get("system"):
            found.append(f"{where}.source.label/topic missing")
        for link in card.get("links", []):
            if link.get("type") != "absolute" or not str(link.get("url", "")).startswith(
                "https://"
            ):
                found.append(f"{where}.links: absolute https links only")
            if not link.get("label"):
                found.append(f"{where}.links.label missing")
        for reason in card.get("overrideReasons", []):
            if not all(reason.get(k) for k in ("code", "system", "display")):
                found.append(f"{where}.overrideReasons need code, system and display")
        for suggestion in card.get("suggestions", []):
            if not UUID.match(str(suggestion.get("uuid", ""))):
                found.append(f"{where}.suggestions.uuid missing")
        if card.get("suggestions") and "selectionBehavior" not in card:
            found.append(f"{where}.selectionBehavior missing")
    actions = body.get("systemActions", [])
    if "systemActions" in body:
        _no_empty(actions, "systemActions", found)
    ids_by_coverage: dict[str, set[str]] = {}
    for i, action in enumerate(actions):
        where = f"systemActions[{i}]"
        if action.get("type") not in ("create", "update", "delete") or not action.get(
            "description"
        ):
            found.append(f"{where}: type and description are required")
        resource = action.get("resource") or {}
        if resource.get("status") != "draft":
            found.append(f"{where}.resource must be the draft order")
        for ext in resource.get("extension", []):
            if ext.get("url") != COVERAGE_INFO:
                continue
            parts = {p["url"]: p for p in ext["extension"]}
            for required in ("coverage", "covered", "date", "coverage-assertion-id"):
                if required not in parts:
                    found.append(f"{where}: coverage-information lacks {required}")
            covered = parts.get("covered", {}).get("valueCode")
            if (covered == "not-covered") == ("pa-needed" in parts):
                found.append(f"{where}: pa-needed must be present exactly when not not-covered")
            conditional = "conditional" in (covered, parts.get("pa-needed", {}).get("valueCode"))
            if conditional and "info-needed" not in parts:
                found.append(f"{where}: conditional needs info-needed (CRD 2.2 q3)")
            if "info-needed" in parts and "reason" not in parts:
                found.append(f"{where}: info-needed OTH needs a reason (q6)")
            coverage = parts["coverage"]["valueReference"]["reference"]
            ids_by_coverage.setdefault(coverage, set()).add(
                parts["coverage-assertion-id"]["valueString"]
            )
    found += [
        f"{c}: one coverage-assertion-id per coverage"
        for c, i in ids_by_coverage.items()
        if len(i) != 1
    ]
    return found
