"""spark-submit's entry file: ``spark-submit [options] jobs/launch.py JOB [ARGS...]``.

spark-submit runs a Python file, not a module. This file, shipped in the wheel, runs
``python -m jobs.JOB ARGS...``'s ``main`` from the installed package and exits with its code
(0 ok or nothing to do, 1 failed, 2 refused)::

    spark-submit --master spark://127.0.0.1:7077 .../site-packages/jobs/launch.py ingest --dataset orders

Every job's arguments include ``--traceparent W3C`` (``jobs.entry.parser``), which a submitter
adds when it submits inside a trace (``ingestion.remote.libraries.job_args``): the job, run
through here, configures its telemetry and continues that trace (``jobs.entry.main``).
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

_JOB_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def main(argv: list[str] | None = None) -> int:
    """Run ``jobs.<argv[0]>.main(argv[1:])``; returns its exit code (2 for a bad job name).

    Args:
        argv: ``[job, *job_args]``; default ``sys.argv[1:]``.

    Returns:
        The job's exit code.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not _JOB_RE.match(args[0]) or args[0] == "launch":
        print("usage: launch.py JOB [ARGS...]  (JOB: a module under jobs, e.g. ingest)", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"jobs.{args[0]}")
    except ModuleNotFoundError as err:
        print(f"launch.py: no job jobs.{args[0]} ({err})", file=sys.stderr)
        return 2
    code = module.main(args[1:])
    return int(code or 0)


def run() -> None:
    """The ``headwater-job`` console entry point: :func:`main`, exiting with the job's code."""
    raise SystemExit(main())


if __name__ == "__main__":
    # Run as a file, Python put this folder first on sys.path: its modules (entry, ingest...)
    # must not shadow top-level names, and `jobs` must come from the installed package.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    sys.exit(main())
