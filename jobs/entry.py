"""What every ``python -m jobs.<job>`` shares: its arguments, its run, its output, its exit code.

The exit code is the job lifecycle's (``ingestion.core.lifecycle``): 0 when the run succeeded or
had nothing to do, 1 when it failed, 2 when it was refused (bad arguments, which is argparse's
own exit, an unknown dataset, an invalid contract, the lease held by another run). The result is
printed on stdout as one JSON object; a failure or refusal also goes to stderr, with its code.

Telemetry: each entry point installs the process's providers (``component="job"``,
:mod:`ingestion.core.telemetry`) and, given ``--traceparent`` (what a submitter passes: the trace
of the Function invocation or CLI run that submitted it), continues that trace, so the run's
``headwater.pipeline`` span is a child of the submitting span.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ingestion.core import telemetry
from ingestion.core.config import Settings, get_settings
from ingestion.core.lifecycle import exit_code, failed_run, outcome_of

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.contracts import Catalog
    from ingestion.core.storage import Storage

log = logging.getLogger(__name__)


class Result(Protocol):
    """What a job returns: a status and JSON-able data (``RunRecord`` and its subclasses)."""

    @property
    def status(self) -> Any:
        """``succeeded``, ``skipped``, ``failed`` or ``refused``."""
        ...

    @property
    def error(self) -> Any:
        """The failure's code and one line, or None."""
        ...

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data."""
        ...


def environment(settings: Settings | None = None) -> tuple[Settings, SparkSession, Storage, Catalog]:
    """The settings, Spark session, lake and catalog a job runs with.

    Args:
        settings: headwater settings; the process-wide ones by default.

    Returns:
        ``(settings, spark, storage, catalog)``. On a cluster the cluster's session is used.
    """
    from ingestion.contracts import Catalog
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import open_storage

    settings = settings or get_settings()
    return settings, get_spark(settings), open_storage(settings), Catalog.discover(settings=settings)


def parser(prog: str, doc: str | None, *, lease_wait: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with ``--dataset`` (and ``--lease-wait`` when ``lease_wait`` says what for).

    Args:
        prog: the entry point's name, e.g. ``jobs.ingest``.
        doc: its module docstring (the ``--help`` text).
        lease_wait: what the job waits for, e.g. ``a running ingest of the dataset``.

    Returns:
        The parser; the job adds its own options.
    """
    p = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dataset", required=True, help="the dataset to run the job for")
    p.add_argument(
        "--traceparent",
        default=None,
        metavar="W3C",
        help="the W3C traceparent of the run that submitted this one: the job's spans continue its trace",
    )
    if lease_wait:
        p.add_argument("--lease-wait", type=float, default=0.0, help=f"seconds to wait for {lease_wait}")
    return p


def main(prog: str, args: argparse.Namespace, start: Callable[[argparse.Namespace], Result]) -> int:
    """Run ``start(args)``; print its result; return the exit code.

    Args:
        prog: the entry point's name, for messages.
        args: the parsed arguments (``dataset`` among them).
        start: runs the job and returns its result.

    Returns:
        0 succeeded or skipped, 1 failed, 2 refused.
    """
    _configure_telemetry()
    try:
        with telemetry.continue_trace(getattr(args, "traceparent", None)):
            return _run(prog, args, start)
    finally:
        telemetry.flush()  # a wheel task's process may outlive the job: export now


def _configure_telemetry() -> None:
    try:
        telemetry.configure(get_settings(), component="job")
    except Exception:  # noqa: BLE001 - bad settings are the job's refusal to report, not ours
        log.debug("telemetry not configured", exc_info=True)


def _run(prog: str, args: argparse.Namespace, start: Callable[[argparse.Namespace], Result]) -> int:
    try:
        result = start(args)
    except Exception as err:
        status, code = outcome_of(err)
        record = failed_run(err)
        data = record.as_dict() if record is not None else {"dataset": args.dataset, "error": str(err)}
        data.update(status=status, code=code, error=data.get("error") or str(err))
        _print(data)
        print(f"{prog}: {status} ({code}): {err}", file=sys.stderr)
        return exit_code(status)
    data = result.as_dict()
    _print(data)
    if result.status == "failed":
        # A result that names its failure's code (a pipeline run: its failed stage's) shows it.
        print(f"{prog}: failed ({data.get('code') or 'failed'}): {result.error}", file=sys.stderr)
    return exit_code(result.status)


def _print(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()
