"""Generated requests per fuzz test, printed in pytest's terminal summary (see conftest.py)."""

from __future__ import annotations

from collections import Counter

REQUESTS: Counter[str] = Counter()
