"""`cds-service audit …`: list, show, export, stats, metrics and purge the decision audit log."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TextIO

import typer

from cds_service.audit.crd_report import crd_metrics
from cds_service.audit.report import assertion_dict, decision_dict, stats
from cds_service.audit.store import AuditFilter, AuditStore, database_url
from cds_service.core import Determination
from cds_service.settings import Settings

app = typer.Typer(no_args_is_help=True, help=__doc__, rich_markup_mode=None)  # see cli.py
EXPORT_BATCH = 500


@contextlib.contextmanager
def _opened() -> Iterator[AuditStore]:
    settings = Settings()
    store = AuditStore(database_url(settings.data_dir, settings.database_url))
    try:
        store.migrate()  # a first run on an empty data dir just shows nothing
        yield store
    finally:
        store.close()


def _moment(text: str | None, end_of_day: bool = False) -> datetime | None:
    """ISO date or date-time (UTC unless it says otherwise). A bare date as --until includes
    that whole day."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is not an ISO date or date-time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment


Since = Annotated[str | None, typer.Option(help="From this date / date-time (UTC), inclusive.")]
Until = Annotated[str | None, typer.Option(help="Up to this date (inclusive) or date-time.")]
Patient = Annotated[str | None, typer.Option(help="Patient id (as in context.patientId).")]
Policy = Annotated[str | None, typer.Option(help="Policy id, e.g. molina-mcp-210.")]
Outcome = Annotated[Determination | None, typer.Option(help="Determination of that policy.")]


def _filter(
    since: str | None,
    until: str | None,
    patient: str | None = None,
    policy: str | None = None,
    determination: Determination | None = None,
) -> AuditFilter:
    return AuditFilter(
        since=_moment(since),
        until=_moment(until, end_of_day=True),
        patient=patient,
        policy=policy,
        determination=determination.value if determination else None,
    )


@app.command("list")
def list_(
    since: Since = None,
    until: Until = None,
    patient: Patient = None,
    policy: Policy = None,
    determination: Outcome = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many records.")] = 100,
) -> None:
    """One line per recorded hook call: id, time, hook, patient, hookInstance, outcomes."""
    with _opened() as store:
        rows = store.decisions(_filter(since, until, patient, policy, determination), limit)
    for row in rows:
        outcomes = " ".join(
            f"{e.order_ref}:{e.policy_id}={e.determination}" for e in row.evaluations
        )
        typer.echo(
            f"{row.id:>6}  {row.recorded_at:%Y-%m-%dT%H:%M:%SZ}  {row.hook:<12}  "
            f"Patient/{row.patient_id}  {row.hook_instance}  {outcomes or '(no DLI / HPC order)'}"
        )
    typer.echo(f"{len(rows)} record(s)", err=True)


@app.command()
def show(
    key: Annotated[
        str, typer.Argument(help="A CRD coverage-assertion-id, a record id or a hookInstance.")
    ],
) -> None:
    """What was asserted under a coverage-assertion-id (orders, policy version, criteria and the
    evidence ids), or one decision in full by record id / hookInstance, as JSON."""
    with _opened() as store:
        asserted = store.assertion(key)
        if asserted is not None:
            typer.echo(json.dumps(assertion_dict(asserted, key), indent=2))
            return
        row = store.find(key)
        if row is None:
            raise typer.BadParameter(
                f"no audit record with coverage-assertion-id, id or hookInstance {key!r}"
            )
        feedback = store.feedback([row.id])[row.id]
    typer.echo(json.dumps(decision_dict(row, feedback), indent=2))


@app.command("metrics")
def metrics_(
    since: Since = None,
    until: Until = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """CRD metrics per hook and payer: calls, p50 / p90 response time, share under 5 s, share
    with coverage information (CRD metrics.md), from the audit records."""
    with _opened() as store:
        rows = crd_metrics(store, _filter(since, until))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.secho(
        f"{'hook':<13} {'payer':<20} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'< 5 s':>7} {'cov-info':>8}  covered",
        bold=True,
    )
    for r in rows:
        covered = " ".join(f"{code}={n}" for code, n in r["covered"].items()) or "-"
        typer.echo(
            f"{r['hook']:<13} {r['payer']:<20} {r['calls']:>6} {r['p50Ms']:>8} {r['p90Ms']:>8} "
            f"{r['shareUnder5s']:>7.1%} {r['shareWithCoverageInfo']:>8.1%}  {covered}"
        )
    if not rows:
        typer.echo("no hook calls recorded in that range", err=True)


@app.command()
def export(
    since: Since = None,
    until: Until = None,
    patient: Patient = None,
    policy: Policy = None,
    determination: Outcome = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """Matching decisions as JSON lines (the `show` document, one per line)."""
    where = _filter(since, until, patient, policy, determination)
    count, after = 0, 0
    with _opened() as store, contextlib.ExitStack() as files:
        target: TextIO = files.enter_context(out.open("w", encoding="utf-8")) if out else sys.stdout
        while rows := store.decisions(where, EXPORT_BATCH, after_id=after):
            feedback = store.feedback([r.id for r in rows])
            for row in rows:
                target.write(json.dumps(decision_dict(row, feedback[row.id])) + "\n")
            count, after = count + len(rows), rows[-1].id
    typer.echo(f"{count} record(s) exported", err=True)


@app.command("stats")
def stats_(
    since: Since = None,
    until: Until = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Determinations per policy; override rate per policy and per criterion (see README)."""
    with _opened() as store:
        numbers = stats(store, _filter(since, until))
    if as_json:
        typer.echo(json.dumps(numbers, indent=2))
        return
    typer.secho("Determinations per policy", bold=True)
    for policy, counts in numbers["determinations"].items():
        typer.echo(f"  {policy:<20} " + "  ".join(f"{d}={n}" for d, n in counts.items()))
    typer.secho("Override rate per policy (cards with feedback)", bold=True)
    for item in numbers["overridesByPolicy"]:
        typer.echo(f"  {item['policy']:<20} {_ratio(item)}")
    typer.secho("Override rate per criterion (when not-met / unknown)", bold=True)
    for item in numbers["overridesByCriterion"]:
        typer.echo(
            f"  {item['policy']:<20} {item['criterion']:<28} {item['status']:<8} {_ratio(item)}"
        )


def _ratio(item: dict[str, int | float | None]) -> str:
    rate = item["overrideRate"]
    shown = "-" if rate is None else f"{rate:.0%}"
    return f"{item['overridden']}/{item['withFeedback']} overridden ({shown})"


@app.command()
def purge(
    days: Annotated[
        int | None, typer.Option(min=1, help="Keep this many days (env CDS_AUDIT_RETENTION_DAYS).")
    ] = None,
) -> None:
    """Delete decisions (with their feedback) older than the retention period."""
    keep = days or Settings().audit_retention_days
    before = datetime.now(UTC) - timedelta(days=keep)
    with _opened() as store:
        decisions, orphans = store.purge(before)
    typer.echo(
        f"purged {decisions} decision(s) and {orphans} unlinked feedback item(s) "
        f"recorded before {before:%Y-%m-%dT%H:%M:%SZ} (retention {keep} days)"
    )
