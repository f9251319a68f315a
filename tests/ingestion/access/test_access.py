"""``headwater lake apply-access`` at the SDK's HTTP boundary.

The real ``azure-storage-file-datalake`` pipeline runs unchanged; only its transport is replaced
by :class:`FakeAdls`, which records every request and answers as the ADLS Gen2 REST API does
over an in-memory tree of directories and files, each with its ACL:

* ``PATCH /<fs>/<path>?action=setAccessControlRecursive&mode=modify&maxRecords=N[&continuation=T]``
  (``x-ms-acl``): merges the entries into up to N paths (default entries on directories only),
  answers ``{"directoriesSuccessful", "filesSuccessful", "failureCount", "failedEntries"}`` and
  ``x-ms-continuation`` while paths remain;
* ``HEAD /<fs>/<path>?action=getAccessControl``: ``x-ms-acl``, ``x-ms-owner``, ``x-ms-group``,
  ``x-ms-permissions`` and the ETag;
* ``PATCH /<fs>/<path>?action=setAccessControl`` (``x-ms-acl``, ``If-Match``): replaces the ACL;
* ``PUT /<fs>/<path>?resource=directory``: creates a directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

pytest.importorskip("azure.storage.filedatalake")

from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import ServiceRequestError  # noqa: E402
from azure.core.pipeline.transport import HttpResponse, HttpTransport  # noqa: E402
from azure.core.utils import case_insensitive_dict  # noqa: E402
from azure.storage.filedatalake import DataLakeServiceClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from ingestion.access import (  # noqa: E402
    AccessPlanError,
    DatasetFolders,
    apply_plan,
    dataset_folders,
    landing_folder,
    plan_access,
)
from ingestion.access import apply as apply_module  # noqa: E402
from ingestion.contracts import Catalog  # noqa: E402
from ingestion.core.config import Settings, get_settings  # noqa: E402
from ingestion.core.errors import ConfigError  # noqa: E402

ACCOUNT = "acct"
ENDPOINT = f"https://{ACCOUNT}.dfs.core.windows.net"


def oid(n: int) -> str:
    return f"{n:08x}-1111-4222-8333-444444444444"


SPARK, FUNCS, DROP, AML, ANALYSTS, SHOP = (oid(n) for n in range(1, 7))
DIR_ACL = "user::rwx,group::r-x,other::---"
FILE_ACL = "user::rw-,group::r--,other::---"
DENIED = "This request is not authorized to perform this operation using this permission."


# --- the fake service ------------------------------------------------------------------------------
@dataclass
class Node:
    is_dir: bool
    acl: list[str]
    version: int = 1

    @property
    def etag(self) -> str:
        return f'"0x8DC{self.version:013X}"'


@dataclass
class Sent:
    method: str
    url: str
    container: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    answered_token: str | None = None  # the x-ms-continuation the service answered with

    @property
    def action(self) -> str:
        return self.query.get("action") or self.query.get("resource", "")

    @property
    def acl(self) -> str | None:
        return self.headers.get("x-ms-acl")


class Answer(HttpResponse):
    def __init__(self, request: Any, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        super().__init__(request, None)
        self.status_code = status
        self.reason = {
            200: "OK",
            201: "Created",
            400: "Bad Request",
            404: "Not Found",
            412: "Precondition Failed",
            503: "Service Unavailable",
        }[status]
        self.headers = case_insensitive_dict(
            {"x-ms-request-id": "rid", "x-ms-version": "2025-01-05", **headers}
        )
        self.content_type = self.headers.get("Content-Type")
        self._body = body

    def body(self) -> bytes:
        return self._body


def _modify(acl: list[str], entries: list[str]) -> list[str]:
    """mode=modify: an entry of the same scope, type and qualifier gets the new permissions, others are added."""
    out = list(acl)
    for entry in entries:
        slot = entry.rsplit(":", 1)[0]
        hits = [i for i, e in enumerate(out) if e.rsplit(":", 1)[0] == slot]
        if hits:
            out[hits[0]] = entry
        else:
            out.append(entry)
    return out


class FakeAdls(HttpTransport):
    """Records each request; answers as ADLS Gen2 does, over ``tree`` (container -> path -> node)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.tree: dict[str, dict[str, Node]] = {}
        self.fail: dict[str, str] = {}  # "<container>/<path>" -> the error the service gives for it
        self.break_on: Callable[[Sent], bool] | None = None  # raise a connection error instead
        self.busy_on: Callable[[Sent], bool] | None = None  # answer 503 ServerBusy instead
        self.tokens: dict[str, int] = {}  # continuation token -> offset into the subtree
        self.issued: list[str] = []

    # the lake ---------------------------------------------------------------------------------
    def add(self, container: str, *paths: str, acl: str | None = None) -> None:
        """Add files (``a/b.csv``) or directories (``a/``) and every directory above them."""
        fs = self.tree.setdefault(container, {"": Node(True, DIR_ACL.split(","))})
        for p in paths:
            parts = p.strip("/").split("/")
            for i in range(1, len(parts)):
                fs.setdefault("/".join(parts[:i]), Node(True, DIR_ACL.split(",")))
            is_dir = p.endswith("/")
            fs.setdefault(p.strip("/"), Node(is_dir, (DIR_ACL if is_dir else FILE_ACL).split(",")))
        if acl is not None:
            fs[""].acl = acl.split(",")

    def acl(self, container: str, path: str = "") -> str:
        return ",".join(self.tree[container][path].acl)

    def snapshot(self) -> dict[str, dict[str, str]]:
        return {c: {p: ",".join(n.acl) for p, n in fs.items()} for c, fs in self.tree.items()}

    def requests(self, action: str) -> list[Sent]:
        return [s for s in self.sent if s.action == action]

    # HttpTransport ------------------------------------------------------------------------------
    def __enter__(self) -> FakeAdls:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, request: Any, **kwargs: Any) -> Answer:
        url = urlsplit(request.url)
        assert f"{url.scheme}://{url.netloc}" == ENDPOINT
        container, _, path = unquote(url.path).lstrip("/").partition("/")
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        sent = Sent(request.method, request.url, container, path.strip("/"), query, dict(request.headers))
        self.sent.append(sent)
        assert request.headers["Authorization"] == "Bearer test-token"
        if self.break_on is not None and self.break_on(sent):
            raise ServiceRequestError("Connection reset by peer")
        if self.busy_on is not None and self.busy_on(sent):
            return self._error(
                request, 503, "ServerBusy", "The server is currently unable to receive requests."
            )
        node = self.tree.get(container, {}).get(sent.path)
        if sent.method == "PUT" and query.get("resource") == "directory":
            self.add(container, sent.path + "/")
            return Answer(request, 201, {"ETag": self.tree[container][sent.path].etag})
        if node is None:
            return self._error(request, 404, "PathNotFound", "The specified path does not exist.")
        if sent.method == "PATCH" and sent.action == "setAccessControlRecursive":
            return self._recursive(request, sent)
        if sent.method == "HEAD" and sent.action == "getAccessControl":
            return Answer(
                request,
                200,
                {
                    "x-ms-acl": ",".join(node.acl),
                    "x-ms-owner": "$superuser",
                    "x-ms-group": "$superuser",
                    "x-ms-permissions": "rwxr-x---",
                    "ETag": node.etag,
                },
            )
        if sent.method == "PATCH" and sent.action == "setAccessControl":
            if request.headers.get("If-Match") not in (None, node.etag):
                return self._error(request, 412, "ConditionNotMet", "The condition specified is not met.")
            node.acl = request.headers["x-ms-acl"].split(",")
            node.version += 1
            return Answer(request, 200, {"ETag": node.etag})
        return self._error(request, 400, "UnsupportedOperation", f"{sent.method} {sent.action}")

    def _error(self, request: Any, status: int, code: str, message: str) -> Answer:
        body = (
            b""
            if request.method == "HEAD"
            else json.dumps({"error": {"code": code, "message": message}}).encode()
        )
        return Answer(request, status, {"x-ms-error-code": code, "Content-Type": "application/json"}, body)

    def _recursive(self, request: Any, sent: Sent) -> Answer:
        if sent.query.get("mode") != "modify":
            return self._error(request, 400, "InvalidQueryParameterValue", "only mode=modify is modelled")
        fs = self.tree[sent.container]
        under = sorted(p for p in fs if p != sent.path and (sent.path == "" or p.startswith(sent.path + "/")))
        items = [sent.path, *under]
        token = sent.query.get("continuation")
        if token is not None and token not in self.tokens:
            return self._error(request, 400, "InvalidContinuationToken", token)
        start = self.tokens[token] if token is not None else 0
        batch = items[start : start + int(sent.query.get("maxRecords", "2000"))]
        entries = request.headers["x-ms-acl"].split(",")
        dirs = files = 0
        failed = []
        for p in batch:
            node = fs[p]
            key = f"{sent.container}/{p}"
            if key in self.fail:
                failed.append(
                    {
                        "name": p,
                        "type": "DIRECTORY" if node.is_dir else "FILE",
                        "errorMessage": self.fail[key],
                    }
                )
                continue
            node.acl = _modify(node.acl, [e for e in entries if node.is_dir or not e.startswith("default:")])
            node.version += 1
            dirs, files = dirs + node.is_dir, files + (not node.is_dir)
        headers = {"Content-Type": "application/json"}
        if start + len(batch) < len(items):
            nxt = f"VBbB{len(self.issued) + 1}/ZmlsZXM+=="  # opaque, and needs URL quoting
            self.tokens[nxt] = start + len(batch)
            self.issued.append(nxt)
            headers["x-ms-continuation"] = nxt
            sent.answered_token = nxt
        body = {
            "directoriesSuccessful": dirs,
            "filesSuccessful": files,
            "failureCount": len(failed),
            "failedEntries": failed,
        }
        return Answer(request, 200, headers, json.dumps(body).encode())


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("test-token", int(time.time()) + 3600)


