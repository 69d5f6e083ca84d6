"""Every SDC / core extension the service emits, against its official StructureDefinition.

The HL7 packages that define them are on npm, as HL7 publishes them: hl7.fhir.uv.sdc 4.0.0-ballot
(sdc-questionnaire-launchContext, -initialExpression) and hl7.fhir.uv.extensions.r4
5.3.0-ballot-tc1 (variable, questionnaire-itemControl, questionnaire-unit). They cannot be npm
dependencies (each names hl7.fhir.r4.core 4.0.1, which npm has no version of), so scripts/test
fetches the two tarballs with `npm pack` into tests/sdc/.ig/ (not committed) and this test checks
each against the integrity npm published for it.

For each extension emitted (tests/emitted.py: hooks, packages, Questionnaire reads), from its
definition's snapshot: the element it sits on is one of the definition's contexts; value[x] is
present, absent and of the types the snapshot allows; sub-extensions are the definition's slices,
each within its cardinality and of its value type; and every constraint on the root element
(ele-1, ext-1 and the definition's own, e.g. sdc-lcext-1, var-1) is true when fhirpath.js
(tests/sdc/invariants.mjs) evaluates the definition's own expression.

Not checked here: the CRD and DTR extensions (no CRD / DTR package is obtainable: tests/conformance.py
and tests/test_fhir_validation.py encode their rules) and this service's own evidence extension
(no published definition); terminology of extensible bindings.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.emitted import emitted
from tests.test_crd_invariants import evaluate_expressions

PACKAGES = Path(__file__).parent / "sdc" / ".ig"
# npm package -> (version, the sha512 integrity npm publishes for its tarball)
PINNED = {
    "hl7.fhir.uv.sdc": (
        "4.0.0-ballot",
        "sha512-pgQtd+CtCpC4/exNcqYjEyobQu/xAFR8xuicGUxx4jMiZU4KUAf1n4lzOJOLn0eWw414uvUcwnDktUkGWytlMw==",
    ),
    "hl7.fhir.uv.extensions.r4": (
        "5.3.0-ballot-tc1",
        "sha512-mhPmWj0dZvIC7JQLkqxT42/UpoIyYwFtSiIZbhX/ArfX96hR5oTqNvAUvMD+dMH45m4mGMQ19WyCZFpP1OLEbQ==",
    ),
}
Found = tuple[str, dict[str, Any]]  # (the element it sits on, the extension)


@cache
def definitions() -> dict[str, dict[str, Any]]:
    """Extension StructureDefinitions by url, from the pinned npm tarballs."""
    found: dict[str, dict[str, Any]] = {}
    for name, (version, integrity) in PINNED.items():
        tarball = PACKAGES / f"{name}-{version}.tgz"
        if not tarball.is_file():
            if os.environ.get("CI") == "true":
                raise AssertionError(f"{tarball} missing: scripts/test fetches it with npm pack")
            pytest.skip(f"{tarball.name} missing (scripts/test: npm pack into tests/sdc/.ig)")
        digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        assert f"sha512-{digest}" == integrity, f"{tarball.name} is not the published package"
        with tarfile.open(tarball) as archive:
            for member in archive.getmembers():
                if not re.fullmatch(r"package/StructureDefinition-[^/]+\.json", member.name):
                    continue
                file = archive.extractfile(member)
                definition = json.loads(file.read()) if file else {}
                if definition.get("type") == "Extension":
                    found[definition["url"]] = definition
    return found


def _host(path: list[str]) -> str:
    """The element path FHIR contexts name: no indices, nested Questionnaire items as one."""
    joined = ".".join(path)
    return re.sub(r"(\.item)+", ".item", joined)


def extensions_in(value: Any, path: list[str]) -> Iterator[Found]:
    """Every extension with the element path it sits on (from its nearest resource)."""
    if isinstance(value, list):
        for item in value:
            yield from extensions_in(item, path)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("resourceType"), str):
        path = [value["resourceType"]]
    for key, child in value.items():
        if key in ("extension", "modifierExtension") and isinstance(child, list):
            for extension in child:
                yield _host(path), extension
                yield from extensions_in(extension.get("extension", []), [*path, key])
        else:
            yield from extensions_in(child, [*path, key])


def _elements(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in definition["snapshot"]["element"]}


def _value_problems(given: dict[str, Any], element: dict[str, Any] | None, where: str) -> list[str]:
    values = [k for k in given if k.startswith("value")]
    if element is None or element.get("max") == "0":
        return [f"{where}: no value allowed, has {values}"] if values else []
    allowed = {"value" + t["code"][0].upper() + t["code"][1:] for t in element.get("type", [])}
    found = [f"{where}: {v} is not one of {sorted(allowed)}" for v in values if v not in allowed]
    if len(values) < element.get("min", 0) or len(values) > 1:
        found.append(f"{where}: {len(values)} values, {element.get('min')}..1 allowed")
    return found


def structure_problems(
    host: str, extension: dict[str, Any], definition: dict[str, Any]
) -> list[str]:
    """Context, value[x] and sub-extension slices, from the definition's snapshot."""
    contexts = {c["expression"] for c in definition.get("context", []) if c["type"] == "element"}
    found = [] if host in contexts else [f"on {host}, not one of its contexts {sorted(contexts)}"]
    elements = _elements(definition)
    found += _value_problems(extension, elements.get("Extension.value[x]"), "value[x]")
    slices = {
        e["fixedUri"]: e["id"].rsplit(".url", 1)[0]
        for e in elements.values()
        if re.fullmatch(r"Extension\.extension:[^.]+\.url", e["id"]) and "fixedUri" in e
    }
    parts = extension.get("extension", [])
    if elements["Extension.extension"].get("max") == "0" and parts:
        found.append("sub-extensions where the definition allows none")
    counts = Counter(p.get("url") for p in parts)
    for url, slice_id in slices.items():
        low, high = elements[slice_id]["min"], elements[slice_id]["max"]
        if counts[url] < low or (high != "*" and counts[url] > int(high)):
            found.append(f"extension {url!r} occurs {counts[url]} times, {low}..{high} allowed")
    for part in parts:
        if slices and part.get("url") not in slices:
            found.append(f"extension {part.get('url')!r} is not one of {sorted(slices)}")
        elif part.get("url") in slices:
            value = elements.get(slices[part["url"]] + ".value[x]")
            found += _value_problems(part, value, f"extension {part['url']!r}")
    return found


