"""The core is pure: it imports nothing from the HTTP layer, I/O libraries or the settings."""

from __future__ import annotations

import ast
from pathlib import Path

import cds_service

CORE = Path(cds_service.__file__).parent / "core"
FORBIDDEN = ("fastapi", "starlette", "httpx", "uvicorn", "typer", "yaml", "logging", "os",
             "pathlib", "socket", "urllib", "sqlite3", "cds_service.api", "cds_service.settings",
             "cds_service.policy_store", "cds_service.cli")  # fmt: skip


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_io_or_http() -> None:
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = {
        f"{path.relative_to(CORE)}: {name}"
        for path in files
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert offenders == set()


def test_core_never_reads_the_clock() -> None:
    for path in CORE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "date.today(" not in text and "datetime.now(" not in text, path.name
