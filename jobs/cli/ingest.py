"""CLI for landing -> bronze: ingest, watch, backfill, run ingest, status, validate, readmit."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from jobs.cli.app import (
    Context,
    app,
    console,
    emit,
    fail,
    run_app,
    run_cli,
    status_section,
    table,
)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _destination(ctx: Context, source: Path, dest: str | None) -> str:
    """Landing-relative destination of a local file: ``--dest`` or the one dataset it fits."""
    if dest:
        return dest.rstrip("/") + "/" + source.name if dest.endswith("/") else dest
    candidates = []
    for ds in ctx.catalog:
        static = ds.landing.split("*")[0].split("{")[0].split("?")[0].rsplit("/", 1)[0]
        path = f"{static}/{source.name}" if static else source.name
        try:
            if ctx.catalog.route(path)[0].name == ds.name:
                candidates.append(path)
        except Exception:
            continue
    if len(candidates) != 1:
        found = "no dataset" if not candidates else f"several datasets ({', '.join(candidates)})"
        raise fail(f"{source}: fits {found}; say where it goes with --dest <landing path>")
    return candidates[0]


def _put(ctx: Context, src: Path, rel: str) -> Any:
    """Copy into landing unless identical bytes are there already (then the event repeats)."""
    import hashlib

    target = f"landing/{rel}"
    current = ctx.storage.info(target)
    if current is not None and current.size == src.stat().st_size:
        digest = hashlib.sha256()
        with open(src, "rb") as fh:
            for chunk in iter(lambda: fh.read(4 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() == ctx.storage.sha256(target):
            return current
    with open(src, "rb") as fh:
        return ctx.storage.write_stream(target, fh)


def _run_ingest(ctx: Context, datasets: list[str], *, lease_wait: float = 0.0) -> list[dict[str, Any]]:
    from ingestion.bronze.job import ingest

    out = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("ingesting", total=len(datasets))
        for name in datasets:
            progress.update(task, description=f"ingest {name}")
            out.append(
                ingest(
                    ctx.spark, ctx.storage, ctx.catalog, name, settings=ctx.settings, lease_wait=lease_wait
                ).as_dict()
            )
            progress.advance(task)
    return out


def _results_table(results: list[dict[str, Any]]) -> Any:
    return table(
        "ingest runs",
        ["dataset", "batch", "status", "rows", "ingested", "unchanged", "rejected", "bronze version"],
        [
            [
                r["dataset"],
                r["batch"],
                r["status"],
                r["rows"],
                r["files_ingested"],
                r["files_unchanged"],
                r["files_rejected"],
                r["bronze_version"],
            ]
            for r in results
        ],
    )


def _report(done: dict[str, Any], message: str, results: list[dict[str, Any]], *, as_json: bool) -> None:
    """Say what a command did, then the ingest runs it started: as JSON, or a line and a table."""
    if as_json:
        emit({**done, "runs": results}, as_json=True)
        return
    console.print(message)
    if results:
        console.print(_results_table(results))


@app.command("ingest")
def ingest_cmd(
    paths: list[Path] = typer.Argument(..., help="Local files to put into landing."),
    dest: str | None = typer.Option(None, "--dest", help="Landing path (or folder/ ending in /)."),
    run: bool = typer.Option(True, "--run/--no-run", help="Run the ingest job after queueing."),
    as_json: bool = JSON,
) -> None:
    """Copy files into landing and raise the same event a Function would; then ingest."""
    from ingestion.events import EventHandler, Ledger

    ctx = Context()

    def body() -> None:
        handler = EventHandler(Ledger(ctx.storage), ctx.catalog)
        events = []
        for src in paths:
            if not src.is_file():
                raise fail(f"{src}: no such file")
            rel = _destination(ctx, src, dest)
            ctx.catalog.route(rel)  # hostile or unrouted: refuse before writing anything
            info = _put(ctx, src, rel)
            events.append(handler.file_landed(rel, etag=info.etag, size=info.size).__dict__)
        rejected = [e for e in events if e["outcome"] == "rejected"]
        datasets = sorted({e["dataset"] for e in events if e["dataset"]})
        results = _run_ingest(ctx, datasets) if run and datasets else []
        if as_json:
            emit({"events": events, "runs": results}, as_json=True)
        else:
            emit(
                None,
                as_json=False,
                table=table(
                    "events",
                    ["path", "outcome", "dataset", "reason"],
                    [[e["path"], e["outcome"], e["dataset"], e["reason"]] for e in events],
                ),
            )
            if results:
                console.print(_results_table(results))
        if rejected:
            raise typer.Exit(2)

    run_cli(body)


@app.command("backfill")
def backfill_cmd(
    dataset: str | None = typer.Option(None, "--dataset", help="Only this dataset."),
    min_age: float = typer.Option(0.0, "--min-age", help="Skip files younger than this (s)."),
    run: bool = typer.Option(True, "--run/--no-run", help="Run the ingest job afterwards."),
    as_json: bool = JSON,
) -> None:
    """Queue every landing file the ledger has not seen (also the reconcile for missed events)."""
    from ingestion.events import backfill

    ctx = Context()

    def body() -> None:
        events = [e.__dict__ for e in backfill(ctx.storage, ctx.catalog, dataset=dataset, min_age=min_age)]
        from ingestion.events import Ledger

        ledger = Ledger(ctx.storage)
        names = [dataset] if dataset else ctx.catalog.names()
        datasets = [n for n in names if ledger.queued(n)]
        results = _run_ingest(ctx, datasets) if run and datasets else []
        counts = Counter(e["outcome"] for e in events)
        message = f"backfill: {len(events)} unseen files ({dict(counts) or 'none'})"
        _report({"events": events}, message, results, as_json=as_json)

    run_cli(body)


@run_app.command("ingest")
def run_ingest_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset to ingest."),
    lease_wait: float = typer.Option(0.0, "--lease-wait", help="Wait this long for a running ingest."),
    as_json: bool = JSON,
) -> None:
    """Ingest the dataset's queued files into bronze now."""
    ctx = Context()

    def body() -> None:
        ctx.catalog.get(dataset)
        results = _run_ingest(ctx, [dataset], lease_wait=lease_wait)
        emit(results[0] if as_json else None, as_json=as_json, table=_results_table(results))

    run_cli(body)


