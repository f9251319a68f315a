"""Where each table and area lives in the lake (lake-relative paths; see ``Storage.uri``).

One place for the layout, so every job and command agrees on it::

    landing/<as the source writes it>
    bronze/<dataset>                 Delta: raw strings + lineage, append-only
    silver/<dataset>                 Delta: typed, deduplicated, validated
    gold/<name>                      Delta: curated for training
    quarantine/<dataset>/files/...   files that could not be read, each with a .reason.json
    quarantine/<dataset>/rows        Delta: rows that failed validation, with reasons
    system/ledger|queue|ingested     event ledger (ingestion.events)
    system/batches/<dataset>/        batch manifests
    system/leases/<dataset>.json     single-writer leases
    system/runs                      Delta: the run ledger
    system/registry/                 local asset registry
    system/commits/<table>/          which table version each of our commits made (commit index)
    system/tombstones/<dataset>      Delta: hard-deleted keys of a CDC dataset, with their sequence
    system/FORMAT.json               the system area's format version (ingestion.core.system)
"""

from __future__ import annotations

from ingestion.core.reasons import RowCheck

# Lineage columns every bronze row carries, named exactly so.
SOURCE_PATH = "_source_path"
SOURCE_SHA256 = "_source_sha256"
SOURCE_ROW = "_source_row"
INGESTED_AT = "_ingested_at"
BATCH_ID = "_batch_id"
RESCUED_DATA = "_rescued_data"
CORRUPT_RECORD = "_corrupt_record"  # the raw line of a malformed record
PARSE_ERROR = "_parse_error"  # why it was malformed
# A _parse_error starting so: the line was too long to read (ingestion.bronze.lines).
LINE_TOO_LONG = f"{RowCheck.LINE_TOO_LONG.value}: "
# Reserved columns of change rows (SQL sources): the operation (I, U or D once cast; the files
# may say insert/update/delete or the Functions SQL trigger's 0/1/2) and the change version.
CHANGE_OP = "_change_op"
CHANGE_SEQ = "_change_seq"
CHANGE_COLUMNS = (CHANGE_OP, CHANGE_SEQ)
# What a change file's operation may say, upper-cased, per operation: our letters, the names, and
# the Functions SQL trigger's numbers outside .NET (0 insert, 1 update, 2 delete).
CHANGE_OP_SPELLINGS = {"I": ("I", "INSERT", "0"), "U": ("U", "UPDATE", "1"), "D": ("D", "DELETE", "2")}
DELETED = "_deleted"  # silver's soft-delete flag (Cdc(deletes="soft"))
TOMBSTONED_AT = "_tombstoned_at"
LINEAGE_COLUMNS = (SOURCE_PATH, SOURCE_SHA256, SOURCE_ROW, INGESTED_AT, BATCH_ID)
BRONZE_META_COLUMNS = (RESCUED_DATA, CORRUPT_RECORD, PARSE_ERROR, *LINEAGE_COLUMNS)


def bronze_table(dataset: str) -> str:
    return f"bronze/{dataset}"


def silver_table(dataset: str) -> str:
    return f"silver/{dataset}"


def gold_table(name: str) -> str:
    return f"gold/{name}"


def quarantine_rows_table(dataset: str) -> str:
    return f"quarantine/{dataset}/rows"


def quarantine_files(dataset: str) -> str:
    return f"quarantine/{dataset}/files"


def tombstones_table(dataset: str) -> str:
    return f"system/tombstones/{dataset}"


def batches_dir(dataset: str) -> str:
    return f"system/batches/{dataset}"


def lease_path(dataset: str, scope: str | None = None) -> str:
    """The lease object of ``dataset``'s writers; ``scope`` names a second writer role (silver)."""
    return f"system/leases/{dataset}.json" if scope is None else f"system/leases/{dataset}.{scope}.json"


RUNS_TABLE = "system/runs"
REGISTRY_DIR = "system/registry"
