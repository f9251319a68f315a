"""Benchmark: the curate job against a hand-written PySpark job, on generated orders.

    .venv/bin/python benchmarks/curate_bench.py --rows 1000000 --repeat 5

Generates one bronze batch of ``--rows`` order rows (string columns + lineage, as the ingest job
writes them; ~20 % are updates of earlier keys, ~1 % carry bad values) and a silver table already
holding half of the keys. Each variant starts from a fresh copy of both and is timed end to end:

* ``hand``: a hand-written PySpark job: read, cast (``try_cast``/``try_to_timestamp``), dedupe
  with ``row_number`` by key, MERGE (update when newer, insert when new).
* ``curate(off)``: ``transforms.silver.curate(..., plan=Plan.empty())``: the same work through our
  job's own path with no checks (watermark, history lookups, checkpointed batch, run ledger).
* ``curate(on)``: the full curate: expectations, ``_errors``, quarantine, counts, the checkpointed
  batch.

Prints r1 = curate(off) / hand (target <= 1.10) and r2 = curate(on) / curate(off) (target <= 1.3),
each from the median of ``--repeat`` alternating runs, and the ratio of each round's pair (runs
next to each other share the machine's mood). Not a test: no assertion, just figures.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.core.config import LakeSettings, Settings, SparkSettings  # noqa: E402


def generate_bronze(spark, uri: str, rows: int, *, batch: int) -> None:  # noqa: ANN001
    import pyspark.sql.functions as F

    keys = max(1, int(rows * 0.8))
    idx = F.col("id")
    bad = (idx % 100) == 7  # 1 % bad rows: amount not a number, or unknown status
    df = (
        spark.range(rows)
        .select(
            F.concat(F.lit("O-"), F.lpad((idx % keys).cast("string"), 7, "0")).alias("order_id"),
            F.concat(F.lit("C-"), F.lpad((idx % 5000).cast("string"), 4, "0")).alias("customer_id"),
            F.when(bad & (idx % 200 == 7), F.lit("lost"))
            .otherwise(
                F.element_at(
                    F.array(*[F.lit(s) for s in ("new", "paid", "shipped", "cancelled")]),
                    (idx % 4 + 1).cast("int"),
                )
            )
            .alias("status"),
            F.when(bad & (idx % 200 != 7), F.lit("n/a"))
            .otherwise(F.format_number((idx % 100000) / 7, 2).cast("string"))
            .alias("amount_raw"),
            ((idx % 9) + 1).cast("string").alias("quantity"),
            F.date_format(
                F.date_add(F.lit("2026-01-01").cast("date"), (idx % 300).cast("int")), "yyyy-MM-dd"
            ).alias("order_date"),
            F.lit(None).cast("string").alias("ship_date"),
            F.date_format(
                F.timestamp_seconds(F.lit(1767225600) + (idx * 37) % 31536000), "yyyy-MM-dd'T'HH:mm:ss"
            ).alias("updated_at"),
            F.lit(None).cast("string").alias("_rescued_data"),
            F.lit(None).cast("string").alias("_corrupt_record"),
            F.lit(None).cast("string").alias("_parse_error"),
            F.concat(F.lit("orders/export-"), (idx % 8).cast("string"), F.lit(".csv")).alias("_source_path"),
            F.lit("0" * 64).alias("_source_sha256"),
            (idx + 1).alias("_source_row"),
            F.current_timestamp().alias("_ingested_at"),
            F.lit(batch).cast("long").alias("_batch_id"),
        )
        .withColumn("amount", F.regexp_replace("amount_raw", ",", ""))
        .drop("amount_raw")
    )
    (
        df.write.format("delta")
        .mode("append")
        .option("userMetadata", f"headwater-bronze-orders:{batch}")
        .save(uri)
    )


def hand_written(spark, bronze_uri: str, silver_uri: str) -> None:  # noqa: ANN001
    """What a data engineer would write by hand for the same read, cast, dedupe and MERGE."""
    import pyspark.sql.functions as F
    from delta.tables import DeltaTable
    from pyspark.sql import Window

    df = spark.read.format("delta").load(bronze_uri).where(F.col("_batch_id") == 2)
    typed = df.select(
        "order_id",
        "customer_id",
        "status",
        F.expr("try_cast(amount AS DECIMAL(12,2))").alias("amount"),
        F.expr("try_cast(quantity AS INT)").alias("quantity"),
        F.try_to_timestamp("order_date", F.lit("yyyy-MM-dd")).cast("date").alias("order_date"),
        F.try_to_timestamp("ship_date", F.lit("yyyy-MM-dd")).cast("date").alias("ship_date"),
        F.try_to_timestamp("updated_at", F.lit("yyyy-MM-dd'T'HH:mm:ss")).alias("updated_at"),
        "_source_path",
        "_source_sha256",
        "_source_row",
        "_ingested_at",
        "_batch_id",
    )
    w = Window.partitionBy("order_id").orderBy(
        F.col("updated_at").desc_nulls_last(),
        F.col("_batch_id").desc(),
        F.col("_source_path").desc(),
        F.col("_source_row").desc(),
    )
    latest = typed.withColumn("rn", F.row_number().over(w)).where("rn = 1").drop("rn")
    newer = (
        "struct(s.updated_at, s._batch_id, s._source_path, s._source_row) > "
        "struct(t.updated_at, t._batch_id, t._source_path, t._source_row)"
    )
    (
        DeltaTable.forPath(spark, silver_uri)
        .alias("t")
        .merge(latest.alias("s"), "t.order_id = s.order_id")
        .whenMatchedUpdateAll(condition=newer)
        .whenNotMatchedInsertAll()
        .execute()
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--variants", default="hand,off,on", help="comma-separated subset to time")
    args = parser.parse_args()

    from ingestion.contracts import Catalog
    from ingestion.core.spark.session import get_spark
    from ingestion.core.storage import LocalStorage
    from transforms.silver import curate
    from transforms.silver.expectations import Plan

    work = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    settings = Settings(
        lake=LakeSettings(root=work / "seed"),
        spark=SparkSettings(
            master="local[2]", shuffle_partitions=args.shuffle_partitions, driver_memory=args.driver_memory
        ),
    )
    spark = get_spark(settings)
    catalog = Catalog.discover()
    seed = LocalStorage(work / "seed")
    t0 = time.time()
    # Batch 1 (half the rows) curated into silver is the starting point every variant copies.
    generate_bronze(spark, seed.uri("bronze/orders"), args.rows // 2, batch=1)
    curate(spark, seed, catalog, "orders", plan=Plan.empty(), record_run=False)
    generate_bronze(spark, seed.uri("bronze/orders"), args.rows, batch=2)
    print(
        f"generated {args.rows:,} bronze rows (+{args.rows // 2:,} seeded into silver) "
        f"in {time.time() - t0:.0f}s; Spark {spark.version}",
        flush=True,
    )

    def fresh(name: str) -> LocalStorage:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(work / "seed", root)
        return LocalStorage(root)

    def run(variant: str) -> float:
        lake = fresh(variant)
        spark.catalog.clearCache()
        start = time.perf_counter()
        if variant == "hand":
            hand_written(spark, lake.uri("bronze/orders"), lake.uri("silver/orders"))
        else:
            rec = curate(spark, lake, catalog, "orders", plan=None if variant == "on" else Plan.empty())
            assert rec.status == "succeeded", rec.error
            if variant == "off":
                print(f"    off: phases {rec.details.get('seconds')}", flush=True)
            if variant == "on":
                print(
                    f"    on: read {rec.rows_read:,}, written {rec.rows_written:,}, "
                    f"quarantined {rec.rows_quarantined:,}, rules {rec.rules}, phases {rec.details.get('seconds')}",
                    flush=True,
                )
        elapsed = time.perf_counter() - start
        shutil.rmtree(lake.root, ignore_errors=True)
        print(f"  {variant:>5}: {elapsed:7.2f}s", flush=True)
        return elapsed

    run("hand")  # warm-up: JIT, Delta's first-use costs; not counted
    variants = [v for v in args.variants.split(",") if v]
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeat):
        for variant in variants:
            times[variant].append(run(variant))
    # The machine may be shared: the median is the headline, the best run the least disturbed.
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print("median: " + ", ".join(f"{k} {v:.2f}s" for k, v in med.items()))
    print("best:   " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()))
    for a, b in (("off", "hand"), ("on", "off")):
        if {a, b} <= set(times):
            pairs = [x / y for x, y in zip(times[a], times[b], strict=True)]
            print(
                f"{a}/{b} per round: "
                + ", ".join(f"{p:.3f}" for p in pairs)
                + f"  (median {statistics.median(pairs):.3f})"
            )
    if {"hand", "off"} <= set(times):
        print(
            f"r1 = curate(validation off) / hand-written = {med['off'] / med['hand']:.3f} median, "
            f"{best['off'] / best['hand']:.3f} best  (target <= 1.10)"
        )
    if {"off", "on"} <= set(times):
        print(
            f"r2 = curate(validation on) / curate(off)   = {med['on'] / med['off']:.3f} median, "
            f"{best['on'] / best['off']:.3f} best  (target <= 1.30)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
