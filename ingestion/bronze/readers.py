"""Read a batch of landed files into one frame of raw string fields, with row positions.

Every format ends in the same shape, so one code path decides schema policy and lineage:

* ``_file``            the file's path as Spark reports it (``_metadata.file_path``)
* ``_fields``          map of source column -> raw string value (CSV names mapped to the contract's)
* ``_rescued``         JSON object of the fields the contract does not know, or null
* ``_corrupt_record``  the raw record when it could not be parsed, else null
* ``_parse_error``     why, else null
* ``_source_row``      1-based position of the record in its file

Raw means raw: CSV is read with every column as a string; JSON numbers keep their exact text
(Spark's JSON parser would turn ``12.50`` into ``12.5`` and long decimals into doubles), so JSON
is parsed by a Python UDF with ``parse_float=str``. Parquet is typed already and is cast to string.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ingestion.contracts import Csv
from ingestion.core.lake import CORRUPT_RECORD, PARSE_ERROR, SOURCE_ROW

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, DataFrameReader, SparkSession

FILE = "_file"
FIELDS = "_fields"
RESCUED = "_rescued"


def _row_position(df: DataFrame) -> Column:
    """Position of each record in its file.

    Within one file split the scan yields records in file order and ``monotonically_increasing_id``
    grows with them; splits are ordered by their start offset. Together they give file order on
    any Spark, for any number of splits.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(FILE).orderBy(F.col("_block_start"), F.col("_mono"))
    return F.row_number().over(w).cast("long")


def _with_metadata(df: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return df.select(
        "*",
        F.col("_metadata.file_path").alias(FILE),
        F.col("_metadata.file_block_start").alias("_block_start"),
        F.monotonically_increasing_id().alias("_mono"),
    )


def _positioned(frames: list[DataFrame], known: Sequence[str]) -> DataFrame:
    """Union per-group frames of one format; add the rescued fields and each record's position."""
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    out = out.withColumn(RESCUED, _rescue_from_map(known))
    return out.withColumn(SOURCE_ROW, _row_position(out)).drop("_block_start", "_mono")


def _keyed(df: DataFrame, kv: list[Column], corrupt: Column, error: Column) -> DataFrame:
    """A scanned frame (with file metadata) as field map + parse outcome."""
    from pyspark.sql import functions as F

    return df.select(
        FILE,
        "_block_start",
        "_mono",
        F.create_map(*kv).alias(FIELDS),
        corrupt.alias(CORRUPT_RECORD),
        error.alias(PARSE_ERROR),
    )


# --- CSV -----------------------------------------------------------------------------------------
def _bounded(reader: DataFrameReader, max_line: int | None) -> DataFrameReader:
    """Hadoop's line reader skips lines of ``max_line`` bytes or more instead of holding them."""
    if max_line is None:
        return reader
    from ingestion.bronze.lines import MAX_LINE_OPTION

    return reader.option(MAX_LINE_OPTION, str(max_line))


def read_csv(
    spark: SparkSession,
    known: Sequence[str],
    fmt: Csv,
    files: Sequence[tuple[str, tuple[str, ...]]],
    *,
    max_line: int | None = None,
) -> DataFrame:
    """``files``: (uri, header) pairs. Files sharing a header are read together.

    ``max_line``: lines of this many bytes or more are skipped (see ``ingestion.bronze.lines``).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    contract = {c.lower(): c for c in known}
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for uri, header in files:
        groups[header].append(uri)
    frames = []
    for header, uris in groups.items():
        # Positional names: headers may hold characters Spark column names do not like.
        schema = T.StructType(
            [T.StructField(f"_c{i}", T.StringType()) for i in range(len(header))]
            + [T.StructField(CORRUPT_RECORD, T.StringType())]
        )
        reader = (
            spark.read.format("csv")
            .schema(schema)
            .option("header", fmt.header)
            .option("enforceSchema", True)
            .option("sep", fmt.delimiter)
            .option("quote", fmt.quote)
            .option("escape", fmt.escape)
            .option("encoding", fmt.encoding)
            .option("multiLine", fmt.multiline)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            # Raw strings: no trimming, no null sentinel but the empty field.
            .option("ignoreLeadingWhiteSpace", False)
            .option("ignoreTrailingWhiteSpace", False)
        )
        df = _with_metadata(_bounded(reader, max_line).load(uris))
        kv: list[Column] = []
        for i, name in enumerate(header):
            kv += [F.lit(contract.get(name.lower(), name)), F.col(f"_c{i}")]
        error = F.when(
            F.col(CORRUPT_RECORD).isNotNull(),
            F.lit(f"malformed CSV record: field count differs from the header ({len(header)})"),
        )
        frames.append(_keyed(df, kv, F.col(CORRUPT_RECORD), error))
    return _positioned(frames, known)


# --- JSON ----------------------------------------------------------------------------------------
class RawNumber(str):
    """A JSON number kept as the exact text it had in the file."""


def _dump(value: Any) -> str:
    """Serialise a parsed JSON value back to JSON, numbers exactly as they were written."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in value.items()) + "}"


