"""Column profiles per registered version, and drift between two versions.

A profile is plain JSON, stored with the version, so comparing versions never needs time travel:

* numeric columns (numbers, dates as days, timestamps as seconds): 101 quantile points (p0..p100)
  and the exact fraction of non-null values at or below each, mean, std, min, max;
* categorical columns (strings, booleans): counts of the 100 most frequent values, the rest
  counted as one "other" bucket, and the distinct count;
* null count and rate per column, row count.

When a version is profiled with the previous profile as ``reference``, its values are also
counted at the previous version's quantile points and for the previous version's categories,
so PSI and KS against the previous version are exact at those points.

Drift per column against the previous version:

* numeric: PSI over 10 bins whose edges are the previous version's deciles (ties merge bins),
  fractions epsilon-smoothed; KS statistic as the largest gap between the two empirical CDFs at
  the previous version's 101 quantile points;
* categorical: PSI over the union of categories (ε-smoothed), new and vanished categories;
* null-rate and row-count change.

Verdict: ``drift`` at PSI >= drift threshold, ``warn`` at PSI >= warn threshold (or a null-rate
change of 10 points or more), else ``ok``; the version's verdict is its worst column's.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

N_POINTS = 101
MAX_CATEGORIES = 100
EPSILON = 1e-4
NULL_RATE_WARN = 0.10
OTHER = "__other__"
NULL_KEY = "__null__"


# --- schema hash -----------------------------------------------------------------------------------
def schema_fields(schema: StructType) -> list[tuple[str, str, bool]]:
    return [(f.name, f.dataType.simpleString(), bool(f.nullable)) for f in schema.fields]


def schema_json(schema: StructType) -> str:
    """Canonical JSON of the ordered (name, type, nullable) triples."""
    return json.dumps([list(t) for t in schema_fields(schema)], separators=(",", ":"), ensure_ascii=False)


def schema_hash(schema: StructType) -> str:
    return hashlib.sha256(schema_json(schema).encode()).hexdigest()


# --- profiling (Spark) -------------------------------------------------------------------------------
def _kind(type_name: str) -> str:
    if type_name in ("tinyint", "smallint", "int", "bigint", "float", "double") or type_name.startswith(
        "decimal"
    ):
        return "numeric"
    if type_name == "date":
        return "date"
    if type_name.startswith("timestamp"):
        return "timestamp"
    if type_name in ("string", "boolean"):
        return "categorical"
    return "skipped"


def _as_number(name: str, kind: str) -> Any:
    from pyspark.sql import functions as F

    c = F.col(f"`{name}`")
    if kind == "date":
        return F.datediff(c, F.lit("1970-01-01").cast("date")).cast("double")
    if kind == "timestamp":
        return (F.expr(f"unix_micros(`{name}`)") / F.lit(1_000_000.0)).cast("double")
    return c.cast("double")


def _bucket(x: Any, points: list[float]) -> Any:
    """How many of ``points`` lie strictly below x (x <= points[j] iff bucket <= j)."""
    from pyspark.sql import functions as F

    arr = F.array(*[F.lit(float(p)) for p in points])
    return F.when(x.isNotNull(), F.size(F.filter(arr, lambda p: p < x)))


def _cdf(counts: dict[int, int], n_points: int, total: int) -> list[float]:
    """Fractions at or below each point from bucket counts."""
    out, running = [], 0
    for j in range(n_points):
        running += counts.get(j, 0)
        out.append(running / total if total else 0.0)
    return out


def profile_frame(
    df: DataFrame,
    *,
    skip: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    reference: dict[str, Any] | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> dict[str, Any]:
    """Profile every column of ``df`` (two Spark jobs whatever the column count).

    Args:
        df: the frame to profile (gold at one version).
        skip: key columns (no distribution to compare).
        exclude: columns declared out of drift (``Gold.drift_exclude``).
        reference: a previous profile: numeric columns are also counted at its quantile
            points and categorical ones at its categories, so drift compares like with like.
        max_categories: the most frequent values kept per categorical column; the rest count
            as one "other" bucket.

    Returns:
        The profile: per column its kind, counts, nulls and distribution (JSON-able).
    """
    from pyspark.sql import functions as F

    fields = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    kinds = {n: ("skipped" if n in skip or n in exclude else _kind(t)) for n, t in fields}
    numeric = [n for n, _ in fields if kinds[n] in ("numeric", "date", "timestamp")]
    categorical = [n for n, _ in fields if kinds[n] == "categorical"]

    # Job 1: counts, nulls, moments and quantile points.
    aggs = [F.count(F.lit(1)).alias("__rows")]
    for i, (n, _) in enumerate(fields):
        aggs.append(F.count(F.col(f"`{n}`")).alias(f"nn{i}"))
    idx = {n: i for i, (n, _) in enumerate(fields)}
    probs = [k / (N_POINTS - 1) for k in range(N_POINTS)]
    for n in numeric:
        x, i = _as_number(n, kinds[n]), idx[n]
        aggs += [
            F.percentile_approx(x, probs, 10000).alias(f"q{i}"),
            F.avg(x).alias(f"mean{i}"),
            F.stddev_pop(x).alias(f"std{i}"),
            F.min(x).alias(f"min{i}"),
            F.max(x).alias(f"max{i}"),
        ]
    for n in categorical:
        aggs.append(F.approx_count_distinct(F.col(f"`{n}`")).alias(f"nd{idx[n]}"))
    first = df.agg(*aggs).first()
    assert first is not None  # an aggregation without grouping returns one row
    rows = int(first["__rows"])

    profile: dict[str, Any] = {"rows": rows, "columns": {}}
    points: dict[str, list[float]] = {}
    for n, t in fields:
        i = idx[n]
        non_null = int(first[f"nn{i}"])
        col: dict[str, Any] = {
            "type": t,
            "kind": kinds[n],
            "nulls": rows - non_null,
            "null_rate": (rows - non_null) / rows if rows else 0.0,
            "non_null": non_null,
        }
        if n in skip:
            col["reason"] = "key"
        elif n in exclude:
            col["reason"] = "excluded from drift"
        if n in numeric:
            qs = first[f"q{i}"]
            col.update(
                quantiles=[float(q) for q in qs] if qs else [],
                mean=first[f"mean{i}"],
                std=first[f"std{i}"],
                min=first[f"min{i}"],
                max=first[f"max{i}"],
            )
            points[n] = sorted(set(col["quantiles"]))
        if n in categorical:
            col["distinct"] = int(first[f"nd{idx[n]}"])
        profile["columns"][n] = col

    # Job 2: one pass that buckets numerics (own and reference points) and counts categories.
    ref_cols = (reference or {}).get("columns", {})
    ref_points = {
        n: sorted(set(ref_cols[n].get("quantiles") or []))
        for n in numeric
        if n in ref_cols and ref_cols[n].get("kind") == kinds[n] and ref_cols[n].get("quantiles")
    }
    structs = []
    for n in numeric:
        x = _as_number(n, kinds[n])
        if points.get(n):
            structs.append(
                F.struct(F.lit(f"own|{n}").alias("k"), _bucket(x, points[n]).cast("string").alias("v"))
            )
        if ref_points.get(n):
            structs.append(
                F.struct(F.lit(f"ref|{n}").alias("k"), _bucket(x, ref_points[n]).cast("string").alias("v"))
            )
    for n in categorical:
        structs.append(
            F.struct(
                F.lit(f"cat|{n}").alias("k"),
                F.coalesce(F.col(f"`{n}`").cast("string"), F.lit(NULL_KEY)).alias("v"),
            )
        )
    counts: dict[str, dict[str, int]] = {}
    if structs:
        exploded = df.select(F.explode(F.array(*structs)).alias("s")).select("s.k", "s.v")
        for r in exploded.where(F.col("v").isNotNull()).groupBy("k", "v").count().collect():
            counts.setdefault(r["k"], {})[r["v"]] = int(r["count"])

    for n in numeric:
        col = profile["columns"][n]
        own = {int(b): c for b, c in counts.get(f"own|{n}", {}).items()}
        col["points"] = points.get(n, [])
        col["cdf"] = _cdf(own, len(col["points"]), col["non_null"])
        if n in ref_points:
            ref = {int(b): c for b, c in counts.get(f"ref|{n}", {}).items()}
            col["reference_points"] = ref_points[n]
            col["reference_cdf"] = _cdf(ref, len(ref_points[n]), col["non_null"])
    for n in categorical:
        col = profile["columns"][n]
        values = counts.get(f"cat|{n}", {})
        values.pop(NULL_KEY, None)
        top = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(top[:max_categories])
        col["counts"] = kept
        col["other"] = sum(c for _, c in top[max_categories:])
        col["distinct"] = len(values)
        # An id-like column (almost every value distinct) has no distribution to compare.
        if len(values) > max_categories and len(values) > 0.5 * max(col["non_null"], 1):
            col["kind"] = "skipped"
            col["reason"] = "high cardinality"
        # Reference categories kept beyond our own top list, so PSI sees their exact share.
        ref_counts = (ref_cols.get(n) or {}).get("counts") or {}
        if ref_counts:
            col["reference_counts"] = {k: values.get(k, 0) for k in ref_counts}
    return profile


# --- drift (pure) ------------------------------------------------------------------------------------
def _smooth(fracs: list[float]) -> list[float]:
    total = sum(fracs) + EPSILON * len(fracs)
    return [(f + EPSILON) / total for f in fracs]


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of ``actual`` against ``expected`` (fractions, ε-smoothed)."""
    e, a = _smooth(expected), _smooth(actual)
    return float(sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True)))