def service(transport: FakeAdls) -> DataLakeServiceClient:
    # retry_total=0: a connection error reaches the SDK's recursive loop at once (in production
    # the retry policy tries again first).
    return DataLakeServiceClient(ENDPOINT, credential=FakeCredential(), transport=transport, retry_total=0)


# --- settings ----------------------------------------------------------------------------------
def principal(object_id: str, name: str, kind: str = "group") -> dict[str, str]:
    return {"object_id": object_id, "name": name, "kind": kind}


def settings(access: dict[str, Any] | None = None, **lake: Any) -> Settings:
    default = {
        "landing_writers": [principal(DROP, "shop-drop")],
        "functions": [principal(FUNCS, "func-mi", "user")],
        "spark": [principal(SPARK, "spark-mi", "user")],
        "gold_readers": [principal(AML, "aml")],
        "datasets": {
            "orders": {
                "silver": {"readers": [principal(ANALYSTS, "analysts")]},
                "landing": {"writers": [principal(SHOP, "shop-export")]},
            }
        },
    }
    return Settings(
        lake={"kind": "azure", "account": ACCOUNT, **lake}, access=default if access is None else access
    )


@pytest.fixture
def lake() -> FakeAdls:
    t = FakeAdls()
    t.add("landing", "orders/2024/a.csv", "orders/2024/b.csv")
    t.add("bronze", "orders/_delta_log/00000000000000000000.json")
    t.add(
        "silver",
        "orders/part-0.parquet",
        "orders/part-1.parquet",
        acl="user::rwx,group::r-x,mask::r--,other::---",
    )
    t.add("gold")
    t.add("quarantine")
    t.add("system", "ledger/orders.jsonl")
    return t


