"""CLI for SQL sources: ``headwater pull --source NAME [--json]``.

One pull of a watermark-mode source (``ingestion.changes.puller``): its changes since the stored
watermark land as change files and are recorded in the ledger, as the SQL trigger's are; a
pipeline run (``headwater run pipeline --dataset <its dataset>``) takes them on.
"""

from __future__ import annotations

import typer

from jobs.cli.app import Context, app, emit, run_cli, table

JSON = typer.Option(False, "--json", help="Machine-readable output.")


@app.command("pull")
def pull_cmd(
    source: str = typer.Option(..., "--source", help="A SqlSource declared in schemas/."),
    as_json: bool = JSON,
) -> None:
    """Pull a SQL source's changes since its watermark into landing."""
    ctx = Context()

    def body() -> None:
        from ingestion.changes.puller import pull
        from ingestion.events import EventHandler, Ledger

        src = ctx.catalog.source(source)
        handler = EventHandler(Ledger(ctx.storage), ctx.catalog)
        result = pull(
            ctx.storage,
            ctx.catalog,
            src,
            settings=ctx.settings,
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
        )
        data = result.summary()
        rows = [
            [
                data["source"],
                data["rows"],
                data["already_landed"],
                "\n".join(data["files"]) or "-",
                data["watermark"],
            ]
        ]
        emit(
            data,
            as_json=as_json,
            table=table("pull", ["source", "changes", "already landed", "files", "watermark"], rows),
        )

    run_cli(body)
