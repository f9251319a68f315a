"""Accounts from the CRM's SQL table, as row changes (SCD1, hard deletes)."""

from ingestion.changes import SqlSource
from ingestion.contracts import Cdc, Dataset, JsonLines


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Accounts(pa.DataFrameModel):
        id: T.StringType() = pa.Field(nullable=False)
        name: T.StringType() = pa.Field(nullable=False)
        balance: T.DoubleType() = pa.Field(nullable=False, ge=0)
        version: T.LongType() = pa.Field(nullable=False)

    return Accounts


DATASET = Dataset(
    name="accounts",
    landing="accounts/**/*.jsonl",
    format=JsonLines(),
    columns=columns,
    primary_key=("id",),
    schema_policy="freeze",  # the change columns are reserved: never "unknown"
    cdc=Cdc(mode="scd1", sequence_by="version"),
)

SOURCE = SqlSource(
    name="crm",
    dataset="accounts",
    connection_setting="CrmSql",
    table="dbo.Accounts",
    key=("id",),
)
