"""``SqlSource``: a SQL table whose row changes feed a dataset, declared in ``schemas/``.

Everything that reaches SQL text from here is an identifier, validated against
:data:`IDENTIFIER` and quoted by the reader; values are always bound parameters. The connection
string itself is never declared: ``connection_setting`` names the app setting (a Key Vault
reference on Azure) that holds it, so it never appears in code, config, logs or the run ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ingestion.contracts.model import NAME_RE

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.contracts import Catalog
    from ingestion.contracts.validate import Problem

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(__[A-Za-z0-9_]+)*$")
PullMode = Literal["change_tracking", "watermark"]


@dataclass(frozen=True, kw_only=True)
class SqlSource:
    """A SQL table as a source of row changes.

    Args:
        name: lower-case identifier; names the landing folder and the trigger's function.
        dataset: the dataset the changes feed (it declares ``cdc``, JSON lines).
        connection_setting: the app setting holding the connection string (never the string).
        table: ``schema.table`` or ``table``.
        key: the table's primary-key columns (the dataset's primary key).
        mode: how the puller reads changes: SQL Server change tracking, or a watermark column.
        watermark: the watermark column (``mode="watermark"``): an updated-at or a row version
            the table sets on every write. Declare it as the dataset's ``sequence_by`` too.
        soft_delete_column: a boolean column marking deleted rows (watermark mode): such a row
            is pulled as a delete.
        lookback: how far behind the stored watermark each pull reads again (seconds for a time
            watermark, units for a number): a transaction in flight at the last pull commits
            later with an older watermark. What it pulls again is not landed twice.
        snapshot_deletes: deletes come from a periodic snapshot diff of the keys (watermark
            mode, for tables that delete rows outright): keys gone from the table since the
            last snapshot are landed as deletes.
        snapshot_every: take the key snapshot every this many pulls (and on the first).
        columns: the columns to pull (identifiers); empty pulls every column of the table.
        trigger: also register a Functions SQL trigger for the table (Azure SQL / SQL Server).
        pull_schedule: the NCRONTAB schedule of the puller's timer Function (watermark mode;
            it keeps running beside the trigger as the reconcile); None registers no timer.
        leases_table: the SQL trigger's leases table; fixed here, so renaming the function or
            the site keeps the trigger's state. Default ``headwater_leases_<name>``.
    """

    name: str
    dataset: str
    connection_setting: str
    table: str
    key: tuple[str, ...]
    mode: PullMode = "change_tracking"
    watermark: str | None = None
    soft_delete_column: str | None = None
    lookback: float = 300.0
    snapshot_deletes: bool = False
    snapshot_every: int = 12
    columns: tuple[str, ...] = ()
    trigger: bool = True
    pull_schedule: str | None = "0 */5 * * * *"
    leases_table: str | None = None

    @property
    def leases_table_name(self) -> str:
        """The SQL trigger's leases table."""
        return self.leases_table or f"headwater_leases_{self.name}"

    @property
    def function_name(self) -> str:
        """The SQL trigger function's name in the Function App."""
        return f"sql_changes_{self.name}"


def check_source(source: SqlSource, catalog: Catalog) -> list[Problem]:
    """Everything wrong with ``source`` against the catalog, at once (``headwater validate``)."""
    from ingestion.changes.landing import source_landing_dir
    from ingestion.contracts.formats import JsonLines
    from ingestion.contracts.validate import Problem

    probs: list[Problem] = []

    def bad(msg: str) -> None:
        probs.append(Problem(source.name, "source", msg))

    if not NAME_RE.match(source.name):
        bad(f"source name {source.name!r} must be lower-case letters, digits and _, starting with a letter")
    if not SETTING.match(source.connection_setting):
        bad("connection_setting must name an app setting (letters, digits, _), not hold a connection string")
    parts = source.table.split(".")
    if len(parts) > 2 or not all(IDENTIFIER.match(p) for p in parts):
        bad(f"table {source.table!r} must be table or schema.table, each an identifier")
    named = [source.watermark, source.soft_delete_column]
    for col in (*source.key, *[c for c in named if c], *source.columns):
        if not IDENTIFIER.match(col):
            bad(f"column {col!r} is not an identifier")
    if source.leases_table is not None and not IDENTIFIER.match(source.leases_table):
        bad(f"leases_table {source.leases_table!r} is not an identifier")
    if source.mode == "watermark" and not source.watermark:
        bad("mode watermark needs a watermark column")
    if source.lookback < 0:
        bad(f"lookback must be >= 0, got {source.lookback!r}")
    if source.dataset not in catalog.names():
        bad(f"feeds dataset {source.dataset!r}, which is not declared")
        return probs
    ds = catalog.get(source.dataset)
    if ds.cdc is None:
        bad(f"dataset {ds.name!r} declares no cdc: changes cannot be applied to it")
    if tuple(source.key) != tuple(ds.primary_key):
        bad(f"key {list(source.key)} is not dataset {ds.name!r}'s primary key {list(ds.primary_key)}")
    if source.watermark and ds.cdc is not None and ds.cdc.sequence_by != source.watermark:
        bad(
            f"the watermark {source.watermark!r} orders the pulled changes: declare it as dataset "
            f"{ds.name!r}'s cdc sequence_by (now {ds.cdc.sequence_by!r})"
        )
    if not isinstance(ds.format, JsonLines):
        bad(f"dataset {ds.name!r} must read JSON lines: change files are written so")
    probe = f"{source_landing_dir(ds, source)}/probe.jsonl"
    try:
        routed, _ = catalog.route(probe)
        if routed.name != ds.name:
            bad(f"change files ({probe}) route to {routed.name!r}, not {ds.name!r}")
    except Exception as err:  # noqa: BLE001 - any routing refusal is the finding
        bad(f"change files ({probe}) do not route to {ds.name!r}: {err}")
    return probs


def landing_order_note(source: SqlSource, catalog: Catalog) -> str | None:
    """Said by ``headwater validate`` when the trigger path can only order by landing order."""
    from ingestion.core.lake import CHANGE_SEQ

    if not source.trigger or source.dataset not in catalog.names():
        return None
    cdc = catalog.get(source.dataset).cdc
    if cdc is not None and cdc.sequence_by == CHANGE_SEQ:
        return (
            f"source {source.name}: the SQL trigger carries no change version, so changes it lands "
            "are ordered by landing order; declare a rowversion or updated-at column as sequence_by "
            "to order them by the table"
        )
    return None
