"""The Azure Function App (Python v2 programming model): headwater's landing side.

Three functions, thin adapters over ``ingestion.events`` (see ``functions/``):

* ``landing_blob`` - blob trigger on the landing container, Event Grid source, ``BlobClient``.
* ``landing_events`` - Event Grid trigger for renames into landing (and event filtering).
* ``landing_reconcile`` - timer: backfill for missed events, then the batching sweep.
* ``sql_changes_<source>`` - a Functions SQL trigger per declared ``SqlSource`` (none unless
  ``schemas/`` declares one): each batch of row changes is landed as a change file.
* ``sql_pull_<source>`` - a timer per watermark-mode ``SqlSource``: the change puller, the
  trigger's reconcile.
* ``status`` - HTTP ``GET /api/status[?dataset=NAME]`` (function key): the lake's status as JSON,
  read without Spark (``ingestion.lakeview``).

Importing this module never imports pyspark.
"""

from __future__ import annotations

import azure.functions as func

from functions.blob_trigger import bp as blob_bp
from functions.event_grid import bp as events_bp
from functions.reconcile import bp as reconcile_bp
from functions.sql_pull import bp as pull_bp
from functions.sql_trigger import bp as sql_bp
from functions.status import bp as status_bp

app = func.FunctionApp()
app.register_functions(blob_bp)
app.register_functions(events_bp)
app.register_functions(reconcile_bp)
app.register_functions(sql_bp)
app.register_functions(pull_bp)
app.register_functions(status_bp)
