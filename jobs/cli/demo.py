"""``headwater demo``: the whole flow on embedded data, in a local lake under the working directory."""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel

from ingestion.core.config import Settings, get_settings
from jobs.cli.app import Context, app, console, fail, run_cli, table


def _land_batch(ctx: Context, batch: int) -> list[Any]:
    from ingestion.events import EventHandler, Ledger
    from jobs.demo_data import batch_files

    handler = EventHandler(Ledger(ctx.storage), ctx.catalog)
    events = []
    for rel, data in batch_files(batch).items():
        current = ctx.storage.info(f"landing/{rel}")
        # Rerunning the demo in the same folder: identical bytes are not rewritten, so the
        # event repeats with the same etag and the ledger makes it a no-op.
        if current is None or ctx.storage.read_bytes(f"landing/{rel}") != data:
            current = ctx.storage.write_bytes(f"landing/{rel}", data)
        events.append(handler.file_landed(rel, etag=current.etag, size=current.size))
    return events


def _count(ctx: Context, path: str) -> int | None:
    from ingestion.core.spark.delta import is_delta

    uri = ctx.storage.uri(path)
    return ctx.spark.read.format("delta").load(uri).count() if is_delta(ctx.spark, uri) else None


def _stage(label: str, fn: Any) -> Any:
    with console.status(label):
        return fn()


def _batch(ctx: Context, batch: int, settings: Any) -> list[Any]:
    """Land one batch, then ingest, curate, publish and register every dataset it feeds."""
    events = _land_batch(ctx, batch)
    queued = sum(e.outcome == "queued" for e in events)
    console.rule(f"batch {batch}: {len(events)} files landed, {queued} new to the ledger", align="left")
    return _stages(ctx, _fed(events), settings)


def _fed(events: list[Any]) -> list[str]:
    """The datasets a batch's files went to."""
    return sorted({e.dataset for e in events if e.dataset})


def _stages(ctx: Context, names: list[str], settings: Any) -> list[Any]:
    """Ingest, curate, publish and register ``names`` in this process."""
    from ingestion.bronze.job import ingest
    from transforms.assets import register
    from transforms.gold import publish
    from transforms.silver import curate

    for name in names:
        r = _stage(
            f"ingest {name}",
            partial(ingest, ctx.spark, ctx.storage, ctx.catalog, name, settings=settings, lease_wait=60),
        )
        if r.status == "skipped":
            console.print(f"  ingest   {name}: nothing new")
            continue
        note = f", {r.files_rejected} file(s) quarantined" if r.files_rejected else ""
        console.print(
            f"  ingest   {name}: batch {r.batch} -> bronze v{r.bronze_version}, {r.rows} rows{note}"
        )
        for rej in r.rejected:
            console.print(f"    [yellow]file quarantined[/] {rej['path']}: {rej['reason']}")
    for name in names:
        c = _stage(
            f"curate {name}", partial(curate, ctx.spark, ctx.storage, ctx.catalog, name, settings=settings)
        )
        if c.status == "skipped":
            console.print(f"  curate   {name}: nothing new")
        elif c.status == "failed":
            console.print(f"  [red]curate   {name}: failed[/]: {c.error}")
        else:
            console.print(
                f"  curate   {name}: bronze v{c.input_from}..v{c.input_to} -> silver v{c.output_version}: "
                f"{c.rows_read} read, {c.rows_written} merged, {c.rows_quarantined} quarantined, "
                f"{c.rows_dropped} dropped"
            )
    results = []
    for name in names:
        if ctx.catalog.get(name).gold is None:
            continue
        p = _stage(
            f"publish {name}", partial(publish, ctx.spark, ctx.storage, ctx.catalog, name, settings=settings)
        )
        gold_name = ctx.catalog.get(name).gold.name
        what = (
            "unchanged"
            if p.status == "skipped"
            else f"gold v{p.output_version}, {p.rows_written} rows written"
        )
        console.print(f"  publish  {gold_name}: {what}")
        reg = _stage(
            f"register {gold_name}",
            partial(register, ctx.spark, ctx.storage, ctx.catalog, name, settings=settings),
        )
        results.append(reg)
        if reg.status == "succeeded" and reg.asset is not None:
            drift = f", drift: {(reg.drift or {}).get('verdict', 'n/a')}" if reg.previous else ""
            cols = f" ({', '.join(reg.drifted)})" if reg.drifted else ""
            console.print(f"  register {reg.asset.label} (Delta v{reg.asset.delta_version}){drift}{cols}")
        else:
            console.print(
                f"  register {gold_name}: {reg.outcome}" + (f" ({reg.reason})" if reg.reason else "")
            )
    return results


