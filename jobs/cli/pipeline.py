"""CLI for pipeline runs: ``headwater run pipeline --dataset NAME``."""

from __future__ import annotations

from typing import Any

import typer

from jobs.cli.app import Context, console, emit, exit_with, run_app, run_cli, table

JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _what(stage: str, data: dict[str, Any] | None, details: dict[str, Any]) -> str:
    """One line per stage for people: what it did, or why it did not run."""
    gold = stage.split(":", 1)[1] if ":" in stage else None
    if data is None:
        if gold and gold in (details.get("waiting") or {}):
            return "waits for " + ", ".join(details["waiting"][gold])
        if stage in (details.get("blocked_by") or {}):
            return f"blocked by {details['blocked_by'][stage]}"
        return (details.get("errors") or {}).get(stage, "")
    if data.get("status") == "failed":
        return data.get("error") or ""
    if data.get("status") == "skipped":
        return (data.get("details") or {}).get("reason", "nothing new")
    if stage == "ingest":
        return f"batch {data.get('batch')} -> bronze v{data.get('bronze_version')}, {data.get('rows')} rows"
    if stage == "curate":
        return (
            f"bronze v{data.get('input_from')}..v{data.get('input_to')} -> silver v{data.get('output_version')}"
            f", {data.get('rows_written')} written, {data.get('rows_quarantined')} quarantined"
        )
    if stage.startswith("publish:"):
        pins = ", ".join(f"{k}@{v}" for k, v in sorted((data["details"].get("inputs") or {}).items()))
        return f"gold v{data.get('output_version')} from {pins}"
    return f"{data.get('asset')} (Delta v{data.get('delta_version')})"


def _stage_data(out: dict[str, Any], stage: str) -> dict[str, Any] | None:
    stages = out["stages"]
    if stage in ("ingest", "curate"):
        return stages[stage]
    step, gold = stage.split(":", 1)
    release = stages["golds"].get(gold) or {}
    return release.get(step)


@run_app.command("pipeline")
def run_pipeline_cmd(
    dataset: str = typer.Option(..., "--dataset", help="Dataset whose queued files to take through."),
    no_register: bool = typer.Option(False, "--no-register", help="Stop each gold after publish."),
    lease_wait: float = typer.Option(
        0.0, "--lease-wait", help="Wait this long (seconds) for a running ingest of the dataset."
    ),
    as_json: bool = JSON,
) -> None:
    """Ingest, curate, publish and register: every stage that has something new, on one Spark session."""
    from transforms.pipeline import run_pipeline

    ctx = Context()

    def body() -> None:
        with console.status(f"pipeline {dataset}..."):
            result = run_pipeline(
                ctx.spark,
                ctx.storage,
                ctx.catalog,
                dataset,
                settings=ctx.settings,
                lease_wait=lease_wait,
                register_asset=not no_register,
            )
        out = result.as_dict()
        rows = [
            [stage, outcome, _what(stage, _stage_data(out, stage), out["details"])]
            for stage, outcome in result.outcomes.items()
        ]
        emit(
            out,
            as_json=as_json,
            table=table(f"pipeline {result.dataset}", ["stage", "outcome", "what"], rows),
        )
        exit_with(result.status)

    run_cli(body)
