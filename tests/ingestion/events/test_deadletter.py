"""`headwater deadletter`: Event Grid's dead-lettered events listed and replayed, on Azurite and locally.

The container is seeded exactly as Event Grid lays it out (learn.microsoft.com/azure/event-grid/
manage-event-delivery): ``<SUBSCRIPTION>/<yyyy>/<M>/<d>/<H>/<guid>.json``, hours not zero-padded,
each blob a JSON array of Event Grid schema events plus the dead-letter properties.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from functions.events import BLOB_CREATED, BLOB_RENAMED
from functions.runtime import LandingRuntime
from ingestion.core.config import ZONES, BatchingSettings, LakeSettings, Settings, get_settings
from ingestion.core.storage import ObjectInfo, Storage
from ingestion.events import Ledger
from ingestion.events.deadletter import (
    MARKERS,
    list_deadletters,
    marker_path,
    open_deadletters,
    parse_name,
    parse_time,
    replay,
)
from ingestion.testing.azurite import ACCOUNT, CONNECTION_ENV, azurite, azurite_storage  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover - the Azure SDK only where the Azurite tests run
    from ingestion.core.storage.azure_blob import BlobStorage

AZURITE = pytest.mark.azurite
CSV = (
    b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    b"O-0001,C-001,new,10.00,1,2026-11-01,,2026-11-01T10:00:00\n"
)
HIGH = BatchingSettings(max_files=1000, max_bytes=10**12, max_age_seconds=3600)  # no run starts
A, B, C = "orders/2026/12/a.csv", "orders/2026/12/b.csv", "orders/2026/12/c.csv"


@dataclass
class NoRuns:
    """A submitter that records calls (the thresholds above never make a batch due)."""

    calls: list[str] = field(default_factory=list)

    def submit(self, dataset: str) -> dict[str, Any]:
        self.calls.append(dataset)
        return {"dataset": dataset, "status": "recorded"}


@dataclass
class Seeded:
    """The landing files and dead-letter blobs one test starts from."""

    landing: dict[str, ObjectInfo]  # landing-relative path -> its info
    events: dict[str, dict[str, Any]]  # event id -> the dead-lettered event
    blob1: str  # LANDING-BLOB, hour 9: BlobCreated a, BlobCreated b
    blob2: str  # LANDING-RENAMES, hour 10: BlobRenamed into c
    not_json: str  # LANDING-BLOB, hour 11
    not_array: str  # LANDING-BLOB, hour 10


def _dead(event: dict[str, Any], **props: Any) -> dict[str, Any]:
    """The event as Event Grid dead-letters it (delivery-and-retry: 'Dead-letter event')."""
    return {**event, **props}


def seed(
    storage: Storage,
    landing_container: str,
    put: Callable[[str, bytes], None],
    url: Callable[[str], str],
) -> Seeded:
    landing = {name: storage.write_bytes(f"landing/{name}", CSV) for name in (A, B, C)}

    def subject(name: str) -> str:
        return f"/blobServices/default/containers/{landing_container}/blobs/{name}"

    def common(event_id: str, event_type: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": event_id,
            "eventTime": "2026-12-07T09:11:59.1234567Z",
            "eventType": event_type,
            "subject": subject(name),
            "data": data,
            "dataVersion": "",
            "metadataVersion": "1",
            "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/lake",
        }

    def created(event_id: str, name: str) -> dict[str, Any]:
        info = landing[name]
        data = {
            "api": "PutBlob",
            "eTag": info.etag.strip('"'),  # Event Grid spells etags unquoted
            "contentType": "text/csv",
            "contentLength": info.size,
            "blobType": "BlockBlob",
            "url": url(name),
            "sequencer": "0000000000000000000000000001550800000000000510" + event_id[-2:],
        }
        return _dead(
            common(event_id, BLOB_CREATED, name, data),
            deadLetterReason="MaxDeliveryAttemptsExceeded",
            deliveryAttempts=30,
            lastDeliveryOutcome="TimedOut",
            lastHttpStatusCode=408,
            publishTime="2026-12-07T09:12:00.0265758Z",
            lastDeliveryAttemptTime="2026-12-07T09:58:14.0465788Z",
        )

    renamed = _dead(
        common(
            "evt-c",
            BLOB_RENAMED,
            C,
            {
                "api": "RenameFile",
                "sourceUrl": url("orders/_incoming/c.csv"),
                "destinationUrl": url(C),
                "sequencer": "00000000000000000000000000015508000000000005101d",
            },
        ),
        deadLetterReason="UndeliverableDueToHttpBadRequest",
        deliveryAttempts=1,
        lastDeliveryOutcome="BadRequest",
        lastHttpStatusCode=400,
        publishTime="2026-12-07T10:02:00.5Z",
        lastDeliveryAttemptTime="2026-12-07T10:02:01.5Z",
    )
    events = {"evt-a": created("evt-a", A), "evt-b": created("evt-b", B), "evt-c": renamed}
    names = {
        "blob1": f"LANDING-BLOB/2026/12/7/9/{uuid.uuid4()}.json",
        "blob2": f"LANDING-RENAMES/2026/12/7/10/{uuid.uuid4()}.json",
        "not_json": f"LANDING-BLOB/2026/12/7/11/{uuid.uuid4()}.json",
        "not_array": f"LANDING-BLOB/2026/12/7/10/{uuid.uuid4()}.json",
    }
    put(names["blob1"], json.dumps([events["evt-a"], events["evt-b"]]).encode())
    put(names["blob2"], json.dumps([events["evt-c"]]).encode())
    put(names["not_json"], b'[{"id": "evt-x", "eventType": ')  # cut off mid-write
    put(names["not_array"], json.dumps(events["evt-a"]).encode())  # one event, not in an array
    return Seeded(landing, events, **names)


def ledger_rows(runtime: LandingRuntime) -> list[tuple[str, str, int]]:
    """Every ledger entry of every dataset, as (path, etag, size), in ledger order (duplicates kept)."""
    return sorted(
        (e.path, e.etag, e.size) for ds in runtime.ledger.datasets() for e in runtime.ledger.entries(ds)
    )


def expected(seeded: Seeded, *names: str) -> list[tuple[str, str, int]]:
    return sorted((n, seeded.landing[n].etag, seeded.landing[n].size) for n in names)


class Calls:
    """The runtime's on_event, counting the event ids replay hands it."""

    def __init__(self, runtime: LandingRuntime, fail_on: set[str] | None = None) -> None:
        self.runtime = runtime
        self.ids: list[str | None] = []
        self.fail_on = fail_on or set()

    def __call__(
        self,
        event_type: str,
        subject: str | None,
        data: dict[str, Any] | None,
        *,
        event_id: str | None = None,
    ) -> list[Any]:
        self.ids.append(event_id)
        if event_id in self.fail_on:
            raise OSError("lake unreachable")
        return self.runtime.on_event(event_type, subject, data, event_id=event_id)


