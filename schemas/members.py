"""Loyalty-club members from an operational SQL table, as row changes with full history (SCD2).

The demo's SQL source: a local SQLite database read through its ODBC driver by the change
puller (watermark mode on the table's ``version`` row version; rows deleted outright are found
by the key snapshot). On Azure the same declaration points ``connection_setting`` at an app
setting holding a Key Vault reference, and ``mode="change_tracking"`` reads Azure SQL's change
tracking instead.
"""

from ingestion.changes import SqlSource
from ingestion.contracts import Cdc, Dataset, JsonLines


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Members(pa.DataFrameModel):
        member_id: T.StringType() = pa.Field(nullable=False, str_matches=r"^M-\d{3,}$")
        name: T.StringType() = pa.Field(str_length={"min_value": 1, "max_value": 200})
        tier: T.StringType() = pa.Field(isin=["basic", "plus", "gold"])
        version: T.LongType() = pa.Field(nullable=False, ge=1)

    return Members


DATASET = Dataset(
    name="members",
    description="Loyalty-club members with their full history of changes",
    landing="members/**/*.jsonl",
    format=JsonLines(),
    columns=columns,
    primary_key=("member_id",),
    schema_policy="freeze",
    cdc=Cdc(mode="scd2", sequence_by="version", track_history_columns=("tier",)),
)

SOURCE = SqlSource(
    name="club",
    dataset="members",
    connection_setting="CLUB_SQL_CONNECTION",  # the demo sets it to its SQLite file
    table="members",
    key=("member_id",),
    mode="watermark",
    watermark="version",
    lookback=5,
    snapshot_deletes=True,
    snapshot_every=1,
    columns=("member_id", "name", "tier", "version"),
    trigger=False,  # SQLite has no Functions SQL trigger
    pull_schedule=None,  # the demo pulls when it applies its changes
)
