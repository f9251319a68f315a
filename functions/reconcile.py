"""The reconcile timer: ``backfill`` on a schedule, then the batching sweep.

Event delivery is at least once but not guaranteed end to end (a subscription filter too
narrow, an outage, a file that arrived before the subscription). Listing landing and recording
what the ledger lacks catches any missed event; evaluating every dataset afterwards is also
what fires the age threshold when no new file arrives to trigger it.
"""

# No `from __future__ import annotations`: the worker reads the parameter types at indexing
# (an SDK type such as BlobClient turns on deferred binding), so they stay real objects.
import json
import logging

import azure.functions as func

from functions.runtime import RECONCILE_SCHEDULE, get_runtime

log = logging.getLogger("headwater.functions.reconcile")

bp = func.Blueprint()


@bp.function_name("landing_reconcile")
@bp.timer_trigger(arg_name="timer", schedule=RECONCILE_SCHEDULE, run_on_startup=False, use_monitor=True)
def landing_reconcile(timer: func.TimerRequest) -> None:
    """List landing, record missed files, run every dataset whose batch is due."""
    if timer.past_due:
        log.warning("reconcile is running late")
    report = get_runtime().reconcile()
    level = logging.WARNING if report.errors else logging.INFO
    log.log(level, "reconcile %s", json.dumps(report.summary(), default=str))
