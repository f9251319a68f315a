from ingestion.contracts import Csv, Dataset


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Bad(pa.DataFrameModel):
        id: T.StringType() = pa.Field()
        payload: T.BinaryType() = pa.Field()

    return Bad


DATASET = Dataset(
    name="bad",
    landing="shared/*.csv",
    format=Csv(delimiter="||"),
    columns=columns,
    primary_key=("identifier",),
    order_by="missing_ts",
)