def recursive(*entries: str) -> str:
    """A recursive step's x-ms-acl: the access entries, then the same as default entries."""
    return ",".join([*entries, *(f"default:{e}" for e in entries)])


# --- requests and ACLs ----------------------------------------------------------------------------
def test_apply_sends_each_acl_change_as_the_rest_api_takes_it(lake: FakeAdls, tmp_path):
    plan = plan_access(settings())
    result = apply_plan(plan, service=service(lake), state_path=tmp_path / "state.json", batch_size=100)

    got = [(s.method, s.url, s.acl) for s in lake.sent]
    landing_root = recursive(f"group:{DROP}:rwx", f"user:{FUNCS}:r-x", f"user:{SPARK}:r-x")
    rec = "action=setAccessControlRecursive&mode=modify&forceFlag=true&maxRecords=100"
    assert got[:2] == [
        # the container root: the SDK's root directory client is path "/", hence the "//"
        ("PATCH", f"{ENDPOINT}/landing//?{rec}", landing_root),
        ("PATCH", f"{ENDPOINT}/landing/orders?{rec}", recursive(f"group:{SHOP}:rwx")),
    ]
    assert got[2] == ("HEAD", f"{ENDPOINT}/landing//?action=getAccessControl&upn=false", None)
    # --x for the landing folder's writer on the container root, merged into what is there
    assert got[3] == (
        "PATCH",
        f"{ENDPOINT}/landing//?action=setAccessControl",
        f"{DIR_ACL},{landing_root},group:{SHOP}:--x",
    )
    # conditional on the ETag the HEAD returned (the root's ACL changed once, in the first step)
    assert lake.sent[3].headers["If-Match"] == '"0x8DC0000000000002"'

    spark_rwx = recursive(f"user:{SPARK}:rwx")
    assert got[4:] == [
        ("PATCH", f"{ENDPOINT}/bronze//?{rec}", spark_rwx),
        ("PATCH", f"{ENDPOINT}/silver//?{rec}", spark_rwx),
        ("PATCH", f"{ENDPOINT}/silver/orders?{rec}", recursive(f"group:{ANALYSTS}:r-x")),
        ("HEAD", f"{ENDPOINT}/silver//?action=getAccessControl&upn=false", None),
        # the mask is widened with the new bits (r-- -> r-x), or --x would be masked out
        (
            "PATCH",
            f"{ENDPOINT}/silver//?action=setAccessControl",
            f"user::rwx,group::r-x,mask::r-x,other::---,{spark_rwx},group:{ANALYSTS}:--x",
        ),
        ("PATCH", f"{ENDPOINT}/gold//?{rec}", recursive(f"user:{SPARK}:rwx", f"group:{AML}:r-x")),
        ("PATCH", f"{ENDPOINT}/quarantine//?{rec}", spark_rwx),
        ("PATCH", f"{ENDPOINT}/system//?{rec}", recursive(f"user:{FUNCS}:rwx", f"user:{SPARK}:rwx")),
    ]

    # what the lake holds now: default entries on directories only, access entries everywhere
    assert (
        lake.acl("landing", "orders/2024/a.csv")
        == f"{FILE_ACL},{landing_root.split(',default:')[0]},group:{SHOP}:rwx"
    )
    assert lake.acl("landing", "orders/2024") == f"{DIR_ACL},{landing_root},{recursive(f'group:{SHOP}:rwx')}"
    assert lake.acl("silver", "orders/part-1.parquet") == f"{FILE_ACL},user:{SPARK}:rwx,group:{ANALYSTS}:r-x"

    assert result.ok
    by_where = {(s.kind, s.container, s.path): s for s in result.steps}
    landing = by_where[("recursive", "landing", "")]
    assert (landing.status, landing.directories, landing.files, landing.done) == ("applied", 3, 2, True)
    assert by_where[("traverse", "landing", "")].changed == [f"group:{SHOP}:--x"]
    assert by_where[("recursive", "silver", "orders")].files == 2
    assert not (tmp_path / "state.json").exists()  # every step done: nothing to resume


