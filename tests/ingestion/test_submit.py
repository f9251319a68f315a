"""The spark-submit submitter: its command line, its environment, and its exit-code mapping.

A stand-in ``spark-submit`` (a script printing what a job prints and exiting with the job's
code) runs in place of Spark, so every mapping is checked through a real subprocess.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from ingestion.batching import Batcher, BatchPolicy, SubmitError
from ingestion.core.config import BatchingSettings, Settings, SparkSettings, SubmitSettings
from ingestion.core.errors import LeaseHeldError
from ingestion.core.reasons import RunCode
from ingestion.events import EventHandler, Ledger
from ingestion.submit import JobVenv, SparkSubmitSubmitter, SubmittedRunError, job_venv, redact

VENV = JobVenv(
    python=Path("/v/bin/python"),
    launcher=Path("/v/site/jobs/launch.py"),
    spark_home=Path("/v/site/pyspark"),
    packages=("io.delta:delta-spark_4.2_2.13:4.4.0",),
)


def _settings(**submit: object) -> Settings:
    submit = {"master": "spark://127.0.0.1:7077", **submit}
    return Settings(submit=SubmitSettings(kind="spark-submit", **submit))


def test_argv_submits_the_wheels_launcher_with_the_job_and_dataset():
    sub = SparkSubmitSubmitter(_settings(conf={"spark.executor.memory": "512m"}), job="curate", venv=VENV)
    assert sub.argv("orders") == [
        "/v/site/pyspark/bin/spark-submit",
        "--master",
        "spark://127.0.0.1:7077",
        "--name",
        "headwater-curate-orders",
        "--conf",
        "spark.executor.memory=512m",
        "--conf",
        "spark.pyspark.driver.python=/v/bin/python",
        "--conf",
        "spark.pyspark.python=/v/bin/python",
        "--conf",
        "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf",
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--packages",
        "io.delta:delta-spark_4.2_2.13:4.4.0",
        "/v/site/jobs/launch.py",
        "curate",
        "--dataset",
        "orders",
    ]


def test_argv_takes_pre_fetched_jars_instead_of_packages(tmp_path):
    for name in ("b.jar", "a.jar", "notes.txt"):
        (tmp_path / name).write_text("")
    settings = _settings(master="yarn")
    settings.spark = SparkSettings(jars_dir=tmp_path)
    argv = SparkSubmitSubmitter(settings, venv=VENV).argv("orders")
    assert argv[1:3] == ["--master", "yarn"] and "--packages" not in argv
    assert argv[argv.index("--jars") + 1] == f"{tmp_path / 'a.jar'},{tmp_path / 'b.jar'}"
    assert argv[-3:] == ["pipeline", "--dataset", "orders"]  # settings.submit.job by default


def test_a_job_that_is_not_a_module_name_is_refused():
    with pytest.raises(SubmitError, match="not a module name"):
        SparkSubmitSubmitter(_settings(), job="../evil", venv=VENV)
    with pytest.raises(SubmitError, match="HEADWATER_SUBMIT__PYTHON"):
        SparkSubmitSubmitter(_settings())


def test_secret_conf_values_never_reach_the_log():
    argv = ["spark-submit", "--conf", "fs.azure.account.oauth2.client.secret.x=hunter2", "--conf", "a.b=1"]
    assert redact(argv) == [
        "spark-submit",
        "--conf",
        "fs.azure.account.oauth2.client.secret.x=***",
        "--conf",
        "a.b=1",
    ]


def test_environment_points_spark_and_python_at_the_job_venv(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/some/checkout")
    env = SparkSubmitSubmitter(_settings(env={"HEADWATER_LAKE__ROOT": "/lake"}), venv=VENV).environment()
    assert env["SPARK_HOME"] == "/v/site/pyspark"
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == "/v/bin/python"
    assert env["HEADWATER_LAKE__ROOT"] == "/lake"
    assert "PYTHONPATH" not in env  # the job imports the wheel, never this process's checkout


def _fake_spark_submit(tmp_path: Path, exit_code: int, result: dict | None, stderr: str = "") -> Path:
    """A spark-submit that records its argv and prints what a job would."""
    script = tmp_path / "spark-submit"
    out = json.dumps(result) if result is not None else "no json here"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps("
        "{'argv': sys.argv[1:], 'home': os.environ.get('SPARK_HOME')}))\n"
        f"print('INFO spark says hello')\nprint({out!r})\n"
        f"print({stderr!r}, file=sys.stderr)\nsys.exit({exit_code})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_exit_0_returns_the_jobs_json_result(tmp_path):
    fake = _fake_spark_submit(tmp_path, 0, {"dataset": "orders", "status": "succeeded", "rows": 7})
    out = SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("orders")
    assert out == {"dataset": "orders", "status": "succeeded", "rows": 7}
    seen = json.loads((tmp_path / "argv.json").read_text())
    assert seen["argv"][-4:] == ["/v/site/jobs/launch.py", "pipeline", "--dataset", "orders"]
    assert seen["home"] == "/v/site/pyspark"


def test_exit_1_is_a_failure_with_the_runs_code(tmp_path):
    result = {"dataset": "orders", "status": "failed", "code": "storage", "error": "lake unreachable"}
    fake = _fake_spark_submit(tmp_path, 1, result, "jobs.ingest: failed (storage): lake unreachable")
    with pytest.raises(SubmittedRunError, match="storage: lake unreachable") as info:
        SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("orders")
    assert info.value.code == RunCode.STORAGE and info.value.exit_code == 1 and info.value.transient

    # A run-ledger error carries its code already: the message says it once.
    result["error"] = "storage: OSError: lake unreachable"
    fake = _fake_spark_submit(tmp_path, 1, result)
    with pytest.raises(SubmittedRunError) as info:
        SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("orders")
    assert str(info.value) == "run of 'orders' failed: storage: OSError: lake unreachable"


def test_exit_2_refusal_is_terminal_and_a_held_lease_is_a_lease_error(tmp_path):
    unknown = {
        "dataset": "nope",
        "status": "refused",
        "code": "unknown_dataset",
        "error": "no dataset named 'nope'",
    }
    fake = _fake_spark_submit(tmp_path, 2, unknown)
    with pytest.raises(SubmittedRunError) as info:
        SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("nope")
    assert info.value.code == RunCode.UNKNOWN_DATASET and not info.value.transient

    held = {
        "dataset": "orders",
        "status": "refused",
        "code": "lease_held",
        "error": "being written by run r-1",
    }
    fake = _fake_spark_submit(tmp_path, 2, held)
    with pytest.raises(LeaseHeldError, match="run r-1") as lease:
        SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("orders")
    assert lease.value.code == RunCode.LEASE_HELD


def test_a_crash_without_a_result_is_a_spark_failure_with_stderrs_last_line(tmp_path):
    fake = _fake_spark_submit(tmp_path, 137, None, "java.lang.OutOfMemoryError: Java heap space")
    with pytest.raises(SubmittedRunError, match="exited 137.*OutOfMemoryError") as info:
        SparkSubmitSubmitter(_settings(spark_submit=fake), venv=VENV).submit("orders")
    assert info.value.code == RunCode.SPARK and info.value.transient


def test_the_batcher_counts_a_submitted_run_refused_by_the_lease_as_coalesced(tmp_path, lake, catalog):
    held = {
        "dataset": "orders",
        "status": "refused",
        "code": "lease_held",
        "error": "being written by run r-1",
    }
    sub = SparkSubmitSubmitter(_settings(spark_submit=_fake_spark_submit(tmp_path, 2, held)), venv=VENV)
    ledger = Ledger(lake)
    handler = EventHandler(ledger, catalog)
    for i in range(3):
        assert handler.file_landed(f"orders/{i}.csv", etag=f'"e{i}"', size=10).outcome == "queued"
    result = Batcher(ledger, BatchPolicy(BatchingSettings(max_files=3)), sub).trigger("orders")
    assert result.outcome == "coalesced" and result.code == RunCode.LEASE_HELD
    assert len(ledger.queued("orders")) == 3


def test_job_venv_finds_the_launcher_pyspark_and_delta_of_an_interpreter():
    found = job_venv(Path(sys.executable))
    import pyspark

    import jobs

    # The interpreter's own install (``-I``: no PYTHONPATH), here the main checkout's editable one.
    assert found.python == Path(sys.executable)
    assert found.launcher.name == "launch.py" and found.launcher.parent.name == "jobs"
    assert (found.launcher.parent / "__init__.py").read_text() == (Path(jobs.__file__)).read_text()
    assert found.spark_home == Path(pyspark.__file__).parent
    assert found.spark_submit.exists()
    assert found.packages and found.packages[0].startswith("io.delta:delta-spark")