def _raw(value: Any) -> str | None:
    """A field's raw string: strings as they are, numbers as written, structures as JSON."""
    if value is None:
        return None
    if isinstance(value, str):  # RawNumber included
        return str(value)
    return _dump(value)


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=RawNumber, parse_int=RawNumber, parse_constant=RawNumber)


def _object(obj: dict[str, Any], known: frozenset[str]) -> tuple[dict[str, str | None], str | None]:
    fields = {k: _raw(v) for k, v in obj.items()}
    unknown = {k: v for k, v in obj.items() if k not in known}
    return fields, (_dump(unknown) if unknown else None)


def parse_json_object(
    text: str | None, known: frozenset[str] = frozenset()
) -> tuple[dict[str, str | None] | None, str | None, str | None]:
    """One JSON object -> (raw fields, rescued JSON of keys not in ``known``, error)."""
    if text is None:
        return None, None, "empty record"
    try:
        obj = _loads(text)
    except ValueError as err:
        return (
            None,
            None,
            f"invalid JSON: {getattr(err, 'msg', str(err))} at column {getattr(err, 'colno', '?')}",
        )
    if not isinstance(obj, dict):
        return None, None, f"not a JSON object (found {_kind(obj)})"
    fields, rescued = _object(obj, known)
    return fields, rescued, None


def parse_json_array(
    text: str | None, known: frozenset[str] = frozenset()
) -> tuple[list[tuple[str | None, dict[str, str | None] | None, str | None, str | None]] | None, str | None]:
    """A whole file holding one JSON array -> its elements as (raw, fields, rescued, error)."""
    if text is None:
        return None, "empty file"
    try:
        items = _loads(text)
    except ValueError as err:
        return None, f"invalid JSON: {getattr(err, 'msg', str(err))} at line {getattr(err, 'lineno', '?')}"
    if not isinstance(items, list):
        return None, f"not a JSON array (found {_kind(items)})"
    out: list[tuple[str | None, dict[str, str | None] | None, str | None, str | None]] = []
    for item in items:
        if isinstance(item, dict):
            fields, rescued = _object(item, known)
            out.append((None, fields, rescued, None))
        else:
            out.append((_dump(item), None, None, f"not a JSON object (found {_kind(item)})"))
    return out, None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, RawNumber):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else type(value).__name__


