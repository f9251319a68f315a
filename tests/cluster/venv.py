"""The cluster tests' job venv: built once per session, in the background when other tests run first."""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_CACHE = Path.home() / ".cache" / "headwater" / "wheel-venvs"

_lock = threading.Lock()
_future: Future[Path] | None = None


def _build() -> Path:
    from ingestion.testing.cluster import build_wheel, wheel_venv

    wheel = build_wheel(ROOT, Path(tempfile.mkdtemp(prefix="headwater-wheel-")))
    return wheel_venv(wheel, VENV_CACHE, constraints=ROOT / "constraints.txt")


def start_job_venv() -> Future[Path]:
    """Start building this checkout's wheel venv on a background thread (once per process)."""
    global _future
    with _lock:
        if _future is None:
            _future = Future()
            fut = _future

            def run() -> None:
                try:
                    fut.set_result(_build())
                except BaseException as err:  # noqa: BLE001 - handed to the fixture that waits
                    fut.set_exception(err)

            threading.Thread(target=run, name="job-venv", daemon=True).start()
        return _future


def job_venv_python() -> Path:
    """The venv's python: waits for the background build, or builds it now."""
    return start_job_venv().result()
