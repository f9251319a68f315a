"""The change puller's timer: one function per ``SqlSource`` with a ``pull_schedule``.

It runs beside the SQL trigger as the reconcile, so no change depends on the trigger alone
(``ingestion.changes.puller``). A failed pull stores nothing; the next tick reads the same rows.
The Function host needs an ODBC driver for the database (Microsoft's ODBC Driver 18 for Azure
SQL) and ``pyodbc`` (the ``functions`` extra).
"""

import json
import logging

import azure.functions as func

from functions.runtime import get_runtime
from ingestion.changes.sources import SqlSource
from ingestion.contracts import Catalog

log = logging.getLogger("headwater.functions.pull")

bp = func.Blueprint()


def register(blueprint: func.Blueprint, source: SqlSource) -> None:
    """Add ``source``'s pull timer to ``blueprint``."""
    assert source.pull_schedule is not None

    @blueprint.function_name(f"sql_pull_{source.name}")
    @blueprint.timer_trigger(
        arg_name="timer", schedule=source.pull_schedule, run_on_startup=False, use_monitor=True
    )
    def sql_pull(timer: func.TimerRequest) -> None:
        if timer.past_due:
            log.warning("pull %s is running late", source.name)
        result = get_runtime().pull_source(source.name)
        log.info("sql pull %s", json.dumps(result.summary(), default=str))


for _source in Catalog.discover().sources():
    if _source.pull_schedule and (_source.mode == "change_tracking" or _source.watermark):
        register(bp, _source)
