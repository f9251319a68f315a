"""The landing blob trigger: Event Grid source, bound as the Blob SDK's ``BlobClient``.

``source=EventGrid``: the polling trigger does not officially support hierarchical-namespace
accounts, and Flex Consumption supports only the event source. Binding the SDK type (through
``azurefunctions-extensions-bindings-blob``) hands the function a client, not the content: the
host never pushes the blob to the worker, and the handler reads properties only.
"""

# No `from __future__ import annotations`: the worker reads the parameter types at indexing
# (an SDK type such as BlobClient turns on deferred binding), so they stay real objects.
import json
import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_ext

from functions.runtime import LANDING_CONNECTION, LANDING_PATH, get_runtime, invocation_trace

log = logging.getLogger("headwater.functions.blob")

bp = func.Blueprint()


@bp.function_name("landing_blob")
@bp.blob_trigger(
    arg_name="blob",
    path=LANDING_PATH,
    connection=LANDING_CONNECTION,
    source=func.BlobSource.EVENT_GRID,
)
def landing_blob(blob: blob_ext.BlobClient, context: func.Context) -> None:
    """A blob was written in landing: record it once; batch its dataset when due.

    Inside the host's trace of the invocation: a run it submits continues it.
    """
    with invocation_trace(context):
        handled = get_runtime().on_blob(blob)
    level = logging.WARNING if handled.outcome in ("parked", "rejected") else logging.INFO
    log.log(level, "landing blob %s", json.dumps(handled.summary(), default=str))