def constraint_problems(found: list[Found], defs: dict[str, dict[str, Any]]) -> list[str]:
    """The root element's constraints of each definition, by fhirpath.js."""
    problems = []
    by_url: dict[str, list[dict[str, Any]]] = {}
    for _, extension in found:
        by_url.setdefault(extension["url"], []).append(extension)
    for url, extensions in by_url.items():
        root = _elements(defs[url])["Extension"]
        invariants = {c["key"]: c["expression"] for c in root.get("constraint", [])}
        for results in evaluate_expressions(invariants, extensions):
            problems += [f"{url}: {key} = {r}" for key, r in results.items() if r != [True]]
    return problems


@pytest.fixture(scope="module")
def found(client: TestClient) -> list[Found]:
    """Each distinct (element, extension) the service emits whose definition is obtainable."""
    defs = definitions()
    unique = {
        json.dumps([host, extension], sort_keys=True): (host, extension)
        for _, resource in emitted(client)
        for host, extension in extensions_in(resource, [])
        if extension.get("url") in defs
    }
    return list(unique.values())


def test_every_sdc_and_core_extension_matches_its_definition(found: list[Found]) -> None:
    defs = definitions()
    problems = [
        f"{extension['url']} on {host}: {problem}"
        for host, extension in found
        for problem in structure_problems(host, extension, defs[extension["url"]])
    ]
    problems += constraint_problems(found, defs)
    assert problems == [], "\n".join(problems[:50])
    checked = Counter(extension["url"].rsplit("/", 1)[1] for _, extension in found)
    print("\ndistinct extensions checked against their definitions:", dict(checked))  # noqa: T201
    expected = {"sdc-questionnaire-launchContext", "sdc-questionnaire-initialExpression"}
    # citations are displayCategory "instructions", no longer itemControl "help" (issue-20-render)
    assert expected | {"variable", "questionnaire-displayCategory"} <= set(checked), checked


def test_the_definition_checks_find_broken_extensions() -> None:
    defs = definitions()
    sdc = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
    launch: dict[str, Any] = {
        "url": sdc + "sdc-questionnaire-launchContext",
        "extension": [{"url": "name", "valueCoding": {"code": "patient"}}, {"url": "kind"}],
    }
    initial: dict[str, Any] = {
        "url": sdc + "sdc-questionnaire-initialExpression",
        "valueString": "%patient",
    }
    assert structure_problems("Questionnaire.item", launch, defs[launch["url"]]) == [
        "on Questionnaire.item, not one of its contexts ['Questionnaire']",
        "extension 'type' occurs 0 times, 1..* allowed",
        "extension 'kind' is not one of ['description', 'multiplesAllowed', 'name', 'type']",
    ]
    assert structure_problems("Questionnaire.item", initial, defs[initial["url"]]) == [
        "value[x]: valueString is not one of ['valueExpression']"
    ]
    variable = {
        "url": "http://hl7.org/fhir/StructureDefinition/variable",
        "valueExpression": {"language": "text/fhirpath", "expression": "1"},
    }
    assert constraint_problems([("Questionnaire", variable)], defs) == [
        "http://hl7.org/fhir/StructureDefinition/variable: var-1 = [False]"
    ]
