"""The Functions SQL trigger: one function per declared ``SqlSource`` with ``trigger=True``.

The trigger (Azure SQL bindings extension) polls the table's change tracking and hands the
function a JSON array of ``{"Item": ..., "Operation": ...}``, oldest first, at most
``Sql_Trigger_MaxBatchSize`` (100) changes every ``Sql_Trigger_PollingIntervalMs`` (1000). The
function persists the batch as a change file before it returns (``ingestion.changes.trigger``):
a batch failing 5 times would be skipped forever.

``leases_table_name`` is always set (``SqlSource.leases_table_name``), so renaming the function
or the site keeps the trigger's state. The change puller stays the reconcile: no change depends
on the trigger alone. Hosting: deploy on the Premium (Elastic Premium) plan. Microsoft's SQL
trigger page documents target-based scaling for Consumption and Premium, Consumption only from
SQL bindings v3.1.284 (earlier versions of that page: no automatic scaling on Consumption, use
Premium or Dedicated); Dedicated runs it without event-driven scale-out. Flex Consumption is not
in that list, so headwater does not claim it. See the README ("SQL changes").
"""

import json
import logging

import azure.functions as func
from azure.functions.decorators.function_app import FunctionBuilder

from functions.runtime import get_runtime, invocation_trace
from ingestion.changes.sources import SqlSource
from ingestion.contracts import Catalog

log = logging.getLogger("headwater.functions.sql")

bp = func.Blueprint()


def register(blueprint: func.Blueprint, source: SqlSource) -> FunctionBuilder:
    """Add ``source``'s SQL trigger function to ``blueprint``; return it (callable as the host calls it)."""

    @blueprint.function_name(source.function_name)
    @blueprint.sql_trigger(
        arg_name="changes",
        table_name=source.table,
        connection_string_setting=source.connection_setting,
        leases_table_name=source.leases_table_name,
    )
    def sql_changes(changes: str, context: func.Context) -> None:
        with invocation_trace(context):  # a run the batch submits continues the host's trace
            out = get_runtime().on_sql_changes(source.name, changes)
        level = logging.ERROR if out.outcome == "quarantined" else logging.INFO
        summary = {"source": source.name, "outcome": out.outcome, "changes": out.changes}
        if out.landed is not None:
            summary["path"] = out.landed.path
        log.log(level, "sql changes %s", json.dumps(summary))

    return sql_changes


for _source in Catalog.discover().sources():
    if _source.trigger:
        register(bp, _source)