def _cdf_at(points: list[float], cdf: list[float], x: float) -> float:
    """Step-function CDF from (point, fraction <= point) pairs, evaluated at x."""
    value = 0.0
    for p, f in zip(points, cdf, strict=True):
        if p <= x:
            value = f
        else:
            break
    return value


def _decile_edges(quantiles: list[float]) -> list[float]:
    inner = [quantiles[k] for k in range(10, 100, 10)] if len(quantiles) == N_POINTS else []
    return sorted(set(inner))


def _bins_from_cdf(edge_cdf: list[float]) -> list[float]:
    out, prev = [], 0.0
    for f in edge_cdf:
        out.append(max(f - prev, 0.0))
        prev = f
    out.append(max(1.0 - prev, 0.0))
    return out


def _numeric_drift(prev: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any]:
    p_points, p_cdf = prev.get("points") or [], prev.get("cdf") or []
    if cur.get("reference_points") == p_points and cur.get("reference_cdf") is not None:
        c_cdf = cur["reference_cdf"]  # exact: counted at the previous version's points
    else:
        c_cdf = [_cdf_at(cur.get("points") or [], cur.get("cdf") or [], x) for x in p_points]
    edges = _decile_edges(prev.get("quantiles") or [])
    at = {p: i for i, p in enumerate(p_points)}
    prev_bins = _bins_from_cdf([p_cdf[at[e]] for e in edges])
    cur_bins = _bins_from_cdf([c_cdf[at[e]] for e in edges])
    ks = max((abs(a - b) for a, b in zip(p_cdf, c_cdf, strict=True)), default=0.0)
    return {
        "psi": psi(prev_bins, cur_bins),
        "ks": float(ks),
        "edges": edges,
        "prev_bins": prev_bins,
        "cur_bins": cur_bins,
        "prev_mean": prev.get("mean"),
        "cur_mean": cur.get("mean"),
    }