@app.command("watch")
def watch_cmd(
    settle: float = typer.Option(1.0, "--settle", help="A file must be unchanged this long (s)."),
    sweep: float = typer.Option(60.0, "--sweep", help="Seconds between reconcile sweeps (the safety net)."),
    ingest_only: bool = typer.Option(False, "--ingest-only", help="Stop at bronze (no curate/publish)."),
    once: bool = typer.Option(False, "--once", help="One sweep and its runs, then exit."),
) -> None:
    """Run the whole chain on a warm Spark session as files land locally, until Ctrl-C.

    The file system's notifications raise the events (no listing loop); every dataset with
    queued files gets a pipeline run: ingest, curate, publish, register.
    """
    from ingestion.core.storage import LocalStorage
    from ingestion.events.watch import LandingWatcher

    ctx = Context()
    storage = ctx.storage
    if not isinstance(storage, LocalStorage):
        raise fail("watch follows a local lake; on Azure, Event Grid drives the Function App")

    def runner(name: str) -> dict[str, Any]:
        if ingest_only:
            return _run_ingest(ctx, [name])[0]
        from transforms.pipeline import run_pipeline

        return run_pipeline(ctx.spark, ctx.storage, ctx.catalog, name, settings=ctx.settings).as_dict()

    watcher = LandingWatcher(storage, ctx.catalog, runner, settle=settle, sweep_seconds=sweep)
    ctx.spark  # noqa: B018 - start the session now: the first file should not wait for a JVM
    console.print(f"watching {ctx.settings.lake.root}/landing (sweep every {sweep:g}s; Ctrl-C stops)")
    try:
        for found in watcher.rounds():
            for e in found.events:
                console.print(f"  {e.outcome}: {e.path}" + (f" ({e.reason})" if e.reason else ""))
            for run in found.runs:
                console.print(f"  {run.get('job', 'run')} {run['dataset']}: {run['status']}")
            for name, why in found.refused.items():
                console.print(f"  {name}: not run ({why}); its files stay queued")
            if found.trigger == "sweep":
                console.print(f"swept landing: {len(found.events)} unseen file(s)")
            if once:
                return
    except KeyboardInterrupt:
        console.print("stopped")