def local_batches(ctx: Context, settings: Any) -> list[Any]:
    """Both demo batches in this process: land each, then every stage on every dataset.

    Args:
        ctx: the demo's context (its session and lake).
        settings: the jobs' settings.

    Returns:
        The register results of the last batch that registered anything.
    """
    _stage("starting Spark", lambda: ctx.spark)
    last: list[Any] = []
    for batch in (1, 2):
        last = _batch(ctx, batch, settings) or last
    return last


def _summary(ctx: Context) -> None:
    from ingestion.core.lake import bronze_table, gold_table, quarantine_rows_table, silver_table
    from transforms.assets import open_registry
    from transforms.silver.quarantine import counts_by_reason

    rows = []
    for name in ctx.catalog.names():
        gold = ctx.catalog.get(name).gold
        rows.append(
            [
                name,
                _count(ctx, bronze_table(name)),
                _count(ctx, silver_table(name)),
                _count(ctx, quarantine_rows_table(name)),
                f"{gold.name}: {_count(ctx, gold_table(gold.name))}" if gold else "-",
            ]
        )
    console.print(table("rows per zone", ["dataset", "bronze", "silver", "quarantine", "gold"], rows))
    history = []
    for name in ctx.catalog.names():
        cdc = ctx.catalog.get(name).cdc
        if cdc is not None and cdc.mode == "scd2" and _count(ctx, silver_table(name)) is not None:
            from transforms.silver.scd2 import current_rows

            rows_all = ctx.spark.read.format("delta").load(ctx.storage.uri(silver_table(name)))
            history.append([name, current_rows(rows_all).count(), rows_all.count()])
    if history:
        console.print(
            table("row changes with history (SCD2)", ["dataset", "current rows", "history rows"], history)
        )
    reasons = [r for name in ctx.catalog.names() for r in counts_by_reason(ctx.spark, ctx.storage, name)]
    console.print(
        table(
            "quarantined rows by reason",
            ["dataset", "column", "check", "rows"],
            [[r["dataset"], r["column"], r["check"], r["rows"]] for r in reasons],
        )
    )
    registry = open_registry(ctx.settings, ctx.storage)
    assets = [a for n in registry.names() for a in registry.versions(n)]
    console.print(
        table(
            "asset versions",
            ["asset", "Delta version", "rows", "schema hash", "drift", "drifted columns"],
            [
                [
                    a.label,
                    a.delta_version,
                    a.tags.get("row_count"),
                    str(a.tags.get("schema_hash", ""))[:12],
                    a.tags.get("drift_verdict"),
                    a.tags.get("drift_columns") or "-",
                ]
                for a in assets
            ],
        )
    )


