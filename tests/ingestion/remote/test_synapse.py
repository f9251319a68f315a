"""Synapse runs at the HTTP boundary: the real azure-synapse-spark client against a loopback Livy API.

The server answers the Synapse Livy batch API (``/livyApi/versions/2019-11-01-preview/sparkPools/
{pool}/batches``: create, list with ``from``/``size``, get) as documented, with Synapse's detailed
fields (``result``, ``errorInfo``, ``tags``...) only when ``detailed=true`` is asked, and records
every request, so each test asserts what the client really sends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("azure.synapse.spark")  # the functions extra (main venv); not in the floor venv
from azure.core.credentials import AccessToken  # noqa: E402

from ingestion.core.config import LakeSettings, Settings, SubmitSettings, SynapseSettings
from ingestion.core.reasons import RunCode
from ingestion.remote import RemoteRunError, RemoteRuns, RemoteRunSubmitter, poll_open
from ingestion.remote.synapse import SynapseService
from ingestion.testing.loopback import json_api

SECRET = "secret-token-value"
POOL = "hwpool"
BATCHES = f"/livyApi/versions/2019-11-01-preview/sparkPools/{POOL}/batches"
LAUNCHER = "abfss://packages@lake1.dfs.core.windows.net/headwater/jobs/launch.py"
DELTA = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# What the driver and executors get as environment (the lake, the environment; never a secret).
CLUSTER_ENV = {
    "HEADWATER_ENV": "dev",
    "HEADWATER_LAKE__ACCOUNT": "lake1",
    "HEADWATER_LAKE__KIND": "azure",
    **{
        f"HEADWATER_LAKE__CONTAINERS__{z.upper()}": z
        for z in ("bronze", "gold", "landing", "quarantine", "silver", "system")
    },
}


class FakeCredential:
    """A TokenCredential handing out one bearer token, recording the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(SECRET, int(time.time()) + 24 * 3600)


@dataclass
class Step:
    """One answer of a batch's GET: Livy's state, Synapse's result, its log, its errors."""

    state: str
    result: str | None = "Uncertain"
    log: list[str] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class LivyApi:
    """A Synapse Spark pool's Livy batch API on loopback: batches, their scripted steps."""

    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=lambda: [Step("not_started")])  # each GET pops one
    post_delay: float = 0.0
    reject_auth: bool = False
    fail_status: list[int] = field(default_factory=list)  # answers to send first, one per request
    next_id: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, *, tags: dict[str, str] | None = None, steps: list[Step] | None = None) -> int:
        with self.lock:
            batch_id = self.next_id
            self.next_id += 1
            self.batches[batch_id] = {
                "name": name,
                "tags": tags or {},
                "body": None,
                "steps": list(steps or self.steps),
            }
        return batch_id

    def view(self, batch_id: int, *, detailed: bool, step: Step | None = None) -> dict[str, Any]:
        batch = self.batches[batch_id]
        step = step or batch["steps"][0]
        plain = {
            "id": batch_id,
            "name": batch["name"],
            "appId": f"application_1700000000000_{batch_id:04d}",
            "appInfo": {"driverLogUrl": None, "sparkUiUrl": None},
            "state": step.state,
            "log": step.log,
        }
        if not detailed:  # plain Livy
            return plain
        return {
            **plain,
            "livyInfo": {"currentState": step.state, "jobCreationRequest": batch["body"]},
            "workspaceName": "hwworkspace",
            "sparkPoolName": POOL,
            "submitterName": "hw-func",
            "submitterId": "00000000-0000-0000-0000-000000000001",
            "jobType": "SparkBatch",
            "result": step.result,
            "schedulerInfo": {"submittedAt": "2024-05-01T10:00:00Z", "currentState": "Scheduled"},
            "pluginInfo": {"currentState": "Monitoring"},
            "errorInfo": step.errors,
            "tags": batch["tags"],
        }

    def handle(
        self, method: str, path: str, query: dict[str, str], body: Any, headers: dict[str, str]
    ) -> Any:
        with self.lock:
            self.requests.append(
                {"method": method, "path": path, "query": query, "headers": headers, "body": body}
            )
            failing = self.fail_status.pop(0) if self.fail_status else None
        if self.reject_auth or headers.get("Authorization") != f"Bearer {SECRET}":
            # A careless service might echo what it refused: the client must not repeat it.
            said = headers.get("Authorization", "")
            return 401, {"code": "AuthenticationFailed", "message": f"Token Authentication failed: {said}"}
        if failing:
            return failing, {"code": "ServiceUnavailable", "message": "the pool is busy"}
        detailed = query.get("detailed") == "true"
        if (method, path) == ("POST", BATCHES):
            batch_id = self.add(body["name"], tags=body.get("tags"))
            self.batches[batch_id]["body"] = body
            time.sleep(self.post_delay)  # the batch exists; the answer is late
            return 200, self.view(batch_id, detailed=detailed)
        if (method, path) == ("GET", BATCHES):
            start, size = int(query.get("from", 0)), int(query.get("size", 20))
            ids = sorted(self.batches)[start : start + min(size, 20)]
            return 200, {
                "from": start,
                "total": len(self.batches),
                "sessions": [self.view(i, detailed=detailed) for i in ids],
            }
        if method == "GET" and path.startswith(BATCHES + "/"):
            batch_id = int(path.rsplit("/", 1)[1])
            if batch_id not in self.batches:
                return 404, {"code": "NotFound", "message": f"batch {batch_id} not found"}
            steps = self.batches[batch_id]["steps"]
            step = steps.pop(0) if len(steps) > 1 else steps[0]
            return 200, self.view(batch_id, detailed=detailed, step=step)
        return 404, {"code": "NotFound", "message": f"no {method} {path}"}

    def of(self, method: str, path: str = BATCHES) -> list[dict[str, Any]]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]


