"""Pipeline runs on Databricks: Jobs API 2.2 ``runs/submit`` through databricks-sdk.

Each run is a one-task run: a ``python_wheel_task`` calling the wheel's ``headwater-job``
console entry point (``headwater-job pipeline --dataset D``), which exits with the job's code.
Its libraries are the wheel and the pinned PyPI requirements of its ``spark`` extra
(:func:`~ingestion.remote.libraries.cluster_requirements`), never pyspark or delta-spark: the
runtime ships those, and a wheel library installs no extras.

Idempotency is Databricks' own: ``runs/submit`` with an ``idempotency_token`` it has seen
returns the run that token started. The token (:func:`~ingestion.remote.runs.idempotency_token`)
is made of values a retry repeats, so a submission retried after a timeout starts no second run.

Authentication is databricks-sdk's (Azure managed identity, Entra ID service principal,
``DATABRICKS_*``); no token is a headwater setting, and none appears in an error or a log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ingestion.remote.libraries import (
    ENTRY_POINT,
    PACKAGE,
    TASK_KEY,
    cluster_environment,
    cluster_requirements,
    job_args,
    run_name,
)
from ingestion.remote.runs import RemoteRunError, RemoteState, RemoteStatus, job_result

if TYPE_CHECKING:  # pragma: no cover
    from databricks.sdk import WorkspaceClient

    from ingestion.core.config import Settings

log = logging.getLogger(__name__)

TARGET = "databricks"

# Life-cycle states (RunLifeCycleState) before a result exists.
_LIFE_CYCLE: dict[str, RemoteState] = {
    "QUEUED": "pending",
    "PENDING": "pending",
    "BLOCKED": "pending",
    "WAITING_FOR_RETRY": "pending",
    "RUNNING": "running",
    "TERMINATING": "running",
    "SKIPPED": "cancelled",  # never ran (a concurrent run, or a condition)
    "INTERNAL_ERROR": "lost",  # the service or the cluster failed under the run
}
# Result states (RunResultState) of a TERMINATED run.
_RESULT: dict[str, RemoteState] = {
    "SUCCESS": "succeeded",
    "SUCCESS_WITH_FAILURES": "failed",
    "FAILED": "failed",
    "TIMEDOUT": "failed",
    "MAXIMUM_CONCURRENT_RUNS_REACHED": "failed",
    "UPSTREAM_FAILED": "failed",
    "CANCELED": "cancelled",
    "UPSTREAM_CANCELED": "cancelled",
    "EXCLUDED": "cancelled",
    "DISABLED": "cancelled",
}


def map_state(life_cycle: str | None, result: str | None) -> RemoteState:
    """A Databricks run's (life-cycle state, result state) as a remote state."""
    if life_cycle == "TERMINATED" or (result and life_cycle not in _LIFE_CYCLE):
        return _RESULT.get(result or "", "lost")
    return _LIFE_CYCLE.get(life_cycle or "", "pending")


