"""Every ``python -m jobs.<job>``: the same exit codes (0 done or nothing to do, 1 failed,
2 refused), the result as JSON on stdout, a failure's or refusal's reason and code on stderr."""

from __future__ import annotations

import json

import pytest

from ingestion.core.config import get_settings
from ingestion.core.lease import Lease
from ingestion.core.runs import RunLedger

pytestmark = pytest.mark.spark

ORDERS = (
    b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    b"O-0001,C-001,paid,10.50,1,2026-11-01,,2026-11-01T10:00:00\n"
    b"O-0002,C-002,new,7.25,3,2026-11-02,,2026-11-02T09:30:00\n"
)
MORE_ORDERS = (
    b"order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at\n"
    b"O-0003,C-001,paid,1.00,1,2026-11-03,,2026-11-03T10:00:00\n"
)
CUSTOMERS = (
    b'{"customer_id": "C-001", "name": "Ada", "country": "DE", "signup_date": "2024-01-01"}\n'
    b'{"customer_id": "C-002", "name": "Bo", "country": "FR", "signup_date": "2024-02-01"}\n'
)


@pytest.fixture
def env_lake(lake, lake_settings, monkeypatch):
    """The entry points read their settings from the environment: point them at the test lake."""
    monkeypatch.setenv("HEADWATER_LAKE__ROOT", str(lake_settings.lake.root))
    get_settings.cache_clear()
    yield lake
    get_settings.cache_clear()


@pytest.fixture
def call(capsys):
    """``call(jobs.ingest, "--dataset", "orders")`` -> (exit code, stdout JSON, stderr)."""

    def _call(entry, *argv):  # noqa: ANN001, ANN202
        code = entry.main(list(argv))
        captured = capsys.readouterr()
        return code, json.loads(captured.out), captured.err

    return _call


def _statuses(spark, lake, job, dataset):  # noqa: ANN001, ANN202
    return sorted(r["status"] for r in RunLedger(spark, lake).latest(dataset=dataset, job=job))


def test_ingest_exit_codes(spark, env_lake, land, call, monkeypatch):
    from ingestion.core.storage import LocalStorage
    from jobs import ingest

    code, out, err = call(ingest, "--dataset", "nope")
    assert (code, out["status"], out["code"]) == (2, "refused", "unknown_dataset")
    assert "jobs.ingest: refused (unknown_dataset): no dataset named 'nope'" in err

    code, out, err = call(ingest, "--dataset", "orders")
    assert (code, out["status"], out["details"]["reason"], err) == (0, "skipped", "no files queued", "")

    land("orders/a.csv", ORDERS)
    code, out, _ = call(ingest, "--dataset", "orders")
    assert (code, out["status"], out["batch"], out["rows"], out["bronze_version"]) == (
        0,
        "succeeded",
        1,
        2,
        0,
    )

    land("orders/b.csv", MORE_ORDERS)
    holder = Lease(env_lake, "orders", owner="run-9", seconds=60, heartbeat=False).acquire()
    code, out, err = call(ingest, "--dataset", "orders")
    holder.release()
    assert (code, out["status"], out["code"]) == (2, "refused", "lease_held")
    assert "being written by run run-9" in err

    def failing_sha256(self, path, **kwargs):  # noqa: ANN001, ANN003, ANN202
        raise OSError(f"{path}: disk on fire")

    monkeypatch.setattr(LocalStorage, "sha256", failing_sha256)
    code, out, err = call(ingest, "--dataset", "orders")
    assert (code, out["status"], out["code"], out["job"]) == (1, "failed", "storage", "ingest")
    assert out["error"] == "storage: OSError: landing/orders/b.csv: disk on fire"
    assert "jobs.ingest: failed (storage): landing/orders/b.csv: disk on fire" in err
    # Every run that started is in the ledger, the one that found nothing to do too.
    assert _statuses(spark, env_lake, "ingest", "orders") == ["failed", "skipped", "succeeded"]


def test_curate_exit_codes(spark, env_lake, land, catalog, call):
    from ingestion.bronze.job import ingest
    from jobs import curate

    code, out, _ = call(curate, "--dataset", "nope")
    assert (code, out["status"], out["code"]) == (2, "refused", "unknown_dataset")

    code, out, _ = call(curate, "--dataset", "orders")
    assert (code, out["status"], out["details"]["reason"]) == (0, "skipped", "no bronze table yet")

    land("orders/a.csv", ORDERS)
    ingest(spark, env_lake, catalog, "orders")
    holder = Lease(env_lake, "orders", scope="silver", owner="run-7", seconds=60, heartbeat=False).acquire()
    code, out, err = call(curate, "--dataset", "orders")
    holder.release()
    assert (code, out["code"]) == (2, "lease_held") and "being written by run run-7" in err

    code, out, _ = call(curate, "--dataset", "orders")
    assert (code, out["status"], out["rows_written"]) == (0, "succeeded", 2)

    # Rows appended to bronze behind headwater's back cannot be attributed: the run fails.
    uri = env_lake.uri("bronze/orders")
    spark.read.format("delta").load(uri).limit(1).write.format("delta").mode("append").save(uri)
    code, out, err = call(curate, "--dataset", "orders")
    assert (code, out["status"], out["code"]) == (1, "failed", "untagged_bronze_commit")
    assert "CurateError" in out["error"] and "failed (untagged_bronze_commit)" in err
    assert _statuses(spark, env_lake, "curate", "orders") == ["failed", "skipped", "succeeded"]


