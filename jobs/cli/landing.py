"""CLI for the Function side's state: batching (what is pending, what is due) and parked files.

headwater batching [--dataset NAME] [--json]      pending files and thresholds per dataset
headwater parked list [--dataset NAME] [--json]   files parked after repeated failures
headwater parked release --dataset NAME --key KEY  let the next event or reconcile retry one
"""

from __future__ import annotations

import time
from typing import Any

import typer

from jobs.cli.app import Context, app, console, emit, fail, run_cli, status_section, table

JSON = typer.Option(False, "--json", help="Machine-readable output.")
parked_app = typer.Typer(help="Landing files parked after repeated failures.", no_args_is_help=True)
app.add_typer(parked_app, name="parked")


def _batching_rows(ctx: Context, dataset: str | None) -> tuple[list[list[Any]], dict[str, Any]]:
    from dataclasses import asdict

    from ingestion.batching import BatchPolicy
    from ingestion.events import Ledger

    policy, ledger, now = BatchPolicy(ctx.settings.batching), Ledger(ctx.storage), time.time()
    rows, data = [], {}
    for name in [dataset] if dataset else ctx.catalog.names():
        d = policy.decide(name, ledger.queued(name), now=now)
        t = policy.thresholds(name)
        data[name] = {"decision": asdict(d), "thresholds": asdict(t)}
        due = f"yes ({d.reason})" if d.due else (f"in {d.wait_seconds:.0f}s" if d.wait_seconds else "-")
        rows.append(
            [
                name,
                d.files,
                d.bytes,
                None if d.oldest_age is None else f"{d.oldest_age:.0f}s",
                f"{t.max_files} files / {t.max_bytes} B / {t.max_age_seconds:.0f}s",
                due,
            ]
        )
    return rows, data


BATCHING_COLUMNS = ["dataset", "pending", "bytes", "oldest", "thresholds", "due"]


@app.command("batching")
def batching_cmd(dataset: str | None = typer.Option(None, "--dataset"), as_json: bool = JSON) -> None:
    """Pending files per dataset against its batching thresholds."""
    ctx = Context()

    def body() -> None:
        if dataset:
            ctx.catalog.get(dataset)
        rows, data = _batching_rows(ctx, dataset)
        emit(data, as_json=as_json, table=table("batching", BATCHING_COLUMNS, rows))

    run_cli(body)


def _parked(ctx: Context, dataset: str | None) -> list[Any]:
    from ingestion.poison import PoisonBox

    return list(PoisonBox(ctx.storage).parked(dataset))


PARKED_COLUMNS = ["dataset", "path", "etag", "attempts", "reason", "key"]


def _parked_table(records: list[Any]) -> Any:
    return table(
        "parked files",
        PARKED_COLUMNS,
        [[r.dataset, r.path, r.etag, r.attempts, r.reason, r.key] for r in records],
    )


def _parked_data(records: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "dataset": r.dataset,
            "path": r.path,
            "etag": r.etag,
            "key": r.key,
            "attempts": r.attempts,
            "reason": r.reason,
            "reason_code": r.reason_code,
            "parked_at": r.parked_at,
        }
        for r in records
    ]


@parked_app.command("list")
def parked_list(dataset: str | None = typer.Option(None, "--dataset"), as_json: bool = JSON) -> None:
    """Files whose handling failed too often, with the reason."""
    ctx = Context()

    def body() -> None:
        records = _parked(ctx, dataset)
        emit(_parked_data(records), as_json=as_json, table=_parked_table(records))

    run_cli(body)


@parked_app.command("release")
def parked_release(
    dataset: str = typer.Option(..., "--dataset"),
    key: str = typer.Option(..., "--key", help="The key `headwater parked list` shows."),
) -> None:
    """Unpark one file version; the next event for it, or the reconcile sweep, handles it again."""
    from ingestion.poison import PoisonBox

    ctx = Context()

    def body() -> None:
        if not PoisonBox(ctx.storage).release(dataset, key):
            raise fail(f"no parked file {key!r} in dataset {dataset!r} (see `headwater parked list`)")
        console.print(f"released {dataset}/{key}")

    run_cli(body)


@status_section
def _batching_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    rows, data = _batching_rows(ctx, dataset)
    return "batching", table("batching", BATCHING_COLUMNS, rows), data


@status_section
def _parked_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    records = _parked(ctx, dataset)
    return "parked", _parked_table(records), _parked_data(records)
