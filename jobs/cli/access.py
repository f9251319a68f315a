"""CLI for the lake's ACLs: ``headwater lake apply-access [--yes] [--json] [--state PATH]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from jobs.cli.app import Context, app, console, emit, err_console, run_cli, table

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.access import AccessPlan, ApplyResult, Step, StepResult

lake_app = typer.Typer(help="The lake on Azure: access per zone and dataset folder.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")

MAX_FAILURES_SHOWN = 20


def _path(path: str) -> str:
    return f"/{path}"


def plan_table(plan: AccessPlan) -> Table:
    rows = [
        [
            i,
            s.container,
            _path(s.path),
            "yes" if s.recursive else "no",
            "\n".join(e.spec for e in s.entries),
            "\n".join(s.principals),
        ]
        for i, s in enumerate(plan.steps, 1)
    ]
    return table(
        f"ACL plan for {plan.account} ({len(plan.steps)} steps)",
        ["#", "container", "path", "recursive", "entries", "principals"],
        rows,
    )


def result_table(result: ApplyResult) -> Table:
    rows = []
    for i, s in enumerate(result.steps, 1):
        note = s.error or (f"resumed from {s.continuation or 'token'}" if s.resumed else "")
        if s.changed:
            note = "added " + ", ".join(s.changed)
        rows.append([i, s.container, _path(s.path), s.status, s.directories, s.files, s.failure_count, note])
    return table(
        f"ACLs applied to {result.account}",
        ["#", "container", "path", "status", "dirs", "files", "failures", "note"],
        rows,
    )


@lake_app.command("apply-access")
def apply_access_cmd(
    yes: bool = typer.Option(
        False, "--yes", help="Apply the plan. Without it the plan is printed and nothing is sent."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    state: Path | None = typer.Option(
        None, "--state", help="Resume state file. Default: .cache/access/<account>.json."
    ),
    batch_size: int = typer.Option(
        2000,
        "--batch-size",
        min=1,
        max=2000,
        help="Paths per recursive ACL request (the service's maximum: 2000).",
    ),
    create_missing: bool = typer.Option(
        False,
        "--create-missing",
        help="Create a dataset folder that does not exist yet, so its grants are there first.",
    ),
) -> None:
    """Grant settings.access as ADLS Gen2 ACLs per zone container and dataset folder (merged, never replaced)."""
    from ingestion.access import apply_plan, dataset_folders, plan_access

    ctx = Context()

    def body() -> int:
        folders = dataset_folders(ctx.catalog) if ctx.settings.access.datasets else None
        plan = plan_access(ctx.settings, folders=folders)
        if not yes:
            if as_json:
                emit({"plan": plan.to_json(), "applied": False}, as_json=True)
            else:
                console.print(plan_table(plan))
                console.print("nothing applied: run again with --yes to apply this plan")
            return 0
        if not as_json:
            console.print(plan_table(plan))
        path = state if state is not None else Path(".cache") / "access" / f"{plan.account}.json"
        total = len(plan.steps)
        with err_console.status("applying ACLs") as status:

            def progress(step: Step, res: StepResult) -> None:
                i = plan.steps.index(step) + 1
                status.update(
                    f"step {i}/{total} {res.where}: {res.status}, {res.directories} dirs, {res.files} files"
                )

            result = apply_plan(
                plan, state_path=path, batch_size=batch_size, create_missing=create_missing, progress=progress
            )
        if as_json:
            emit({"plan": plan.to_json(), "result": result.to_json()}, as_json=True)
        else:
            console.print(result_table(result))
            _print_failures(result)
        if result.ok:
            return 0
        left = [s for s in result.steps if not s.done]
        err_console.print(
            f"{len(left)} of {len(result.steps)} steps not done; progress is kept in {path}: run "
            f"`headwater lake apply-access --yes{'' if state is None else f' --state {state}'}` again to resume "
            "(finished steps are skipped, a cut step goes on from its continuation token)"
        )
        if any(s.status == "missing" for s in left):
            err_console.print(
                "missing folders: add --create-missing to create them, or run again once they exist"
            )
        return 1

    code = run_cli(body)
    if code:
        raise typer.Exit(code)


def _print_failures(result: ApplyResult) -> None:
    failures = [(s, f) for s in result.steps for f in s.failures]
    for s, f in failures[:MAX_FAILURES_SHOWN]:
        console.print(f"failed: {s.container}/{f.name}: {f.message}")
    if len(failures) > MAX_FAILURES_SHOWN:
        console.print(f"... and {len(failures) - MAX_FAILURES_SHOWN} more (--json lists them all)")