# --- Azurite -------------------------------------------------------------------------------------
@pytest.fixture
def az_storage(azurite_storage: BlobStorage) -> BlobStorage:  # noqa: F811
    """The lake on Azurite (containers of this test's own)."""
    return azurite_storage


@pytest.fixture
def dl_container(az_storage: BlobStorage) -> Iterator[str]:
    name = az_storage.container_name("landing").removesuffix("-landing") + "-eventgrid-deadletter"
    az_storage.service.create_container(name)
    yield name
    az_storage.service.delete_container(name)


@pytest.fixture
def az_settings(az_storage, dl_container) -> Settings:
    return Settings(
        lake=LakeSettings(
            kind="azure",
            account=ACCOUNT,
            containers=az_storage.containers,
            connection_string_env=CONNECTION_ENV,
            deadletter_container=dl_container,
        ),
        batching=HIGH,
        poison_max_attempts=3,
    )


@pytest.fixture
def az_runtime(az_settings, az_storage) -> LandingRuntime:
    return LandingRuntime(az_settings, az_storage, submitter=NoRuns())


@pytest.fixture
def az_seeded(az_storage, dl_container, az_runtime) -> Seeded:
    client = az_storage.service.get_container_client(dl_container)
    landing = az_runtime.landing_container

    def put(name: str, data: bytes) -> None:
        client.upload_blob(name, data)

    def url(name: str) -> str:  # the Blob endpoint's own URL (path-style on Azurite)
        return az_storage.service.get_blob_client(landing, name).url

    seeded = seed(az_storage, landing, put, url)
    # The lake account has a hierarchical namespace: the Blob API lists its folders as empty blobs
    # marked hdi_isfolder. They are no dead-letter blobs (and no malformed ones either).
    for folder in ("LANDING-BLOB", "LANDING-BLOB/2026/12/7/9"):
        client.upload_blob(folder, b"", metadata={"hdi_isfolder": "true"})
    return seeded