def test_recursive_batches_follow_the_continuation_tokens(lake: FakeAdls):
    lake.add("silver", *(f"orders/part-{i}.parquet" for i in range(2, 5)))  # root, orders/, 5 files
    plan = plan_access(settings({"spark": [principal(SPARK, "spark-mi", "user")]}))
    seen: list[tuple[str, int, int]] = []
    result = apply_plan(
        plan,
        service=service(lake),
        batch_size=2,
        progress=lambda step, res: seen.append((res.where, res.directories, res.files)),
    )

    silver = [s for s in lake.requests("setAccessControlRecursive") if s.container == "silver"]
    assert [s.query.get("maxRecords") for s in silver] == ["2", "2", "2", "2"]
    # each request after the first carries the token the service gave for the one before
    assert [s.query.get("continuation") for s in silver] == [None, *(s.answered_token for s in silver[:-1])]
    assert silver[-1].answered_token is None and len(set(lake.issued)) == len(lake.issued)
    assert all("continuation=VBbB" in s.url and "%2F" in s.url and "%3D%3D" in s.url for s in silver[1:])
    step = next(s for s in result.steps if s.container == "silver")
    assert (step.directories, step.files, step.failure_count, step.status) == (2, 5, 0, "applied")
    # the running counts after each of the 4 batches, then the step's end
    assert [x for x in seen if x[0] == "silver/"] == [
        ("silver/", 2, 0),
        ("silver/", 2, 2),
        ("silver/", 2, 4),
        ("silver/", 2, 5),
        ("silver/", 2, 5),
    ]
    assert all(f"user:{SPARK}:rwx" in lake.acl("silver", p) for p in lake.tree["silver"])


