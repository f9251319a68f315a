"""``headwater demo``: the whole flow on embedded data, in a local lake under the working directory."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import typer
from rich.panel import Panel

from jobs.cli.app import Context, app, console, run_cli, table


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


def _zone_rows(ctx: Context, dataset: str) -> dict[str, int | None]:
    from ingestion.lake import bronze_table, gold_table, quarantine_rows_table, silver_table
    from ingestion.spark.delta import is_delta

    out: dict[str, int | None] = {}
    for zone, path in (("bronze", bronze_table(dataset)), ("silver", silver_table(dataset)),
                       ("quarantine", quarantine_rows_table(dataset)), ("gold", gold_table(dataset))):
        uri = ctx.storage.uri(path)
        out[zone] = ctx.spark.read.format("delta").load(uri).count() if is_delta(ctx.spark, uri) else None
    return out


@app.command("demo")
def demo_cmd(
    lake: Path = typer.Option(Path("demo-lake"), "--lake", help="Folder for the demo's lake."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over: delete the demo lake first."),
) -> None:
    """Land two batches of example data and run every stage, then summarise."""
    from ingestion.bronze.job import ingest
    from ingestion.config import LakeSettings, Settings

    if fresh and lake.exists():
        shutil.rmtree(lake)
    settings = Settings(lake=LakeSettings(kind="local", root=lake))
    ctx = Context(settings=settings)
    started = time.time()

    def body() -> None:
        console.rule(f"headwater demo — lake at {lake.resolve()}")
        runs = []
        for batch in (1, 2):
            events = _land_batch(ctx, batch)
            queued = sum(e.outcome == "queued" for e in events)
            console.print(f"[bold]batch {batch}[/]: {len(events)} files landed, {queued} new to the ledger")
            for name in ctx.catalog.names():
                with console.status(f"batch {batch}: ingest {name}"):
                    r = ingest(ctx.spark, ctx.storage, ctx.catalog, name, settings=settings, lease_wait=60)
                runs.append(r.as_dict())
                if r.status == "skipped":
                    console.print(f"  ingest {name}: nothing new (already ingested)")
                    continue
                note = f", {r.files_rejected} file(s) quarantined" if r.files_rejected else ""
                console.print(f"  ingest {name}: batch {r.batch} -> bronze v{r.bronze_version}, {r.rows} rows{note}")
                for rej in r.rejected:
                    console.print(f"    [yellow]quarantined[/] {rej['path']}: {rej['reason']}")
        rows = []
        for name in ctx.catalog.names():
            z = _zone_rows(ctx, name)
            rows.append([name, z["bronze"], z["silver"], z["quarantine"], z["gold"]])
        console.print(table("rows per zone", ["dataset", "bronze", "silver", "quarantine", "gold"], rows))
        console.print(
            Panel.fit(
                f"done in {time.time() - started:.0f}s · lake: {lake}\n"
                "next: headwater status · headwater demo (resumes) · headwater demo --fresh",
                title="demo",
            )
        )

    run_cli(body)
