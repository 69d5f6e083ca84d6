"""Command line: `cds-service serve | fire | fixtures | dev-key`."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from cds_service import devkeys
from cds_service.core.model import Service
from cds_service.logs import configure_logging
from cds_service.policy_store import load
from cds_service.scenarios import (
    build_request,
    find_scenario,
    load_scenarios,
    service_id,
    set_payer,
)
from cds_service.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

_STATUS_MARK = {"met": "✓", "not-met": "✗", "unknown": "?", "not-applicable": "–"}


class Hook(StrEnum):
    ORDER_SIGN = "order-sign"
    ORDER_SELECT = "order-select"


class Which(StrEnum):
    DLI = "dli"
    HPC_BOOST = "hpc-boost"
    BOTH = "both"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (env HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (env PORT, default 8000).")] = None,
) -> None:
    """Start the CDS Hooks service."""
    import uvicorn

    from cds_service.api.app import create_app
    from cds_service.api.issuers import ConfigError

    settings = Settings()
    try:
        service = create_app(settings)
    except ConfigError as error:
        typer.secho(f"Not starting: {error}", fg="red", err=True)
        raise typer.Exit(2) from error
    configure_logging(settings.log_level)
    uvicorn.run(
        service,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        log_config=None,  # keep the JSON handler: uvicorn's own would print request data
        access_log=False,  # the access log would print URLs only, but keep one log line per call
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
        transport = httpx.ASGITransport(app=create_app(settings))
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(target, json=payload, headers=headers)

    return asyncio.run(in_process())


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
                mark = _STATUS_MARK[criterion["status"]]
                evidence = (
                    f"  [{', '.join(criterion['evidence'])}]" if criterion.get("evidence") else ""
                )
                typer.echo(f"    {mark} {criterion['text']}{evidence}")
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
        fields = {
            x["url"]: next(v for k, v in x.items() if k.startswith("value"))
            for x in info["extension"]
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
    services = tuple(Service) if service is Which.BOTH else (Service(service.value),)
    request = build_request(found.bundle(), hook.value, services)
    if payer is not None:
        policies = {p.id: p for p in load().policies}
        if payer != "none" and payer not in policies:
            raise typer.BadParameter(
                f"use 'none' or one of {', '.join(policies)}", param_hint="--payer"
            )
        set_payer(request["prefetch"], None if payer == "none" else policies[payer])
    try:
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
