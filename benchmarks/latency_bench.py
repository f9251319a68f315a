"""Benchmark: landing-to-asset latency of a one-file batch, three ways; and demo wall times.

    .venv/bin/python benchmarks/latency_bench.py --repeat 3 [--demo]

One lake is made with ``headwater demo`` (both batches: every table and a registered
``customer_features``), then copied once per way. Each measurement lands one small customers
file (one customer's country changes, so ``customer_features`` changes) and times until the
registry holds a new version of ``customer_features``:

* ``watch``: a running ``headwater watch`` (its Spark session warm) learns of the file from the
  file system's notifications and runs the pipeline; timed from the file's write.
* ``cli``: the event is raised (what the blob trigger does), then a cold
  ``headwater run pipeline --dataset customers`` process runs it; timed from the write to the
  process's exit (a JVM start included).
* ``cluster``: the event, then ``spark-submit`` of ``jobs.pipeline`` to a standalone cluster
  (master + 2 workers, started beforehand and not timed), from the wheel's venv.

With ``--demo`` it also times ``headwater demo --fresh`` against ``headwater demo --cluster
--fresh`` (what ``make demo`` and ``make demo-cluster`` run), one after the other. Not a test:
no assertion, just figures (medians, and each run's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
GOLD = "customer_features"


def _env(lake: Path) -> dict[str, str]:
    return {**os.environ, "HEADWATER_LAKE__ROOT": str(lake), "HEADWATER_SPARK__SHUFFLE_PARTITIONS": "2"}


def _versions(lake: Path) -> int:
    from ingestion.core.storage import LocalStorage
    from transforms.assets.registry import LocalRegistry

    return len(LocalRegistry(LocalStorage(lake)).versions(GOLD))


COUNTRIES = ["DE", "FR", "NL", "SE", "US", "GB"]


def _base_country(lake: Path) -> str:
    """C-001's country in the lake's silver (read with delta-rs: this process runs no Spark)."""
    from deltalake import DeltaTable

    rows = DeltaTable(str(lake / "silver" / "customers")).to_pyarrow_table().to_pylist()
    return next(str(r["country"]) for r in rows if r["customer_id"] == "C-001")


def _customers_file(n: int, country: str) -> tuple[str, bytes]:
    rec = {
        "customer_id": "C-001",
        "name": "Customer 1",
        "email": "customer1@example.com",
        "country": country,
        "segment": "consumer",
        "signup_date": "2024-01-01",
        "lifetime_value": 100.0 + n,
    }
    return f"customers/2026/12/latency_{n:03d}.jsonl", (json.dumps(rec) + "\n").encode()


def _land(lake: Path, n: int, *, event: bool) -> float:
    """Write the n-th one-file batch (and raise its event); returns the write's time."""
    from ingestion.contracts import Catalog
    from ingestion.core.storage import LocalStorage
    from ingestion.events import EventHandler, Ledger

    # Another country than C-001 has now, so customer_features changes (the same bytes, or a
    # change the gold does not read, would rightly register nothing new).
    others = [c for c in COUNTRIES if c != _base_country(lake)]
    rel, data = _customers_file(n, others[n % len(others)])
    storage = LocalStorage(lake)
    t0 = time.time()
    info = storage.write_bytes(f"landing/{rel}", data)
    if event:
        EventHandler(Ledger(storage), Catalog.discover()).file_landed(rel, etag=info.etag, size=info.size)
    return t0


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return time.time()


def measure_watch(lake: Path, repeat: int) -> list[float]:
    proc = subprocess.Popen(
        [str(BIN / "headwater"), "watch", "--settle", "0.2", "--sweep", "3600"],
        env=_env(lake),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True).start()
    try:
        # Its session is warm and its start-up sweep (and the runs it started) done.
        _wait_for(lambda: any("swept landing" in ln for ln in lines), 900, "headwater watch did not start")
        out = []
        for i in range(repeat):
            before = _versions(lake)
            t0 = _land(lake, 100 + i, event=False)
            t1 = _wait_for(lambda b=before: _versions(lake) > b, 600, "no new asset version")  # type: ignore[misc]
            out.append(t1 - t0)
            print(f"  watch   #{i + 1}: {t1 - t0:.1f}s", flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def measure_cli(lake: Path, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        before = _versions(lake)
        t0 = _land(lake, 200 + i, event=True)
        subprocess.run(
            [str(BIN / "headwater"), "run", "pipeline", "--dataset", "customers"],
            env=_env(lake),
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        t1 = time.time()
        assert _versions(lake) > before, "the CLI pipeline run registered nothing"
        out.append(t1 - t0)
        print(f"  cli     #{i + 1}: {t1 - t0:.1f}s", flush=True)
    return out


def measure_cluster(lake: Path, repeat: int, work: Path) -> list[float]:
    from ingestion.submit import SparkSubmitSubmitter
    from ingestion.testing.cluster import (
        StandaloneCluster,
        build_wheel,
        delta_jars,
        submit_settings,
        wheel_venv,
    )

    wheel = build_wheel(ROOT, work / "wheel")
    python = wheel_venv(
        wheel, Path.home() / ".cache" / "headwater" / "wheel-venvs", constraints=ROOT / "constraints.txt"
    )
    jars = delta_jars(python)
    cluster = StandaloneCluster(work / "cluster").start()
    try:
        settings = submit_settings(cluster, python, jars, lake)
        out = []
        for i in range(repeat):
            before = _versions(lake)
            t0 = _land(lake, 300 + i, event=True)
            result = SparkSubmitSubmitter(settings).submit("customers")
            t1 = time.time()
            assert result.get("status") == "succeeded" and _versions(lake) > before, result
            out.append(t1 - t0)
            print(f"  cluster #{i + 1}: {t1 - t0:.1f}s", flush=True)
        return out
    finally:
        cluster.stop()


def _demo(lake: Path, *extra: str) -> float:
    t0 = time.time()
    subprocess.run(
        [str(BIN / "headwater"), "demo", "--fresh", "--lake", str(lake), *extra],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    return time.time() - t0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ways", default="watch,cli,cluster", help="Comma-separated: watch, cli, cluster.")
    parser.add_argument("--demo", action="store_true", help="Also time demo against demo --cluster.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="headwater-latency-"))
    base = work / "base"
    t = _demo(base)
    print(f"base lake made with headwater demo in {t:.0f}s", flush=True)
    figures: dict[str, list[float]] = {}
    for way in args.ways.split(","):
        lake = work / way
        shutil.copytree(base, lake)
        if way == "watch":
            figures[way] = measure_watch(lake, args.repeat)
        elif way == "cli":
            figures[way] = measure_cli(lake, args.repeat)
        elif way == "cluster":
            figures[way] = measure_cluster(lake, args.repeat, work)
        else:
            parser.error(f"unknown way {way!r}")
    print("landing-to-asset latency of a one-file batch (median of runs):")
    for way, runs in figures.items():
        print(f"  {way:8s} {statistics.median(runs):6.1f}s   runs: {', '.join(f'{r:.1f}' for r in runs)}")
    if args.demo:
        local = _demo(work / "demo-local")
        cluster = _demo(work / "demo-cluster", "--cluster")
        print(
            f"headwater demo: {local:.0f}s; headwater demo --cluster: {cluster:.0f}s ({cluster / local:.2f}x)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
