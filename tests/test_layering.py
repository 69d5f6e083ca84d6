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


PACKAGE = Path(cds_service.__file__).parent
DEV_TOOLS = ("cds_service.sandbox", "cds_service.scenarios", "cds_service.fixture_server")


def _imports_of(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) per import statement; names is empty for `import x`."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, tuple(alias.name for alias in node.names)))
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_core_imports_no_other_layer_or_io_library() -> None:
    banned = ("cds_service.api", "cds_service.audit", "cds_service.sandbox", "fastapi",
              "httpx", "sqlalchemy", "starlette")  # fmt: skip
    offenders = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in CORE.rglob("*.py")
        for module, _ in _imports_of(path)
        if _within(module, banned)
    }
    assert offenders == set()


def test_the_api_imports_no_development_tooling() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in (PACKAGE / "api").rglob("*.py")
        for module, _ in _imports_of(path)
        if _within(module, DEV_TOOLS)
    }
    assert offenders == set()


def test_other_layers_use_only_the_public_face_of_core() -> None:
    import cds_service.core as core

    outside = [p for p in PACKAGE.rglob("*.py") if CORE not in p.parents]
    assert len(outside) > 20
    offenders = set()
    for path in outside:
        for module, names in _imports_of(path):
            if module.startswith("cds_service.core."):
                offenders.add(f"{path.relative_to(PACKAGE)}: {module}")
            elif module == "cds_service.core":
                offenders |= {
                    f"{path.relative_to(PACKAGE)}: {n}" for n in names if n not in core.__all__
                }
    assert offenders == set()


def test_the_production_app_loads_no_development_tooling() -> None:
    """In a fresh interpreter: building the app must not import the sandbox, the scenario
    loader or the fixture FHIR server (they cost start-up time and do not belong in production)."""
    import json
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from cds_service.api.app import create_app\n"
        "from cds_service.settings import Settings\n"
        "app = create_app(Settings(CDS_ENV='development'))\n"
        "app.state.audit.close()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('cds_service'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "cds_service.api.app" in loaded
    assert [m for m in loaded if _within(m, DEV_TOOLS)] == []


def test_the_development_composition_mounts_the_sandbox() -> None:
    from fastapi.testclient import TestClient

    from cds_service.compose import create_dev_app
    from cds_service.settings import Settings

    app = create_dev_app(Settings(CDS_ENV="development"))
    try:
        assert TestClient(app).get("/sandbox").status_code == 200
    finally:
        app.state.audit.close()


FUNCTION_LIMIT = 60


def test_no_function_over_sixty_lines_in_the_api_and_core() -> None:
    files = [p for d in ("api", "core") for p in (PACKAGE / d).rglob("*.py")]
    assert len(files) > 15
    long = {
        f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)"
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (lines := (node.end_lineno or node.lineno) - node.lineno + 1) > FUNCTION_LIMIT
    }
    assert long == set()


def test_the_module_map_names_every_module() -> None:
    """docs/architecture.md has a line for every module of cds_service; bench/, sandbox/ and
    audit/migrations/ are one line each, and a package's empty __init__.py needs none."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = {
        name
        for path in PACKAGE.rglob("*.py")
        if not {"bench", "sandbox", "migrations"} & set(path.parts)
        and (path.name != "__init__.py" or path.read_text(encoding="utf-8").strip().count("\n") > 2)
        and f"`{(name := str(path.relative_to(PACKAGE)))}`" not in text
    }
    assert missing == set()
