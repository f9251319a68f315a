"""Event Grid storage events the blob trigger does not cover: renames into landing.

ADLS Gen2 raises only ``BlobRenamed`` (``DirectoryRenamed`` for a folder) when a finished file
is moved into place, so the blob trigger never fires for it. This function takes those events,
and any ``BlobCreated`` routed here too, filtering out incomplete writes (``CreateFile``).
"""

# No `from __future__ import annotations`: the worker reads the parameter types at indexing
# (an SDK type such as BlobClient turns on deferred binding), so they stay real objects.
import json
import logging

import azure.functions as func

from functions.runtime import get_runtime, invocation_trace

log = logging.getLogger("headwater.functions.events")

bp = func.Blueprint()


@bp.function_name("landing_events")
@bp.event_grid_trigger(arg_name="event")
def landing_events(event: func.EventGridEvent, context: func.Context) -> None:
    """One storage event: a completed file (or directory) in landing is recorded once.

    Inside the host's trace of the invocation: a run it submits continues it.
    """
    with invocation_trace(context):
        results = get_runtime().on_event(event.event_type, event.subject, event.get_json(), event_id=event.id)
    for handled in results:
        level = logging.WARNING if handled.outcome in ("parked", "rejected") else logging.INFO
        log.log(level, "landing event %s %s", event.id, json.dumps(handled.summary(), default=str))
