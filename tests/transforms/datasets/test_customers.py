"""The customers silver transform, row by row (chispa)."""

from __future__ import annotations

from chispa import assert_df_equality

from transforms.datasets.customers import silver
from transforms.silver.hooks import find_transform

SCHEMA = "customer_id string, name string, email string, country string, _batch_id long"


def test_normalises_email_name_and_country(spark):
    df = spark.createDataFrame(
        [
            ("C-001", "  Ann   Lee ", " Ann@Example.COM ", " de", 1),
            ("C-002", "Bo", None, "SE", 1),
            ("C-003", "   ", "   ", "", 2),
        ],
        SCHEMA,
    )
    expected = spark.createDataFrame(
        [
            ("C-001", "Ann Lee", "ann@example.com", "DE", 1),
            ("C-002", "Bo", None, "SE", 1),
            ("C-003", None, None, None, 2),
        ],
        SCHEMA,
    )
    assert_df_equality(silver(df), expected)


def test_is_found_by_dataset_name():
    assert find_transform("customers") is silver
    assert find_transform("orders") is None
