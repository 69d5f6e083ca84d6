"""Command line: `cds-service serve | fire | fixtures | fhir-server | matrix | bench | audit | policy | dev-key`."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cds_service import devkeys
from cds_service.audit.cli import app as audit_app
from cds_service.core import Policy, Service, status_word
from cds_service.logs import configure_logging
from cds_service.policy_store import load
from cds_service.scenarios import (
    PARTIAL_PREFETCH_KEYS,
    build_request,
    find_scenario,
    load_scenarios,
    point_at_fhir_server,
    service_id,
    set_payer,
)
from cds_service.settings import Settings

# rich_markup_mode=None: click's plain help. Typer's rich help printed a `<bool>` value
# placeholder beside every flag (--json, --quick, even --help), which then refused a value.
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
app.add_typer(audit_app, name="audit")
policy_app = typer.Typer(
    no_args_is_help=True, help="Payer policies: their versions and what changed.", rich_markup_mode=None
)
app.add_typer(policy_app, name="policy")

# The fixture FHIR server's default token: it guards synthetic sandbox data only.
SANDBOX_TOKEN = "sandbox-token"  # noqa: S105


class Hook(StrEnum):
    ORDER_SIGN = "order-sign"
    ORDER_SELECT = "order-select"
    APPOINTMENT_BOOK = "appointment-book"
    ORDER_DISPATCH = "order-dispatch"


class Which(StrEnum):
    DLI = "dli"
    HPC_BOOST = "hpc-boost"
    BOTH = "both"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PORT, default 8000).")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes, each with every limit.")
    ] = 1,
) -> None:
    """Start the CDS Hooks service."""
    import uvicorn
    from pydantic import ValidationError

    from cds_service.api.issuers import ConfigError
    from cds_service.compose import create_dev_app
    from cds_service.server import WORKERS_ENV, quiet_repeats, uvicorn_options

    try:
        settings = Settings()
        service = create_dev_app(settings)
    except ValidationError as error:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        typer.secho(f"Not starting: {reasons}", fg="red", err=True)
        raise typer.Exit(2) from error
    except ConfigError as error:
        typer.secho(f"Not starting: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    configure_logging(settings.log_level)
    quiet_repeats()
    bind_host, bind_port = host or settings.host, port or settings.port
    base = f"http://{bind_host}:{bind_port}"
    typer.echo(f"CDS Hooks service listening on {base} (discovery: {base}/cds-services)")
    if settings.sandbox_enabled:
        typer.echo(f"Sandbox: {base}/sandbox")
    if settings.env == "development":
        typer.echo(f"API docs: {base}/docs")
    if workers > 1:  # each worker builds its own app (server.worker_app); this one was a check
        service.state.audit.close()
        os.environ[WORKERS_ENV] = str(workers)
    uvicorn.run(
        service if workers == 1 else "cds_service.server:worker_app",
        factory=workers > 1,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON handler: uvicorn's own would print request data
        access_log=False,  # the access log would print URLs only, but keep one log line per call
        **uvicorn_options(settings, workers),
    )


IN_PROCESS_URL = "http://in-process"


def _post(
    url: str | None, path: str, payload: dict[str, Any], key: Path | None, issuer: str
) -> httpx.Response:
    target = (url or IN_PROCESS_URL).rstrip("/") + path
    headers = {"Authorization": f"Bearer {devkeys.sign(key, target, issuer)}"} if key else {}
    if url:
        return httpx.post(target, json=payload, headers=headers, timeout=30)

    async def in_process() -> httpx.Response:
        from cds_service.api.app import create_app

        settings = Settings()  # the in-process service is what `aud` names: http://in-process
        settings.public_base_url = settings.public_base_url or IN_PROCESS_URL
        service = create_app(settings)
        transport = httpx.ASGITransport(app=service)
        try:
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.post(target, json=payload, headers=headers)
        finally:
            service.state.audit.close()  # write the audit record before the process ends

    return asyncio.run(in_process())


@contextmanager
def _fhir_server(url: str | None, token: str) -> Iterator[tuple[str, str]]:
    """(base URL, token) to fetch from: `url`, else a fixture server running for this call."""
    if url:
        yield url, token
        return
    from cds_service.fixture_server import create_fixture_server, serve_in_thread

    own_token = secrets.token_urlsafe(16)
    with serve_in_thread(create_fixture_server(own_token)) as base:
        yield base, own_token


def _print_response(body: dict[str, Any]) -> None:
    cards = body.get("cards") or []
    if not cards:
        typer.echo("No cards: the order is not a DLI or HPC boost, or no guidance applies.")
    for card in cards:
        typer.secho(f"[{card['indicator'].upper()}] {card['summary']}", bold=True)
        for evaluation in card.get("extension", {}).get("dli-hpc-cds.evaluations", []):
            typer.echo(
                f"  {evaluation['policyId']} · {evaluation['service']} · {evaluation['order']}"
                f" → {evaluation['determination']}"
            )
            for criterion in evaluation.get("criteria", []):
                # the card's status words (core/card_text.py); the ids are for integrators
                word = status_word(criterion["status"], criterion.get("notNeeded", False))
                evidence = (
                    f"  [{', '.join(criterion['evidence'])}]" if criterion.get("evidence") else ""
                )
                typer.echo(f"    {word.upper():<14} {criterion['text']}{evidence}")
        typer.echo("")
    for action in body.get("systemActions") or []:
        info: dict[str, Any] = next(
            (
                x
                for x in action["resource"].get("extension", [])
                if x["url"].endswith("coverage-information")
            ),
            {"extension": []},
        )
        fields = {  # the simple parts (a `detail` is itself a complex extension)
            x["url"]: v for x in info["extension"] for k, v in x.items() if k.startswith("value")
        }
        typer.echo(
            f"systemAction {action['type']} {action['resource']['resourceType']}/{action['resource'].get('id')}:"
            f" covered={fields.get('covered')} pa-needed={fields.get('pa-needed', '-')}"
            f" doc-needed={fields.get('doc-needed', '-')}"
        )


@app.command()
def fire(
    scenario: Annotated[
        str, typer.Argument(help="Scenario id (or a unique part of it); see `fixtures`.")
    ],
    service: Annotated[Which, typer.Option(help="Which draft order(s) to sign.")] = Which.DLI,
    hook: Annotated[Hook, typer.Option(help="CDS hook to fire.")] = Hook.ORDER_SIGN,
    payer: Annotated[
        str | None,
        typer.Option(
            help="Policy id whose payer replaces the scenario's Coverage, or 'none' for no Coverage."
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Base URL of a running service (default: in process).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw response JSON.")] = False,
    no_prefetch: Annotated[
        bool, typer.Option("--no-prefetch", help="Send no prefetch: the service fetches it all.")
    ] = False,
    partial_prefetch: Annotated[
        bool,
        typer.Option(
            "--partial-prefetch",
            help="Prefetch only patient and coverage: the service fetches the clinical data.",
        ),
    ] = False,
    fhir_server: Annotated[
        str | None,
        typer.Option(
            help="FHIR server the service fetches from (default with --no-prefetch or "
            "--partial-prefetch: a fixture FHIR server started for this call)."
        ),
    ] = None,
    fhir_token: Annotated[
        str, typer.Option(help="Bearer token for --fhir-server.")
    ] = SANDBOX_TOKEN,
    sign: Annotated[
        Path | None,
        typer.Option(help="Sign the call with this private key (see `dev-key`).", exists=True),
    ] = None,
    issuer: Annotated[str, typer.Option(help="The `iss` of the signed JWT.")] = devkeys.DEV_ISSUER,
) -> None:
    """Build a hook request from a scenario patient, call the service, print the cards."""
    try:
        found = find_scenario(scenario)
    except KeyError as error:
        raise typer.BadParameter(str(error.args[0]), param_hint="SCENARIO") from error
    if no_prefetch and partial_prefetch:
        raise typer.BadParameter("choose one of --no-prefetch and --partial-prefetch")
    if no_prefetch and payer is not None:
        raise typer.BadParameter(
            "--payer replaces the prefetched Coverage; use it with --partial-prefetch",
            param_hint="--payer",
        )
    services = tuple(Service) if service is Which.BOTH else (Service(service.value),)
    keys = () if no_prefetch else PARTIAL_PREFETCH_KEYS if partial_prefetch else None
    request = build_request(found.bundle(), hook.value, services, keys)
    if payer is not None:
        policies = {p.id: p for p in load().policies}
        if payer != "none" and payer not in policies:
            raise typer.BadParameter(
                f"use 'none' or one of {', '.join(policies)}", param_hint="--payer"
            )
        set_payer(request["prefetch"], None if payer == "none" else policies[payer])
    fetching = no_prefetch or partial_prefetch
    try:
        with _fhir_server(fhir_server, fhir_token) if fetching else nullcontext() as source:
            if source is not None:
                point_at_fhir_server(request, *source)
            response = _post(url, f"/cds-services/{service_id(hook.value)}", request, sign, issuer)
    except httpx.HTTPError as error:
        typer.secho(f"Could not reach {url}: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    body = response.json()
    if as_json:
        typer.echo(json.dumps(body, indent=2))
    elif response.status_code != 200:
        typer.secho(f"HTTP {response.status_code}: {json.dumps(body)}", fg="red", err=True)
    else:
        typer.echo(f"{found.id}: {found.title} ({hook.value}, HTTP {response.status_code})\n")
        _print_response(body)
    if response.status_code != 200:
        raise typer.Exit(1)


@app.command()
def fixtures() -> None:
    """List the scenario patients and their expected determinations."""
    short = {
        "meets-criteria": "meets",
        "does-not-meet-criteria": "no",
        "needs-information": "info",
        "not-addressed": "n/a",
    }
    policies = [p.id for p in load().policies]
    for scenario in load_scenarios():
        typer.secho(
            f"{scenario.id}  (payer: {scenario.payer or 'none'}, as of {scenario.as_of})", bold=True
        )
        typer.echo(f"  {scenario.title}")
        for svc, expected in scenario.expected.items():
            cells = "  ".join(
                f"{p.split('-')[0]}={short.get(expected.get(p, ''), '?')}" for p in policies
            )
            typer.echo(f"  {svc:<9} {cells}")


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option(help="Few iterations: checks the harness, not the speed.")
    ] = False,
    http: Annotated[
        bool, typer.Option(help="Also measure over HTTP (starts uvicorn processes).")
    ] = True,
    output: Annotated[Path, typer.Option(help="Where to write the JSON report.")] = Path(
        "artifacts/bench.json"
    ),
) -> None:
    """Benchmark order-sign: in process, over HTTP against the floor, cold start, memory."""
    from cds_service.bench.run import Plan, run_benchmark, table

    plan = Plan(in_process=20, http=30, rss_requests=200, fallback=3) if quick else Plan()
    report = run_benchmark(
        plan, with_http=http, log=lambda line: typer.secho(line, dim=True, err=True)
    )
    typer.echo(table(report))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"\nJSON report: {output}")


@app.command()
def matrix(
    output: Annotated[
        Path | None, typer.Option(help="Write the Markdown here (default: print it).")
    ] = None,
) -> None:
    """Generate the scenario matrix (docs/scenarios.md) from the fixtures' expectations."""
    from cds_service.matrix import render_matrix

    text = render_matrix(load_scenarios(), load().policies)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")


