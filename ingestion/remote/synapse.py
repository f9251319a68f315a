"""Pipeline runs on a Synapse Spark pool: one Livy batch per run, through azure-synapse-spark.

Each run is a Livy batch (``POST {endpoint}/livyApi/versions/2019-11-01-preview/sparkPools/
{pool}/batches``) whose ``file`` is the wheel's launcher on ADLS (``jobs/launch.py``) and whose
``args`` are ``[job, --dataset, D]``; the wheel itself is a workspace or pool package.

Livy has no idempotency token, so idempotency is ours: a batch is named after the run's token
(:func:`~ingestion.remote.runs.idempotency_token`, also its ``headwater_token`` tag), and before
creating one the pool's batches are listed; a batch with that name is the run a first attempt
already started (a submission retried after a timeout), and its id is returned instead. The
create request itself is never retried inside the client: a retry is the batcher's, and passes
through that check.

Authentication is a bearer token from ``DefaultAzureCredential`` (the Function App's managed
identity, which needs the Synapse Compute Operator role); the token never appears in an error
or a log. Nothing here imports pyspark: this runs in the Function.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DeserializationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.synapse.spark import SparkClient
from azure.synapse.spark.models import SparkBatchJob, SparkBatchJobOptions

from ingestion.core.reasons import RunCode
from ingestion.remote.libraries import job_args, yarn_job_conf
from ingestion.remote.runs import RemoteRunError, RemoteState, RemoteStatus, job_result

if TYPE_CHECKING:  # pragma: no cover
    from azure.core.credentials import TokenCredential

    from ingestion.core.config import Settings

log = logging.getLogger(__name__)

TARGET = "synapse"
# The Livy API version Synapse documents for batches (also azure-synapse-spark 0.7.0's default;
# passed explicitly so a library upgrade cannot change what is sent).
LIVY_API_VERSION = "2019-11-01-preview"
TOKEN_TAG = "headwater_token"
PAGE_SIZE = 20  # the most Synapse lists per request
MAX_PAGES = 50  # at most 1000 batches are searched for a token (Livy keeps recent ones only)
_MESSAGE_MAX = 1000

# Every Livy batch state.
_STATES: dict[str, RemoteState] = {
    "not_started": "pending",
    "starting": "pending",
    "running": "running",
    "idle": "running",
    "busy": "running",
    "recovering": "running",
    "shutting_down": "running",  # still ending: its result is not final yet
    "success": "succeeded",
    "error": "failed",
    "dead": "failed",
    "killed": "cancelled",
}
_TERMINAL_STATES = frozenset({"success", "error", "dead", "killed"})
# Synapse's result of a batch (``Uncertain`` until it ends); read only once the state is terminal.
_RESULTS: dict[str, RemoteState] = {"failed": "failed", "cancelled": "cancelled", "uncertain": "lost"}
_ERROR_LINE = re.compile(r"error|exception|traceback|failed", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def map_state(state: str | None, result: str | None) -> RemoteState:
    """A Livy batch's (state, Synapse result) as a remote state.

    Args:
        state: Livy's batch state (``not_started``, ``running``, ``dead``...).
        result: Synapse's result (``Succeeded``, ``Failed``, ``Cancelled``, ``Uncertain``), if any.

    Returns:
        The mapped state. Once the state is terminal, a ``Failed`` result is ``failed``,
        ``Cancelled`` is ``cancelled`` and ``Uncertain`` is ``lost``; an unknown state is
        ``pending`` (kept open and polled again) unless its result is final.
    """
    livy = (state or "").lower()
    outcome = (result or "").lower()
    if livy in _TERMINAL_STATES and outcome in _RESULTS:
        return _RESULTS[outcome]
    if livy in _STATES:
        return _STATES[livy]
    if outcome == "succeeded":
        return "succeeded"
    if outcome in ("failed", "cancelled"):
        return _RESULTS[outcome]
    return "pending"


class SynapseService:
    """Synapse Spark (Livy batches) as a :class:`~ingestion.remote.runs.RemoteService`.

    Args:
        settings: ``settings.submit.synapse`` (endpoint, pool, launcher, driver and executor sizes).
        credential: the token credential; default ``DefaultAzureCredential()``.
        timeout: seconds to wait to connect and for each answer.
        retries: retries of a read (listing or getting batches) on throttling, 5xx and network
            errors; the create request is never retried here.
        enforce_https: refuse to send the bearer token to a non-``https`` endpoint (azure-core's
            default). Only a test against a loopback server sets it to ``False``.

    Raises:
        RemoteRunError: a setting is missing, or the endpoint is not ``https``.
    """

    target = TARGET

    def __init__(
        self,
        settings: Settings,
        *,
        credential: TokenCredential | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        enforce_https: bool = True,
    ) -> None:
        self.settings = settings
        self.config = settings.submit.synapse
        for name, value in (
            ("ENDPOINT", self.config.endpoint),
            ("POOL", self.config.pool),
            ("LAUNCHER", self.config.launcher),
        ):
            if not value:
                raise RemoteRunError(TARGET, f"HEADWATER_SUBMIT__SYNAPSE__{name} is not set")
        endpoint = str(self.config.endpoint).rstrip("/")
        if enforce_https and not endpoint.lower().startswith("https://"):
            raise RemoteRunError(TARGET, f"the endpoint {endpoint} is not https:// (the token needs TLS)")
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.timeout = timeout
        self.retries = retries
        self.enforce_https = enforce_https
        self.client = SparkClient(
            credential, endpoint, str(self.config.pool), livy_api_version=LIVY_API_VERSION
        )

    def _options(self, *, retries: int) -> dict[str, Any]:
        """Per-request options of azure-core's pipeline: timeouts, retries, the https check."""
        options: dict[str, Any] = {
            "connection_timeout": self.timeout,
            "read_timeout": self.timeout,
            "retry_total": retries,
        }
        if not self.enforce_https:
            options["enforce_https"] = False
        return options

    def batch_options(self, dataset: str, *, job: str, token: str) -> SparkBatchJobOptions:
        """The Livy batch of one run: the launcher, its arguments, the pool sizes, Delta's conf.

        Args:
            dataset: the dataset.
            job: the ``jobs`` module to run (``pipeline``).
            token: the run's idempotency token (the batch's name and ``headwater_token`` tag).

        Returns:
            The request body's model.
        """
        cfg = self.config
        return SparkBatchJobOptions(
            name=token,
            file=str(cfg.launcher),
            arguments=job_args(job, dataset),
            tags={TOKEN_TAG: token},
            configuration=yarn_job_conf(self.settings, self.settings.env),
            driver_memory=cfg.driver_memory,
            driver_cores=cfg.driver_cores,
            executor_memory=cfg.executor_memory,
            executor_cores=cfg.executor_cores,
            executor_count=cfg.executors,
        )

    def find(self, token: str) -> SparkBatchJob | None:
        """The pool's batch that ``token`` started, if any (its name or its tag is the token).

        Args:
            token: the run's idempotency token.

        Returns:
            The batch, or ``None`` when the pool lists none with that token.

        Raises:
            RemoteRunError: the service refused or failed the request.
        """
        start = 0
        for _ in range(MAX_PAGES):
            with _errors("listing the pool's batches"):
                page = self.client.spark_batch.get_spark_batch_jobs(
                    from_parameter=start, size=PAGE_SIZE, detailed=True, **self._options(retries=self.retries)
                )
            batches = page.sessions or []
            for batch in batches:
                if batch.name == token or (batch.tags or {}).get(TOKEN_TAG) == token:
                    return batch
            start += len(batches)
            if not batches or (page.total is not None and start >= page.total):
                return None
        log.warning("synapse: searched %d batches for a run's token; not found, starting one", start)
        return None

    def start(self, dataset: str, *, job: str, token: str) -> str:
        """Create the run's Livy batch, or return the one ``token`` already started; its id.

        Args:
            dataset: the dataset.
            job: the ``jobs`` module to run.
            token: the run's idempotency token.

        Returns:
            The batch id.

        Raises:
            RemoteRunError: the service refused or failed a request (transient for throttling,
                5xx, network errors and timeouts: retry with the same token).
        """
        existing = self.find(token)
        if existing is not None:
            log.info("synapse batch %s already runs token %s", existing.id, token)
            return str(existing.id)
        with _errors(f"creating a batch for {dataset}"):
            batch = self.client.spark_batch.create_spark_batch_job(
                self.batch_options(dataset, job=job, token=token),
                detailed=True,
                **self._options(retries=0),
            )
        return str(batch.id)

    def status(self, run_id: str) -> RemoteStatus:
        """The batch's state now (one request), with its failure message and the job's result.

        Args:
            run_id: the batch id.

        Returns:
            The mapped state; ``detail`` is ``state/result`` as Synapse says them.

        Raises:
            RemoteRunError: the id is no batch id, or the service refused or failed the request.
        """
        try:
            batch_id = int(run_id)
        except ValueError:
            raise RemoteRunError(TARGET, f"{run_id!r} is not a Livy batch id") from None
        try:
            with _errors(f"reading batch {batch_id}"):
                batch = self.client.spark_batch.get_spark_batch_job(
                    batch_id, detailed=True, **self._options(retries=self.retries)
                )
        except RemoteRunError as err:
            if err.status == 404:  # the pool no longer knows the batch: it will never end on its own
                return RemoteStatus(
                    "lost", "not found", f"batch {batch_id} is gone from pool {self.config.pool}"
                )
            raise
        state = batch.state or (batch.livy_info.current_state if batch.livy_info else None)
        mapped = map_state(state, batch.result)
        detail = f"{state}/{batch.result}" if batch.result else str(state)
        result = job_result(batch.log_lines)
        message = None if mapped in ("succeeded", "pending", "running") else _failure(batch, result)
        return RemoteStatus(mapped, detail, message, result)


