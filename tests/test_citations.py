"""Every phrase a policy file quotes occurs in the policy text it cites, so no citation can drift
from its source document.

Quoted = between double quotes in a criterion's `citation`, an advisory's `text` / `citation`, an
assumption, or the prior-authorization citation. Readings are not checked: they also quote other
vocabularies (mCODE "stable"). Matching ignores case, whitespace and the kind of quote mark; an
ellipsis splits a quote into fragments that must each occur.

The texts live in `shared/policies/` beside the checkout (as in CI). CDS_POLICY_TEXTS names
another folder; without the folder the test skips, except under CI, where it fails
(tests/policy_texts.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.policy_store import bundled
from tests.policy_texts import policy_texts

CARDS = bundled("cards")
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_ELLIPSIS = re.compile(r"\.\.\.|…")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.translate(_QUOTES)).strip().lower()


def quoted_fragments(text: str) -> list[str]:
    """The fragments of every "..." quote in `text`, split at ellipses."""
    return [
        fragment
        for quote in re.findall(r'"([^"]+)"', text.translate(_QUOTES))
        for part in _ELLIPSIS.split(quote)
        if (fragment := normalise(part))
    ]


def _node_citations(node: dict[str, Any]) -> Iterator[tuple[str, str]]:
    yield node["id"], node["citation"]
    for group in ("all_of", "any_of", "none_of"):
        for child in node.get(group) or ():
            yield from _node_citations(child)


def citing_texts(policy: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, text) for every text in a policy file whose quotes must come from the source."""
    yield "prior_authorization", policy["prior_authorization"]["citation"]
    for i, assumption in enumerate(policy.get("assumptions") or ()):
        yield f"assumption {i + 1}", assumption
    for advisory in policy.get("advisories") or ():
        yield advisory["id"], advisory["text"]
        yield advisory["id"], advisory["citation"]
    for rule in policy["services"].values():
        if "id" in rule:
            yield from _node_citations(rule)
    for earlier in policy.get("earlier_versions") or ():
        yield f"version {earlier['version']}", earlier["citation"]


POLICY_FILES = sorted(CARDS.glob("*.yaml"))


def _source(policy: dict[str, Any]) -> str:
    texts = policy_texts()
    return normalise((texts / policy["policy"]["source_document"]).read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda p: p.stem)
def test_every_quoted_phrase_occurs_in_the_policy_text(path: Path) -> None:
    policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    source = _source(policy)
    fragments = [(where, f) for where, text in citing_texts(policy) for f in quoted_fragments(text)]
    assert fragments, "the policy file quotes its source somewhere"
    missing = [(where, f) for where, f in fragments if f not in source]
    assert missing == []


def test_fragments_split_at_ellipses_and_ignore_quote_style() -> None:
    text = 'POLICY ("following an allogeneic ... transplant") and \u201cIts\u00a0 Note\u201d'
    assert quoted_fragments(text) == ["following an allogeneic", "transplant", "its note"]
    assert quoted_fragments("no quotes here") == []


REVIEW = Path(__file__).resolve().parents[1] / "docs" / "policy-review.md"


def test_the_policy_review_quotes_each_policy_exactly() -> None:
    """docs/policy-review.md quotes every sentence it maps: each section's quotes are in the text
    of the policy its heading names."""
    sections = re.split(r"(?m)^## ", REVIEW.read_text(encoding="utf-8"))[1:]
    assert len(sections) == len(POLICY_FILES)
    for section in sections:
        policy_id = re.findall(r"`([a-z0-9.\-]+)`", section.splitlines()[0])[-1]
        policy = yaml.safe_load((CARDS / f"{policy_id}.yaml").read_text(encoding="utf-8"))
        source = _source(policy)
        missing = [f for f in quoted_fragments(section) if f not in source]
        assert missing == [], policy_id
