"""The shipped pytest plugin, used the way a project tests its own contract."""

import datetime as dt
from decimal import Decimal

import pytest
from chispa import assert_df_equality

HEADER = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"


@pytest.mark.spark
@pytest.mark.floor
def test_run_contract_lands_curates_and_quarantines_with_reasons(spark, run_contract):
    out = run_contract(
        "orders",
        {
            "orders/a.csv": HEADER
            + b"O-0001,C-001,paid,10.50,2,2026-01-01,,2026-01-01T10:00:00\n"
            + b"O-0001,C-001,shipped,10.50,2,2026-01-01,2026-01-03,2026-01-03T09:00:00\n"
            + b"O-0002,C-002,lost,1.00,1,2026-01-02,,2026-01-02T10:00:00\n",
        },
    )
    assert (out.ingest.rows, out.curate.status) == (3, "succeeded")
    expected = spark.createDataFrame(
        [
            (
                "O-0001",
                "C-001",
                "shipped",
                Decimal("10.50"),
                2,
                dt.date(2026, 1, 1),
                dt.date(2026, 1, 3),
                dt.datetime(2026, 1, 3, 9, 0, 0),
            )
        ],
        "order_id string, customer_id string, status string, amount decimal(12,2), quantity int, "
        "order_date date, ship_date date, updated_at timestamp",
    )
    silver = out.silver.select(*expected.columns)
    assert_df_equality(silver, expected, ignore_nullable=True)
    reasons = [
        (r["order_id"], [(e["column"], e["check"]) for e in r["_errors"]])
        for r in out.quarantine.select("order_id", "_errors").collect()
    ]
    assert reasons == [("O-0002", [("status", "isin")])]
