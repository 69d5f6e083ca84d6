"""Where the tests find the payers' policy texts (the documents the policy files cite).

They are the payers' texts, not ours, so they stay outside the project: by default in
`shared/policies/` beside the checkout (as CI lays it out); `CDS_POLICY_TEXTS` names another
folder. Without them the tests that read them skip locally, saying why and what to do, and
fail in CI (`CI=true`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "policies"
POLICY_TEXTS = Path(os.environ.get("CDS_POLICY_TEXTS") or DEFAULT)


def missing_reason(folder: Path = POLICY_TEXTS) -> str:
    return (
        f"payer policy texts not found at {folder}: put the payers' documents in "
        f"shared/policies/ beside the checkout, or set CDS_POLICY_TEXTS to their folder "
        f"(README, Policy texts)"
    )


def policy_texts() -> Path:
    """The folder of policy texts; skips the calling test (fails it in CI) without it."""
    if not POLICY_TEXTS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(missing_reason())
        pytest.skip(missing_reason())
    return POLICY_TEXTS