@pytest.fixture
def livy() -> Iterator[LivyApi]:
    api = LivyApi()

    with json_api(lambda *request: api.handle(*request)) as url:  # a test may swap api.handle
        api.url = url  # type: ignore[attr-defined]
        yield api


def _settings(api: LivyApi) -> Settings:
    return Settings(
        lake=LakeSettings(kind="azure", account="lake1"),
        submit=SubmitSettings(
            kind="synapse",
            synapse=SynapseSettings(
                endpoint=api.url,
                pool=POOL,
                launcher=LAUNCHER,
                driver_memory="14g",
                driver_cores=2,
                executor_memory="28g",
                executor_cores=4,
                executors=3,
            ),
        ),
    )


def _service(
    api: LivyApi, credential: FakeCredential | None = None, **options: Any
) -> tuple[SynapseService, FakeCredential]:
    credential = credential or FakeCredential()
    options.setdefault("timeout", 5.0)
    service = SynapseService(_settings(api), credential=credential, enforce_https=False, **options)
    return service, credential


def _assert_authorized(api: LivyApi) -> None:
    assert api.requests
    assert {r["headers"].get("Authorization") for r in api.requests} == {f"Bearer {SECRET}"}


def test_a_run_is_one_livy_batch_of_the_launcher_and_its_json_result_is_read(livy, lake):
    livy.steps = [
        Step("not_started"),
        Step("starting"),
        Step("running", log=["stdout: ", "ingesting orders"]),
        Step(
            "success",
            "Succeeded",
            log=[
                "stdout: ",
                "ingesting orders",
                '{"status": "succeeded", "job": "pipeline", "rows": 3}',
                "\nstderr: ",
                "24/05/01 10:01:00 INFO ShutdownHookManager: Shutdown hook called",
            ],
        ),
    ]
    service, credential = _service(livy)
    submitter = RemoteRunSubmitter(lake, service, environment="dev", clock=lambda: 100.0)

    summary = submitter.submit("orders")
    assert summary == {
        "status": "submitted",
        "dataset": "orders",
        "target": "synapse",
        "run_id": "0",
        "batch": 1,
        "already_open": False,
    }
    # First the pool's batches are listed (detailed, to see names and tags), then one is created.
    assert [(r["method"], r["path"], r["query"]) for r in livy.requests] == [
        ("GET", BATCHES, {"from": "0", "size": "20", "detailed": "true"}),
        ("POST", BATCHES, {"detailed": "true"}),
    ]
    [post] = livy.of("POST")
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["body"] == {
        "name": "hw-dev-orders-pipeline-b1",
        "tags": {"headwater_token": "hw-dev-orders-pipeline-b1"},
        "file": LAUNCHER,
        "args": ["pipeline", "--dataset", "orders"],
        "conf": {
            **DELTA,
            **{
                f"spark.{where}.{k}": v
                for where in ("yarn.appMasterEnv", "executorEnv")
                for k, v in CLUSTER_ENV.items()
            },
        },
        "driverMemory": "14g",
        "driverCores": 2,
        "executorMemory": "28g",
        "executorCores": 4,
        "numExecutors": 3,
    }
    assert credential.scopes and set(credential.scopes) == {("https://dev.azuresynapse.net/.default",)}

    # While the batch is open, a trigger submits nothing.
    assert submitter.submit("orders")["already_open"] is True and len(livy.of("POST")) == 1
    assert service.status("0").state == "pending"  # not_started
    assert poll_open(lake, service) == []  # starting
    assert RemoteRuns(lake).load("orders").current.state == "pending"
    assert poll_open(lake, service) == []  # running
    assert RemoteRuns(lake).load("orders").current.state == "running"
    [closed] = poll_open(lake, service, clock=lambda: 200.0)
    assert (closed.state, closed.detail, closed.message, closed.closed_at) == (
        "succeeded",
        "success/Succeeded",
        None,
        200.0,
    )
    assert closed.result == {"status": "succeeded", "job": "pipeline", "rows": 3}
    gets = livy.of("GET", f"{BATCHES}/0")
    assert len(gets) == 4 and {json.dumps(r["query"]) for r in gets} == {'{"detailed": "true"}'}
    _assert_authorized(livy)
    assert RemoteRuns(lake).load("orders").current is None