@app.command("fhir-server")
def fhir_server(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8090,
    token: Annotated[
        str, typer.Option(help="Bearer token every request must carry.")
    ] = SANDBOX_TOKEN,
) -> None:
    """Serve the scenario patients over FHIR REST (read + search), as an EHR's FHIR API would."""
    import uvicorn

    from cds_service.fixture_server import create_fixture_server

    typer.echo(
        f"Fixture FHIR server on http://{host}:{port} (needs Authorization: Bearer <--token>)"
    )
    uvicorn.run(create_fixture_server(token), host=host, port=port, log_level="warning")


@app.command("dev-key")
def dev_key(
    out: Annotated[Path, typer.Option(help="Folder for the key and the issuer file.")] = Path(
        ".dev-client"
    ),
    issuer: Annotated[
        str, typer.Option(help="The `iss` the client will use.")
    ] = devkeys.DEV_ISSUER,
) -> None:
    """Generate a local development CDS client key (ES384) and an issuers file that trusts it."""
    key_path, issuers_path = devkeys.generate(out, issuer)
    typer.echo(f"private key:  {key_path}  (for `fire --sign`; never share it)")
    typer.echo(f"issuers file: {issuers_path}")
    typer.echo(
        f"\nCDS_AUTH=true CDS_ISSUERS_FILE={issuers_path} cds-service serve\n"
        f"cds-service fire relapsed-aml-allo-mac --url http://127.0.0.1:8000 --sign {key_path}"
    )


