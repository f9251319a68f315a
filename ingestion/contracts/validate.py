"""``headwater validate``: check every contract and explain what is wrong, all at once.

Problems are collected with a reason code per dataset (as pandera does), then reported.
Building the pandera models imports pyspark; routing checks do not need it.
"""

from __future__ import annotations

import codecs
import itertools
import re
from dataclasses import dataclass

from ingestion.contracts.catalog import Catalog
from ingestion.contracts.formats import Csv
from ingestion.contracts.model import NAME_RE, Dataset
from ingestion.contracts.paths import glob_match

SUPPORTED_TYPES = (
    "StringType",
    "BooleanType",
    "ByteType",
    "ShortType",
    "IntegerType",
    "LongType",
    "FloatType",
    "DoubleType",
    "DecimalType",
    "DateType",
    "TimestampType",
    "TimestampNTZType",
)
ORDERABLE = tuple(t for t in SUPPORTED_TYPES if t not in ("BooleanType",))
RESERVED_PREFIX = "_"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a contract: ``code`` names the kind (``format``, ``pattern_overlap``...), stable for scripts."""

    dataset: str
    code: str
    message: str


def _witnesses(pattern: str) -> list[str]:
    """Concrete paths a glob matches, used to detect overlapping patterns."""
    alts = [pattern]
    while any("{" in a for a in alts):
        nxt = []
        for a in alts:
            m = re.search(r"\{([^{}]*)\}", a)
            if not m:
                nxt.append(a)
                continue
            nxt += [a[: m.start()] + opt + a[m.end() :] for opt in m.group(1).split(",")]
        alts = nxt
    out = []
    for a in alts:
        for deep, star in itertools.product(("", "d/"), ("", "w")):
            p = a.replace("**/", deep).replace("**", "w").replace("*", star).replace("?", "q")
            p = re.sub(r"\[!?([^\]])[^\]]*\]", r"\1", p)
            out.append(p)
    return out


def _check_one(ds: Dataset) -> list[Problem]:
    probs: list[Problem] = []

    def bad(code: str, msg: str) -> None:
        probs.append(Problem(ds.name, code, msg))

    if not NAME_RE.match(ds.name):
        bad(
            "name",
            f"name {ds.name!r} must be lower-case letters, digits and _ (max 63), starting with a letter",
        )
    if not ds.landing or ds.landing.startswith("/") or ".." in ds.landing.split("/"):
        bad("landing_pattern", f"landing pattern {ds.landing!r} must be relative to the landing zone")
    fmt = ds.format
    if isinstance(fmt, Csv):
        if len(fmt.delimiter) != 1:
            bad("format", f"CSV delimiter must be one character, got {fmt.delimiter!r}")
        if len(fmt.quote) != 1:
            bad("format", f"CSV quote must be one character, got {fmt.quote!r}")
        try:
            codecs.lookup(fmt.encoding)
        except LookupError:
            bad("format", f"unknown encoding {fmt.encoding!r}")
    if fmt.compression == "gzip" and ".gz" not in ds.landing:
        bad("format", "compression is gzip but the landing pattern matches no *.gz name")
    if ds.schema_policy not in ("evolve", "freeze", "rescue"):
        bad("schema_policy", f"schema_policy must be evolve, freeze or rescue, got {ds.schema_policy!r}")
    try:
        schema = ds.model().to_schema()
    except Exception as err:  # a broken model is itself the finding
        bad("model", f"columns() failed: {type(err).__name__}: {err}")
        return probs
    types = {}
    for name, col in schema.columns.items():
        type_name = type(getattr(col.dtype, "type", col.dtype)).__name__
        types[name] = type_name
        if type_name not in SUPPORTED_TYPES:
            bad(
                "unknown_type",
                f"column {name!r} has type {type_name}, not one of {', '.join(SUPPORTED_TYPES)}",
            )
        if name.startswith(RESERVED_PREFIX):
            bad("reserved_name", f"column {name!r}: names starting with '_' are reserved for lineage")
    if not ds.primary_key:
        bad("primary_key", "primary_key is empty")
    for key in ds.primary_key:
        if key not in types:
            bad("primary_key", f"primary key column {key!r} is not in the columns")
    if ds.order_by is not None:
        if ds.order_by not in types:
            bad("order_by", f"order_by column {ds.order_by!r} is not in the columns")
        elif types[ds.order_by] not in ORDERABLE:
            bad(
                "order_by",
                f"order_by column {ds.order_by!r} has type {types[ds.order_by]}, which does not order",
            )
    if ds.cdc is not None:
        probs += _check_cdc(ds, types)
    for part in ds.partition_by:
        if part not in types:
            bad("partition_by", f"partition column {part!r} is not in the columns")
    for key, action in ds.check_actions.items():
        if key.split(".")[0] not in types:
            bad("check_actions", f"check_actions names {key!r}, but there is no column {key.split('.')[0]!r}")
        if action not in ("warn", "drop", "quarantine", "fail"):
            bad("check_actions", f"action {action!r} for {key!r} must be warn, drop, quarantine or fail")
    names = [r.name for r in ds.rules] + [r.name for r in ds.dataset_rules]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        bad("rules", f"rule name {dup!r} is used twice")
    return probs


def _check_cdc(ds: Dataset, types: dict[str, str]) -> list[Problem]:
    """The CDC declaration: one ordering concept, an orderable sequence, known columns."""
    from ingestion.core.lake import CHANGE_SEQ

    cdc = ds.cdc
    assert cdc is not None
    probs: list[Problem] = []

    def bad(msg: str) -> None:
        probs.append(Problem(ds.name, "cdc", msg))

    if cdc.mode not in ("scd1", "scd2"):
        bad(f"cdc mode must be scd1 or scd2, got {cdc.mode!r}")
    if cdc.deletes not in ("hard", "soft"):
        bad(f"cdc deletes must be hard or soft, got {cdc.deletes!r}")
    if cdc.sequence_by != CHANGE_SEQ:
        if cdc.sequence_by not in types:
            bad(f"sequence_by column {cdc.sequence_by!r} is neither a column nor {CHANGE_SEQ!r}")
        elif types[cdc.sequence_by] not in ORDERABLE:
            bad(
                f"sequence_by column {cdc.sequence_by!r} has type {types[cdc.sequence_by]}, which does not order"
            )
    if ds.order_by is not None and ds.order_by != cdc.sequence_by:
        bad(
            f"order_by {ds.order_by!r} and cdc sequence_by {cdc.sequence_by!r} disagree: "
            "a dataset has one ordering; leave order_by unset or make it the same column"
        )
    if not cdc.tombstone_days > 0:
        bad(f"tombstone_days must be positive, got {cdc.tombstone_days!r}")
    if cdc.track_history_columns and cdc.mode != "scd2":
        bad("track_history_columns applies only to mode scd2")
    for col in cdc.track_history_columns:
        if col not in types:
            bad(f"track_history_columns names {col!r}, which is not in the columns")
    return probs


def validate_catalog(catalog: Catalog) -> list[Problem]:
    """Every problem of every contract, plus landing patterns that overlap between datasets."""
    problems: list[Problem] = []
    datasets = list(catalog)
    for ds in datasets:
        problems += _check_one(ds)
    from ingestion.changes.sources import check_source

    for src in catalog.sources():
        problems += check_source(src, catalog)
    for a, b in itertools.combinations(datasets, 2):
        hits = [w for w in _witnesses(a.landing) if glob_match(b.landing, w)]
        hits += [w for w in _witnesses(b.landing) if glob_match(a.landing, w)]
        if hits:
            problems.append(
                Problem(
                    a.name,
                    "pattern_overlap",
                    f"landing pattern {a.landing!r} overlaps {b.name!r}'s {b.landing!r} (both match {hits[0]!r})",
                )
            )
    return problems
