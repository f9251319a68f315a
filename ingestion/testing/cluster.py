"""A real Spark standalone cluster on this machine, and the wheel venv its jobs run from.

* :class:`StandaloneCluster` - a master and N workers, each its own JVM, started with pyspark's
  own launcher (``<pyspark>/bin/spark-class org.apache.spark.deploy.master.Master`` and
  ``...deploy.worker.Worker``) on 127.0.0.1 with free ports, one core and bounded memory per
  worker, logs in a folder. ``start()`` waits until every worker has registered with the master;
  ``stop()`` ends exactly the JVMs it started.
* :func:`build_wheel` / :func:`wheel_venv` - the project's wheel, built from a clean copy of the
  source, installed non-editable with its pinned dependencies into a venv cached by the wheel's
  content hash (so it costs once), for the driver and the executors.

Used by the cluster tests (``tests/cluster/conftest.py``) and meant for ``make demo-cluster``::

    python -m ingestion.testing.cluster up --dir .cache/cluster     # prints the master URL
    python -m ingestion.testing.cluster down --dir .cache/cluster
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingestion.core.config import child_environment

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
HOST = "127.0.0.1"
# Every JVM here (daemons, drivers, executors) is short-lived and shares two cores: the client
# JIT alone and one GC thread start faster and leave the cores to the work (nothing else changes).
SMALL_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def spark_home() -> Path:
    """The pyspark package folder (pip's pyspark is a complete SPARK_HOME: bin/, jars/)."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed")
    return Path(spec.origin).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class StandaloneCluster:
    """A Spark standalone master and ``workers`` workers on loopback.

    Args:
        workdir: logs (``<role>.log``), worker dirs and the pid file go here.
        workers: how many worker JVMs.
        worker_cores: ``SPARK_WORKER_CORES`` of each.
        worker_memory: ``SPARK_WORKER_MEMORY`` of each (what executors may take).
        daemon_memory: heap of the master and worker daemons themselves.
    """

    workdir: Path
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    daemon_memory: str = "256m"
    home: Path = field(default_factory=spark_home)
    master_port: int = 0
    master_ui_port: int = 0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``spark://127.0.0.1:<port>``: the master URL to submit to."""
        return f"spark://{HOST}:{self.master_port}"

    @property
    def ui(self) -> str:
        """The master's web UI (``<ui>/json`` is its state as JSON)."""
        return f"http://{HOST}:{self.master_ui_port}"

    def _env(self, role: str) -> dict[str, str]:
        env = child_environment(
            {
                "SPARK_HOME": str(self.home),
                "SPARK_LOCAL_IP": HOST,
                "SPARK_LOG_DIR": str(self.workdir / "logs"),
                "SPARK_WORKER_CORES": str(self.worker_cores),
                "SPARK_WORKER_MEMORY": self.worker_memory,
                "SPARK_DAEMON_MEMORY": self.daemon_memory,
                "SPARK_DAEMON_JAVA_OPTS": SMALL_JVM,
                "SPARK_WORKER_DIR": str(self.workdir / "work" / role),
                "SPARK_NO_DAEMONIZE": "1",
            }
        )
        # Executors inherit the worker's environment: a checkout on this PYTHONPATH would be
        # imported instead of the job's installed wheel.
        env.pop("PYTHONPATH", None)
        return env

    def _launch(self, role: str, cls: str, args: Sequence[str]) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (self.workdir / "work" / role).mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{role}.log", "ab")  # noqa: SIM115 - the JVM owns it until stop()
        cmd = [str(self.home / "bin" / "spark-class"), cls, *args]
        # Own process group: stop() ends the launcher script and its JVM together.
        proc = subprocess.Popen(
            cmd, env=self._env(role), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.procs.append(proc)

    def start(self, timeout: float = 120.0) -> StandaloneCluster:
        """Start the master and the workers; return when all workers are ALIVE at the master.

        Raises:
            RuntimeError: a JVM exited or the workers did not register in ``timeout`` seconds
                (the cluster is stopped; the message names the log folder).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.master_port, self.master_ui_port = free_port(), free_port()
        self._launch(
            "master",
            MASTER_CLASS,
            ["--host", HOST, "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)],
        )
        self._write_state()
        try:
            self._wait(lambda s: s is not None, timeout, "the master to answer")
            for i in range(self.workers):
                self._launch(
                    f"worker-{i}",
                    WORKER_CLASS,
                    [
                        "--host",
                        HOST,
                        "--port",
                        str(free_port()),
                        "--webui-port",
                        str(free_port()),
                        "--cores",
                        str(self.worker_cores),
                        "--memory",
                        self.worker_memory,
                        "--work-dir",
                        str(self.workdir / "work" / f"worker-{i}"),
                        self.url,
                    ],
                )
            self._write_state()
            self._wait(lambda s: s is not None and len(alive_workers(s)) >= self.workers, timeout, "workers")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p.args for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a cluster JVM exited while waiting for {what}; logs in {self.workdir}")
            if ready(self.state()):
                return
            time.sleep(0.5)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.workdir}")

    def state(self) -> dict[str, Any] | None:
        """The master's ``/json`` (workers, active and completed applications), or None."""
        try:
            with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_state(self) -> None:
        state = {
            "url": self.url,
            "ui": self.ui,
            "pids": [p.pid for p in self.procs],
        }
        (self.workdir / "cluster.json").write_text(json.dumps(state, indent=2))

    def stop(self, timeout: float = 20.0) -> None:
        """End every JVM this cluster started (its process group), workers first."""
        for proc in reversed(self.procs):
            _end_group(proc.pid, proc)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _end_group(proc.pid, proc, sig=signal.SIGKILL)
                proc.wait(timeout=timeout)
        self.procs.clear()
        (self.workdir / "cluster.json").unlink(missing_ok=True)


def _end_group(pid: int, proc: subprocess.Popen[bytes] | None = None, *, sig: int = signal.SIGTERM) -> None:
    if proc is not None and proc.poll() is not None:
        return
    try:
        os.killpg(pid, sig)  # the group start_new_session made: launcher script and its JVM
    except ProcessLookupError:
        pass


def alive_workers(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The master's workers that are ALIVE."""
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


def stop_recorded(workdir: Path) -> bool:
    """Stop a cluster started by another process from its ``cluster.json`` (``down``)."""
    path = workdir / "cluster.json"
    if not path.exists():
        return False
    for pid in reversed(json.loads(path.read_text())["pids"]):
        _end_group(int(pid))
    path.unlink()
    return True


# --- the wheel and its venv ------------------------------------------------------------------------
_SOURCE_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "node_modules",
    "__pycache__",
    ".cache",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "lake",
    "demo-lake",
    "spark-warehouse",
)


def build_wheel(source: Path, out_dir: Path, *, python: str = sys.executable) -> Path:
    """Build the project's wheel from a clean copy of ``source`` (no stale ``build/`` leaks in).

    Args:
        source: the project root (with ``pyproject.toml``).
        out_dir: where the wheel goes.
        python: the interpreter whose pip builds it.

    Returns:
        The wheel's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="headwater-src-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=_SOURCE_IGNORE)
        subprocess.run(
            [python, "-m", "pip", "wheel", "-q", "--no-deps", str(copy), "-w", str(out_dir)],
            check=True,
            capture_output=True,
        )
    wheels = sorted(out_dir.glob("headwater-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheels[-1]


def wheel_hash(wheel: Path) -> str:
    """The hash of the wheel's files (names and bytes, not zip timestamps): same code, same hash."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            if name.endswith(".dist-info/RECORD"):
                continue  # lists the same hashes again
            digest.update(name.encode() + b"\0" + zf.read(name) + b"\0")
    return digest.hexdigest()[:16]


def wheel_venv(
    wheel: Path,
    cache: Path,
    *,
    constraints: Path | None = None,
    extras: Sequence[str] = ("local", "ml"),
    python: str = sys.executable,
) -> Path:
    """A venv with ``wheel`` installed non-editable (with ``extras``), cached by content hash.

    Args:
        wheel: the project's wheel.
        cache: folder of cached venvs (``<cache>/<hash>/``).
        constraints: pip's ``-c`` file pinning the dependencies.
        extras: the wheel's extras to install (``local``: pyspark + delta-spark + the Spark deps;
            ``ml``: MLTable and the Azure ML client the register stage needs).
        python: the interpreter the venv is made from (its version is the job's).

    Returns:
        The venv's python.
    """
    key = hashlib.sha256(
        (wheel_hash(wheel) + ",".join(extras) + (constraints.read_text() if constraints else "")).encode()
    ).hexdigest()[:16]
    target = cache / key
    py = target / "bin" / "python"
    if (target / ".installed").exists():
        return py
    shutil.rmtree(target, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    # Made from the base interpreter: a venv of a venv's python would still be that venv's base.
    base = _base_python(python)
    subprocess.run([base, "-m", "venv", str(target)], check=True, capture_output=True)
    req = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    cmd = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", req]
    if constraints is not None:
        cmd += ["-c", str(constraints)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"installing {wheel.name} failed: {proc.stderr.strip()[-2000:]}")
    (target / ".installed").write_text(str(wheel))
    _prune(cache, keep=target, newest=2)
    return py


def _prune(cache: Path, *, keep: Path, newest: int) -> None:
    """Remove cached venvs beyond the ``newest`` most recent (``keep`` always stays)."""
    venvs = sorted(
        (d for d in cache.iterdir() if (d / ".installed").exists()),
        key=lambda d: (d / ".installed").stat().st_mtime,
        reverse=True,
    )
    for old in venvs[newest:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


_FETCH_JARS = """
from pathlib import Path
from ingestion.core.spark.jars import delta_coordinates, fetch_delta_jars
folder = Path.home() / ".cache" / "headwater" / "delta-jars" / delta_coordinates()[0].replace(":", "_")
if not list(folder.glob("*.jar")):
    fetch_delta_jars(folder)
print(folder)
"""


def delta_jars(python: Path) -> Path | None:
    """Delta's jars for ``python``'s pyspark, fetched once with Maven (the folder get_spark uses).

    Submitting with ``--jars`` from this folder skips Ivy's resolution on every spark-submit
    and ships executors only what Spark lacks.

    Args:
        python: the job venv's interpreter.

    Returns:
        The folder, or None when Maven is not installed (then spark-submit takes ``--packages``).
    """
    if shutil.which("mvn") is None:
        return None
    out = subprocess.run([str(python), "-I", "-c", _FETCH_JARS], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _base_python(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys, os; print(os.path.realpath(sys._base_executable))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip() or python


def submit_settings(
    cluster: StandaloneCluster, python: Path, jars: Path | None, lake: Path, *, base: Any = None
) -> Any:
    """Settings that submit ``jobs.pipeline`` runs of the lake at ``lake`` to ``cluster``.

    Args:
        cluster: a started cluster.
        python: the job venv's interpreter (driver and executors).
        jars: Delta's jars for that venv (None: ``--packages``).
        lake: the local lake every JVM on this machine sees.
        base: settings to start from (their lake is replaced).

    Returns:
        The Settings.
    """
    from ingestion.core.config import LakeSettings, Settings, SparkSettings, SubmitSettings

    settings = (base or Settings()).model_copy(deep=True)
    settings.lake = LakeSettings(kind="local", root=lake.resolve())
    settings.spark = SparkSettings(jars_dir=jars, shuffle_partitions=2)
    settings.submit = SubmitSettings(
        kind="spark-submit",
        master=cluster.url,
        python=python,
        conf={
            "spark.driver.memory": "700m",
            "spark.executor.memory": "512m",
            "spark.ui.enabled": "false",
            "spark.driver.extraJavaOptions": SMALL_JVM,
            "spark.executor.extraJavaOptions": SMALL_JVM,
            # Tasks read files every worker sees: waiting for a "local" executor only costs time.
            "spark.locality.wait": "0s",
        },
        env={
            "HEADWATER_LAKE__ROOT": str(lake.resolve()),
            "HEADWATER_SPARK__SHUFFLE_PARTITIONS": "2",
            "SPARK_LOCAL_IP": HOST,  # the driver on loopback too (the host name may resolve elsewhere)
        },
        timeout_seconds=1800,
    )
    return settings


def main(argv: list[str] | None = None) -> int:
    """``python -m ingestion.testing.cluster up|down --dir DIR``."""
    p = argparse.ArgumentParser(prog="python -m ingestion.testing.cluster", description=__doc__)
    p.add_argument("action", choices=["up", "down"])
    p.add_argument("--dir", type=Path, default=Path(".cache/cluster"))
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    if args.action == "down":
        print("stopped" if stop_recorded(args.dir) else "no cluster recorded")
        return 0
    cluster = StandaloneCluster(args.dir, workers=args.workers).start()
    print(json.dumps({"url": cluster.url, "ui": cluster.ui}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