def test_partial_failures_are_reported_and_the_rest_is_applied(lake: FakeAdls, tmp_path):
    lake.add("silver", *(f"orders/part-{i}.parquet" for i in range(2, 5)))
    lake.fail["silver/orders/part-1.parquet"] = DENIED
    plan = plan_access(settings({"spark": [principal(SPARK, "spark-mi", "user")]}))
    state = tmp_path / "state.json"
    result = apply_plan(plan, service=service(lake), batch_size=2, state_path=state)

    step = next(s for s in result.steps if s.container == "silver")
    assert (step.status, step.done, step.failure_count, step.directories, step.files) == (
        "failed",
        False,
        1,
        2,
        4,
    )
    assert [(f.name, f.is_directory, f.message) for f in step.failures] == [
        ("orders/part-1.parquet", False, DENIED)
    ]
    assert all(s.query["forceFlag"] == "true" for s in lake.requests("setAccessControlRecursive"))
    # the batches after the failing one were still sent (continue_on_failure)
    assert len([s for s in lake.requests("setAccessControlRecursive") if s.container == "silver"]) == 4
    assert lake.acl("silver", "orders/part-1.parquet") == FILE_ACL
    assert f"user:{SPARK}:rwx" in lake.acl("silver", "orders/part-4.parquet")
    assert not result.ok
    # the state keeps the other steps done and the failed one to do again
    saved = json.loads(state.read_text())["steps"]
    assert saved["recursive:silver/"]["done"] is False and saved["recursive:bronze/"]["done"] is True


def test_a_fatal_error_mid_way_resumes_from_the_stored_token(lake: FakeAdls, tmp_path):
    lake.add("silver", *(f"orders/part-{i}.parquet" for i in range(2, 5)))
    plan = plan_access(settings({"spark": [principal(SPARK, "spark-mi", "user")]}))
    state = tmp_path / "state.json"
    calls: list[Sent] = []

    def second_silver_batch(sent: Sent) -> bool:
        if sent.container == "silver" and sent.action == "setAccessControlRecursive":
            calls.append(sent)
            return len(calls) == 2
        return False

    lake.break_on = second_silver_batch
    first = apply_plan(plan, service=service(lake), batch_size=2, state_path=state)

    statuses = [(s.container, s.status) for s in first.steps]
    assert statuses == [
        ("landing", "applied"),
        ("bronze", "applied"),
        ("silver", "stopped"),
        ("gold", "not_run"),
        ("quarantine", "not_run"),
        ("system", "not_run"),
    ]
    cut = first.steps[2]
    token = calls[0].answered_token
    assert token is not None and calls[1].query["continuation"] == token  # the batch that broke
    assert cut.continuation == token and "Connection reset by peer" in (cut.error or "")
    assert (cut.directories, cut.files) == (2, 0)  # the first batch: the root and orders/
    saved = json.loads(state.read_text())["steps"]
    assert saved["recursive:silver/"] == {
        "acl": recursive(f"user:{SPARK}:rwx"),
        "continuation": token,
        "directories": 2,
        "done": False,
        "failure_count": 0,
        "files": 0,
    }

    lake.break_on = None
    lake.sent.clear()
    second = apply_plan(plan, service=service(lake), batch_size=2, state_path=state)

    # finished steps send nothing; the cut one goes on from its token
    first_request = lake.sent[0]
    assert (first_request.container, first_request.query.get("continuation")) == ("silver", token)
    assert not [s for s in lake.sent if s.container in ("landing", "bronze")]
    assert [s.status for s in second.steps] == [
        "skipped",
        "skipped",
        "applied",
        "applied",
        "applied",
        "applied",
    ]
    resumed = second.steps[2]
    assert resumed.resumed and (resumed.directories, resumed.files) == (2, 5)  # both applies' counts
    assert all(f"user:{SPARK}:rwx" in lake.acl("silver", p) for p in lake.tree["silver"])
    assert second.ok and not state.exists()