@AZURITE
def test_list_shows_each_event_with_its_reason_attempts_and_layout(az_settings, az_storage, az_seeded):
    s = az_seeded
    source = open_deadletters(az_settings, az_storage)
    assert source.container == az_settings.lake.deadletter_container
    blobs = list_deadletters(source, az_storage)
    # Oldest first per subscription, by the hour in the name: as text, ".../10/" sorts before ".../9/".
    assert [b.name for b in blobs] == [s.blob1, s.not_array, s.not_json, s.blob2]
    by = {b.name: b for b in blobs}
    one = by[s.blob1]
    assert (one.subscription, one.dead_lettered_hour, one.error, one.replayed) == (
        "LANDING-BLOB",
        datetime(2026, 12, 7, 9, tzinfo=timezone.utc),
        None,
        False,
    )
    assert one.etag.startswith('"') and one.size == len(json.dumps([s.events["evt-a"], s.events["evt-b"]]))
    rows = [
        (
            e.blob,
            e.index,
            e.event_id,
            e.event_type,
            e.subject,
            e.reason,
            e.attempts,
            e.last_outcome,
            e.last_http_status,
            e.publish_time,
        )
        for b in blobs
        for e in b.events
    ]
    landing = az_seeded.events["evt-a"]["subject"].rsplit("/blobs/", 1)[0]
    assert rows == [
        (
            s.blob1,
            0,
            "evt-a",
            BLOB_CREATED,
            f"{landing}/blobs/{A}",
            "MaxDeliveryAttemptsExceeded",
            30,
            "TimedOut",
            408,
            "2026-12-07T09:12:00.0265758Z",
        ),
        (
            s.blob1,
            1,
            "evt-b",
            BLOB_CREATED,
            f"{landing}/blobs/{B}",
            "MaxDeliveryAttemptsExceeded",
            30,
            "TimedOut",
            408,
            "2026-12-07T09:12:00.0265758Z",
        ),
        (
            s.blob2,
            0,
            "evt-c",
            BLOB_RENAMED,
            f"{landing}/blobs/{C}",
            "UndeliverableDueToHttpBadRequest",
            1,
            "BadRequest",
            400,
            "2026-12-07T10:02:00.5Z",
        ),
    ]
    assert by[s.blob2].events[0].data == s.events["evt-c"]["data"]
    # Malformed blobs are listed with why, not dropped.
    assert by[s.not_json].events == () and by[s.not_json].error.startswith("not JSON (JSONDecodeError")
    assert by[s.not_array].error == "not a JSON array of events but a JSON dict"
    assert [b.malformed for b in blobs] == [False, True, True, False]

    # Filters: the subscription in any case; since by the hour the name carries (a naive time is UTC).
    assert [b.name for b in list_deadletters(source, az_storage, subscription="landing-renames")] == [s.blob2]
    since = parse_time("2026-12-07T10:30:00Z")
    assert [b.name for b in list_deadletters(source, az_storage, since=since)] == [
        s.not_array,
        s.not_json,
        s.blob2,
    ]
    late = list_deadletters(source, az_storage, subscription="LANDING-BLOB", since=datetime(2026, 12, 7, 11))
    assert [b.name for b in late] == [s.not_json]
    assert list_deadletters(source, az_storage, since=parse_time("2026-12-07T12:00:00+00:00")) == []


