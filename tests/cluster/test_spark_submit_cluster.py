"""Jobs submitted with spark-submit to a real standalone cluster (master + 2 worker JVMs).

They run from the installed wheel (driver and executors), on the workers; the demo's two batches,
as events followed by pipeline runs submitted in parallel, leave the same rows in every zone as
the in-process demo (compared with a second reader, delta-rs) and end in registered assets.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from ingestion.core.config import LakeSettings
from ingestion.submit import SparkSubmitSubmitter
from ingestion.testing.cluster import submit_settings

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
# The only run-dependent columns: when a row was ingested (bronze, carried on), when it was
# quarantined, and by which run. Every other column must be equal.
RUN_COLUMNS = {"_ingested_at", "_quarantined_at", "_run_id"}


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_jobs_run_from_the_wheel_on_the_workers(tmp_path, standalone_cluster, job_python, job_jars):
    venv = job_python.parent.parent
    settings = submit_settings(standalone_cluster, job_python, job_jars, tmp_path / "lake")
    out = SparkSubmitSubmitter(settings, job="probe").submit("any")

    assert out["master"] == standalone_cluster.url
    files = [out["driver"], *(e["ingestion"] for e in out["executors"])]
    assert len(files) >= 3
    for f in files:
        assert _inside(f, venv) and not _inside(f, ROOT), f
    assert out["block_managers"] >= 2  # the driver and the executors registered so far
    # The master ran the app on its workers: each worker keeps the app's executor folder.
    state = standalone_cluster.state()
    assert out["app_id"] in {a["id"] for a in state["completedapps"]}
    work = standalone_cluster.workdir / "work"
    assert sorted(p.parents[2].name for p in work.glob(f"worker-*/{out['app_id']}/*/stderr")) == [
        "worker-0",
        "worker-1",
    ]


def _delta_tables(root: Path) -> dict[str, pd.DataFrame]:
    """Every Delta table of the lake's zones, read with delta-rs, run-dependent columns left out."""
    out = {}
    for log in sorted(root.glob("*/**/_delta_log")):
        name = log.parent.relative_to(root).as_posix()
        if name.split("/")[0] == "system":
            continue  # the run ledger: one row per run, run-dependent by nature
        df = DeltaTable(str(log.parent)).to_pyarrow_table().to_pandas()
        df = df.drop(columns=[c for c in df.columns if c in RUN_COLUMNS])
        df = df[sorted(df.columns)]
        out[name] = df.sort_values(list(df.columns), key=lambda c: c.astype(str)).reset_index(drop=True)
    return out


def test_the_demo_on_the_cluster_leaves_the_rows_the_in_process_demo_leaves(
    spark, tmp_path, standalone_cluster, job_python, job_jars
):
    """Events, then pipeline runs by spark-submit: landing to a registered asset on the cluster."""
    from ingestion.core.config import get_settings
    from ingestion.core.lake import RUNS_TABLE
    from jobs.cli.app import Context
    from jobs.cli.demo import cluster_batches, local_batches
    from transforms.assets import open_registry

    def context(lake: Path) -> Context:
        settings = get_settings().model_copy(deep=True)
        settings.lake = LakeSettings(kind="local", root=lake)
        settings.spark.shuffle_partitions = 2
        ctx = Context(settings=settings)
        ctx.spark = spark  # the suite's session (the cluster side never uses it)
        return ctx

    on_cluster, in_process = context(tmp_path / "cluster-lake"), context(tmp_path / "local-lake")
    submit = submit_settings(standalone_cluster, job_python, job_jars, tmp_path / "cluster-lake")
    # The in-process demo runs meanwhile: the cluster side mostly waits for its JVMs.
    with ThreadPoolExecutor(1) as pool:
        local = pool.submit(local_batches, in_process, in_process.settings)
        results = cluster_batches(on_cluster, submit)
        local.result()

    # Two batches x two datasets, in parallel per batch; every stage ran or had nothing new.
    assert len(results) == 4 and {r["status"] for r in results} == {"succeeded"}, results
    for r in results:
        assert set(r["outcomes"].values()) <= {"succeeded", "skipped", "waiting"}, r
    assert all(r["outcomes"].get("curate") == "succeeded" for r in results)

    mine, theirs = _delta_tables(tmp_path / "cluster-lake"), _delta_tables(tmp_path / "local-lake")
    assert sorted(mine) == sorted(theirs)
    assert {n.split("/")[0] for n in mine} == {"bronze", "silver", "quarantine", "gold"}
    for name, df in mine.items():
        assert len(df) > 0, name
        pd.testing.assert_frame_equal(df, theirs[name], check_dtype=True, obj=name)

    # The chain ended in registered assets: every gold of the demo has a version per batch
    # that changed it, each pinned to a Delta version of its gold table.
    registry = open_registry(on_cluster.settings, on_cluster.storage)
    local_registry = open_registry(in_process.settings, in_process.storage)
    assert sorted(registry.names()) == sorted(local_registry.names()) and registry.names()
    for name in registry.names():
        versions = registry.versions(name)
        assert len(versions) >= 2, name
        assert versions[-1].tags["row_count"] == local_registry.versions(name)[-1].tags["row_count"]
        assert versions[-1].tags["schema_hash"] == local_registry.versions(name)[-1].tags["schema_hash"]
    # Each submitted run left its pipeline row in the run ledger of the cluster's lake.
    runs = spark.read.format("delta").load(str(tmp_path / "cluster-lake" / RUNS_TABLE))
    assert runs.filter("job = 'pipeline' AND status = 'succeeded'").count() == 4