def test_a_service_error_mid_way_resumes_from_the_last_batch_token(lake: FakeAdls, tmp_path):
    # The SDK sets continuation_token on the HttpResponseError, then re-raises a new error
    # without it (process_storage_error): the token the last batch reported stands in.
    lake.add("silver", *(f"orders/part-{i}.parquet" for i in range(2, 5)))
    plan = plan_access(settings({"spark": [principal(SPARK, "spark-mi", "user")]}))
    state = tmp_path / "state.json"
    silver: list[Sent] = []

    def third_silver_batch(sent: Sent) -> bool:
        if sent.container == "silver" and sent.action == "setAccessControlRecursive":
            silver.append(sent)
            return len(silver) == 3
        return False

    lake.busy_on = third_silver_batch
    first = apply_plan(plan, service=service(lake), batch_size=2, state_path=state)
    cut = first.steps[2]
    assert cut.status == "stopped" and "ServerBusy" in (cut.error or "")
    assert cut.continuation == silver[1].answered_token == silver[2].query["continuation"]
    assert (cut.directories, cut.files) == (2, 2)

    lake.busy_on = None
    lake.sent.clear()
    second = apply_plan(plan, service=service(lake), batch_size=2, state_path=state)
    assert lake.sent[0].query.get("continuation") == cut.continuation
    assert (second.steps[2].directories, second.steps[2].files) == (2, 5) and second.ok


def test_a_second_apply_sets_no_parent_acl(lake: FakeAdls):
    plan = plan_access(settings())
    apply_plan(plan, service=service(lake))
    before = lake.snapshot()
    lake.sent.clear()
    again = apply_plan(plan, service=service(lake))

    assert lake.requests("setAccessControl") == []
    assert len(lake.requests("getAccessControl")) == 2  # landing and silver roots, read only
    assert {s.status for s in again.steps if s.kind == "traverse"} == {"unchanged"}
    assert lake.snapshot() == before
    assert again.ok


def test_a_missing_dataset_folder_is_reported_or_created(lake: FakeAdls):
    del (
        lake.tree["silver"]["orders"],
        lake.tree["silver"]["orders/part-0.parquet"],
        lake.tree["silver"]["orders/part-1.parquet"],
    )
    plan = plan_access(settings())
    missing = apply_plan(plan, service=service(lake))
    step = next(s for s in missing.steps if s.container == "silver" and s.path == "orders")
    assert step.status == "missing" and not missing.ok
    assert lake.requests("directory") == []

    lake.sent.clear()
    created = apply_plan(plan, service=service(lake), create_missing=True)
    silver = [
        (s.method, s.url.split("?")[0], s.action)
        for s in lake.sent
        if s.container == "silver" and s.path == "orders"
    ]
    assert silver == [
        ("PATCH", f"{ENDPOINT}/silver/orders", "setAccessControlRecursive"),
        ("PUT", f"{ENDPOINT}/silver/orders", "directory"),
        ("PATCH", f"{ENDPOINT}/silver/orders", "setAccessControlRecursive"),
    ]
    assert created.ok
    assert lake.acl("silver", "orders").endswith(recursive(f"group:{ANALYSTS}:r-x"))


# --- the plan --------------------------------------------------------------------------------
def test_plan_lists_recursive_then_traverse_steps_per_zone():
    plan = plan_access(settings(), folders=dataset_folders(Catalog.discover("schemas")))
    rows = [(s.kind, s.where, len(s.entries)) for s in plan.steps]
    assert rows == [
        ("recursive", "landing/", 6),
        ("recursive", "landing/orders", 2),
        ("traverse", "landing/", 1),
        ("recursive", "bronze/", 2),
        ("recursive", "silver/", 2),
        ("recursive", "silver/orders", 2),
        ("traverse", "silver/", 1),
        ("recursive", "gold/", 4),
        ("recursive", "quarantine/", 2),
        ("recursive", "system/", 4),
    ]
    assert plan.account_url == ENDPOINT
    assert plan.steps[2].principals == ("shop-export (access.datasets.orders.landing.writers[0])",)


