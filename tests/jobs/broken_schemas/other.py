from ingestion.contracts import Dataset, JsonLines


def columns():
    import pandera.pyspark as pa
    import pyspark.sql.types as T

    class Other(pa.DataFrameModel):
        id: T.StringType() = pa.Field()

    return Other


DATASET = Dataset(name="other", landing="shared/**", format=JsonLines(), columns=columns, primary_key=("id",))