@AZURITE
def test_replay_records_each_file_once_and_a_second_replay_is_a_no_op(
    az_settings,
    az_storage,
    az_runtime,
    az_seeded,
    dl_container,
):
    s, rt = az_seeded, az_runtime
    # evt-b got through on a retry after all: its file is in the ledger before the replay.
    early = rt.on_event(
        BLOB_CREATED, s.events["evt-b"]["subject"], s.events["evt-b"]["data"], event_id="evt-b"
    )
    assert [h.outcome for h in early] == ["queued"]
    (b_entry,) = [e for e in rt.ledger.entries("orders") if e.path == B]
    assert ledger_rows(rt) == expected(s, B)

    source = open_deadletters(az_settings, az_storage)
    calls = Calls(rt)
    report = replay(source, az_storage, calls, clock=lambda: 1234.5)

    assert {b.blob: b.status for b in report.blobs} == {
        s.blob1: "replayed",
        s.blob2: "replayed",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }
    assert calls.ids == ["evt-a", "evt-b", "evt-c"]  # each event once, with its id; never a malformed blob's
    by = {b.blob: b for b in report.blobs}
    assert [[o["outcome"] for o in e.outcomes] for e in by[s.blob1].events] == [["queued"], ["duplicate"]]
    assert [[(o["outcome"], o["path"]) for o in e.outcomes] for e in by[s.blob2].events] == [[("queued", C)]]
    assert by[s.not_array].reason == "not a JSON array of events but a JSON dict"
    assert by[s.not_json].reason.startswith("not JSON")
    assert sorted(b.blob for b in report.failed) == sorted([s.not_json, s.not_array])
    assert report.outcomes() == {"queued": 2, "duplicate": 1}

    # The ledger: exactly the three files, each version once, with the blobs' real etags and sizes.
    assert ledger_rows(rt) == expected(s, A, B, C)
    (b_after,) = [e for e in rt.ledger.entries("orders") if e.path == B]
    assert b_after == b_entry  # the duplicate changed nothing
    assert sorted(q.path for q in rt.ledger.queued("orders")) == [A, B, C]

    # Markers in the system area, with the blob's etag and the outcomes; none for malformed blobs.
    marker = json.loads(az_storage.read_bytes(marker_path(s.blob1)))
    blob1 = next(b for b in list_deadletters(source, az_storage) if b.name == s.blob1)
    assert (marker["blob"], marker["etag"], marker["replayed_at"]) == (s.blob1, blob1.etag, 1234.5)
    assert [(e["event_id"], [o["outcome"] for o in e["outcomes"]]) for e in marker["events"]] == [
        ("evt-a", ["queued"]),
        ("evt-b", ["duplicate"]),
    ]
    assert sorted(o.path for o in az_storage.list(MARKERS)) == sorted(
        [f"{MARKERS}/{s.blob1}.json", f"{MARKERS}/{s.blob2}.json"]
    )
    # Nothing dead-lettered is deleted or moved.
    client = az_storage.service.get_container_client(dl_container)
    files = [
        b.name for b in client.list_blobs(include=["metadata"]) if not (b.metadata or {}).get("hdi_isfolder")
    ]
    assert sorted(files) == sorted([s.blob1, s.blob2, s.not_json, s.not_array])

    # Again: replayed blobs are skipped (the handler is not called), the ledger is unchanged.
    entries_before = sorted((e for e in rt.ledger.entries("orders")), key=lambda e: e.key)
    calls.ids.clear()
    again = replay(source, az_storage, calls)
    assert {b.blob: b.status for b in again.blobs} == {
        s.blob1: "skipped",
        s.blob2: "skipped",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }
    assert calls.ids == []
    assert sorted(rt.ledger.entries("orders"), key=lambda e: e.key) == entries_before
    assert [b.replayed for b in list_deadletters(source, az_storage)] == [True, False, False, True]
    assert rt.batcher.submitter.calls == []