class DatabricksService:
    """Databricks as a :class:`~ingestion.remote.runs.RemoteService`.

    Args:
        settings: ``settings.submit.databricks`` (host, wheel, cluster) and the lake settings the
            job cluster receives.
        client: the workspace client; default one for ``host`` with databricks-sdk's own
            authentication.
    """

    target = TARGET

    def __init__(self, settings: Settings, *, client: WorkspaceClient | None = None) -> None:
        self.settings = settings
        self.config = settings.submit.databricks
        if not self.config.wheel:
            raise RemoteRunError(
                TARGET, "HEADWATER_SUBMIT__DATABRICKS__WHEEL (the wheel's volume path) is not set"
            )
        if client is None:
            from databricks.sdk import WorkspaceClient

            if not self.config.host:
                raise RemoteRunError(
                    TARGET, "HEADWATER_SUBMIT__DATABRICKS__HOST (the workspace URL) is not set"
                )
            client = WorkspaceClient(host=self.config.host)
        self.client = client

    def task(self, dataset: str, *, job: str) -> Any:
        """The run's one task: the wheel's entry point, its libraries, its cluster."""
        from databricks.sdk.service import compute, jobs

        libraries = [compute.Library(whl=self.config.wheel)] + [
            compute.Library(pypi=compute.PythonPyPiLibrary(package=req)) for req in cluster_requirements()
        ]
        cluster: Mapping[str, Any]
        if self.config.existing_cluster_id:
            cluster = {"existing_cluster_id": self.config.existing_cluster_id}
        else:
            cluster = {
                "new_cluster": compute.ClusterSpec(
                    spark_version=self.config.spark_version,
                    node_type_id=self.config.node_type_id,
                    num_workers=self.config.num_workers,
                    spark_env_vars=cluster_environment(self.settings, self.settings.env),
                )
            }
        return jobs.SubmitTask(
            task_key=TASK_KEY,
            python_wheel_task=jobs.PythonWheelTask(
                package_name=PACKAGE, entry_point=ENTRY_POINT, parameters=job_args(job, dataset)
            ),
            libraries=libraries,
            **cluster,
        )

    def start(self, dataset: str, *, job: str, token: str) -> str:
        """Submit a one-task run (or get the run ``token`` already started); its run id.

        Raises:
            RemoteRunError: the workspace refused or failed the request.
        """
        with _errors("submitting a run of " + dataset):
            waiter = self.client.jobs.submit(
                run_name=run_name(job, dataset),
                tasks=[self.task(dataset, job=job)],
                idempotency_token=token,
                timeout_seconds=self.config.timeout_seconds,
            )
        return str(waiter.run_id)

    def status(self, run_id: str) -> RemoteStatus:
        """The run's state (``runs/get``), with the job's result and error once it ended (``runs/get-output``).

        Raises:
            RemoteRunError: the workspace refused or failed the request.
        """
        try:
            with _errors(f"reading run {run_id}"):
                run = self.client.jobs.get_run(int(run_id))
        except RemoteRunError as err:
            if err.status == 404:  # the workspace no longer knows the run: it will never end on its own
                return RemoteStatus("lost", "not found", f"run {run_id} is gone from the workspace")
            raise
        state = run.state
        life = state.life_cycle_state.value if state and state.life_cycle_state else None
        result = state.result_state.value if state and state.result_state else None
        mapped = map_state(life, result)
        detail = f"{life}/{result}" if result else str(life)
        message = state.state_message if state and state.state_message else None
        if run.status and run.status.termination_details and run.status.termination_details.message:
            message = run.status.termination_details.message
        output: dict[str, Any] | None = None
        if mapped in ("succeeded", "failed") and run.tasks:
            task_run = run.tasks[0].run_id
            if task_run is not None:
                with _errors(f"reading the output of run {run_id}"):
                    out = self.client.jobs.get_run_output(task_run)
                output = job_result(out.logs)
                if mapped == "failed" and out.error:
                    message = out.error
        if mapped == "failed" and output and output.get("error"):
            message = str(output["error"])
        return RemoteStatus(mapped, detail, message if mapped != "succeeded" else None, output)


@contextmanager
def _errors(doing: str) -> Iterator[None]:
    """Turns databricks-sdk's errors into :class:`RemoteRunError` (transient where a retry may pass)."""
    from databricks.sdk.errors import DatabricksError

    try:
        yield
    except DatabricksError as err:
        said = f"{err.error_code}: {err}" if err.error_code else str(err)
        raise RemoteRunError.from_http(
            TARGET,
            doing,
            _status_of(err),
            said,
            auth_hint="check the identity's workspace access and its CAN_MANAGE_RUN / cluster permissions",
        ) from None
    except (
        TimeoutError,
        OSError,
    ) as err:  # requests' errors are OSErrors; the SDK's retry bound a TimeoutError
        raise RemoteRunError(
            TARGET, f"{doing}: timed out or unreachable ({type(err).__name__})", transient=True
        ) from None


def _status_of(err: Any) -> int | None:
    """The HTTP status behind a databricks-sdk error (its class names the status family)."""
    names = {
        "Unauthenticated": 401,
        "PermissionDenied": 403,
        "NotFound": 404,
        "ResourceConflict": 409,
        "TooManyRequests": 429,
        "BadRequest": 400,
        "InvalidParameterValue": 400,
        "InternalError": 500,
        "TemporarilyUnavailable": 503,
        "DeadlineExceeded": 504,
    }
    for cls in type(err).__mro__:
        if cls.__name__ in names:
            return names[cls.__name__]
    return None
