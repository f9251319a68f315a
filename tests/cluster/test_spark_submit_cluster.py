"""Jobs submitted with spark-submit to a real standalone cluster (master + 2 worker JVMs).

They run from the installed wheel (driver and executors), on the workers, and leave the same
rows in bronze, silver and quarantine as the same input run in-process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chispa import assert_df_equality

from ingestion.core.config import LakeSettings, Settings, SparkSettings, SubmitSettings
from ingestion.submit import SparkSubmitSubmitter
from ingestion.testing.cluster import StandaloneCluster

pytestmark = [pytest.mark.spark, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("orders", "customers")
# The only run-dependent columns: when a row was ingested (bronze, carried on), when it was
# quarantined, and by which run. Every other column must be equal.
RUN_COLUMNS = {"_ingested_at", "_quarantined_at", "_run_id"}


def cluster_settings(
    cluster: StandaloneCluster, python: Path, jars: Path | None, lake: Path | None = None
) -> Settings:
    return Settings(
        lake=LakeSettings(kind="local", root=lake or Path("unused-lake")),
        spark=SparkSettings(jars_dir=jars),
        submit=SubmitSettings(
            kind="spark-submit",
            master=cluster.url,
            python=python,
            conf={
                "spark.driver.memory": "700m",
                "spark.executor.memory": "512m",
                "spark.ui.enabled": "false",
            },
            env={
                "HEADWATER_LAKE__ROOT": str(lake or "unused-lake"),
                "HEADWATER_SPARK__SHUFFLE_PARTITIONS": "2",
                # The driver on loopback too (the host name may resolve elsewhere).
                "SPARK_LOCAL_IP": "127.0.0.1",
            },
            timeout_seconds=900,  # a loaded 2-core CI box: JVM starts dominate
        ),
    )


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


def test_jobs_run_from_the_wheel_on_the_workers(standalone_cluster, job_python, job_jars):
    venv = job_python.parent.parent
    settings = cluster_settings(standalone_cluster, job_python, job_jars)
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


def _land(root: Path, files: dict[str, bytes], catalog) -> None:  # noqa: ANN001
    from ingestion.core.storage import LocalStorage
    from ingestion.events import EventHandler, Ledger

    lake = LocalStorage(root)
    handler = EventHandler(Ledger(lake), catalog)
    for path, data in files.items():
        info = lake.write_bytes(f"landing/{path}", data)
        handler.file_landed(path, etag=info.etag, size=info.size)


def _tables(spark, root: Path, dataset: str) -> dict[str, object]:  # noqa: ANN001
    from ingestion.core.lake import bronze_table, quarantine_rows_table, silver_table
    from ingestion.core.spark.delta import is_delta

    out = {}
    for name in (bronze_table(dataset), silver_table(dataset), quarantine_rows_table(dataset)):
        uri = str(root / name)
        if is_delta(spark, uri):
            df = spark.read.format("delta").load(uri)
            df = df.drop(*(c for c in df.columns if c in RUN_COLUMNS))
            out[name] = df
    return out


def test_ingest_and_curate_on_the_cluster_equal_an_in_process_run(
    spark, tmp_path, standalone_cluster, job_python, job_jars, catalog
):
    from ingestion.bronze.job import ingest
    from ingestion.core.storage import LocalStorage
    from jobs.demo_data import batch_files
    from transforms.silver import curate

    files = batch_files(1)
    on_cluster, in_process = tmp_path / "cluster-lake", tmp_path / "local-lake"
    _land(on_cluster, files, catalog)
    _land(in_process, files, catalog)

    settings = cluster_settings(standalone_cluster, job_python, job_jars, on_cluster)
    # Runs for different datasets run in parallel (one core each, so both get an executor).
    settings.submit.conf["spark.cores.max"] = "1"
    results: dict[tuple[str, str], dict] = {}
    with ThreadPoolExecutor(len(DATASETS)) as pool:
        for job in ("ingest", "curate"):
            subs = {ds: pool.submit(SparkSubmitSubmitter(settings, job=job).submit, ds) for ds in DATASETS}
            results.update({(job, ds): f.result() for ds, f in subs.items()})

    local_lake = LocalStorage(in_process)
    local = Settings(
        lake=LakeSettings(kind="local", root=in_process), spark=SparkSettings(shuffle_partitions=2)
    )
    for ds in DATASETS:
        ingest(spark, local_lake, catalog, ds, settings=local)
        curate(spark, local_lake, catalog, ds, settings=local)

    for ds in DATASETS:
        assert results[("ingest", ds)]["status"] == "succeeded", results[("ingest", ds)]
        assert results[("curate", ds)]["status"] == "succeeded", results[("curate", ds)]
        mine, theirs = _tables(spark, on_cluster, ds), _tables(spark, in_process, ds)
        assert sorted(mine) == sorted(theirs) and len(mine) >= 2
        for name, df in mine.items():
            assert df.count() > 0, name
            assert_df_equality(df, theirs[name], ignore_row_order=True, ignore_nullable=True)
