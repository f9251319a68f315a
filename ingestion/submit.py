"""The spark-submit submitter: a run as ``spark-submit --master M ... launch.py JOB --dataset D``.

It implements the :class:`~ingestion.batching.Submitter` seam for any master (``spark://...``,
``yarn``, ``k8s://...``, ``local[n]``). The job runs from the installed wheel, not from this
process's code: ``settings.submit.python`` is the python of the venv the wheel is installed in,
used by the driver and the executors (``PYSPARK_PYTHON``); ``SPARK_HOME`` is that venv's pyspark
package folder, and the file spark-submit runs is the launcher the wheel ships
(``jobs/launch.py``), which runs ``python -m jobs.<job>``'s ``main``.

The job's exit code is the lifecycle's: 0 ok (its JSON result is returned), 1 failed (a
:class:`SubmittedRunError` with the run's code), 2 refused (a held lease becomes a
:class:`~ingestion.core.errors.LeaseHeldError`, which the batcher counts as coalesced; any other
refusal a terminal :class:`SubmittedRunError`). No secret ever reaches the command line or the
log: ABFS credentials stay in the environment the job inherits and reads through its settings.

Nothing here imports pyspark or the entry points: the job venv is asked where they are.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ingestion.batching import SubmitError
from ingestion.core.config import Settings, child_environment
from ingestion.core.errors import LeaseHeldError
from ingestion.core.reasons import RunCode
from ingestion.core.spark.session import DELTA_CONF
from ingestion.remote.libraries import job_args, run_name
from ingestion.remote.runs import job_result

log = logging.getLogger(__name__)

_JOB_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SECRET_KEY_RE = re.compile(r"secret|password|token|key|credential|sas", re.IGNORECASE)
_TRANSIENT = {RunCode.STORAGE, RunCode.SPARK, RunCode.UNKNOWN, RunCode.NETWORK, RunCode.LEASE_LOST}

# Asked of the job venv's python: where its wheel's launcher, pyspark and Delta jars are.
_LAYOUT_PROBE = """
import importlib.util, json
from pathlib import Path
jobs = importlib.util.find_spec("jobs")
pyspark = importlib.util.find_spec("pyspark")
from ingestion.core.spark.jars import delta_coordinates
print(json.dumps({
    "launcher": str(Path(jobs.origin).parent / "launch.py"),
    "spark_home": str(Path(pyspark.origin).parent),
    "packages": delta_coordinates(),
}))
"""


@dataclass(frozen=True)
class JobVenv:
    """Where the installed wheel's pieces are, as the job venv's python sees them."""

    python: Path
    launcher: Path
    spark_home: Path
    packages: tuple[str, ...]

    @property
    def spark_submit(self) -> Path:
        return self.spark_home / "bin" / "spark-submit"


@lru_cache(maxsize=8)
def job_venv(python: Path) -> JobVenv:
    """Ask ``python`` (the job venv's) where its launcher, pyspark and Delta coordinates are.

    Args:
        python: the job venv's interpreter.

    Returns:
        The venv's layout (cached per interpreter).

    Raises:
        SubmitError: the interpreter is missing or has no headwater wheel with pyspark.
    """
    try:
        out = subprocess.run(
            [str(python), "-I", "-c", _LAYOUT_PROBE], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        raise SubmitError("*", f"{python} has no usable headwater wheel with pyspark ({err})") from err
    return JobVenv(Path(python), Path(data["launcher"]), Path(data["spark_home"]), tuple(data["packages"]))


class SubmittedRunError(SubmitError):
    """A submitted run failed (exit 1) or was refused (exit 2) for a reason other than a lease."""

    def __init__(self, dataset: str, reason: str, *, code: str, exit_code: int) -> None:
        # The run ledger's errors already read "<code>: <Class>: <line>": never say the code twice.
        super().__init__(dataset, reason if reason.startswith(f"{code}: ") else f"{code}: {reason}")
        try:
            self.code = RunCode(code)
        except ValueError:
            self.code = RunCode.SUBMIT
        self.exit_code = exit_code
        # A refusal (bad dataset, contract, settings) is terminal; a failure may pass.
        self.transient = exit_code == 1 and self.code in _TRANSIENT


class SubmittedLeaseHeldError(LeaseHeldError):
    """The submitted run found the dataset's lease held (exit 2, ``lease_held``)."""

    def __init__(self, dataset: str, reason: str) -> None:
        Exception.__init__(self, reason)
        self.dataset = dataset
        self.owner = "another run"
        self.expires_at = 0.0


def redact(argv: Sequence[str]) -> list[str]:
    """``argv`` with the value of every ``--conf`` whose key looks secret replaced by ``***``."""
    out = list(argv)
    for i, arg in enumerate(out):
        if i and out[i - 1] == "--conf" and "=" in arg:
            key, _, _ = arg.partition("=")
            if _SECRET_KEY_RE.search(key):
                out[i] = f"{key}=***"
    return out


class SparkSubmitSubmitter:
    """Starts each run with spark-submit against ``settings.submit.master``.

    Args:
        settings: ``settings.submit`` (master, job, python, conf, env, timeout) and
            ``settings.spark.jars_dir`` (Delta jars to pass with ``--jars``; else ``--packages``
            with the job venv's Delta coordinates).
        job: the ``jobs`` module to run; default ``settings.submit.job``.
        venv: the job venv's layout; default asked of ``settings.submit.python``.
    """

    def __init__(self, settings: Settings, *, job: str | None = None, venv: JobVenv | None = None) -> None:
        self.settings = settings
        self.job = job or settings.submit.job
        if not _JOB_RE.match(self.job):
            raise SubmitError("*", f"job {self.job!r}: not a module name under jobs")
        if venv is None:
            if settings.submit.python is None:
                raise SubmitError("*", "spark-submit needs HEADWATER_SUBMIT__PYTHON (the job venv's python)")
            venv = job_venv(Path(settings.submit.python))
        self.venv = venv

    def argv(self, dataset: str, extra: Sequence[str] = ()) -> list[str]:
        """The spark-submit command line for one run of ``dataset``.

        Args:
            dataset: the dataset's name.
            extra: further job arguments (after ``--dataset``).

        Returns:
            ``[spark-submit, --master, M, --name, ..., --conf k=v..., --packages|--jars ...,
            launcher, job, --dataset, dataset, *extra]``; ``--traceparent <W3C>`` follows
            ``dataset`` when a trace is current (the Function invocation's, the CLI's span), so
            the job's spans continue it (:func:`~ingestion.remote.libraries.job_args`).
        """
        sub = self.settings.submit
        cmd = [str(sub.spark_submit or self.venv.spark_submit), "--master", sub.master]
        cmd += ["--name", run_name(self.job, dataset)]
        conf = {
            "spark.pyspark.python": str(self.venv.python),
            "spark.pyspark.driver.python": str(self.venv.python),
            **DELTA_CONF,
            **sub.conf,
        }
        for key in sorted(conf):
            cmd += ["--conf", f"{key}={conf[key]}"]
        jars_dir = self.settings.spark.jars_dir
        if jars_dir:
            cmd += ["--jars", ",".join(sorted(str(p) for p in Path(jars_dir).glob("*.jar")))]
        elif self.venv.packages:
            cmd += ["--packages", ",".join(self.venv.packages)]
        cmd += [str(self.venv.launcher), *job_args(self.job, dataset), *extra]
        return cmd

    def environment(self) -> dict[str, str]:
        """spark-submit's environment: this process's, with the job venv's Spark and Python."""
        python = str(self.venv.python)
        extra: Mapping[str, str] = {
            "SPARK_HOME": str(self.venv.spark_home),
            "PYSPARK_PYTHON": python,
            "PYSPARK_DRIVER_PYTHON": python,
            **self.settings.submit.env,
        }
        env = child_environment(extra)
        # The submitting process's own path must not leak into the job (it runs from the wheel).
        env.pop("PYTHONPATH", None)
        return env

    def submit(self, dataset: str) -> dict[str, Any]:
        """Run one job of ``dataset`` with spark-submit; its JSON result.

        Raises:
            SubmittedLeaseHeldError: the run was refused because the dataset's lease is held.
            SubmittedRunError: the run failed (exit 1) or was refused (exit 2).
            SubmitError: spark-submit could not be started or timed out.
        """
        cmd = self.argv(dataset)
        log.info("spark-submit: %s", " ".join(redact(cmd)))
        try:
            proc = subprocess.run(
                cmd,
                env=self.environment(),
                capture_output=True,
                text=True,
                timeout=self.settings.submit.timeout_seconds,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise SubmittedRunError(
                dataset, f"spark-submit timed out after {err.timeout}s", code=RunCode.SPARK, exit_code=1
            ) from err
        except OSError as err:
            raise SubmitError(dataset, f"spark-submit could not start: {err}") from err
        return self.outcome(dataset, proc.returncode, proc.stdout, proc.stderr)

    def outcome(self, dataset: str, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
        """Map a finished spark-submit to the job's result or the matching error.

        Args:
            dataset: the dataset.
            returncode: spark-submit's exit code (the job's, 0/1/2; anything else: it died).
            stdout: its output; the job's result is the last line that is a JSON object.
            stderr: its error output (only the last line is kept, never logged whole).

        Returns:
            The job's result for exit 0.
        """
        result = job_result(stdout)
        if returncode == 0 and result is not None:
            return result
        code = str((result or {}).get("code") or RunCode.SUBMIT)
        reason = str((result or {}).get("error") or _last_line(stderr) or f"spark-submit exited {returncode}")
        if returncode == 2 and code == RunCode.LEASE_HELD:
            raise SubmittedLeaseHeldError(dataset, reason)
        if returncode in (1, 2):
            raise SubmittedRunError(dataset, reason, code=code, exit_code=returncode)
        # Exit 0 without a result, a signal, or the JVM's own exit code: the run did not finish.
        raise SubmittedRunError(
            dataset,
            f"spark-submit exited {returncode} without a result ({reason})",
            code=RunCode.SPARK,
            exit_code=1,
        )


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


__all__ = [
    "JobVenv",
    "SparkSubmitSubmitter",
    "SubmittedLeaseHeldError",
    "SubmittedRunError",
    "job_venv",
    "redact",
]
