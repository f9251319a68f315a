"""``GET /api/status[?dataset=NAME]``: the lake's status as JSON, read without Spark.

What ``headwater status`` shows (ledger, pending files, latest batch, table versions and rows,
quarantine reasons, latest runs, asset versions), from ``ingestion.lakeview`` over the worker's
runtime (settings, storage, catalog). A function key is required (``AuthLevel.FUNCTION``). An
unknown dataset is a 400 naming the known ones; a section that cannot be read is listed in the
answer's ``errors`` while the rest is still returned.
"""

# No `from __future__ import annotations`: the worker reads the parameter types at indexing
# (an SDK type such as BlobClient turns on deferred binding), so they stay real objects.
import json
import logging
from typing import Any

import azure.functions as func

from functions.runtime import get_runtime
from ingestion.core.errors import UnknownDatasetError, classify, describe, one_line
from ingestion.lakeview import LakeView

log = logging.getLogger("headwater.functions.status")

bp = func.Blueprint()


def _json(data: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(data, sort_keys=True, default=str),
        status_code=status_code,
        mimetype="application/json",
    )


@bp.function_name("status")
@bp.route(route="status", methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.FUNCTION)
def status(req: func.HttpRequest) -> func.HttpResponse:
    """The status summary of every dataset, or of ``?dataset=NAME``."""
    dataset = req.params.get("dataset") or None
    try:
        rt = get_runtime()
        view = LakeView(rt.storage, rt.catalog, rt.settings)
        try:
            summary = view.summary(dataset=dataset)
        except UnknownDatasetError as err:
            body = {"error": one_line(err), "code": str(err.code), "dataset": err.name}
            return _json({**body, "known": rt.catalog.names()}, 400)
    except Exception as err:  # noqa: BLE001 - the caller gets the reason as JSON, the log the trace
        log.exception("status failed")
        code, _ = classify(err)
        return _json({"error": describe(err), "code": str(code)}, 500)
    data = summary.to_json()
    if data["errors"]:
        log.warning("status: %d section(s) unreadable: %s", len(data["errors"]), json.dumps(data["errors"]))
    return _json(data)