def read_json_lines(
    spark: SparkSession, uris: Sequence[str], known: Sequence[str], *, max_line: int | None = None
) -> DataFrame:
    """One record per line; ``max_line`` as for :func:`read_csv`."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    parsed_type = T.StructType(
        [
            T.StructField("fields", T.MapType(T.StringType(), T.StringType())),
            T.StructField("rescued", T.StringType()),
            T.StructField("error", T.StringType()),
        ]
    )
    names = frozenset(known)
    parse = F.udf(lambda text: parse_json_object(text, names), parsed_type)
    df = _with_metadata(_bounded(spark.read, max_line).text(list(uris)))
    df = df.withColumn(SOURCE_ROW, _row_position(df))  # line number, blank lines counted
    df = df.where(F.trim(F.col("value")) != "").withColumn("_p", parse(F.col("value")))
    return df.select(
        FILE,
        F.col("_p.fields").alias(FIELDS),
        F.col("_p.rescued").alias(RESCUED),
        F.when(F.col("_p.error").isNotNull(), F.col("value")).alias(CORRUPT_RECORD),
        F.col("_p.error").alias(PARSE_ERROR),
        SOURCE_ROW,
    )


def read_json_array(
    spark: SparkSession, uris: Sequence[str], known: Sequence[str]
) -> tuple[DataFrame, DataFrame]:
    """Returns (records, files that are not JSON arrays with their error)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    item = T.StructType(
        [
            T.StructField("raw", T.StringType()),
            T.StructField("fields", T.MapType(T.StringType(), T.StringType())),
            T.StructField("rescued", T.StringType()),
            T.StructField("error", T.StringType()),
        ]
    )
    parsed_type = T.StructType(
        [T.StructField("items", T.ArrayType(item)), T.StructField("error", T.StringType())]
    )
    names = frozenset(known)
    parse = F.udf(lambda text: parse_json_array(text, names), parsed_type)
    df = spark.read.text(list(uris), wholetext=True).select(
        F.col("_metadata.file_path").alias(FILE), parse(F.col("value")).alias("_p")
    )
    bad = df.where(F.col("_p.error").isNotNull()).select(FILE, F.col("_p.error").alias("error"))
    records = df.where(F.col("_p.error").isNull()).select(
        FILE, F.posexplode(F.col("_p.items")).alias("_pos", "_item")
    )
    records = records.select(
        FILE,
        F.col("_item.fields").alias(FIELDS),
        F.col("_item.rescued").alias(RESCUED),
        F.col("_item.raw").alias(CORRUPT_RECORD),
        F.col("_item.error").alias(PARSE_ERROR),
        (F.col("_pos") + 1).cast("long").alias(SOURCE_ROW),
    )
    return records, bad


def _rescue_from_map(known: Sequence[str]) -> Column:
    """For formats whose values are strings already: unknown fields as a JSON object, or null."""
    from pyspark.sql import functions as F

    fields = F.col(FIELDS)
    unknown = F.map_filter(fields, lambda k, v: ~k.isin(*known)) if known else fields
    return F.when(F.size(unknown) > 0, F.to_json(unknown)).alias(RESCUED)


# --- Parquet -------------------------------------------------------------------------------------
def read_parquet(spark: SparkSession, uris: Sequence[str], known: Sequence[str]) -> DataFrame:
    """Parquet is typed: values become their string form (nested ones JSON)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    frames = []
    for uri in uris:  # files may differ in schema; each keeps its own
        df = _with_metadata(spark.read.parquet(uri))
        kv: list[Column] = []
        for field in df.schema.fields:
            if field.name in (FILE, "_block_start", "_mono"):
                continue
            col = F.col(f"`{field.name}`")
            if isinstance(field.dataType, (T.StructType, T.ArrayType, T.MapType)):
                value = F.to_json(col)
            elif isinstance(field.dataType, T.BinaryType):
                value = F.base64(col)
            else:
                value = col.cast("string")
            kv += [F.lit(field.name), value]
        none = F.lit(None).cast("string")
        frames.append(_keyed(df, kv, none, none))
    return _positioned(frames, known)


__all__ = [
    "FIELDS",
    "FILE",
    "RESCUED",
    "parse_json_array",
    "parse_json_object",
    "read_csv",
    "read_json_array",
    "read_json_lines",
    "read_parquet",
]
