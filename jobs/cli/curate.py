"""CLI for bronze -> silver: ``run curate``, ``replay``, ``quarantine show``, status sections."""

from __future__ import annotations

import json
from typing import Any

import typer

from jobs.cli.app import Context, app, console, emit, exit_with, run_app, run_cli, status_section, table

JSON = typer.Option(False, "--json", help="Machine-readable output.")
quarantine_app = typer.Typer(help="Rows that failed validation, with their reasons.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")


def _run_table(title: str, rec: dict[str, Any]) -> Any:
    rules = ", ".join(f"{k}={v}" for k, v in sorted((rec.get("rules") or {}).items())) or "-"
    rng = "-" if rec.get("input_from") is None else f"{rec['input_from']}..{rec['input_to']}"
    return table(
        title,
        [
            "dataset",
            "status",
            "input",
            "read",
            "written",
            "quarantined",
            "dropped",
            "warned",
            "rules",
            "error",
        ],
        [
            [
                rec["dataset"],
                rec["status"],
                rng,
                rec["rows_read"],
                rec["rows_written"],
                rec["rows_quarantined"],
                rec["rows_dropped"],
                rec["rows_warned"],
                rules,
                rec.get("error") or "",
            ]
        ],
    )


LEASE_WAIT = typer.Option(
    0.0, "--lease-wait", help="Wait this long (seconds) for a running curate or replay of the dataset."
)


def _job(kind: str, dataset: str, as_json: bool, lease_wait: float) -> None:
    from transforms.silver import curate, replay

    ctx = Context()

    def body() -> None:
        job = curate if kind == "curate" else replay
        with console.status(f"{kind} {dataset}..."):
            rec = job(
                ctx.spark, ctx.storage, ctx.catalog, dataset, settings=ctx.settings, lease_wait=lease_wait
            ).as_dict()
        emit(rec, as_json=as_json, table=_run_table(kind, rec))
        exit_with(rec["status"])

    run_cli(body)


@run_app.command("curate")
def run_curate_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset to curate (bronze -> silver)."),
    as_json: bool = JSON,
    lease_wait: float = LEASE_WAIT,
) -> None:
    """Curate the bronze rows not yet curated: cast, validate, dedupe, MERGE into silver."""
    _job("curate", dataset, as_json, lease_wait)


@app.command("replay")
def replay_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose quarantine to replay."),
    as_json: bool = JSON,
    lease_wait: float = LEASE_WAIT,
) -> None:
    """Re-validate quarantined rows (after a contract or transform fix); move passing ones to silver."""
    _job("replay", dataset, as_json, lease_wait)


@quarantine_app.command("show")
def quarantine_show_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose quarantined rows to show."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many rows."),
    as_json: bool = JSON,
) -> None:
    """Quarantined rows with their reasons (column, check, value), oldest first."""
    from ingestion.core.lake import LINEAGE_COLUMNS
    from transforms.silver import quarantine

    ctx = Context()

    def body() -> None:
        ds = ctx.catalog.get(dataset)
        rows = quarantine.show(ctx.spark, ctx.storage, ds.name, limit=limit)
        if as_json:
            emit(rows, as_json=True)
            return
        if not rows:
            console.print(f"quarantine of {ds.name} is empty")
            return
        skip = set(quarantine.BOOKKEEPING) | {"_errors", *LINEAGE_COLUMNS}
        out = []
        for r in rows:
            record = {k: v for k, v in r.items() if k not in skip and v is not None}
            reasons = "; ".join(
                f"{e['column'] or '(row)'}: {e['check']}"
                + (f" ({e['value']})" if e["value"] is not None else "")
                for e in r["_errors"] or []
            )
            out.append([f"{r['_source_path']}:{r['_source_row']}", reasons, json.dumps(record, default=str)])
        console.print(table(f"quarantine of {ds.name} ({len(rows)} rows)", ["source", "reasons", "row"], out))

    run_cli(body)


@status_section
def _runs_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from ingestion.core.runs import RunLedger

    runs = RunLedger(ctx.spark, ctx.storage).latest(dataset=dataset, limit=10)
    rows = [
        [
            r["started_at"],
            r["job"],
            r["dataset"],
            r["status"],
            "-" if r["input_from"] is None else f"{r['input_from']}..{r['input_to']}",
            r["rows_read"],
            r["rows_written"],
            r["rows_quarantined"],
            r["rows_dropped"],
            "-" if r["duration_s"] is None else f"{r['duration_s']:.1f}s",
            r["error"] or "",
        ]
        for r in runs
    ]
    t = table(
        "latest runs",
        [
            "started (UTC)",
            "job",
            "dataset",
            "status",
            "input",
            "read",
            "written",
            "quarantined",
            "dropped",
            "took",
            "error",
        ],
        rows,
    )
    return "runs", t, runs


@status_section
def _quarantine_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from transforms.silver import quarantine

    data: list[dict[str, Any]] = []
    for name in [dataset] if dataset else ctx.catalog.names():
        data += quarantine.counts_by_reason(ctx.spark, ctx.storage, name)
    rows = [[d["dataset"], d["column"] or "(row)", d["check"], d["rows"]] for d in data]
    return (
        "quarantine",
        table("quarantine (rows by reason)", ["dataset", "column", "check", "rows"], rows),
        data,
    )
