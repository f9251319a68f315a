"""Customers from the CRM as JSON lines; new attributes appear over time and are kept."""

from ingestion.contracts import Dataset, JsonLines


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Customers(pa.DataFrameModel):
        customer_id: T.StringType() = pa.Field(nullable=False, str_matches=r"^C-\d{3,}$")
        name: T.StringType() = pa.Field(str_length={"min_value": 1, "max_value": 200})
        email: T.StringType() = pa.Field(nullable=True, str_matches=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
        country: T.StringType() = pa.Field(isin=["DE", "FR", "NL", "SE", "US", "GB"])
        segment: T.StringType() = pa.Field(nullable=True, isin=["consumer", "business"])
        signup_date: T.DateType() = pa.Field()
        lifetime_value: T.DoubleType() = pa.Field(ge=0, nullable=True)

    return Customers


DATASET = Dataset(
    name="customers",
    description="CRM customers, latest record per customer in ingestion order",
    landing="customers/**/*.{jsonl,jsonl.gz,ndjson}",
    format=JsonLines(date_format="yyyy-MM-dd"),
    columns=columns,
    primary_key=("customer_id",),
    order_by=None,
    schema_policy="rescue",
)