def _failure(batch: SparkBatchJob, result: dict[str, Any] | None) -> str:
    """Why a batch failed: the job's own error, Synapse's errors, the log's last error line."""
    parts: list[str] = []
    if result and result.get("error"):
        parts.append(str(result["error"]))
    for err in batch.errors or []:
        if err.message:
            parts.append(f"{err.error_code}: {err.message}" if err.error_code else str(err.message))
    lines = [ln.strip() for entry in batch.log_lines or [] for ln in str(entry).splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if _ERROR_LINE.search(ln) and not ln.startswith("{")]
    if error_lines:
        parts.append(error_lines[-1])
    unique = [p for i, p in enumerate(parts) if p not in parts[:i]]
    if not unique:
        unique = [f"the batch ended {batch.state}" + (f" ({batch.result})" if batch.result else "")]
    return _scrub("; ".join(unique))[:_MESSAGE_MAX]


def _scrub(text: str) -> str:
    """``text`` without anything that looks like a bearer token."""
    return _JWT.sub("***", _BEARER.sub(r"\1***", text))


def _service_message(err: HttpResponseError) -> str:
    """The service's own words in an error answer (its JSON ``code: message``, else its text)."""
    response = err.response
    if response is None:
        return ""
    try:
        text = response.text()
    except (ValueError, AzureError):  # an unreadable body says nothing more
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return _scrub(" ".join(text.split()))[:300]
    if isinstance(data, dict):
        nested = data.get("error")
        inner: dict[str, Any] = nested if isinstance(nested, dict) else data
        code, message = inner.get("code"), inner.get("message") or inner.get("msg")
        words = ": ".join(str(w) for w in (code, message) if w)
        return _scrub(words)[:300]
    return ""