def test_plan_reaches_deep_folders_and_names_containers():
    s = settings(
        {
            "spark": [principal(SPARK, "spark-mi", "user")],
            "datasets": {
                "orders": {
                    "landing": {"readers": [principal(ANALYSTS, "a")]},
                    "gold": {"readers": [principal(AML, "aml")]},
                }
            },
        },
        containers={"landing": "raw", "gold": "curated"},
    )
    gold = dataset_folders(Catalog.discover("schemas"))["orders"].gold
    assert gold == "customer_features"
    folders = {"orders": DatasetFolders(landing="shop/eu/orders", gold=gold)}
    plan = plan_access(s, folders=folders)
    traverse = [(st.where, st.acl) for st in plan.steps if st.kind == "traverse"]
    assert traverse == [
        ("raw/", f"group:{ANALYSTS}:--x"),
        ("raw/shop", f"group:{ANALYSTS}:--x"),
        ("raw/shop/eu", f"group:{ANALYSTS}:--x"),
        ("curated/", f"group:{AML}:--x"),
    ]
    assert ("recursive", "curated/customer_features") in [(st.kind, st.where) for st in plan.steps]
    # spark reads landing recursively from the root: it needs no traverse entry anywhere
    assert all(SPARK not in st.acl for st in plan.steps if st.kind == "traverse")


def test_a_grant_covered_by_a_zone_grant_needs_no_traverse():
    aml = principal(AML, "aml")
    s = settings(
        {
            "gold_readers": [aml],
            "datasets": {"orders": {"gold": {"readers": [aml]}, "silver": {"readers": [aml]}}},
        }
    )
    plan = plan_access(s)
    assert [(st.kind, st.where, st.acl) for st in plan.steps] == [
        ("recursive", "silver/orders", recursive(f"group:{AML}:r-x")),
        ("traverse", "silver/", f"group:{AML}:--x"),
        ("recursive", "gold/", recursive(f"group:{AML}:r-x")),
        ("recursive", "gold/orders", recursive(f"group:{AML}:r-x")),  # no traverse: gold/ is r-x already
    ]


def test_landing_folder_is_the_patterns_literal_directories():
    assert landing_folder("orders/**/*.{csv,csv.gz}") == "orders"
    assert landing_folder("shop/eu/*.csv") == "shop/eu"
    assert landing_folder("exports/orders.csv") == "exports"
    assert landing_folder("*.csv") is None
    assert landing_folder("sales-*/x.csv") is None


def test_plan_errors_name_the_setting():
    bad = settings({"gold_readers": [principal(AML, "aml"), principal("not-a-guid", "x")]})
    with pytest.raises(AccessPlanError) as err:
        plan_access(bad)
    assert err.value.problems == [
        "access.gold_readers[1].object_id: 'not-a-guid' is not an object id (a GUID)"
    ]

    zones = settings({"datasets": {"orders": {"platinum": {"readers": [principal(AML, "x")]}, "system": {}}}})
    with pytest.raises(AccessPlanError) as err:
        plan_access(zones)
    assert err.value.problems[0].startswith(
        "access.datasets.orders.platinum: unknown zone 'platinum' (zones: landing,"
    )
    assert err.value.problems[1].startswith(
        "access.datasets.orders.system: the system zone has no folder per dataset"
    )

    unknown = settings({"datasets": {"nope": {"silver": {"readers": [principal(AML, "x")]}}}})
    with pytest.raises(
        AccessPlanError, match=r"access\.datasets\.nope: no dataset named 'nope' \(known: orders\)"
    ):
        plan_access(unknown, folders={"orders": dataset_folders(Catalog.discover("schemas"))["orders"]})

    both = settings(
        {"spark": [principal(AML, "x", "user")], "gold_readers": [principal(AML, "aml", "group")]}
    )
    with pytest.raises(
        AccessPlanError,
        match=r"access\.gold_readers\[0\]\.kind: .* is a group here but a user in access\.spark\[0\]",
    ):
        plan_access(both)


def test_plan_refuses_more_than_32_entries_on_a_path():
    spark = [principal(SPARK, "spark-mi", "user")]
    # 1 + 27 named + the 4 unnamed entries = 32: allowed
    plan_access(
        settings({"spark": spark, "gold_readers": [principal(oid(100 + i), f"r{i}") for i in range(27)]})
    )
    with pytest.raises(AccessPlanError) as err:
        plan_access(
            settings({"spark": spark, "gold_readers": [principal(oid(100 + i), f"r{i}") for i in range(28)]})
        )
    assert err.value.problems == [
        "gold/: 33 access ACL entries (29 named + 4 for owner, owning group, mask and other) exceed the limit of 32 "
        "per path; grant a security group instead of its members",
        "gold/: 33 default ACL entries (29 named + 4 for owner, owning group, mask and other) exceed the limit of 32 "
        "per path; grant a security group instead of its members",
    ]
    # a dataset folder holds the zone root's entries too (the recursive root step reaches it), and
    # the root's traverse entries count on the root
    readers = [principal(oid(200 + i), f"d{i}") for i in range(28)]
    with pytest.raises(AccessPlanError) as err:
        plan_access(settings({"spark": spark, "datasets": {"orders": {"silver": {"readers": readers}}}}))
    assert [p.split(":")[0] + ":" + p.split(":")[1].split("(")[0] for p in err.value.problems] == [
        "silver/: 33 access ACL entries ",
        "silver/orders: 33 access ACL entries ",
        "silver/orders: 33 default ACL entries ",
    ]


