"""CLI for the events Event Grid could not deliver (its dead-letter container).

headwater deadletter list [--subscription S] [--since ISO] [--json]   each dead-lettered event, why
headwater deadletter replay [--subscription S] [--dry-run] [--json]   hand them to the Functions' handler

Replay goes through the same handler the Function App's triggers call (``LandingRuntime.on_event``
over this lake and catalog), so a file is recorded in the ledger once however often its event is
replayed, and a due batch starts a run as it would on Azure. Exit 1 when a blob failed or is
malformed (it stays in the container, without a replay marker).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from jobs.cli.app import Context, app, emit, err_console, fail, run_cli, table

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from ingestion.events.deadletter import DeadLetterBlob, DeadLetterSource, EventSink, ReplayReport

JSON = typer.Option(False, "--json", help="Machine-readable output.")
SUBSCRIPTION = typer.Option(
    None, "--subscription", help="Only this Event Grid subscription (e.g. landing-blob; any case)."
)
deadletter_app = typer.Typer(
    help="Events Event Grid dead-lettered: list them, replay them.", no_args_is_help=True
)
app.add_typer(deadletter_app, name="deadletter")


def _source(ctx: Context) -> DeadLetterSource:
    from ingestion.events.deadletter import open_deadletters

    return open_deadletters(ctx.settings, ctx.storage)


def _since(value: str | None) -> datetime | None:
    from ingestion.events.deadletter import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise fail(f"--since {value!r}: not an ISO 8601 time (e.g. 2026-12-07T09:00Z)", 2) from None


def _path(subject: str | None) -> str | None:
    return None if subject is None else subject.rsplit("/blobs/", 1)[-1]


LIST_COLUMNS = [
    "blob",
    "event",
    "type",
    "path",
    "reason",
    "attempts",
    "last outcome",
    "published",
    "replayed",
]


def _list_table(blobs: list[DeadLetterBlob]) -> Table:
    rows: list[list[Any]] = []
    for b in blobs:
        replayed = "yes" if b.replayed else "no"
        if b.error is not None:
            what = "malformed" if b.malformed else "not read"
            rows.append([b.name, None, None, None, f"{what}: {b.error}", None, None, None, replayed])
            continue
        for e in b.events:
            if e.error is not None:
                rows.append(
                    [b.name, f"#{e.index}", None, None, f"malformed: {e.error}", None, None, None, replayed]
                )
                continue
            outcome = e.last_outcome
            if e.last_http_status is not None:
                outcome = f"{outcome} ({e.last_http_status})"
            rows.append(
                [
                    b.name,
                    e.event_id,
                    (e.event_type or "").rsplit(".", 1)[-1],
                    _path(e.subject),
                    e.reason,
                    e.attempts,
                    outcome,
                    e.publish_time,
                    replayed,
                ]
            )
    return table(f"dead-lettered events ({len(rows)})", LIST_COLUMNS, rows)


@deadletter_app.command("list")
def list_cmd(
    subscription: str | None = SUBSCRIPTION,
    since: str | None = typer.Option(
        None, "--since", help="Only blobs of this UTC hour or later (ISO 8601; no offset means UTC)."
    ),
    as_json: bool = JSON,
) -> None:
    """Every dead-lettered event with Event Grid's reason and attempts; malformed blobs with why."""
    from ingestion.events.deadletter import list_deadletters

    when = _since(since)  # before run_cli: a refusal exits 2 by itself
    ctx = Context()

    def body() -> None:
        blobs = list_deadletters(_source(ctx), ctx.storage, subscription=subscription, since=when)
        emit([b.summary() for b in blobs], as_json=as_json, table=_list_table(blobs))

    run_cli(body)


def _refuse(
    event_type: str, subject: str | None, data: dict[str, Any] | None, *, event_id: str | None = None
) -> list[object]:
    raise AssertionError("a dry run hands no event to the handler")


REPLAY_COLUMNS = ["blob", "status", "event", "path", "outcome", "reason"]


def _replay_table(report: ReplayReport) -> Table:
    rows: list[list[Any]] = []
    for b in report.blobs:
        if not b.events:
            rows.append([b.blob, b.status, None, None, None, b.reason])
            continue
        for i, e in enumerate(b.events):
            outcome = ", ".join(str(o.get("outcome")) for o in e.outcomes) or ("error" if e.error else None)
            reason = e.error or "; ".join(str(o["reason"]) for o in e.outcomes if o.get("reason")) or None
            rows.append(
                [
                    b.blob if i == 0 else "",
                    b.status if i == 0 else "",
                    e.event_id,
                    _path(e.subject),
                    outcome,
                    reason if reason else (b.reason if i == 0 else None),
                ]
            )
    title = "dead-letter replay (dry run)" if report.dry_run else "dead-letter replay"
    return table(f"{title}: {report.counts() or 'no blobs'}", REPLAY_COLUMNS, rows)


@deadletter_app.command("replay")
def replay_cmd(
    subscription: str | None = SUBSCRIPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be replayed; change nothing."),
    as_json: bool = JSON,
) -> None:
    """Hand each dead-lettered event to the Functions' handler; mark each fully handled blob."""
    from ingestion.events.deadletter import replay

    ctx = Context()

    def body() -> ReplayReport:
        handler: EventSink = _refuse
        if not dry_run:
            from functions.runtime import LandingRuntime

            handler = LandingRuntime(ctx.settings, ctx.storage, catalog=ctx.catalog).on_event
        report = replay(_source(ctx), ctx.storage, handler, subscription=subscription, dry_run=dry_run)
        emit(report.summary(), as_json=as_json, table=_replay_table(report))
        return report

    report: ReplayReport = run_cli(body)
    if report.failed:
        if not as_json:
            err_console.print(
                f"{len(report.failed)} blob(s) failed or malformed: they stay for the next replay"
            )
        raise typer.Exit(1)
