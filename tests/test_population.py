"""The SDC population expressions (core/population.py) against the fact modules' own rules.

The expressions are generated from core/codes.py; the few ranges the fact modules keep in code
(ICD-10-CM C81-C96, the C86 / C88 / C90-C95 relapse character) are copied into regular
expressions, so each copy is checked here against the classifier it copies, over every code of
its shape. fhirpath.js evaluates `matches()` with JavaScript regular expressions, which read
these patterns (anchors, classes, alternation) as Python's `re` does.
"""

from __future__ import annotations

import re
from itertools import product

from cds_service.core import codes, population
from cds_service.core.facts.diagnosis import HEME, classify_coding
from cds_service.core.facts.disease import coded_status
from cds_service.core.model import Service
from cds_service.core.questionnaire import worksheets
from cds_service.policy_store import load

DIGITS = "0123456789"
CHARACTERS = DIGITS + "AXZB"


def _c_codes() -> list[str]:
    """Every C-chapter ICD-10-CM shape the rules read: Cnn, Cnn.x, Cnn.xy."""
    found = []
    for category in range(100):
        base = f"C{category:02d}"
        found += [base, *(f"{base}.{a}" for a in CHARACTERS)]
        found += [f"{base}.{a}{b}" for a, b in product(CHARACTERS, CHARACTERS)]
    return found


def test_the_haematological_c_categories_are_the_classifiers() -> None:
    pattern = re.compile(population.HEME_C_CATEGORIES)
    for code in _c_codes():
        assert bool(pattern.match(code)) == (classify_coding(codes.ICD10CM, code) == HEME), code


def test_the_status_codes_are_the_classifiers() -> None:
    patterns = {
        "relapsed": re.compile(population.RELAPSE_ICD),
        "remission": re.compile(population.REMISSION_ICD),
        "not-in-remission": re.compile(population.NOT_IN_REMISSION_ICD),
    }
    for code in [*_c_codes(), "C84.7A", "C84.7B", "C84.7Z", "C85.1A"]:
        status = coded_status(codes.ICD10CM, code)
        for name, pattern in patterns.items():
            assert bool(pattern.match(code)) == (status == name), (code, name)


def test_the_narrowed_transplant_codes_split_the_fact_modules_pattern() -> None:
    allo, auto = (
        re.compile(population.pcs(qualifier="[1234]")),
        re.compile(population.pcs(qualifier="0")),
    )
    depleted, stem_cells = (
        re.compile(population.pcs(substance="U")),
        re.compile(population.pcs("Y")),
    )
    for code in ("".join(p) for p in product(["30233", "30243", "30253"], "GXYUQ", "012345")):
        match = codes.HSCT_PCS.match(code)
        assert bool(allo.match(code)) == bool(match and match.group(2) != "0"), code
        assert bool(auto.match(code)) == bool(match and match.group(2) == "0"), code
        assert bool(depleted.match(code)) == bool(match and match.group(1) == "U"), code
        assert bool(stem_cells.match(code)) == bool(match and match.group(1) == "Y"), code


def test_a_string_literal_survives_quotes_and_backslashes() -> None:
    assert population.literal(r"it's ^C\d") == r"'it\'s ^C\\d'"


def test_every_record_fact_a_worksheet_asks_has_its_variable_and_nothing_dangles() -> None:
    for sheet in worksheets(load().policies):
        variables = {
            e["valueExpression"]["name"]: e["valueExpression"]["expression"]
            for e in sheet.questionnaire["extension"]
            if e["url"] == population.VARIABLE
        }
        names = list(variables)
        assert all(re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", name) for name in names)  # FHIR id
        for position, (name, expression) in enumerate(variables.items()):
            used = set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)", expression)) - {"patient"}
            assert used <= set(names[:position]), (sheet.id, name, used - set(names[:position]))
        for leaf in sheet.leaves.values():
            expression = population.initial_expression(leaf.test.fact)
            if expression is not None:
                used = set(
                    re.findall(
                        r"%([A-Za-z_][A-Za-z0-9_]*)", expression["valueExpression"]["expression"]
                    )
                )
                assert used <= set(names), (sheet.id, leaf.node.id, used)


def test_a_worksheet_without_record_facts_reads_only_its_order() -> None:
    extensions = population.root_extensions(Service.DLI, ("product_source",))
    names = [e["valueExpression"]["name"] for e in extensions if e["url"] == population.VARIABLE]
    assert names == ["order"]
    with_chimerism = population.root_extensions(Service.HPC_BOOST, ("donor_chimerism_pct",))
    named = [e["valueExpression"]["name"] for e in with_chimerism if "valueExpression" in e]
    assert "chimerismBundle" in named and "donorChimerismPct" in named
    assert "hsctType" not in named and "statusBundle" not in named