def test_a_local_lake_has_no_acls():
    with pytest.raises(ConfigError, match="a local lake has no ACLs to apply"):
        plan_access(Settings(lake={"kind": "local"}))
    with pytest.raises(ConfigError, match="lake.account is not set"):
        plan_access(Settings(lake={"kind": "azure"}))
    sovereign = plan_access(
        Settings(lake={"kind": "azure", "blob_endpoint": "https://acct2.blob.core.chinacloudapi.cn"})
    )
    assert (sovereign.account, sovereign.account_url) == ("acct2", "https://acct2.dfs.core.chinacloudapi.cn")


# --- the command -------------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch, lake: FakeAdls):
    access = settings().access.model_dump()
    monkeypatch.setenv("HEADWATER_LAKE__KIND", "azure")
    monkeypatch.setenv("HEADWATER_LAKE__ACCOUNT", ACCOUNT)
    monkeypatch.setenv("HEADWATER_ACCESS", json.dumps(access))
    monkeypatch.setenv("HEADWATER_SCHEMAS_PACKAGE", "schemas")
    made: list[str] = []

    def factory(url: str) -> DataLakeServiceClient:
        made.append(url)
        return service(lake)

    monkeypatch.setattr(apply_module, "make_service_client", factory)
    get_settings.cache_clear()
    yield made
    get_settings.cache_clear()


def test_cli_without_yes_prints_the_plan_and_sends_nothing(cli_env, lake: FakeAdls):
    from jobs.cli import app

    shown = runner.invoke(app, ["lake", "apply-access"])
    assert shown.exit_code == 0, shown.output
    assert "ACL plan for acct (10 steps)" in shown.output and "nothing applied" in shown.output
    as_json = runner.invoke(app, ["lake", "apply-access", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["applied"] is False
    assert [(s["container"], s["path"], s["recursive"]) for s in data["plan"]["steps"]][:3] == [
        ("landing", "", True),
        ("landing", "orders", True),
        ("landing", "", False),
    ]
    assert data["plan"]["steps"][2]["entries"] == [f"group:{SHOP}:--x"]
    assert lake.sent == [] and cli_env == []


def test_cli_applies_with_yes_and_says_how_to_resume(cli_env, lake: FakeAdls, tmp_path):
    from jobs.cli import app

    state = tmp_path / "s.json"
    lake.fail["system/ledger/orders.jsonl"] = DENIED
    failed = runner.invoke(app, ["lake", "apply-access", "--yes", "--json", "--state", str(state)])
    assert failed.exit_code == 1, failed.output
    assert cli_env == [ENDPOINT]
    data = json.loads(failed.stdout)["result"]
    system = [s for s in data["steps"] if s["container"] == "system"][0]
    assert system["failures"] == [{"name": "ledger/orders.jsonl", "is_directory": False, "message": DENIED}]
    assert f"run `headwater lake apply-access --yes --state {state}` again to resume" in " ".join(
        failed.output.split()
    )
    assert state.exists()

    del lake.fail["system/ledger/orders.jsonl"]
    lake.sent.clear()
    fixed = runner.invoke(app, ["lake", "apply-access", "--yes", "--state", str(state)])
    assert fixed.exit_code == 0, fixed.output
    # only the failed step ran again; the others were done
    assert {s.container for s in lake.sent} == {"system"}
    assert not state.exists()


def test_cli_refuses_a_local_lake(monkeypatch):
    from jobs.cli import app

    monkeypatch.setenv("HEADWATER_LAKE__KIND", "local")
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["lake", "apply-access", "--yes"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "a local lake has no ACLs to apply" in " ".join(result.output.split())