@AZURITE
def test_a_failing_event_keeps_its_blob_for_the_next_replay(az_settings, az_storage, az_runtime, az_seeded):
    s, rt = az_seeded, az_runtime
    source = open_deadletters(az_settings, az_storage)
    flaky = Calls(rt, fail_on={"evt-b"})
    first = replay(source, az_storage, flaky, subscription="landing-blob")
    assert {b.blob: b.status for b in first.blobs} == {
        s.blob1: "failed",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }  # the subscription filter left LANDING-RENAMES alone
    (failed,) = [b for b in first.blobs if b.blob == s.blob1]
    assert failed.reason == "event #1 (evt-b): OSError: lake unreachable"
    assert [(e.event_id, [o["outcome"] for o in e.outcomes], e.error) for e in failed.events] == [
        ("evt-a", ["queued"], None),
        ("evt-b", [], "OSError: lake unreachable"),
    ]
    assert not az_storage.exists(marker_path(s.blob1))
    assert ledger_rows(rt) == expected(s, A)

    second = replay(source, az_storage, Calls(rt))
    statuses = {b.blob: b.status for b in second.blobs}
    assert (statuses[s.blob1], statuses[s.blob2]) == ("replayed", "replayed")
    (done,) = [b for b in second.blobs if b.blob == s.blob1]
    assert [[o["outcome"] for o in e.outcomes] for e in done.events] == [["duplicate"], ["queued"]]
    assert ledger_rows(rt) == expected(s, A, B, C)


@AZURITE
def test_dry_run_changes_nothing(az_settings, az_storage, az_runtime, az_seeded):
    s, rt = az_seeded, az_runtime
    calls = Calls(rt)
    report = replay(open_deadletters(az_settings, az_storage), az_storage, calls, dry_run=True)
    assert report.dry_run and calls.ids == []
    assert {b.blob: b.status for b in report.blobs} == {
        s.blob1: "pending",
        s.blob2: "pending",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }
    assert [e.event_id for b in report.blobs for e in b.events] == ["evt-a", "evt-b", "evt-c"]
    assert ledger_rows(rt) == [] and list(az_storage.list(MARKERS)) == []


@pytest.fixture
def az_cli(az_settings, monkeypatch) -> Iterator[Callable[..., Any]]:
    """`headwater ...` with the settings pointing at the Azurite lake (as HEADWATER_* variables)."""
    from jobs.cli import app

    lake = az_settings.lake
    monkeypatch.setenv("HEADWATER_LAKE__KIND", "azure")
    monkeypatch.setenv("HEADWATER_LAKE__ACCOUNT", ACCOUNT)
    monkeypatch.setenv("HEADWATER_LAKE__CONNECTION_STRING_ENV", CONNECTION_ENV)
    monkeypatch.setenv("HEADWATER_LAKE__DEADLETTER_CONTAINER", lake.deadletter_container)
    for zone in ZONES:
        monkeypatch.setenv(f"HEADWATER_LAKE__CONTAINERS__{zone.upper()}", lake.container(zone))
    monkeypatch.setenv("HEADWATER_SUBMIT__KIND", "in-process")
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_FILES", str(HIGH.max_files))
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_BYTES", str(HIGH.max_bytes))
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_AGE_SECONDS", str(HIGH.max_age_seconds))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


@AZURITE
def test_cli_list_and_replay_json(az_cli, az_runtime, az_seeded):
    s, rt = az_seeded, az_runtime
    out = az_cli("deadletter", "list", "--json")
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert [b["blob"] for b in listed] == [s.blob1, s.not_array, s.not_json, s.blob2]
    assert [
        (e["event_id"], e["reason"], e["attempts"], e["last_outcome"]) for b in listed for e in b["events"]
    ] == [
        ("evt-a", "MaxDeliveryAttemptsExceeded", 30, "TimedOut"),
        ("evt-b", "MaxDeliveryAttemptsExceeded", 30, "TimedOut"),
        ("evt-c", "UndeliverableDueToHttpBadRequest", 1, "BadRequest"),
    ]
    assert [b["error"] is not None for b in listed] == [False, True, True, False]
    out = az_cli(
        "deadletter", "list", "--json", "--subscription", "landing-renames", "--since", "2026-12-07T10:00"
    )
    assert [b["blob"] for b in json.loads(out.output)] == [s.blob2]
    bad = az_cli("deadletter", "list", "--since", "yesterday")
    assert bad.exit_code == 2 and "not an ISO 8601 time" in bad.output

    dry = az_cli("deadletter", "replay", "--dry-run", "--json")
    assert dry.exit_code == 1, dry.output  # malformed blobs: a person has to look
    assert json.loads(dry.output)["counts"] == {"pending": 2, "malformed": 2}
    assert ledger_rows(rt) == []

    out = az_cli("deadletter", "replay", "--json")
    assert out.exit_code == 1, out.output
    data = json.loads(out.output)
    assert {b["blob"]: b["status"] for b in data["blobs"]} == {
        s.blob1: "replayed",
        s.blob2: "replayed",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }
    assert (data["outcomes"], data["failed"]) == ({"queued": 3}, 2)
    assert ledger_rows(rt) == expected(s, A, B, C)

    again = az_cli("deadletter", "replay", "--json", "--subscription", "landing-renames")
    assert again.exit_code == 0, again.output
    assert [(b["blob"], b["status"]) for b in json.loads(again.output)["blobs"]] == [(s.blob2, "skipped")]
    assert ledger_rows(rt) == expected(s, A, B, C)
    listed = json.loads(az_cli("deadletter", "list", "--json").output)
    assert [b["replayed"] for b in listed] == [True, False, False, True]