def cluster_batches(ctx: Context, settings: Any) -> list[dict[str, Any]]:
    """Each demo batch as events, then a pipeline run per dataset submitted with ``settings``.

    The runs of one batch go in parallel, one core each (a worker per run on the 2-worker
    cluster); two of them may reach the same gold, whose lease makes one wait.

    Args:
        ctx: the demo's context (its lake gets the files and events).
        settings: spark-submit settings (see :func:`ingestion.testing.cluster.submit_settings`).

    Returns:
        The submitters' results, in submission order.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ingestion.submit import SparkSubmitSubmitter

    settings = settings.model_copy(deep=True)
    settings.submit.conf.setdefault("spark.cores.max", "1")
    results: list[dict[str, Any]] = []
    for batch in (1, 2):
        events = _land_batch(ctx, batch)
        queued = sum(e.outcome == "queued" for e in events)
        console.rule(f"batch {batch}: {len(events)} files landed, {queued} new to the ledger", align="left")
        names = _fed(events)
        with ThreadPoolExecutor(len(names)) as pool:
            runs = [pool.submit(SparkSubmitSubmitter(settings).submit, name) for name in names]
            with console.status(f"spark-submit pipeline runs: {', '.join(names)}"):
                outs = [r.result() for r in runs]
        for name, out in zip(names, outs, strict=True):
            outcomes = out.get("outcomes") or {}
            console.print(
                f"  pipeline {name}: {out.get('status')} ("
                + ", ".join(f"{k} {v}" for k, v in outcomes.items())
                + ")"
            )
        results.extend(outs)
    return results


def sql_stream(ctx: Context, settings: Any, *, submit: Any = None) -> list[Any]:
    """The demo's SQL source: each step's changes in SQLite, one pull, then a pipeline run.

    ``schemas/members.py`` declares the source (watermark mode, key snapshot for deletes) and
    its SCD2 dataset. The database is a SQLite file beside the lake, read through Debian's
    SQLite ODBC driver exactly as a production database is read through its own.

    Args:
        ctx: the demo's context.
        settings: the jobs' settings.
        submit: spark-submit settings to run the pipelines on a cluster; None: in this process.

    Returns:
        The pull results.
    """
    import sqlite3

    from ingestion.changes.puller import pull
    from ingestion.events import EventHandler, Ledger
    from jobs.demo_data import SQL_STEPS, SQL_TABLE

    sources = [s for s in ctx.catalog.sources() if s.connection_setting == DEMO_SQL_SETTING]
    if not sources:
        return []
    root = Path(ctx.settings.lake.root)
    db = root.parent / f"{root.name}-sources" / "members.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    # A local file, not a secret: the demo connects to it directly instead of through the app
    # setting the source names (`headwater pull --source club` reads CLUB_SQL_CONNECTION).
    odbc = f"Driver=SQLite3;Database={db}"

    def connect(_settings: Any, _source: Any) -> Any:
        import pyodbc

        return pyodbc.connect(odbc, autocommit=False)

    done = db.parent / "steps-applied"
    applied = int(done.read_text()) if done.exists() else 0
    handler = EventHandler(Ledger(ctx.storage), ctx.catalog)
    results = []
    for step, statements in SQL_STEPS.items():
        if step > applied:  # a rerun of the demo changes the table no further
            with sqlite3.connect(db, isolation_level=None) as conn:
                if step == 1:
                    conn.execute(SQL_TABLE)
                for sql in statements:
                    conn.execute(sql)
            done.write_text(str(step))
        for source in sources:
            out = pull(
                ctx.storage,
                ctx.catalog,
                source,
                settings=settings,
                record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
                connect=connect,
            )
            results.append(out)
            console.rule(
                f"SQL changes {step}: {out.rows} pulled from {source.table} ({source.name})"
                + (f", {out.vanished} deleted" if out.vanished else ""),
                align="left",
            )
            if submit is None:
                _stages(ctx, [source.dataset], settings)
            else:
                from ingestion.submit import SparkSubmitSubmitter

                res = SparkSubmitSubmitter(submit).submit(source.dataset)
                outcomes = res.get("outcomes") or {}
                console.print(
                    f"  pipeline {source.dataset}: {res.get('status')} ("
                    + ", ".join(f"{k} {v}" for k, v in outcomes.items())
                    + ")"
                )
    return results


DEMO_SQL_SETTING = "CLUB_SQL_CONNECTION"


def _cluster_demo(ctx: Context, lake: Path) -> None:
    """Start a standalone cluster and the wheel's venv, run :func:`cluster_batches`, stop it."""
    import tempfile

    from ingestion.testing.cluster import (
        StandaloneCluster,
        build_wheel,
        delta_jars,
        submit_settings,
        wheel_venv,
    )

    root = Path(__file__).resolve().parents[2]
    work = Path(tempfile.mkdtemp(prefix="headwater-demo-cluster-"))
    wheel = _stage("building the wheel", lambda: build_wheel(root, work / "wheel"))
    cache = Path.home() / ".cache" / "headwater" / "wheel-venvs"
    constraints = root / "constraints.txt"
    python = _stage(
        "installing it into the job venv",
        lambda: wheel_venv(wheel, cache, constraints=constraints if constraints.exists() else None),
    )
    jars = _stage("fetching Delta's jars", lambda: delta_jars(python))
    cluster = _stage(
        "starting a standalone cluster (master + 2 workers)", lambda: StandaloneCluster(work).start()
    )
    try:
        console.print(f"  cluster {cluster.url} (UI {cluster.ui}); jobs from {python.parent.parent}")
        submit = submit_settings(cluster, python, jars, lake, base=ctx.settings)
        cluster_batches(ctx, submit)
        sql_stream(ctx, ctx.settings, submit=submit)
    finally:
        cluster.stop()


