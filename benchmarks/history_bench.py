"""Benchmark: does a run get slower as its tables age? A no-op ingest and curate, young vs aged.

    .venv/bin/python benchmarks/history_bench.py --young 10 --aged 2000 --repeat 5

Two lakes with the example ``orders`` dataset. Each starts from one real ingest and one real
curate; then bronze and silver get more commits until they hold ``--young`` (resp. ``--aged``)
commits each, carrying our own bookkeeping as real runs would leave it: a committed batch
manifest per bronze commit (with its ``bronze_version``), the commit index entries of both
tables, and the curate watermark at bronze's last version. (The extra commits are small
delta-spark appends, tagged and made idempotent exactly as the jobs make theirs.)

Then, alternating young and aged in each round, it times a whole ``ingest`` (the real job: lease,
manifests, queue; nothing queued) and a whole ``curate`` (the real job: lease, watermark, bronze
version, run ledger; nothing new). Prints the median of each and aged/young per job; the target
is <= 1.2x. Delta writes a checkpoint every 10 commits, so reading a snapshot stays cheap; the
cost this guards against is our own reads of the log. Not a test: no assertion, just figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.core.config import LakeSettings, Settings, SparkSettings  # noqa: E402

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
ROW = b"O-0001,C-001,new,10.50,1,2026-01-01,,2026-01-01T10:00:00\n"


def make_lake(spark, catalog, root: Path, commits: int):  # noqa: ANN001, ANN201
    """A lake whose bronze and silver tables have ``commits`` commits each, with bookkeeping."""
    import pyspark.sql.functions as F

    from ingestion.bronze.job import commit_tag, ingest
    from ingestion.bronze.manifest import Manifest, ManifestFile, Manifests
    from ingestion.core.lake import bronze_table, silver_table
    from ingestion.core.spark.commits import Commit, CommitIndex, idempotent_write
    from ingestion.core.spark.delta import table_version
    from ingestion.core.storage import LocalStorage
    from ingestion.events import EventHandler, Ledger
    from transforms.silver import curate
    from transforms.silver import state as st
    from transforms.silver.silver import silver_tag

    lake = LocalStorage(root)
    lake.write_bytes("landing/orders/first.csv", HEADER + ROW)
    info = lake.info("landing/orders/first.csv")
    EventHandler(Ledger(lake), catalog).file_landed("orders/first.csv", etag=info.etag, size=info.size)
    assert ingest(spark, lake, catalog, "orders").bronze_version == 0
    assert curate(spark, lake, catalog, "orders").status == "succeeded"

    bronze_uri, silver_uri = lake.uri(bronze_table("orders")), lake.uri(silver_table("orders"))
    bronze_index = CommitIndex(lake, bronze_table("orders"))
    silver_index = CommitIndex(lake, silver_table("orders"))
    manifests = Manifests(lake, "orders")
    row = spark.read.format("delta").load(bronze_uri).limit(1).localCheckpoint()
    empty_silver = spark.read.format("delta").load(silver_uri).limit(0)
    bv0, sv0 = table_version(spark, bronze_uri), table_version(spark, silver_uri)
    first_batch = manifests.latest().batch  # type: ignore[union-attr]

    def age_bronze() -> None:  # batch n made bronze version v, as a real ingest run records it
        for bv in range(bv0 + 1, commits):  # type: ignore[operator]
            batch = first_batch + bv - bv0  # type: ignore[operator]
            tag = commit_tag("orders", batch)
            with idempotent_write(spark, tag) as stamp:
                frame = row.withColumn("_batch_id", F.lit(batch).cast("long"))
                stamp(frame.write.format("delta").mode("append")).save(bronze_uri)
            now = time.time()
            bronze_index.record(Commit(bv, "WRITE", str(tag), {"numOutputRows": 1}, None))  # type: ignore[arg-type]
            f = ManifestFile(
                key=f"k{batch}", path=f"orders/f{batch}.csv", etag="e", size=1, sha256="0", rows=1
            )
            manifests.create(Manifest("orders", batch, f"ingest-{batch}", [f], "committed", now, now, bv, 1))

    def age_silver() -> None:  # silver version v curated bronze up to version v
        for sv in range(sv0 + 1, commits):  # type: ignore[operator]
            tag = silver_tag("orders", sv)
            with idempotent_write(spark, tag) as stamp:
                stamp(empty_silver.write.format("delta").mode("append")).save(silver_uri)
            silver_index.record(Commit(sv, "WRITE", str(tag), {}, None))  # type: ignore[arg-type]

    # The two tables age at once (two Spark jobs in flight): half the wall time to build.
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(age_bronze), pool.submit(age_silver)]:
            done.result()
    bv = commits - 1
    state = st.load(lake, "orders")
    state.bronze_version, state.pending = bv, None  # type: ignore[assignment]
    st.save(lake, state)
    assert (table_version(spark, bronze_uri), table_version(spark, silver_uri)) == (commits - 1, commits - 1)
    return lake


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--young", type=int, default=10)
    parser.add_argument("--aged", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from ingestion.bronze.job import ingest
    from ingestion.contracts import Catalog
    from ingestion.core.spark.session import get_spark
    from transforms.silver import curate

    # A loaded machine must not lose the local executor to a missed heartbeat while tables age.
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS",
        "--conf spark.network.timeout=900s --conf spark.executor.heartbeatInterval=60s pyspark-shell",
    )
    work = Path(tempfile.mkdtemp(prefix="headwater-history-"))
    settings = Settings(
        lake=LakeSettings(root=work / "young"),
        spark=SparkSettings(master="local[2]", shuffle_partitions=2, driver_memory="2g"),
    )
    spark = get_spark(settings)
    catalog = Catalog.discover()
    lakes = {}
    for name, commits in (("young", args.young), ("aged", args.aged)):
        t0 = time.time()
        lakes[name] = make_lake(spark, catalog, work / name, commits)
        print(
            f"{name}: bronze and silver with {commits} commits each, built in {time.time() - t0:.0f}s",
            flush=True,
        )

    def timed(job: str, name: str) -> float:
        lake = lakes[name]
        start = time.perf_counter()
        if job == "ingest":
            result = ingest(spark, lake, catalog, "orders")
            assert result.status == "skipped" and result.batch is None, result
        else:
            record = curate(spark, lake, catalog, "orders")
            assert record.status == "skipped", record.error
        return time.perf_counter() - start

    for name in lakes:  # warm-up: first-use costs of each lake and code path, not counted
        timed("ingest", name)
        timed("curate", name)
    times: dict[tuple[str, str], list[float]] = {(j, n): [] for j in ("ingest", "curate") for n in lakes}
    for i in range(args.repeat):
        order = ("young", "aged") if i % 2 == 0 else ("aged", "young")
        for job in ("ingest", "curate"):
            for name in order:
                times[(job, name)].append(timed(job, name))
        print(
            f"round {i + 1}: "
            + ", ".join(f"{j} {n} {times[(j, n)][-1]:.3f}s" for j in ("ingest", "curate") for n in lakes),
            flush=True,
        )
    for job in ("ingest", "curate"):
        young = statistics.median(times[(job, "young")])
        aged = statistics.median(times[(job, "aged")])
        print(
            f"{job}: young ({args.young} commits) {young:.3f}s, aged ({args.aged} commits) {aged:.3f}s "
            f"median; aged/young = {aged / young:.3f}  (target <= 1.2)",
            flush=True,
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
