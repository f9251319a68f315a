"""Batch manifests: the newest one is found without listing every batch a dataset ever had."""

from __future__ import annotations

from ingestion.bronze.manifest import LATEST_HINT, LATEST_PROBE, Manifest, ManifestFile, Manifests


def _create(manifests: Manifests, batch: int) -> None:
    f = ManifestFile(key=f"k{batch}", path=f"orders/f{batch}.csv", etag="e", size=1, sha256="0", rows=1)
    manifests.create(Manifest("orders", batch, f"ingest-{batch}", [f], "committed", 0.0, 0.0, batch - 1, 1))


class CountingLists:
    """Counts how often the manifests folder is listed."""

    def __init__(self, manifests: Manifests) -> None:
        self.calls = 0
        real = manifests.storage.list

        def counting(prefix: str):  # noqa: ANN202
            self.calls += 1
            return real(prefix)

        manifests.storage.list = counting  # type: ignore[method-assign]


def test_latest_comes_from_the_hint_and_steps_over_batches_made_elsewhere(lake):
    manifests = Manifests(lake, "orders")
    assert manifests.latest() is None
    for batch in range(1, 31):
        _create(manifests, batch)
    lists = CountingLists(manifests)
    assert manifests.latest().batch == 30 and lists.calls == 0
    # Two batches created by another process whose hint write was lost (a crash after create).
    _create(manifests, 31)
    _create(manifests, 32)
    lake.write_bytes(f"{manifests.dir}/{LATEST_HINT}", b"30")
    assert Manifests(lake, "orders").latest().batch == 32 and lists.calls == 0
    assert lake.read_bytes(f"{manifests.dir}/{LATEST_HINT}") == b"32"  # the hint caught up
    assert manifests.numbers() == list(range(1, 33))  # listings of manifests skip the hint


def test_without_a_usable_hint_the_folder_is_listed_once(lake):
    manifests = Manifests(lake, "orders")
    for batch in range(1, 4):
        _create(manifests, batch)
    for damaged in (None, b"not a number", b"99"):  # an older lake; garbage; a number never made
        if damaged is None:
            lake.delete(f"{manifests.dir}/{LATEST_HINT}")
        else:
            lake.write_bytes(f"{manifests.dir}/{LATEST_HINT}", damaged)
        lists = CountingLists(manifests)
        assert manifests.latest().batch == 3 and lists.calls == 1
        assert lake.read_bytes(f"{manifests.dir}/{LATEST_HINT}") == b"3"
    # Far behind (more new batches than one probe steps over): listed.
    for batch in range(4, 5 + LATEST_PROBE):
        _create(manifests, batch)
    lake.write_bytes(f"{manifests.dir}/{LATEST_HINT}", b"1")
    lists = CountingLists(manifests)
    assert manifests.latest().batch == 4 + LATEST_PROBE and lists.calls == 1