def _policy(policy_id: str) -> Policy:
    found = next((p for p in load().policies if p.id == policy_id), None)
    if found is None:
        known = ", ".join(p.id for p in load().policies)
        raise typer.BadParameter(f"no policy {policy_id!r}; policies: {known}")
    return found


@policy_app.command("versions")
def policy_versions(policy_id: Annotated[str, typer.Argument(help="Policy id.")]) -> None:
    """A policy's versions, newest first, with the dates each is in force."""
    from cds_service.core import versions

    for version in versions(_policy(policy_id)):
        info = version.policy
        start = info.effective_from.isoformat() if info.effective_from else "always"
        until = f" until {info.in_force_until.isoformat()}" if info.in_force_until else ""
        typer.echo(f"{info.version:<10} from {start}{until}: {info.version_note}")


@policy_app.command("diff")
def policy_diff(
    policy_id: Annotated[str, typer.Argument(help="Policy id, e.g. centene-cp.mp.101.")],
    v1: Annotated[str, typer.Argument(help="The version compared from.")],
    v2: Annotated[str, typer.Argument(help="The version compared to.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which criteria changed between two versions, and which fixtures' answers change."""
    from cds_service.policy_diff import UnknownVersion, answer_changes, criteria_changes, pinned

    knowledge, policy = load(), _policy(policy_id)
    try:
        before, after = pinned(policy, v1), pinned(policy, v2)
    except UnknownVersion as error:
        raise typer.BadParameter(str(error)) from error
    criteria = criteria_changes(before, after)
    compared, answers = answer_changes(
        knowledge, before, after, lambda line: typer.secho(f"  {line}", dim=True, err=True)
    )
    if as_json:
        typer.echo(json.dumps({
            "policy": policy_id, "from": v1, "to": v2,
            "criteria": [vars(c) for c in criteria],
            "fixturesCompared": compared, "answers": [vars(a) for a in answers],
        }, indent=2))  # fmt: skip
        return
    typer.secho(f"{policy_id}: version {v1} -> {v2}", bold=True)
    typer.secho("Criteria", bold=True)
    for c in criteria:
        typer.echo(f"  {c.change:<8} {c.id}: {c.text}")
    if not criteria:
        typer.echo("  no criterion changed")
    typer.secho(f"Fixture answers that change ({len(answers)} of {compared})", bold=True)
    for a in answers:
        typer.echo(f"  {a.scenario:<40} {a.service:<9} {a.before} -> {a.after}")
