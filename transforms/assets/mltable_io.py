"""MLTable files pinned to a Delta version, and the load check through Azure ML's own reader.

The MLTable is made by ``mltable.from_delta_lake(uri, version_as_of=V)`` and saved inside the gold
table's folder under ``_mltable/delta-<V>`` (Delta and VACUUM ignore ``_``-prefixed folders).
Keyed by the Delta version, its content is a pure function of V: two racing registrations write
the same bytes, and no later run can repoint a registered version. Saved locally, its path is
relative (``../..``), so the same file works wherever the lake is mounted.

The load check reads the asset back with ``mltable.load(path).to_pandas_dataframe()`` and
compares row count, column names and types, and (up to ``max_rows``) every row with
``spark.read.option("versionAsOf", V)``: users report assets that register but do not load,
e.g. column-mapped tables, which the reader returns with physical column names.
"""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingestion.core.errors import ConfigError
from ingestion.core.storage import LocalStorage, Storage

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

MLTABLE_DIR = "_mltable"
SNAPSHOT_DIR = "_snapshots"


def _mltable() -> Any:
    try:
        import mltable
    except ImportError as err:  # the ml extra is not installed (e.g. the Spark floor image)
        raise ConfigError(
            f"asset_type 'mltable' needs the mltable package ({err}); install headwater[ml]"
        ) from None
    return mltable


def mltable_path(gold_path: str, delta_version: int) -> str:
    return f"{gold_path}/{MLTABLE_DIR}/delta-{delta_version}"


def snapshot_path(gold_path: str, delta_version: int) -> str:
    return f"{gold_path}/{SNAPSHOT_DIR}/delta-{delta_version}"


def write_mltable(storage: Storage, gold_path: str, delta_version: int) -> tuple[str, str]:
    """Make and save the MLTable for ``gold_path`` at ``delta_version``.

    Returns:
        (lake path of the MLTable folder, the MLTable YAML text).
    """
    mltable = _mltable()
    folder = mltable_path(gold_path, delta_version)
    if isinstance(storage, LocalStorage):
        table_dir = Path(storage.root) / gold_path
        target = Path(storage.root) / folder
        tbl = mltable.from_delta_lake(str(table_dir), version_as_of=delta_version)
        tbl.save(str(target), overwrite=True)
        return folder, (target / "MLTable").read_text()
    # Remote lake: the MLTable keeps the table's absolute abfss:// URI; the YAML goes via Storage.
    tbl = mltable.from_delta_lake(storage.uri(gold_path), version_as_of=delta_version)
    with tempfile.TemporaryDirectory() as tmp:
        tbl.save(tmp, overwrite=True)
        text = (Path(tmp) / "MLTable").read_text()
    storage.write_bytes(f"{folder}/MLTable", text.encode())
    return folder, text


