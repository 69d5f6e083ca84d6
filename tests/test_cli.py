"""The console command, in process (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cds_service.cli import app

runner = CliRunner()


def test_fire_prints_the_checklist() -> None:
    result = runner.invoke(app, ["fire", "relapsed-aml-allo-mac"])
    assert result.exit_code == 0, result.output
    assert "[INFO] DLI meets Molina Healthcare MCP-210 medical-necessity criteria" in result.output
    assert (
        "MET            Management of refractory, persistent, or relapsed hematologic malignancy"
        in result.output
    )
    # an any_of branch that cannot change the answer says so, in the card's words
    assert "NOT NEEDED     A planned strategy to prevent relapse" in result.output
    assert "systemAction update ServiceRequest/ram-dli: covered=covered" in result.output


def test_fire_all_payers_and_json() -> None:
    result = runner.invoke(
        app, ["fire", "mds-relapse", "--payer", "none", "--hook", "order-select", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    determinations = {e["policyId"]: e["determination"] for c in body["cards"]
                      for e in c["extension"]["dli-hpc-cds.evaluations"]}  # fmt: skip
    assert determinations["anthem-cg-trans-03"] == "needs-information"  # off-list MDS: review
    assert len(determinations) == 5


def test_fire_order_select_hpc_boost_with_another_payer() -> None:
    result = runner.invoke(app, ["fire", "autologous-only-poor-graft", "--service", "hpc-boost",
                                 "--hook", "order-select", "--payer", "wellmark-07.03.13"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Wellmark Blue Cross and Blue Shield 07.03.13" in result.output
    assert "systemAction" not in result.output


def test_fire_rejects_unknown_input() -> None:
    result = runner.invoke(app, ["fire", "no-such-patient"])
    assert result.exit_code == 2 and "no single scenario matches" in result.output
    result = runner.invoke(app, ["fire", "relapsed-aml-allo-mac", "--payer", "acme"])
    assert result.exit_code == 2 and "--payer" in result.output


def test_fire_reports_an_unreachable_service() -> None:
    result = runner.invoke(app, ["fire", "relapsed-aml-allo-mac", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "Could not reach" in result.output


def test_fixtures_lists_every_scenario() -> None:
    result = runner.invoke(app, ["fixtures"])
    assert result.exit_code == 0
    assert "relapsed-aml-allo-mac" in result.output and "car-t-cytopenia-no-hsct" in result.output


def test_bench_quick_in_process_writes_a_report(tmp_path: Path) -> None:
    """The harness runs and reports every size, the unrelated order and the scale curve; the
    numbers themselves are not asserted."""
    output = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--quick", "--no-http", "--output", str(output)])
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text())
    sizes = {"30", "300", "1500", "5000"}
    assert set(report["in_process"]) == sizes | {"300 unrelated", "scale"}
    assert report["resources"] == {size: int(size) for size in sizes}
    rows = [report["in_process"][label] for label in sizes | {"300 unrelated"}]
    assert all(f["parse_p50_ms"] > 0 and f["p50_ms"] <= f["p99_ms"] for f in rows)
    assert set(report["in_process"]["scale"]["marginal_us"]) == {"30-300", "300-1500", "1500-5000"}
    assert "p50 ms" in result.output and "us per resource" in result.output


def test_dev_key_and_signed_fire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["dev-key", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    key = tmp_path / "dev-client-key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("CDS_AUTH", "true")
    monkeypatch.setenv("CDS_ISSUERS_FILE", str(tmp_path / "dev-issuers.json"))
    signed = runner.invoke(app, ["fire", "relapsed-aml-allo-mac", "--sign", str(key)])
    assert signed.exit_code == 0, signed.output
    assert "systemAction update ServiceRequest/ram-dli" in signed.output
    unsigned = runner.invoke(app, ["fire", "relapsed-aml-allo-mac"])
    assert unsigned.exit_code == 1
    assert "HTTP 401" in unsigned.output


def test_serve_says_where_it_listens_and_where_the_sandbox_and_docs_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    started: dict[str, object] = {}

    def run(service: object, **options: object) -> None:
        started.update(options, app=service)
        started["app"].state.audit.close()  # type: ignore[attr-defined]

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.setattr("cds_service.cli.configure_logging", lambda level: None)  # pytest's own
    monkeypatch.setenv("CDS_ENV", "development")
    result = runner.invoke(app, ["serve", "--host", "127.0.0.1", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "listening on http://127.0.0.1:8123" in result.output
    assert "Sandbox: http://127.0.0.1:8123/sandbox" in result.output
    assert "API docs: http://127.0.0.1:8123/docs" in result.output
    assert started["port"] == 8123 and started["host"] == "127.0.0.1"