def test_publish_and_register_exit_codes(spark, env_lake, land, catalog, call):
    from ingestion.bronze.job import ingest
    from jobs import publish, register
    from transforms.silver import curate

    code, out, err = call(publish, "--dataset", "nope")
    assert (code, out["code"]) == (2, "unknown_dataset")
    code, out, err = call(publish, "--dataset", "customers")
    assert (code, out["status"]) == (2, "refused") and "declares no gold" in err
    code, out, err = call(register, "--dataset", "nope")
    assert (code, out["code"]) == (2, "unknown_dataset")

    # Failed runs: silver is missing, gold is not published yet (both recorded).
    code, out, err = call(publish, "--dataset", "orders")
    assert (code, out["status"], out["job"]) == (1, "failed", "publish") and "MissingSilverError" in out[
        "error"
    ]
    code, out, err = call(register, "--dataset", "orders")
    assert (code, out["status"], out["job"]) == (1, "failed", "register")
    assert "GoldNotPublishedError" in out["error"]

    land("orders/a.csv", ORDERS)
    land("customers/2026/a.jsonl", CUSTOMERS)
    for name in ("orders", "customers"):
        ingest(spark, env_lake, catalog, name)
        assert curate(spark, env_lake, catalog, name).status == "succeeded"

    holder = Lease(env_lake, "orders", scope="gold", owner="run-5", seconds=60, heartbeat=False).acquire()
    code, out, err = call(publish, "--dataset", "orders")
    holder.release()
    assert (code, out["code"]) == (2, "lease_held") and "run-5" in err

    code, out, _ = call(publish, "--dataset", "orders", "--no-register")
    assert (code, out["status"], out["publish"]["status"], "register" in out) == (
        0,
        "succeeded",
        "succeeded",
        False,
    )

    holder = Lease(env_lake, "orders", scope="asset", owner="run-6", seconds=60, heartbeat=False).acquire()
    code, out, err = call(register, "--dataset", "orders")
    holder.release()
    assert (code, out["code"]) == (2, "lease_held") and "run-6" in err

    code, out, _ = call(register, "--dataset", "orders")
    assert (code, out["status"], out["outcome"], out["asset"]) == (
        0,
        "succeeded",
        "registered",
        "customer_features:1",
    )

    code, out, _ = call(publish, "--dataset", "orders")  # nothing new: both runs skip
    assert (code, out["status"], out["publish"]["status"]) == (0, "skipped", "skipped")
    assert (out["register"]["status"], out["register"]["outcome"]) == ("skipped", "unchanged")
    code, out, _ = call(register, "--dataset", "orders")
    assert (code, out["status"]) == (0, "skipped")
    assert _statuses(spark, env_lake, "publish", "orders") == ["failed", "skipped", "succeeded"]
    assert _statuses(spark, env_lake, "register", "orders") == ["failed", "skipped", "skipped", "succeeded"]


def test_pipeline_exit_codes(spark, env_lake, land, call, monkeypatch):
    from ingestion.core.storage import LocalStorage
    from jobs import pipeline
    from transforms.silver.state import state_path

    code, out, err = call(pipeline, "--dataset", "nope")
    assert (code, out["status"], out["code"]) == (2, "refused", "unknown_dataset")
    assert "jobs.pipeline: refused (unknown_dataset): no dataset named 'nope'" in err

    # Nothing to do: every stage skips (the gold waits for tables that do not exist yet).
    code, out, err = call(pipeline, "--dataset", "customers")
    assert (code, out["status"], out["job"], err) == (0, "skipped", "pipeline", "")
    assert out["outcomes"] == {
        "ingest": "skipped",
        "curate": "skipped",
        "publish:customer_features": "waiting",
    }

    land("customers/2026/a.jsonl", CUSTOMERS)
    holder = Lease(env_lake, "customers", owner="run-8", seconds=60, heartbeat=False).acquire()
    code, out, err = call(pipeline, "--dataset", "customers")
    holder.release()
    assert (code, out["status"], out["code"]) == (2, "refused", "lease_held") and "run-8" in err

    # A failed stage: the run fails with the stage's code and one line; downstream is blocked.
    real_write = LocalStorage.write_bytes

    def no_space(self, path, data, **kwargs):  # noqa: ANN001, ANN003, ANN202
        if path == state_path("customers"):
            raise OSError(f"{path}: no space left on device")
        return real_write(self, path, data, **kwargs)

    monkeypatch.setattr(LocalStorage, "write_bytes", no_space)
    code, out, err = call(pipeline, "--dataset", "customers")
    monkeypatch.setattr(LocalStorage, "write_bytes", real_write)
    assert (code, out["status"], out["code"], out["stopped_at"]) == (1, "failed", "storage", "curate")
    assert out["outcomes"]["publish:customer_features"] == "blocked"
    assert out["error"].startswith("storage: OSError: ") and "no space left on device" in out["error"]
    assert "jobs.pipeline: failed (storage): storage: OSError:" in err

    land("orders/a.csv", ORDERS)
    code, out, _ = call(pipeline, "--dataset", "customers")  # resumes at curate
    assert (code, out["status"], out["outcomes"]["ingest"], out["outcomes"]["curate"]) == (
        0,
        "succeeded",
        "skipped",
        "succeeded",
    )
    code, out, _ = call(pipeline, "--dataset", "orders")
    assert (code, out["status"]) == (0, "succeeded")
    assert out["stages"]["golds"]["customer_features"]["register"]["asset"] == "customer_features:1"
    assert _statuses(spark, env_lake, "pipeline", "customers") == ["failed", "skipped", "succeeded"]


def test_bad_arguments_are_argparses_own_refusal(capsys):
    from jobs import curate, ingest, pipeline, publish, register

    for entry in (ingest, curate, publish, register, pipeline):
        with pytest.raises(SystemExit) as exit_:
            entry.main([])  # --dataset is required
        assert exit_.value.code == 2
        assert "--dataset" in capsys.readouterr().err