def demo_lake(project: Settings, lake: Path | None) -> tuple[Path, str]:
    """The demo's lake, and what the commands it advises need in front to read that lake.

    Args:
        project: the project's settings (``headwater.toml``'s ``lake.root`` for dev).
        lake: the ``--lake`` folder, or None for the project's lake.

    Returns:
        The folder, and ``""`` when it is the project's lake (every command reads it as printed),
        else the ``HEADWATER_LAKE__ROOT=...`` the commands need.

    Raises:
        typer.Exit: the environment's lake is not local and no folder was given.
    """
    if lake is None:
        if project.lake.kind != "local":
            raise fail(
                f"the demo runs on a local lake; this environment ({project.env.value}) has an Azure lake."
                " Unset HEADWATER_ENV, or pass --lake FOLDER",
                2,
            )
        return Path(project.lake.root), ""
    own = project.lake.kind == "local" and Path(project.lake.root).resolve() == lake.resolve()
    return lake, "" if own else f"HEADWATER_LAKE__ROOT={lake} "


@app.command("demo")
def demo_cmd(
    lake: Path | None = typer.Option(
        None,
        "--lake",
        help="Folder for the demo's lake (default: the project's lake, headwater.toml's lake.root).",
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start over: delete the demo lake first."),
    cluster: bool = typer.Option(
        False, "--cluster", help="Submit pipeline runs with spark-submit to a local standalone cluster."
    ),
) -> None:
    """Land two batches of example data, run every stage on each, then summarise."""
    from ingestion.core.config import LakeSettings

    project = get_settings()
    lake, prefix = demo_lake(project, lake)
    if fresh and lake.exists():
        shutil.rmtree(lake)
        shutil.rmtree(lake.parent / f"{lake.name}-sources", ignore_errors=True)
    settings = project.model_copy(update={"lake": LakeSettings(kind="local", root=lake)})
    ctx = Context(settings=settings)
    started = time.time()

    def body() -> None:
        console.rule(
            f"headwater demo · lake at {lake.resolve()}" + (" · on a standalone cluster" if cluster else "")
        )
        last: list[Any] = []
        if cluster:
            _cluster_demo(ctx, lake)
        else:
            last = local_batches(ctx, settings)
            sql_stream(ctx, settings)
        _summary(ctx)
        from transforms.assets import open_registry

        reg = open_registry(settings, ctx.storage)
        latest = [reg.versions(n)[-1] for n in reg.names() if reg.versions(n)]
        report = next((r.report_uri for r in last if r.report_uri), None)
        if report is None:  # a rerun registers nothing new: show the latest report
            report = next((a.tags.get("drift_report") for a in latest if a.tags.get("drift_report")), None)
        example = f"{latest[0].name}:{latest[0].version}" if latest else "NAME:VERSION"
        console.print(
            Panel.fit(
                f"done in {time.time() - started:.0f}s · lake: {lake}\n"
                f"drift report: {report or 'n/a'}\n"
                f"next: {prefix}headwater status · {prefix}headwater assets list · {prefix}headwater trace {example}\n"
                "      headwater demo (resumes, adds nothing) · headwater demo --fresh",
                title="demo",
            )
        )

    run_cli(body)
