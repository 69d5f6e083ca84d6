"""docs/integration.md, the integrator's data contract, stays true to the service."""

from __future__ import annotations

import re
from pathlib import Path

from cds_service.api.discovery import APPOINTMENT_PREFETCH, DISPATCH_PREFETCH, PREFETCH

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "integration.md").read_text(encoding="utf-8")


def test_the_prefetch_table_is_the_discovery_prefetch() -> None:
    """Every documented template is the advertised one (code lists are elided)."""
    rows = dict(re.findall(r"^\| `([\w-]+)` \| `([^`]+)`", DOC, flags=re.MULTILINE))
    assert set(rows) == set(PREFETCH)
    for key, template in rows.items():
        assert PREFETCH[key] == template or (
            template.endswith("&code=") and PREFETCH[key].startswith(template)
        ), key


def test_the_readme_links_the_contract_from_the_top() -> None:
    top = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "(docs/integration.md)" in top


def test_the_order_templates_are_the_discovery_ones() -> None:
    """§1.1: the appointment-book / order-dispatch `serviceRequests` templates as advertised."""
    rows = re.findall(r"^\| ([a-z-]+) \| `(\w+)` \| `([^`]+)` \|$", DOC, flags=re.MULTILINE)
    assert rows == [
        ("appointment-book", *next(iter(APPOINTMENT_PREFETCH.items()))),
        ("order-dispatch", *next(iter(DISPATCH_PREFETCH.items()))),
    ]
