"""Orders exported by the shop system as CSV, one file per export (optionally gzipped)."""

from ingestion.contracts import Csv, Dataset, DatasetRule, Gold, RowRule


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Orders(pa.DataFrameModel):
        order_id: T.StringType() = pa.Field(nullable=False, str_matches=r"^O-\d{4,}$")
        customer_id: T.StringType() = pa.Field(nullable=False, str_matches=r"^C-\d{3,}$")
        status: T.StringType() = pa.Field(isin=["new", "paid", "shipped", "cancelled"])
        amount: T.DecimalType(12, 2) = pa.Field(ge=0, le=100000)
        quantity: T.IntegerType() = pa.Field(ge=1, nullable=True)
        order_date: T.DateType() = pa.Field()
        ship_date: T.DateType() = pa.Field(nullable=True)
        updated_at: T.TimestampType() = pa.Field()

    return Orders


def customer_features_columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class CustomerFeatures(pa.DataFrameModel):
        customer_id: T.StringType() = pa.Field(nullable=False)
        country: T.StringType() = pa.Field(nullable=True)
        segment: T.StringType() = pa.Field(nullable=True)
        order_count: T.LongType() = pa.Field(ge=0)
        cancelled_count: T.LongType() = pa.Field(ge=0)
        total_amount: T.DoubleType() = pa.Field(ge=0)
        mean_amount: T.DoubleType() = pa.Field(ge=0, nullable=True)
        last_order_date: T.DateType() = pa.Field(nullable=True)
        days_since_last_order: T.IntegerType() = pa.Field(ge=0, nullable=True)
        as_of_date: T.DateType() = pa.Field(nullable=True)

    return CustomerFeatures


DATASET = Dataset(
    name="orders",
    description="Shop orders, latest state per order",
    landing="orders/**/*.{csv,csv.gz}",
    format=Csv(header=True, timestamp_format="yyyy-MM-dd'T'HH:mm:ss", date_format="yyyy-MM-dd"),
    columns=columns,
    primary_key=("order_id",),
    order_by="updated_at",
    partition_by=("order_date",),
    schema_policy="freeze",
    rules=(RowRule(name="shipped_after_ordered", expr="ship_date >= order_date"),),
    dataset_rules=(DatasetRule(name="not_empty", expr="count(*) > 0"),),
    gold=Gold(
        name="customer_features",
        description="Per-customer order features joined with CRM attributes, for training",
        build="transforms.gold.features:customer_features",
        inputs=("orders", "customers"),
        write="merge",
        keys=("customer_id",),
        columns=customer_features_columns,
        drift_exclude=("as_of_date",),  # the build's reference date: moves with every batch
    ),
)