def test_a_failed_batch_is_failed_with_its_errors_and_log_surfaced(livy):
    service, _ = _service(livy)
    livy.steps = [
        Step(
            "dead",
            "Failed",
            log=[
                "stdout: ",
                "Traceback (most recent call last):",
                '  File "jobs/launch.py", line 52, in <module>',
                "ValueError: contract orders: column 'amount' is not a decimal",
                "\nstderr: ",
                "24/05/01 10:02:00 INFO ShutdownHookManager: Shutdown hook called",
            ],
            errors=[
                {
                    "message": "Livy batch failed: the application exited with code 1",
                    "errorCode": "SPARK_JOB_FAILED",
                    "source": "User",
                }
            ],
        )
    ]
    run_id = service.start("orders", job="pipeline", token="hw-dev-orders-pipeline-b1")

    status = service.status(run_id)
    assert (status.state, status.detail, status.result) == ("failed", "dead/Failed", None)
    assert status.message == (
        "SPARK_JOB_FAILED: Livy batch failed: the application exited with code 1; "
        "ValueError: contract orders: column 'amount' is not a decimal"
    )


def test_a_failed_job_reports_its_own_error_first(livy):
    service, _ = _service(livy)
    livy.steps = [
        Step(
            "error",
            "Failed",
            log=['{"status": "failed", "code": "contract", "error": "contract: bad orders"}'],
        )
    ]
    status = service.status(str(livy.add("hw-dev-orders-pipeline-b1")))
    assert (status.state, status.detail) == ("failed", "error/Failed")
    assert status.result == {"status": "failed", "code": "contract", "error": "contract: bad orders"}
    assert status.message == "contract: bad orders"


def test_a_create_that_times_out_is_transient_and_its_retry_returns_the_same_batch(livy):
    service, _ = _service(livy, timeout=0.3)
    livy.post_delay = 1.5  # longer than the client's read timeout: the batch exists, its answer is late
    token = "hw-dev-orders-pipeline-b1"

    began = time.monotonic()
    with pytest.raises(RemoteRunError) as caught:
        service.start("orders", job="pipeline", token=token)
    assert time.monotonic() - began < 1.4  # it gave up after its timeout, not the server's delay
    err = caught.value
    assert err.transient is True and err.status is None and err.target == "synapse"
    assert "timed out" in str(err) and SECRET not in str(err)
    assert len(livy.of("POST")) == 1  # the create request is never retried by the client

    livy.post_delay = 0.0
    assert service.start("orders", job="pipeline", token=token) == "0"
    assert len(livy.of("POST")) == 1 and list(livy.batches) == [0]