@app.command("readmit")
def readmit_cmd(
    dataset: str = typer.Option(..., "--dataset"),
    paths: list[str] | None = typer.Argument(None, help="Only these landing paths."),
    code: str | None = typer.Option(None, "--code", help="Only files rejected with this reason code."),
    run: bool = typer.Option(False, "--run/--no-run", help="Run the ingest job afterwards."),
    as_json: bool = JSON,
) -> None:
    """Re-queue rejected files of a dataset (after a contract fix)."""
    from ingestion.core.reasons import FileCode, UnknownCodeError
    from ingestion.events import readmit

    try:
        wanted = FileCode.parse(code) if code else None
    except UnknownCodeError as err:
        raise fail(str(err), 2) from None
    ctx = Context()

    def body() -> None:
        readmitted = readmit(ctx.storage, ctx.catalog, dataset, paths=paths, code=wanted)
        results = _run_ingest(ctx, [dataset]) if run and readmitted else []
        message = f"readmitted {len(readmitted)} file(s) of {dataset}"
        _report({"readmitted": readmitted}, message, results, as_json=as_json)

    run_cli(body)


batches_app = typer.Typer(help="Decide on a failed ingest batch: retry or abandon it.", no_args_is_help=True)
app.add_typer(batches_app, name="batches")


@batches_app.command("retry")
def batches_retry_cmd(
    dataset: str = typer.Option(..., "--dataset"),
    batch: int = typer.Option(..., "--batch", help="The failed batch's number (see `headwater status`)."),
    run: bool = typer.Option(True, "--run/--no-run", help="Run the ingest job afterwards."),
    as_json: bool = JSON,
) -> None:
    """Reopen a failed batch; the ingest run resumes it."""
    from ingestion.bronze.batches import retry_batch

    ctx = Context()

    def body() -> None:
        ctx.catalog.get(dataset)
        retry_batch(ctx.storage, dataset, batch)
        results = _run_ingest(ctx, [dataset]) if run else []
        _report({"retried": batch}, f"reopened batch {batch} of {dataset}", results, as_json=as_json)

    run_cli(body)


@batches_app.command("abandon")
def batches_abandon_cmd(
    dataset: str = typer.Option(..., "--dataset"),
    batch: int = typer.Option(..., "--batch", help="The failed batch's number (see `headwater status`)."),
    as_json: bool = JSON,
) -> None:
    """Reject a failed batch's files into quarantine (code ``abandoned``); later batches go on."""
    from ingestion.bronze.batches import abandon_batch

    ctx = Context()

    def body() -> None:
        m = abandon_batch(ctx.spark, ctx.storage, ctx.catalog, dataset, batch)
        files = [f.path for f in m.by_disposition("rejected") if f.reason_code == "abandoned"]
        if as_json:
            emit({"abandoned": batch, "files": files}, as_json=True)
        else:
            console.print(
                f"abandoned batch {batch} of {dataset}: {len(files)} file(s) rejected into quarantine"
            )

    run_cli(body)


