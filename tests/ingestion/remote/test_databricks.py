"""Databricks runs at the HTTP boundary: the real databricks-sdk against a loopback Jobs API 2.2.

The server answers ``runs/submit``, ``runs/get`` and ``runs/get-output`` as the Jobs API 2.2
documents them (idempotency tokens included: a token it has seen returns its run), and records
every request, so each test asserts what the SDK really sends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from ingestion.core.config import ZONES, DatabricksSettings, LakeSettings, Settings, SubmitSettings
from ingestion.remote import RemoteRunError, RemoteRuns, RemoteRunSubmitter, poll_open
from ingestion.remote.databricks import DatabricksService, map_state
from ingestion.remote.libraries import cluster_requirements
from ingestion.testing.loopback import json_api

TOKEN = "dapi-secret-token-value"


@dataclass
class JobsApi:
    """A Jobs API 2.2 workspace on loopback: runs, their scripted states, their output."""

    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    states: list[tuple[str, str | None, str]] = field(default_factory=list)  # each runs/get pops one
    output: dict[str, Any] = field(default_factory=dict)
    submit_delay: float = 0.0
    reject_auth: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Any:
        if path == "/.well-known/databricks-config":
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": "no host metadata here"}
        with self.lock:
            self.requests.append({"method": method, "path": path, "query": query, "body": body})
        if self.reject_auth or headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
        if (method, path) == ("POST", "/api/2.2/jobs/runs/submit"):
            with self.lock:
                token = body.get("idempotency_token")
                if token in self.tokens:  # documented: the run this token started, no new run
                    run_id = self.tokens[token]
                else:
                    run_id = 1000 + len(self.runs) + 1
                    self.runs[run_id] = {"body": body, "states": list(self.states)}
                    if token:
                        self.tokens[token] = run_id
            time.sleep(self.submit_delay)  # the run exists; the answer is late
            return 200, {"run_id": run_id}
        if (method, path) == ("GET", "/api/2.2/jobs/runs/get"):
            run_id = int(query["run_id"])
            if run_id not in self.runs:
                return 404, {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Run {run_id} does not exist.",
                }
            run = self.runs[run_id]
            life, result, message = run["states"].pop(0) if len(run["states"]) > 1 else run["states"][0]
            state = {"life_cycle_state": life, "state_message": message}
            if result:
                state["result_state"] = result
            return 200, {
                "run_id": run_id,
                "run_name": run["body"]["run_name"],
                "state": state,
                "tasks": [{"run_id": run_id * 10, "task_key": "pipeline", "state": state}],
            }
        if (method, path) == ("GET", "/api/2.2/jobs/runs/get-output"):
            return 200, {"metadata": {"run_id": int(query["run_id"])}, **self.output}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"no {method} {path}"}


@pytest.fixture
def workspace():  # noqa: ANN201
    api = JobsApi()

    with json_api(lambda *request: api.handle(*request)) as url:  # a test may swap api.handle
        api.url = url  # type: ignore[attr-defined]
        yield api


def _service(api: JobsApi, **databricks: Any) -> DatabricksService:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.config import Config

    settings = Settings(
        lake=LakeSettings(kind="azure", account="lake1"),
        submit=SubmitSettings(
            kind="databricks",
            databricks=DatabricksSettings(
                host=api.url,  # type: ignore[attr-defined]
                wheel="/Volumes/main/headwater/wheels/headwater-0.1.0-py3-none-any.whl",
                **databricks,
            ),
        ),
    )
    config = Config(
        host=api.url,  # type: ignore[attr-defined]
        token=TOKEN,
        auth_type="pat",
        http_timeout_seconds=1,
        retry_timeout_seconds=2,
    )
    return DatabricksService(settings, client=WorkspaceClient(config=config))


def _submits(api: JobsApi) -> list[dict[str, Any]]:
    return [r["body"] for r in api.requests if r["path"] == "/api/2.2/jobs/runs/submit"]


def test_a_run_is_one_wheel_task_with_its_pinned_libraries_and_a_stable_token(workspace, lake):
    workspace.states = [("PENDING", None, ""), ("RUNNING", None, ""), ("TERMINATED", "SUCCESS", "")]
    workspace.output = {"logs": 'starting\n{"status": "succeeded", "job": "pipeline", "rows": 3}\n'}
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="dev", clock=lambda: 100.0)

    summary = submitter.submit("orders")
    assert summary == {
        "status": "submitted",
        "dataset": "orders",
        "target": "databricks",
        "run_id": "1001",
        "batch": 1,
        "already_open": False,
    }
    [body] = _submits(workspace)
    assert body == {
        "run_name": "headwater-pipeline-orders",
        "idempotency_token": "hw-dev-orders-pipeline-b1",
        "timeout_seconds": 3600,
        "tasks": [
            {
                "task_key": "pipeline",
                "python_wheel_task": {
                    "package_name": "headwater",
                    "entry_point": "headwater-job",
                    "parameters": ["pipeline", "--dataset", "orders"],
                },
                "libraries": [{"whl": "/Volumes/main/headwater/wheels/headwater-0.1.0-py3-none-any.whl"}]
                + [{"pypi": {"package": r}} for r in cluster_requirements()],
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "Standard_D4ds_v5",
                    "num_workers": 2,
                    "spark_env_vars": {
                        "HEADWATER_ENV": "dev",
                        "HEADWATER_LAKE__KIND": "azure",
                        "HEADWATER_LAKE__ACCOUNT": "lake1",
                        **{f"HEADWATER_LAKE__CONTAINERS__{z.upper()}": z for z in ZONES},
                    },
                },
            }
        ],
    }
    libraries = [lib["pypi"]["package"] for lib in body["tasks"][0]["libraries"][1:]]
    assert not [p for p in libraries if p.split("==")[0].split("[")[0] in ("pyspark", "delta-spark")]

    # While the run is open, a trigger submits nothing: the Function never waits, never doubles.
    assert submitter.submit("orders")["already_open"] is True and len(_submits(workspace)) == 1
    service = submitter.service
    assert poll_open(lake, service) == []  # PENDING
    assert poll_open(lake, service) == []  # RUNNING
    [closed] = poll_open(lake, service, clock=lambda: 200.0)
    assert (closed.state, closed.detail, closed.closed_at) == ("succeeded", "TERMINATED/SUCCESS", 200.0)
    assert closed.result == {"status": "succeeded", "job": "pipeline", "rows": 3}
    assert [r["query"] for r in workspace.requests if r["path"].endswith("get-output")] == [
        {"run_id": "10010"}
    ]
    assert RemoteRuns(lake).load("orders").current is None


def test_a_failed_run_is_closed_with_the_jobs_own_error(workspace, lake):
    workspace.states = [("TERMINATED", "FAILED", "Task pipeline failed with message: Workload failed")]
    workspace.output = {
        "error": "SystemExit: 1",
        "logs": '{"status": "failed", "code": "schema_mismatch", "error": "curate orders: amount is a string"}\n',
    }
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="qa")
    submitter.submit("orders")
    [closed] = poll_open(lake, submitter.service)
    assert (closed.state, closed.detail) == ("failed", "TERMINATED/FAILED")
    assert closed.message == "curate orders: amount is a string"
    assert closed.result is not None and closed.result["code"] == "schema_mismatch"
    # The next submission is a new run of the same batch (the closed run keeps its token).
    submitter.submit("orders")
    assert [b["idempotency_token"] for b in _submits(workspace)] == [
        "hw-qa-orders-pipeline-b1",
        "hw-qa-orders-pipeline-b1-r1",
    ]
    assert len(workspace.runs) == 2


def test_a_timed_out_submission_retried_with_its_token_starts_no_second_run(workspace, lake):
    workspace.states = [("RUNNING", None, "")]
    workspace.submit_delay = 2.0  # longer than the client's 1 s: the run starts, the answer is lost
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="prod")
    with pytest.raises(RemoteRunError) as err:
        submitter.submit("orders")
    assert err.value.transient and "timed out" in str(err.value)
    assert RemoteRuns(lake).load("orders").current is None  # nothing recorded: no id came back

    workspace.submit_delay = 0.0
    again = submitter.submit("orders")  # the batcher's retry
    assert again["run_id"] == "1001" and len(workspace.runs) == 1
    tokens = [b["idempotency_token"] for b in _submits(workspace)]
    assert tokens == ["hw-prod-orders-pipeline-b1", "hw-prod-orders-pipeline-b1"]


def test_a_run_cancelled_remotely_is_closed_failed_and_resubmitted_as_a_new_run(workspace, lake):
    workspace.states = [("TERMINATED", "CANCELED", "Run cancelled by user@example.com")]
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="dev")
    submitter.submit("orders")
    [closed] = poll_open(lake, submitter.service)
    assert closed.state == "failed"
    assert closed.message == "cancelled remotely: Run cancelled by user@example.com"
    assert RemoteRuns(lake).load("orders").closed == {"1": 1}
    resubmitted = submitter.submit("orders")
    assert resubmitted["run_id"] == "1002" and resubmitted["batch"] == 1


def test_a_run_the_workspace_no_longer_knows_is_lost_so_its_run_closes(workspace, lake):
    workspace.states = [("RUNNING", None, "")]
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="dev")
    submitter.submit("orders")
    workspace.runs.clear()  # deleted remotely (or the history expired)
    [closed] = poll_open(lake, submitter.service)
    assert (closed.state, closed.detail) == ("failed", "not found")
    assert closed.message == "lost remotely: run 1001 is gone from the workspace"


def test_an_authentication_failure_is_named_and_never_shows_the_token(workspace, lake):
    workspace.reject_auth = True
    submitter = RemoteRunSubmitter(lake, _service(workspace), environment="dev")
    with pytest.raises(RemoteRunError) as err:
        submitter.submit("orders")
    assert (err.value.status, err.value.code, err.value.transient) == (401, "auth", False)
    assert "not authorized" in str(err.value) and TOKEN not in str(err.value)
    assert RemoteRuns(lake).load("orders").current is None


@pytest.mark.parametrize(
    ("life", "result", "state"),
    [
        ("QUEUED", None, "pending"),
        ("PENDING", None, "pending"),
        ("BLOCKED", None, "pending"),
        ("WAITING_FOR_RETRY", None, "pending"),
        ("RUNNING", None, "running"),
        ("TERMINATING", None, "running"),
        ("SKIPPED", None, "cancelled"),
        ("INTERNAL_ERROR", None, "lost"),
        ("TERMINATED", "SUCCESS", "succeeded"),
        ("TERMINATED", "FAILED", "failed"),
        ("TERMINATED", "TIMEDOUT", "failed"),
        ("TERMINATED", "MAXIMUM_CONCURRENT_RUNS_REACHED", "failed"),
        ("TERMINATED", "CANCELED", "cancelled"),
        ("TERMINATED", "UPSTREAM_CANCELED", "cancelled"),
        ("TERMINATED", "EXCLUDED", "cancelled"),
        ("TERMINATED", None, "lost"),
    ],
)
def test_every_databricks_state_maps_to_one_remote_state(life, result, state):
    assert map_state(life, result) == state


def test_the_function_submits_and_returns_and_the_reconcile_timer_closes_the_run(workspace, lake, catalog):
    """The Function App's path: a due batch is submitted, never awaited; the timer polls it."""
    from functions.runtime import LandingRuntime
    from ingestion.core.config import BatchingSettings

    workspace.states = [("RUNNING", None, ""), ("TERMINATED", "SUCCESS", "")]
    workspace.output = {"logs": '{"status": "succeeded"}\n'}
    service = _service(workspace)
    settings = service.settings.model_copy(
        update={"batching": BatchingSettings(max_files=1, max_bytes=10**9, max_age_seconds=3600)}
    )
    submitter = RemoteRunSubmitter(lake, service, environment="dev")
    rt = LandingRuntime(settings, lake, catalog=catalog, submitter=submitter)
    header = b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    row = b"O-0001,C-001,new,10.00,1,2026-11-01,,2026-11-01T10:00:00\n"
    first = lake.write_bytes("landing/orders/a.csv", header + row)
    handled = rt.handle_file("orders/a.csv", etag=first.etag, size=first.size)
    assert handled.batch is not None and handled.batch.outcome == "submitted"
    assert handled.batch.runs == [
        {
            "status": "submitted",
            "dataset": "orders",
            "target": "databricks",
            "run_id": "1001",
            "batch": 1,
            "already_open": False,
        }
    ]
    second = lake.write_bytes("landing/orders/b.csv", header + row)
    again = rt.handle_file("orders/b.csv", etag=second.etag, size=second.size)
    assert again.batch is not None and again.batch.runs[0]["already_open"] is True
    assert len(_submits(workspace)) == 1  # one run in flight, however many triggers

    assert rt.reconcile(min_age=0).closed == []  # still RUNNING: stays open
    report = rt.reconcile(min_age=0)
    assert [(r["run_id"], r["state"]) for r in report.closed] == [("1001", "succeeded")]
    # Closed, so the same pass let the next run go (the files here stay queued: no job ran them).
    assert [b["idempotency_token"] for b in _submits(workspace)] == [
        "hw-dev-orders-pipeline-b1",
        "hw-dev-orders-pipeline-b1-r1",
    ]


def test_incomplete_remote_settings_still_record_files_and_fail_each_run_with_the_reason(lake, catalog):
    from functions.runtime import LandingRuntime, submitter_from_settings
    from ingestion.core.config import BatchingSettings

    settings = Settings(
        submit=SubmitSettings(kind="databricks"),  # no host, no wheel
        batching=BatchingSettings(max_files=1, max_bytes=10**9, max_age_seconds=3600),
    )
    rt = LandingRuntime(settings, lake, catalog=catalog, submitter=submitter_from_settings(settings, lake))
    info = lake.write_bytes("landing/orders/a.csv", b"order_id\nO-1\n")
    handled = rt.handle_file("orders/a.csv", etag=info.etag, size=info.size)
    assert handled.outcome == "queued" and handled.batch is not None
    assert handled.batch.outcome == "failed"
    assert "HEADWATER_SUBMIT__DATABRICKS__WHEEL" in (handled.batch.error or "")
    assert [q.path for q in rt.ledger.queued("orders")] == ["orders/a.csv"]  # nothing lost