def _categorical_drift(prev: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any]:
    p_counts = dict(prev.get("counts") or {})
    c_counts = dict(cur.get("counts") or {})
    c_counts.update(cur.get("reference_counts") or {})
    cats = sorted(set(p_counts) | set(c_counts), key=lambda k: (-p_counts.get(k, 0), k))
    p_total = max(prev.get("non_null") or 0, 1)
    c_total = max(cur.get("non_null") or 0, 1)
    prev_fr = [p_counts.get(k, 0) / p_total for k in cats] + [(prev.get("other") or 0) / p_total]
    c_other = c_total - sum(c_counts.get(k, 0) for k in cats)
    cur_fr = [c_counts.get(k, 0) / c_total for k in cats] + [max(c_other, 0) / c_total]
    return {
        "psi": psi(prev_fr, cur_fr) if prev.get("non_null") and cur.get("non_null") else 0.0,
        "categories": cats + [OTHER],
        "prev_bins": prev_fr,
        "cur_bins": cur_fr,
        "new_categories": sorted(k for k in c_counts if c_counts[k] and k not in p_counts),
        "vanished_categories": sorted(k for k in p_counts if not c_counts.get(k)),
    }


def compare_profiles(
    prev: dict[str, Any] | None,
    cur: dict[str, Any],
    *,
    warn: float = 0.1,
    drift: float = 0.25,
) -> dict[str, Any]:
    """Drift of ``cur`` against ``prev`` (None: the first version, verdict ``baseline``)."""
    result: dict[str, Any] = {
        "thresholds": {"warn": warn, "drift": drift},
        "rows": cur["rows"],
        "prev_rows": None if prev is None else prev["rows"],
        "columns": {},
    }
    if prev is None:
        result["verdict"] = "baseline"
        result["row_change"] = None
        return result
    result["row_change"] = (cur["rows"] - prev["rows"]) / prev["rows"] if prev["rows"] else None
    worst = "ok"
    rank = {"ok": 0, "skipped": 0, "warn": 1, "drift": 2}
    for name in list(cur["columns"]) + [n for n in prev["columns"] if n not in cur["columns"]]:
        c, p = cur["columns"].get(name), prev["columns"].get(name)
        entry: dict[str, Any] = {"kind": (c or p)["kind"], "type": (c or p)["type"]}
        if c is None or p is None:
            entry.update(verdict="drift", note="column removed" if c is None else "column added")
        elif c["kind"] == "skipped" or p["kind"] == "skipped":
            entry.update(verdict="skipped", note=c.get("reason") or p.get("reason") or "not profiled")
        elif c["kind"] != p["kind"] or c["type"] != p["type"]:
            entry.update(verdict="drift", note=f"type changed {p['type']} -> {c['type']}")
        else:
            stats = _categorical_drift(p, c) if c["kind"] == "categorical" else _numeric_drift(p, c)
            entry.update(stats)
            entry["null_rate"] = c["null_rate"]
            entry["prev_null_rate"] = p["null_rate"]
            level = "drift" if stats["psi"] >= drift else "warn" if stats["psi"] >= warn else "ok"
            if level == "ok" and abs(c["null_rate"] - p["null_rate"]) >= NULL_RATE_WARN:
                level = "warn"
            entry["verdict"] = level
        if rank[entry["verdict"]] > rank[worst]:
            worst = entry["verdict"]
        result["columns"][name] = entry
    result["verdict"] = "stable" if worst == "ok" else worst
    return result


def drifted_columns(result: dict[str, Any], *, level: str = "drift") -> list[str]:
    levels = {"drift": ("drift",), "warn": ("warn", "drift")}[level]
    return [n for n, c in result["columns"].items() if c.get("verdict") in levels]
