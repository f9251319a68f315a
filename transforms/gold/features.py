"""Gold transforms shipped with the example datasets.

Each is ``(spark, silver) -> DataFrame`` with ``silver`` the pinned silver tables by dataset name.
Deterministic in its inputs: "today" is the newest order date in silver, never the wall clock,
so the same silver versions always publish the same gold rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession


def customer_features(spark: SparkSession, silver: dict[str, DataFrame]) -> DataFrame:
    """One row per customer: order behaviour joined with CRM attributes, ready for training.

    Cancelled orders count separately and stay out of amounts; customers without orders get
    zero counts and null amounts; orders of customers missing from the CRM are left out.
    """
    from pyspark.sql import functions as F

    orders = silver["orders"]
    customers = silver["customers"].select("customer_id", "country", "segment")
    as_of = orders.agg(F.max("order_date").alias("as_of_date"))
    live = F.col("status") != F.lit("cancelled")
    amount = F.col("amount").cast("double")
    per_customer = orders.groupBy("customer_id").agg(
        F.count(F.when(live, 1)).cast("long").alias("order_count"),
        F.count(F.when(~live, 1)).cast("long").alias("cancelled_count"),
        F.sum(F.when(live, amount)).alias("total_amount"),
        F.avg(F.when(live, amount)).alias("mean_amount"),
        F.max(F.when(live, F.col("order_date"))).alias("last_order_date"),
    )
    out = (
        customers.join(per_customer, "customer_id", "left")
        .crossJoin(as_of)
        .select(
            "customer_id",
            "country",
            "segment",
            F.coalesce("order_count", F.lit(0).cast("long")).alias("order_count"),
            F.coalesce("cancelled_count", F.lit(0).cast("long")).alias("cancelled_count"),
            F.round(F.coalesce("total_amount", F.lit(0.0)), 2).alias("total_amount"),
            F.round("mean_amount", 2).alias("mean_amount"),
            "last_order_date",
            F.datediff("as_of_date", "last_order_date").cast("int").alias("days_since_last_order"),
            "as_of_date",
        )
    )
    return out