# --- a local lake: the same layout in <lake root>/<deadletter_container>/ --------------------------
@pytest.fixture
def local_settings(lake_settings: Settings) -> Settings:
    return lake_settings.model_copy(update={"batching": HIGH})


@pytest.fixture
def local_runtime(local_settings, lake) -> LandingRuntime:
    return LandingRuntime(local_settings, lake, submitter=NoRuns())


@pytest.fixture
def local_seeded(local_settings, lake, local_runtime) -> Seeded:
    folder = Path(local_settings.lake.root) / local_settings.lake.deadletter_container

    def put(name: str, data: bytes) -> None:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    def url(name: str) -> str:
        return f"https://lake.blob.core.windows.net/{local_runtime.landing_container}/{name}"

    return seed(lake, local_runtime.landing_container, put, url)


def test_local_lake_lists_and_replays_on_the_same_path(local_settings, lake, local_runtime, local_seeded):
    s, rt = local_seeded, local_runtime
    source = open_deadletters(local_settings, lake)
    assert source.container == "eventgrid-deadletter"
    blobs = list_deadletters(source, lake)
    assert [b.name for b in blobs] == [s.blob1, s.not_array, s.not_json, s.blob2]
    assert [(e.event_id, e.reason, e.attempts) for b in blobs for e in b.events] == [
        ("evt-a", "MaxDeliveryAttemptsExceeded", 30),
        ("evt-b", "MaxDeliveryAttemptsExceeded", 30),
        ("evt-c", "UndeliverableDueToHttpBadRequest", 1),
    ]
    rt.on_event(BLOB_CREATED, s.events["evt-a"]["subject"], s.events["evt-a"]["data"], event_id="evt-a")

    report = replay(source, lake, Calls(rt))
    assert {b.blob: b.status for b in report.blobs} == {
        s.blob1: "replayed",
        s.blob2: "replayed",
        s.not_json: "malformed",
        s.not_array: "malformed",
    }
    assert report.outcomes() == {"duplicate": 1, "queued": 2}
    assert ledger_rows(rt) == expected(s, A, B, C)
    assert lake.exists(f"{MARKERS}/{s.blob1}.json") and lake.exists(f"{MARKERS}/{s.blob2}.json")

    calls = Calls(rt)
    again = replay(source, lake, calls)
    assert [b.status for b in again.blobs] == ["skipped", "malformed", "malformed", "skipped"]
    assert calls.ids == [] and ledger_rows(rt) == expected(s, A, B, C)


