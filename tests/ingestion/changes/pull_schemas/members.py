"""Members from a SQL table, pulled by their row version; a soft-delete flag marks deletes."""

from ingestion.changes import SqlSource
from ingestion.contracts import Cdc, Dataset, JsonLines


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Members(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        name: T.StringType() = pa.Field(nullable=False)
        version: T.LongType() = pa.Field(nullable=False)

    return Members


DATASET = Dataset(
    name="members",
    landing="members/**/*.jsonl",
    format=JsonLines(),
    columns=columns,
    primary_key=("id",),
    schema_policy="freeze",
    cdc=Cdc(mode="scd1", sequence_by="version"),
)

SOURCE = SqlSource(
    name="club",
    dataset="members",
    connection_setting="CLUB_SQL",
    table="members",
    key=("id",),
    mode="watermark",
    watermark="version",
    soft_delete_column="is_deleted",
    lookback=2,
    columns=("id", "name", "version", "is_deleted"),
    trigger=False,
)