def test_a_read_that_times_out_is_transient(livy):
    service, _ = _service(livy, timeout=0.3, retries=0)
    batch_id = livy.add("hw-dev-orders-pipeline-b1")
    original = livy.handle

    def slow(*args: Any) -> Any:
        time.sleep(1.0)
        return original(*args)

    livy.handle = slow  # type: ignore[method-assign]
    with pytest.raises(RemoteRunError) as caught:
        service.status(str(batch_id))
    assert caught.value.transient is True and "timed out" in str(caught.value)


def test_a_retried_submission_with_the_same_token_starts_no_second_batch(livy):
    service, _ = _service(livy)
    # 25 other batches first: the token's batch is on the second page of the listing.
    for i in range(25):
        livy.add(f"hw-dev-other{i}-pipeline-b1", tags={"headwater_token": f"hw-dev-other{i}-pipeline-b1"})
    token = "hw-dev-orders-pipeline-b1"

    first = service.start("orders", job="pipeline", token=token)
    assert first == "25"
    livy.requests.clear()
    second = service.start("orders", job="pipeline", token=token)
    assert second == first
    assert livy.of("POST") == []
    assert [r["query"] for r in livy.requests] == [
        {"from": "0", "size": "20", "detailed": "true"},
        {"from": "20", "size": "20", "detailed": "true"},
    ]
    assert [b["name"] for b in livy.batches.values()].count(token) == 1


@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("hw-dev-orders-pipeline-b1", {}),  # named after the token, its tags lost
        ("renamed-by-someone", {"headwater_token": "hw-dev-orders-pipeline-b1"}),  # only tagged
    ],
)
def test_a_batch_named_or_tagged_with_the_token_counts_as_its_run(livy, name, tags):
    service, _ = _service(livy)
    livy.add("hw-dev-orders-pipeline-b0", tags={"headwater_token": "hw-dev-orders-pipeline-b0"})
    found = livy.add(name, tags=tags)
    assert service.start("orders", job="pipeline", token="hw-dev-orders-pipeline-b1") == str(found)
    assert livy.of("POST") == []


def test_a_credential_without_a_token_is_an_auth_error(livy):
    from azure.core.exceptions import ClientAuthenticationError

    class NoIdentity(FakeCredential):
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            raise ClientAuthenticationError("ManagedIdentityCredential: no managed identity endpoint")

    service, _ = _service(livy, credential=NoIdentity())
    with pytest.raises(RemoteRunError) as caught:
        service.status("0")
    assert (caught.value.code, caught.value.status, caught.value.transient) == (RunCode.AUTH, None, False)
    assert "no token for Synapse" in str(caught.value)
    assert livy.requests == []  # nothing was sent without a token


def test_a_batch_killed_remotely_is_cancelled(livy, lake):
    livy.steps = [
        Step("running"),
        Step(
            "killed",
            "Cancelled",
            errors=[{"message": "The batch was cancelled by user admin@contoso.com", "source": "User"}],
        ),
    ]
    service, _ = _service(livy)
    submitter = RemoteRunSubmitter(lake, service, environment="dev")
    run_id = submitter.submit("orders")["run_id"]
    assert service.status(run_id).state == "running"

    status = service.status(run_id)
    assert (status.state, status.detail) == ("cancelled", "killed/Cancelled")
    assert status.message == "The batch was cancelled by user admin@contoso.com"
    [closed] = poll_open(lake, service)
    assert closed.state == "failed"  # the registry closes a run lost remotely as failed
    assert closed.message == "cancelled remotely: The batch was cancelled by user admin@contoso.com"


def test_an_authentication_failure_is_clear_and_never_holds_the_token(livy, caplog):
    caplog.set_level(logging.DEBUG)
    livy.reject_auth = True
    service, _ = _service(livy)

    with pytest.raises(RemoteRunError) as caught:
        service.start("orders", job="pipeline", token="hw-dev-orders-pipeline-b1")
    err = caught.value
    assert (err.status, err.code, err.transient) == (401, RunCode.AUTH, False)
    message = str(err)
    assert message.startswith("synapse: listing the pool's batches: not authorized (401")
    assert "Synapse Compute Operator" in message and "AuthenticationFailed" in message
    assert SECRET not in message
    # The server did receive the token (the refusal is the server's, not a missing header)...
    assert livy.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert len(livy.requests) == 1  # ...and a 401 is not retried
    assert SECRET not in caplog.text

    with pytest.raises(RemoteRunError) as caught:
        service.status("0")
    assert caught.value.status == 401 and SECRET not in str(caught.value)


