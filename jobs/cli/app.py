"""The ``headwater`` command: shared app object, context and output helpers.

Commands live in sibling modules (one per concern) and register themselves on ``app``;
``jobs.cli`` imports them all. Tables for people, ``--json`` for scripts, progress on long work.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import HeadwaterError, describe, one_line
from ingestion.core.lifecycle import exit_code, failed_run, outcome_of

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import Storage

app = typer.Typer(
    name="headwater",
    help="Event-driven ingestion and ETL: landing -> bronze -> silver -> gold -> Azure ML assets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# `headwater run <job> --dataset NAME`: each job module adds its command to this group.
run_app = typer.Typer(help="Run one job for a dataset now.", no_args_is_help=True)
app.add_typer(run_app, name="run")
console = Console()
err_console = Console(stderr=True)


@dataclass
class Context:
    """What commands share: settings, lake, catalog, and (only when needed) Spark."""

    settings: Settings = field(default_factory=get_settings)

    @cached_property
    def storage(self) -> Storage:
        from ingestion.core.storage import open_storage

        return open_storage(self.settings)

    @cached_property
    def catalog(self) -> Catalog:
        from ingestion.contracts import Catalog

        return Catalog.discover(settings=self.settings)

    @cached_property
    def spark(self) -> SparkSession:
        import tempfile
        from pathlib import Path

        from ingestion.core.spark.session import get_spark

        log = Path(tempfile.gettempdir()) / "headwater" / "spark-driver.log"
        with console.status(f"starting Spark (first start resolves Delta's jars; JVM log: {log})"):
            return get_spark(self.settings, jvm_log=log)


# `headwater status` is assembled from sections each concern registers: a section returns a
# title and either a rich Table (for people) or plain data (for --json).
StatusSection = Callable[[Context, str | None], tuple[str, Table, Any]]
STATUS_SECTIONS: list[StatusSection] = []


def status_section(fn: StatusSection) -> StatusSection:
    STATUS_SECTIONS.append(fn)
    return fn


def emit(data: Any, *, as_json: bool, table: Table | None = None) -> None:
    """Print ``data`` as JSON for scripts or ``table`` for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    elif table is not None:
        console.print(table)
    else:
        console.print(data)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    return t


def fail(message: str, code: int = 1) -> typer.Exit:
    # Escaped: a message's own brackets (the reason code, "[lease_held]") are text, not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


LOG_FILE = Path(tempfile.gettempdir()) / "headwater" / "headwater.log"


def run_cli(fn: Callable[[], Any]) -> Any:
    """Run a command body; an error becomes its reason and code on stderr and the exit code.

    The job lifecycle's codes (``ingestion.core.lifecycle``): a failed run exits 1, a refusal
    (bad input, unknown dataset, invalid contract, lease held) 2. An unexpected error outside any
    run exits 1 with its code and one line; its trace goes to ``LOG_FILE``, never to the user.
    """
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - no Python traceback for the user; it goes to the log
        status, code = outcome_of(err)
        if failed_run(err) is None and not isinstance(err, HeadwaterError):
            LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
            with LOG_FILE.open("a") as fh:
                fh.write(
                    f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {describe(err)}\n{traceback.format_exc()}\n"
                )
            raise fail(f"{describe(err)} (full trace in {LOG_FILE})", 1) from None
        raise fail(f"{one_line(err)} [{code}]", exit_code(status)) from None


def exit_with(status: str) -> None:
    """End the command with the exit code of a run's ``status`` (nothing for 0)."""
    code = exit_code(status)
    if code:
        raise typer.Exit(code)


@app.callback()
def _root(
    typer_ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO."),
    log_json: bool = typer.Option(
        False, "--log-json", help="Log JSON lines (run_id, dataset, zone, batch, trace ids); no row contents."
    ),
) -> None:
    from ingestion.core import telemetry

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if log_json:
        telemetry.install_json_logs()
    if typer_ctx.invoked_subcommand == "settings":
        return  # `settings show --env X` reads (and reports on) the settings itself
    # Settings are checked once, before any command: a mistyped or invalid setting stops here,
    # in one line naming it, instead of running against the wrong lake.
    from ingestion.core.profiles import SettingsError

    try:
        settings = get_settings()
    except SettingsError as err:
        raise fail(f"{err} [{err.code}]", 2) from None
    if settings.telemetry.json_logs:
        telemetry.install_json_logs()
    # Spans and metrics of the runs a command starts here (none unless an exporter is set).
    telemetry.configure(settings, component="cli")
    if telemetry.enabled():
        ctx = Context(settings)  # opened only when the gauges are first observed
        telemetry.register_backlog(lambda: ctx.storage, lambda: ctx.catalog)