@contextmanager
def _errors(doing: str) -> Iterator[None]:
    """Turns azure-core's errors into :class:`RemoteRunError` (transient where a retry may pass)."""
    try:
        yield
    except HttpResponseError as err:
        status = err.status_code
        if status is None and isinstance(err, ClientAuthenticationError):
            # The credential found no token (no managed identity, a refused client secret...).
            failure = RemoteRunError(
                TARGET, f"{doing}: no token for Synapse ({type(err).__name__}); check the identity"
            )
            failure.code = RunCode.AUTH
            raise failure from None
        raise RemoteRunError.from_http(
            TARGET,
            doing,
            status,
            _service_message(err),
            auth_hint="check the Function App identity has the Synapse Compute Operator role on the "
            "workspace or the Spark pool",
        ) from None
    except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as err:
        raise RemoteRunError(
            TARGET, f"{doing}: timed out ({type(err).__name__}); retry with the same token", transient=True
        ) from None
    except (ServiceRequestError, ServiceResponseError) as err:
        timed_out = "timed out" in str(err).lower() or "timeout" in str(err).lower()
        what = "timed out" if timed_out else "unreachable"
        raise RemoteRunError(TARGET, f"{doing}: {what} ({type(err).__name__})", transient=True) from None
    except DeserializationError:
        # A 200 whose body is no batch (a gateway's page): a retry (with the token check) may pass.
        raise RemoteRunError(TARGET, f"{doing}: the answer is no Livy batch JSON", transient=True) from None
    except AzureError as err:
        raise RemoteRunError(TARGET, f"{doing}: {type(err).__name__}", transient=True) from None


__all__ = ["LIVY_API_VERSION", "SynapseService", "map_state"]
