"""CLI for deployment definitions: ``headwater deploy render --target databricks|synapse --env ENV``."""

from __future__ import annotations

from pathlib import Path

import typer

from jobs.cli.app import Context, app, console, emit, run_cli

deploy_app = typer.Typer(help="Deployment definitions for Databricks and Synapse.", no_args_is_help=True)
app.add_typer(deploy_app, name="deploy")


@deploy_app.command("render")
def render_cmd(
    target: str = typer.Option(
        ..., "--target", help="databricks (an Asset Bundle) or synapse (Spark job definitions)."
    ),
    env: list[str] = typer.Option(
        [], "--env", help="An environment to render (dev, qa, prod); repeatable. Default: HEADWATER_ENV's."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder. Default: deploy/<target>."),
    host: list[str] = typer.Option(
        [],
        "--host",
        help="Databricks workspace URL: ENV=URL for one environment, URL for all; repeatable. "
        "Default: HEADWATER_SUBMIT__DATABRICKS__HOST.",
    ),
    project: Path = typer.Option(
        Path("."), "--project", help="The project folder (pyproject.toml) the bundle builds."
    ),
    dataset: list[str] = typer.Option(
        [], "--dataset", help="Only these datasets (repeatable). Default: all."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Render one pipeline job per dataset, checked against the service's own model, and write it."""
    from ingestion.deploy import check_target, render, write
    from ingestion.deploy.databricks_bundle import parse_hosts

    ctx = Context()

    def body() -> None:
        folder = out if out is not None else Path("deploy") / check_target(target)
        names = [ctx.catalog.get(d).name for d in dataset] if dataset else ctx.catalog.names()
        files = render(
            target,
            names,
            env or [ctx.settings.env],
            ctx.settings,
            out=folder,
            project=project,
            hosts=parse_hosts(host),
        )
        written, removed = write(target, files, folder)
        if as_json:
            emit({"written": [str(p) for p in written], "removed": [str(p) for p in removed]}, as_json=True)
            return
        for p in written:
            console.print(f"wrote {p}")
        for p in removed:
            console.print(f"removed {p} (no longer rendered)")

    run_cli(body)
