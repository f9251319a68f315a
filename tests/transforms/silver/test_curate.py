"""End-to-end curate runs (bronze -> silver + quarantine) on small bronze tables."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality

from ingestion import lake as layout
from ingestion.runs import RunLedger
from transforms.silver import curate

ORDERS = ["order_id", "customer_id", "status", "amount", "quantity", "order_date", "ship_date", "updated_at"]


def order(oid: str, **kw: str | None) -> dict[str, str | None]:
    row = {
        "order_id": oid, "customer_id": "C-001", "status": "paid", "amount": "10.00",
        "quantity": "1", "order_date": "2026-11-01", "ship_date": None,
        "updated_at": "2026-11-01T10:00:00",
    }
    row.update(kw)
    return row


def silver(spark, lake, ds: str, *cols: str):  # noqa: ANN001
    df = spark.read.format("delta").load(lake.uri(layout.silver_table(ds)))
    return df.select(*cols) if cols else df


def quarantined(spark, lake, ds: str):  # noqa: ANN001
    return spark.read.format("delta").load(lake.uri(layout.quarantine_rows_table(ds)))


@pytest.mark.floor
def test_orders_good_bad_and_duplicates(spark, lake, catalog, write_bronze):
    write_bronze("orders", ORDERS, [
        order("O-0001"),
        order("O-0002", amount="abc"),                       # cast error
        order("O-0003", status="lost"),                      # isin
        order("O-0004", ship_date="2026-10-01"),             # row rule: shipped before ordered
        order("O-0001", status="shipped", updated_at="2026-11-02T09:00:00"),  # newer update
        order("O-0005", order_date="01.11.2026"),            # date not in the contract format
    ], batch=1)
    rec = curate(spark, lake, catalog, "orders")
    assert rec.status == "succeeded", rec.error
    assert (rec.rows_read, rec.rows_written, rec.rows_quarantined) == (6, 1, 4)
    assert rec.details["superseded"] == 1
    assert rec.rules == {"amount.cast": 1, "status.isin": 1, "shipped_after_ordered": 1, "order_date.cast": 1}
    expected = spark.createDataFrame(
        [("O-0001", "shipped", Decimal("10.00"), 1, dt.date(2026, 11, 1), dt.datetime(2026, 11, 2, 9))],
        "order_id string, status string, amount decimal(12,2), quantity int, order_date date, updated_at timestamp",
    )
    assert_df_equality(
        silver(spark, lake, "orders", *expected.columns), expected, ignore_nullable=True
    )
    reasons = (
        quarantined(spark, lake, "orders")
        .selectExpr("order_id", "inline(_errors)")
        .orderBy("order_id")
    )
    exp = spark.createDataFrame(
        [
            ("O-0002", "amount", "cast", "abc"),
            ("O-0003", "status", "isin", "lost"),
            ("O-0004", None, "shipped_after_ordered", None),
            ("O-0005", "order_date", "cast", "01.11.2026"),
        ],
        "order_id string, column string, check string, value string",
    )
    assert_df_equality(reasons, exp, ignore_nullable=True)
    runs = RunLedger(spark, lake).latest(dataset="orders", job="curate")
    assert runs[0]["status"] == "succeeded" and runs[0]["rows_quarantined"] == 4