def test_throttling_and_server_errors_are_transient_and_reads_are_retried(livy):
    service, _ = _service(livy, retries=1)
    batch_id = livy.add("hw-dev-orders-pipeline-b1", steps=[Step("running")])
    livy.fail_status = [503, 503]
    with pytest.raises(RemoteRunError) as caught:
        service.status(str(batch_id))
    assert (caught.value.status, caught.value.transient) == (503, True)
    assert "ServiceUnavailable: the pool is busy" in str(caught.value)
    assert len(livy.of("GET", f"{BATCHES}/{batch_id}")) == 2  # one retry, as configured

    livy.fail_status = [429]
    assert service.status(str(batch_id)).state == "running"  # the retry passed


def test_a_batch_the_pool_no_longer_knows_is_lost_so_its_run_closes(livy, lake):
    service, _ = _service(livy)
    status = service.status("41")
    assert (status.state, status.detail, status.message) == (
        "lost",
        "not found",
        f"batch 41 is gone from pool {POOL}",
    )
    # Through the registry: closed as failed, so the next submission is a new batch (no dataset blocked).
    submitter = RemoteRunSubmitter(lake, service, environment="dev")
    submitter.submit("orders")
    livy.batches.clear()
    [closed] = poll_open(lake, service)
    assert (closed.state, closed.message) == ("failed", f"lost remotely: batch 0 is gone from pool {POOL}")
    assert submitter.submit("orders")["already_open"] is False and len(livy.of("POST")) == 2


def test_plain_http_is_refused_unless_a_test_allows_it(livy):
    with pytest.raises(RemoteRunError, match="not https"):
        SynapseService(_settings(livy), credential=FakeCredential())


@pytest.mark.parametrize(
    ("state", "result", "expected"),
    [
        ("not_started", "Uncertain", "pending"),
        ("starting", "Uncertain", "pending"),
        ("running", "Uncertain", "running"),
        ("idle", "Uncertain", "running"),
        ("busy", "Uncertain", "running"),
        ("recovering", "Uncertain", "running"),
        ("shutting_down", "Uncertain", "running"),
        ("success", "Succeeded", "succeeded"),
        ("error", "Failed", "failed"),
        ("dead", "Failed", "failed"),
        ("killed", "Cancelled", "cancelled"),
        # Synapse's result decides once the state is terminal.
        ("success", "Failed", "failed"),
        ("success", "Cancelled", "cancelled"),
        ("success", "Uncertain", "lost"),
        ("dead", "Cancelled", "cancelled"),
        ("dead", "Uncertain", "lost"),
        ("killed", "Failed", "failed"),
        # No result (plain Livy): the state alone.
        ("success", None, "succeeded"),
        ("dead", None, "failed"),
        ("killed", None, "cancelled"),
    ],
)
def test_every_livy_state_maps(livy, state, result, expected):
    service, _ = _service(livy)
    batch_id = livy.add("hw-dev-orders-pipeline-b1", steps=[Step(state, result)])
    status = service.status(str(batch_id))
    assert status.state == expected
    assert status.detail == (f"{state}/{result}" if result else state)
    assert (status.message is None) == (expected in ("pending", "running", "succeeded"))
    assert livy.requests[-1]["path"] == f"{BATCHES}/{batch_id}"
    _assert_authorized(livy)


def test_a_create_answered_503_is_transient_and_never_retried_by_the_client(livy):
    # azure-core would retry a POST answered 500/503/504; a retried create could start a second
    # batch behind the token check, so the create request goes out once.
    service, _ = _service(livy, retries=3)
    livy.fail_status = [0, 503]  # the listing passes; the create is refused
    with pytest.raises(RemoteRunError) as caught:
        service.start("orders", job="pipeline", token="hw-dev-orders-pipeline-b1")
    assert (caught.value.status, caught.value.transient) == (503, True)
    assert len(livy.of("POST")) == 1 and livy.batches == {}


def test_an_answer_that_is_no_batch_is_transient(livy):
    service, _ = _service(livy)
    livy.handle = lambda *args: (200, {"id": "not-a-number", "state": 7})  # type: ignore[method-assign]
    with pytest.raises(RemoteRunError) as caught:
        service.status("0")
    assert caught.value.transient is True and "no Livy batch JSON" in str(caught.value)