@app.command("validate")
def validate_cmd(as_json: bool = JSON) -> None:
    """Check every contract in schemas/ and explain what is wrong."""
    from ingestion.contracts import Catalog
    from ingestion.contracts.validate import validate_catalog

    def body() -> None:
        from ingestion.changes.sources import landing_order_note

        catalog = Catalog.discover()
        problems = validate_catalog(catalog)
        notes = [n for n in (landing_order_note(s, catalog) for s in catalog.sources()) if n]
        if as_json:
            emit(
                {
                    "datasets": catalog.names(),
                    "sources": [s.name for s in catalog.sources()],
                    "problems": [p.__dict__ for p in problems],
                    "notes": notes,
                },
                as_json=True,
            )
        elif problems:
            console.print(
                table(
                    f"{len(problems)} problem(s)",
                    ["dataset", "code", "what is wrong"],
                    [[p.dataset, p.code, p.message] for p in problems],
                )
            )
        else:
            console.print(f"[green]ok[/]: {len(catalog)} dataset(s) valid: {', '.join(catalog.names())}")
        for note in [] if as_json else notes:
            console.print(f"note: {note}")
        if problems:
            raise typer.Exit(1)

    run_cli(body)


# --- status --------------------------------------------------------------------------------------
@status_section
def _ledger_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from ingestion.events import Ledger
    from ingestion.events.ledger import UNROUTED

    ledger = Ledger(ctx.storage)
    rows, data = [], {}
    names = [dataset] if dataset else sorted(set(ctx.catalog.names()) | set(ledger.datasets()))
    for name in names:
        counts = Counter(e.status for e in ledger.entries(name))
        data[name] = dict(counts)
        if counts or name != UNROUTED:
            rows.append(
                [
                    name,
                    *(counts.get(s, 0) for s in ("pending", "batched", "ingested", "unchanged", "rejected")),
                ]
            )
    return (
        "ledger",
        table(
            "ledger (files by status)",
            ["dataset", "pending", "batched", "ingested", "unchanged", "rejected"],
            rows,
        ),
        data,
    )


@status_section
def _batches_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from ingestion.bronze.manifest import Manifests

    rows, data = [], {}
    for name in [dataset] if dataset else ctx.catalog.names():
        ms = Manifests(ctx.storage, name).all()
        data[name] = [
            {
                "batch": m.batch,
                "status": m.status,
                "rows": m.rows,
                "bronze_version": m.bronze_version,
                "files": len(m.files),
                "rejected": len(m.by_disposition("rejected")),
            }
            for m in ms
        ]
        for m in ms[-5:]:
            rows.append(
                [
                    name,
                    m.batch,
                    m.status,
                    len(m.files),
                    len(m.by_disposition("rejected")),
                    m.rows,
                    m.bronze_version,
                ]
            )
    return (
        "batches",
        table(
            "batches (latest 5 per dataset)",
            ["dataset", "batch", "status", "files", "rejected", "rows", "bronze version"],
            rows,
        ),
        data,
    )


@status_section
def _tables_section(ctx: Context, dataset: str | None) -> tuple[str, Any, Any]:
    from ingestion.core.lake import bronze_table, gold_table, quarantine_rows_table, silver_table
    from ingestion.core.spark.delta import table_version

    rows: list[list[Any]] = []
    data: dict[str, Any] = {}
    for name in [dataset] if dataset else ctx.catalog.names():
        for zone, path in (
            ("bronze", bronze_table(name)),
            ("silver", silver_table(name)),
            ("quarantine", quarantine_rows_table(name)),
            ("gold", gold_table(name)),
        ):
            uri = ctx.storage.uri(path)
            version = table_version(ctx.spark, uri)
            if version is None:
                continue
            count = ctx.spark.read.format("delta").load(uri).count()
            data.setdefault(name, {})[zone] = {"version": version, "rows": count}
            rows.append([name, zone, version, count])
    return "tables", table("tables", ["dataset", "zone", "version", "rows"], rows), data


@app.command("status")
def status_cmd(
    dataset: str | None = typer.Option(None, "--dataset"),
    as_json: bool = JSON,
) -> None:
    """Ledger, batches, table versions and rows, latest runs, quarantine counts."""
    from jobs.cli.app import STATUS_SECTIONS

    ctx = Context()

    def body() -> None:
        if dataset:
            ctx.catalog.get(dataset)
        out = {}
        for section in STATUS_SECTIONS:
            key, tbl, data = section(ctx, dataset)
            out[key] = data
            if not as_json:
                console.print(tbl)
        if as_json:
            emit(out, as_json=True)

    run_cli(body)
