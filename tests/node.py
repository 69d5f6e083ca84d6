"""Running the JavaScript engines of tests/sdc (fhirpath.js, @aehrc/sdc-populate, FHIR.js): one
script, JSON in on stdin, JSON out on stdout. Without node or tests/sdc's npm install the caller
skips, except in CI (scripts/test runs `npm ci` there), where that is a failure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_PROJECT = Path(__file__).parent / "sdc"


def run_node(script: str, payload: Any, needs: tuple[str, ...], timeout: int = 300) -> Any:
    """`script`'s JSON answer to `payload`; `needs`: the npm packages it imports."""
    modules = NODE_PROJECT / "node_modules"
    if shutil.which("node") is None or not all((modules / name).is_dir() for name in needs):
        if os.environ.get("CI") == "true":
            raise AssertionError("node and tests/sdc's npm ci are needed (scripts/test runs it)")
        pytest.skip("node or tests/sdc/node_modules missing (cd tests/sdc && npm ci)")
    run = subprocess.run(
        ["node", str(NODE_PROJECT / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout,
    )
    return json.loads(run.stdout)