def test_valid_events_of_a_partly_malformed_blob_are_still_handled(
    local_settings, lake, local_runtime, local_seeded
):
    s, rt = local_seeded, local_runtime
    folder = Path(local_settings.lake.root) / local_settings.lake.deadletter_container
    name = f"LANDING-BLOB/2026/12/8/0/{uuid.uuid4()}.json"
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(json.dumps([s.events["evt-a"], "junk", {"id": "evt-z"}]).encode())

    report = replay(open_deadletters(local_settings, lake), lake, Calls(rt), subscription="LANDING-BLOB")
    (mixed,) = [b for b in report.blobs if b.blob == name]
    assert mixed.status == "malformed"
    assert mixed.reason == "event #1: not a JSON object but str; event #2: no eventType"
    assert [(e.event_id, [o["outcome"] for o in e.outcomes]) for e in mixed.events] == [
        ("evt-a", ["duplicate"]),  # blob1 (hour 9) came first and recorded it
        (None, []),
        (None, []),
    ]
    assert marker_path(name) is not None and not lake.exists(marker_path(name))
    assert ledger_rows(rt) == expected(s, A, B)


def test_an_unreadable_blob_fails_for_now_and_the_others_proceed(
    local_settings, lake, local_runtime, local_seeded
):
    s, rt = local_seeded, local_runtime
    real = open_deadletters(local_settings, lake)

    class Flaky:
        container = real.container

        def list(self, prefix: str = "") -> Iterator[Any]:
            return real.list(prefix)

        def read(self, name: str) -> bytes:
            if name == s.blob2:
                raise OSError("connection reset")
            return real.read(name)

    first = replay(Flaky(), lake, Calls(rt))
    by = {b.blob: b for b in first.blobs}
    assert (by[s.blob2].status, by[s.blob2].reason) == ("failed", "unreadable: OSError: connection reset")
    assert by[s.blob1].status == "replayed" and ledger_rows(rt) == expected(s, A, B)
    second = replay(real, lake, Calls(rt))
    assert {b.blob: b.status for b in second.blobs}[s.blob2] == "replayed"
    assert ledger_rows(rt) == expected(s, A, B, C)


def test_cli_tables_on_a_local_lake(local_settings, lake, local_seeded, monkeypatch):
    from jobs.cli import app
    from jobs.cli.app import console, err_console

    s = local_seeded
    for c in (console, err_console):  # wide enough that no cell is folded across lines
        monkeypatch.setattr(c, "width", 240)
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(local_settings.lake.root))
    monkeypatch.setenv("HEADWATER_LAKE__KIND", "local")
    monkeypatch.setenv("HEADWATER_SUBMIT__KIND", "in-process")
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_FILES", "1000")
    monkeypatch.setenv("HEADWATER_BATCHING__MAX_AGE_SECONDS", "3600")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(app, ["deadletter", "list"])
        assert listed.exit_code == 0, listed.output
        for text in (
            "evt-a",
            "evt-c",
            "MaxDeliveryAttemptsExceeded",
            "TimedOut (408)",
            "malformed: not JSON",
        ):
            assert text in listed.output
        replayed = runner.invoke(app, ["deadletter", "replay"])
        assert replayed.exit_code == 1, replayed.output
        assert "replayed" in replayed.output and "2 blob(s) failed or malformed" in replayed.output
        assert sorted(e.path for e in Ledger(lake).entries("orders")) == [A, B, C]
        assert s.blob1 in {
            p.path.removeprefix(f"{MARKERS}/").removesuffix(".json") for p in lake.list(MARKERS)
        }
    finally:
        get_settings.cache_clear()


def test_names_follow_the_unpadded_layout():
    assert parse_name("LANDING-BLOB/2026/1/7/9/x.json") == (
        "LANDING-BLOB",
        datetime(2026, 1, 7, 9, tzinfo=timezone.utc),
    )
    assert parse_name("LANDING-BLOB/2026/12/17/23/x.json")[1] == datetime(
        2026, 12, 17, 23, tzinfo=timezone.utc
    )
    assert parse_name("LANDING-BLOB/2026/13/40/25/x.json") == ("LANDING-BLOB", None)  # digits, no date
    assert parse_name("README.txt") == ("README.txt", None)
    assert marker_path("LANDING-BLOB/2026/1/7/9/x.json") == f"{MARKERS}/LANDING-BLOB/2026/1/7/9/x.json.json"
    assert marker_path("LANDING-BLOB/../../ledger/x.json") is None
    assert parse_time("2026-12-07T09:30") == datetime(2026, 12, 7, 9, 30, tzinfo=timezone.utc)
