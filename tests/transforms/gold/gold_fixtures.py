"""Small typed silver tables written directly (independent of the curate job), with the same
commit tag the curate job stamps: ``headwater-silver-<dataset>:<bronze_end_version>``."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from ingestion.core.lake import silver_table

ORDERS = (
    "order_id string, customer_id string, status string, amount decimal(12,2), quantity int, "
    "order_date date, ship_date date, updated_at timestamp"
)
CUSTOMERS = (
    "customer_id string, name string, email string, country string, segment string, "
    "signup_date date, lifetime_value double"
)
SCHEMAS = {"orders": ORDERS, "customers": CUSTOMERS}
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
COUNTRIES = ["DE", "FR", "NL", "SE", "US", "GB"]


def with_asset_type(catalog: Any, asset_type: str) -> Any:
    """The example catalog (orders with its gold, customers) with the gold asset type changed."""
    import dataclasses

    from ingestion.contracts import Catalog

    orders = catalog.get("orders")
    gold = dataclasses.replace(orders.gold, asset_type=asset_type)
    return Catalog([dataclasses.replace(orders, gold=gold), catalog.get("customers")])


def write_silver(spark: Any, storage: Any, dataset: str, rows: list[tuple], *, bronze_end: int) -> int:
    """Overwrite silver/<dataset> with ``rows``; returns the new Delta version."""
    from ingestion.core.spark.delta import table_version

    uri = storage.uri(silver_table(dataset))
    df = spark.createDataFrame(rows, SCHEMAS[dataset])
    spark.conf.set(USER_METADATA, f"headwater-silver-{dataset}:{bronze_end}")
    try:
        df.write.format("delta").mode("overwrite").save(uri)
    finally:
        spark.conf.unset(USER_METADATA)
    version = table_version(spark, uri)
    assert version is not None
    return version


def customer(i: int, country: str = "DE", segment: str | None = "consumer") -> tuple:
    return (
        f"C-{i:03d}",
        f"Customer {i}",
        f"c{i}@example.com",
        country,
        segment,
        dt.date(2025, 1, 1) + dt.timedelta(days=i),
        float(i),
    )


def order(i: int, cust: int, amount: str, day: int, status: str = "paid") -> tuple:
    d = dt.date(2026, 1, 1) + dt.timedelta(days=day)
    return (
        f"O-{i:04d}",
        f"C-{cust:03d}",
        status,
        Decimal(amount),
        1,
        d,
        None,
        dt.datetime(2026, 1, 1, 12) + dt.timedelta(days=day),
    )


def customers(n: int) -> list[tuple]:
    return [
        customer(i, COUNTRIES[i % len(COUNTRIES)], ["consumer", "business"][i % 2]) for i in range(1, n + 1)
    ]


def orders(n_customers: int, n_orders: int, *, seed: int, scale: float = 1.0, start: int = 1) -> list[tuple]:
    """Orders with amounts ~ lognormal(4, 0.5) * scale (deterministic by seed)."""
    rnd = random.Random(seed)
    out = []
    for i in range(start, start + n_orders):
        amount = min(rnd.lognormvariate(4.0, 0.5) * scale, 99999)
        out.append(
            order(
                i,
                rnd.randint(1, n_customers),
                f"{amount:.2f}",
                rnd.randint(0, 59),
                "cancelled" if rnd.random() < 0.1 else "paid",
            )
        )
    return out