def check_mltable_yaml(text: str, *, delta_version: int) -> list[str]:
    """Problems of an MLTable file against the documented structure for a pinned Delta read."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return [f"MLTable is not YAML: {err}"]
    problems = []
    if not isinstance(doc, dict):
        return ["MLTable is not a mapping"]
    if doc.get("type") != "mltable":
        problems.append(f"type is {doc.get('type')!r}, not 'mltable'")
    paths = doc.get("paths") or []
    if len(paths) != 1 or not isinstance(paths[0], dict) or "folder" not in paths[0]:
        problems.append("paths must be exactly one {folder: <delta table>}")
    steps = doc.get("transformations") or []
    reads = [s["read_delta_lake"] for s in steps if isinstance(s, dict) and "read_delta_lake" in s]
    if len(reads) != 1:
        problems.append("transformations must hold one read_delta_lake step")
    elif (reads[0] or {}).get("version_as_of") != delta_version:
        problems.append(
            f"read_delta_lake.version_as_of is {(reads[0] or {}).get('version_as_of')!r}, "
            f"not the pinned version {delta_version}"
        )
    return problems


# --- load check ----------------------------------------------------------------------------------
@dataclass
class LoadCheck:
    ok: bool
    rows_asset: int
    rows_delta: int
    compared_rows: bool
    problems: list[str] = field(default_factory=list)


_KINDS = {
    # Spark type -> pandas dtype kinds the reader may return for it (nullable ints become float).
    "tinyint": "iuf",
    "smallint": "iuf",
    "int": "iuf",
    "bigint": "iuf",
    "float": "f",
    "double": "f",
    "boolean": "bO",
    "string": "O",
    "binary": "O",
    "date": "OM",
    "timestamp": "M",
    "timestamp_ntz": "M",
}


def _spark_canonical(df: DataFrame) -> tuple[list[str], list[tuple[Any, ...]]]:
    from pyspark.sql import functions as F

    cols, exprs = [], []
    for f in df.schema.fields:
        t = f.dataType.simpleString()
        c = F.col(f"`{f.name}`")
        if t.startswith("timestamp"):
            c = F.expr(f"unix_micros(`{f.name}`)")
        elif t == "date":
            c = c.cast("string")
        elif t.startswith("decimal") or t in ("float", "double"):
            c = c.cast("double")
        cols.append(f.name)
        exprs.append(c.alias(f.name))
    rows = [tuple(_norm(v) for v in r) for r in df.select(*exprs).collect()]
    return cols, rows


def _norm(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if isinstance(v, Decimal):
        return round(float(v), 6)
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return v
    return v


def _pandas_canonical(pdf: Any, cols: list[str], types: dict[str, str]) -> list[tuple[Any, ...]]:
    import pandas as pd

    out_cols = []
    for c in cols:
        t = types[c]
        s = pdf[c]
        vals: list[Any] = []
        for v in s.tolist():
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
                vals.append(None)
            elif t.startswith("timestamp"):
                vals.append(int(pd.Timestamp(v).value // 1000))
            elif t == "date":
                vals.append((v.date() if isinstance(v, (dt.datetime, pd.Timestamp)) else v).isoformat())
            elif t.startswith("decimal") or t in ("float", "double"):
                vals.append(round(float(v), 6))
            elif t in ("tinyint", "smallint", "int", "bigint"):
                vals.append(int(v))
            elif t == "boolean":
                vals.append(bool(v))
            else:
                vals.append(v)
        out_cols.append(vals)
    return list(zip(*out_cols, strict=True)) if out_cols else []


def load_check(
    spark: SparkSession,
    storage: Storage,
    asset_path: str,
    table_uri: str,
    delta_version: int,
    *,
    max_rows: int = 200_000,
) -> LoadCheck:
    """Load the MLTable at ``asset_path`` through ``mltable`` and compare it with Delta at V."""
    mltable = _mltable()
    problems: list[str] = []
    expected = spark.read.format("delta").option("versionAsOf", delta_version).load(table_uri)
    rows_delta = expected.count()
    location = (
        str(Path(storage.root) / asset_path) if isinstance(storage, LocalStorage) else storage.uri(asset_path)
    )
    whole = rows_delta <= max_rows

    def read() -> Any:
        tbl = mltable.load(location)
        # Above max_rows only the first rows come through (types and names are still checked):
        # the reader must not pull a big table into this process's memory.
        return (tbl if whole else tbl.take(1000)).to_pandas_dataframe()

    try:
        pdf = _read_with_retries(read)
    except Exception as err:  # the reader's own errors are what a data scientist would hit
        lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
        text = " ".join(lines[:3])[:400]
        return LoadCheck(
            False, 0, rows_delta, False, [f"mltable cannot load it: {type(err).__name__}: {text}"]
        )
    rows_asset = len(pdf)
    if whole and rows_asset != rows_delta:
        problems.append(f"{rows_asset} rows through mltable, {rows_delta} in Delta version {delta_version}")
    elif not whole and rows_asset == 0:
        problems.append(f"no rows through mltable, {rows_delta} in Delta version {delta_version}")
    want = [f.name for f in expected.schema.fields]
    got = [str(c) for c in pdf.columns]
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    if missing:
        problems.append(f"columns missing through mltable: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected columns through mltable: {', '.join(extra[:10])}")
    types = {f.name: f.dataType.simpleString() for f in expected.schema.fields}
    for c in want:
        if c not in got:
            continue
        kinds = "fO" if types[c].startswith("decimal") else _KINDS.get(types[c], "O")
        if pdf[c].dtype.kind not in kinds:
            problems.append(f"column {c}: mltable returns dtype {pdf[c].dtype}, Delta type {types[c]}")
    compared = False
    if not problems and whole:
        cols, delta_rows = _spark_canonical(expected)
        asset_rows = _pandas_canonical(pdf, cols, types)
        diff = Counter(map(repr, delta_rows))
        diff.subtract(Counter(map(repr, asset_rows)))
        differing = sum(abs(n) for n in diff.values())
        if differing:
            problems.append(f"{differing} row(s) differ between mltable and Delta version {delta_version}")
        compared = True
    return LoadCheck(not problems, rows_asset, rows_delta, compared, problems)


LOAD_ATTEMPTS = 3  # the reader's own failures, retried: it lists the log while writers commit


def _read_with_retries(read: Any) -> Any:
    """``read()``, retried on the reader's errors with a short backoff (tenacity).

    Azure ML's reader (rslex) lists and reads the Delta log itself. In the cluster test a read
    failed once (``ScriptExecution.Unexpected``) while another pipeline run published the same
    gold, and passed on a rerun; the suspected cause is the writer's commit in flight. A reader
    that fails every attempt fails the load check with its last error.
    """
    from tenacity import Retrying, stop_after_attempt, wait_exponential

    for attempt in Retrying(
        stop=stop_after_attempt(LOAD_ATTEMPTS), wait=wait_exponential(multiplier=1, max=8), reraise=True
    ):
        with attempt:
            return read()
    raise AssertionError("unreachable")  # pragma: no cover - reraise=True raises the last error


def write_snapshot(spark: SparkSession, storage: Storage, gold_path: str, delta_version: int) -> str:
    """For ``uri_folder`` assets: the pinned version as an immutable Parquet folder (written once)."""
    folder = snapshot_path(gold_path, delta_version)
    if storage.exists(f"{folder}/_SUCCESS"):
        return folder
    df = spark.read.format("delta").option("versionAsOf", delta_version).load(storage.uri(gold_path))
    df.write.mode("overwrite").parquet(storage.uri(folder))
    return folder


def snapshot_check(
    spark: SparkSession, storage: Storage, folder: str, table_uri: str, delta_version: int
) -> LoadCheck:
    """A ``uri_folder`` snapshot must hold exactly the pinned version's rows."""
    expected = spark.read.format("delta").option("versionAsOf", delta_version).load(table_uri)
    got = spark.read.parquet(storage.uri(folder))
    problems = []
    if got.schema.simpleString() != expected.schema.simpleString():
        problems.append(f"snapshot schema {got.schema.simpleString()} != {expected.schema.simpleString()}")
    n_exp, n_got = expected.count(), got.count()
    if n_exp != n_got:
        problems.append(f"{n_got} rows in the snapshot, {n_exp} in Delta version {delta_version}")
    elif not problems and (got.exceptAll(expected).count() or expected.exceptAll(got).count()):
        problems.append("snapshot rows differ from the Delta version")
    return LoadCheck(not problems, n_got, n_exp, not problems, problems)
