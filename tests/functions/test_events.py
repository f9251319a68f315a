"""Event filtering: which storage events mean a completed file in landing. Pure."""

from __future__ import annotations

import pytest

from functions.events import (
    BLOB_CREATED,
    BLOB_RENAMED,
    DIRECTORY_RENAMED,
    Ignored,
    Landed,
    classify,
    parse_blob_url,
    parse_subject,
)

SUBJ = "/blobServices/default/containers/landing/blobs/orders/2026/a.csv"
URL = "https://lake.blob.core.windows.net/landing/orders/2026/a.csv"


@pytest.mark.parametrize("api", ["FlushWithClose", "PutBlob", "PutBlockList"])
def test_completed_writes_count(api):
    got = classify(BLOB_CREATED, SUBJ, {"api": api, "url": URL}, event_id="e1")
    assert got == Landed("file", "landing", "orders/2026/a.csv", BLOB_CREATED, api, "e1")


@pytest.mark.parametrize("api", ["CreateFile", "CopyBlob", "AppendFile", None])
def test_other_blob_created_apis_are_ignored(api):
    got = classify(BLOB_CREATED, SUBJ, {"api": api, "url": URL, "contentLength": 0})
    assert isinstance(got, Ignored) and got.reason_code == "incomplete_write"
    assert "FlushWithClose" in got.reason


def test_renames_count_at_their_destination():
    data = {
        "api": "RenameFile",
        "sourceUrl": "https://lake.dfs.core.windows.net/landing/_tmp/a.part",
        "destinationUrl": "https://lake.dfs.core.windows.net/landing/orders/a%20b.csv",
    }
    got = classify(BLOB_RENAMED, "/blobServices/default/containers/landing/blobs/_tmp/a.part", data)
    assert isinstance(got, Landed) and (got.kind, got.container, got.name) == (
        "file",
        "landing",
        "orders/a b.csv",
    )
    d = classify(
        DIRECTORY_RENAMED, None, {"destinationUrl": "https://lake.dfs.core.windows.net/landing/orders/2026"}
    )
    assert isinstance(d, Landed) and (d.kind, d.name) == ("directory", "orders/2026")


@pytest.mark.parametrize(
    "event_type",
    [
        "Microsoft.Storage.BlobDeleted",
        "Microsoft.Storage.DirectoryCreated",
        "Microsoft.Storage.BlobTierChanged",
        "Microsoft.Storage.DirectoryDeleted",
    ],
)
def test_other_event_types_are_ignored(event_type):
    got = classify(event_type, SUBJ, {"api": "DeleteFile"})
    assert isinstance(got, Ignored) and got.reason_code == "event_type"


def test_event_without_a_location_is_ignored():
    got = classify(BLOB_CREATED, None, {"api": "PutBlob"})
    assert isinstance(got, Ignored) and got.reason_code == "no_location"
    got = classify(BLOB_RENAMED, "/not/a/blob/subject", {"api": "RenameFile"})
    assert isinstance(got, Ignored) and got.reason_code == "no_location"


def test_subject_is_the_fallback_for_a_missing_url():
    got = classify(BLOB_CREATED, SUBJ, {"api": "PutBlob"})
    assert isinstance(got, Landed) and got.name == "orders/2026/a.csv"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://lake.blob.core.windows.net/landing/a.csv", ("landing", "a.csv")),
        ("https://lake.dfs.core.windows.net/landing/x/y%23z.csv", ("landing", "x/y#z.csv")),
        ("http://127.0.0.1:10000/devstoreaccount1/landing/x.csv", ("landing", "x.csv")),
        ("http://localhost:10000/devstoreaccount1/landing/x.csv", ("landing", "x.csv")),
        ("https://lake.blob.core.windows.net/landing", None),
        ("https://lake.blob.core.windows.net/landing//a.csv", None),
        ("ftp://lake/landing/a.csv", None),
        ("not a url", None),
    ],
)
def test_parse_blob_url(url, expected):
    assert parse_blob_url(url) == expected


def test_parse_subject():
    assert parse_subject(SUBJ) == ("landing", "orders/2026/a.csv")
    assert parse_subject("/blobServices/default/containers/landing") is None
    assert parse_subject("/blobServices/default/containers//blobs/a") is None
