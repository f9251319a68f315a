"""The session leaves what spark-submit decided alone, and builds a local one otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ingestion.core.config import Settings, SparkSettings
from ingestion.core.spark.session import DELTA_CONF, LAUNCH_KEYS, session_options

ROOT = Path(__file__).resolve().parents[4]
SETTINGS = Settings(spark=SparkSettings(master="local[2]", driver_memory="2g", app_name="hw"))


def test_a_local_session_gets_headwaters_master_memory_and_delta():
    opts = session_options(SETTINGS, submitted=None, warehouse=Path("/tmp/wh"))
    assert opts["spark.master"] == "local[2]"
    assert opts["spark.driver.memory"] == "2g"
    assert opts["spark.app.name"] == "hw"
    assert opts["spark.sql.warehouse.dir"] == "/tmp/wh"
    assert {k: opts[k] for k in DELTA_CONF} == DELTA_CONF


def test_no_session_leaves_a_spark_warehouse_folder_in_the_project():
    import tempfile

    for submitted in (None, {"spark.master": "spark://127.0.0.1:7077"}):
        folder = Path(session_options(SETTINGS, submitted=submitted)["spark.sql.warehouse.dir"])
        assert folder == Path(tempfile.gettempdir()) / "headwater" / "spark-warehouse"
        assert not folder.is_relative_to(Path.cwd())
    # A platform's own warehouse (Synapse, a cluster's conf) is left as it set it.
    assert "spark.sql.warehouse.dir" not in session_options(
        SETTINGS, submitted={"spark.sql.warehouse.dir": "abfss://w@a.dfs.core.windows.net/wh"}
    )


def test_under_spark_submit_master_memory_and_jars_are_left_alone():
    submitted = {
        "spark.master": "spark://127.0.0.1:7077",
        "spark.driver.memory": "512m",
        "spark.jars.packages": "io.delta:delta-spark_2.13:4.0.0",
        "spark.app.name": "submitted",
    }
    opts = session_options(SETTINGS, submitted=submitted)
    assert not set(opts) & {*LAUNCH_KEYS, "spark.app.name"}
    # Delta's SQL settings are added only where spark-submit gave none.
    assert {k: opts[k] for k in DELTA_CONF} == DELTA_CONF
    mine = {**submitted, "spark.sql.extensions": "my.Extension"}
    assert "spark.sql.extensions" not in session_options(SETTINGS, submitted=mine)


def test_a_plain_process_is_not_taken_for_spark_submit():
    """In a fresh interpreter: this test process may hold the suite's own session already."""
    import subprocess
    import sys

    assert "PYSPARK_GATEWAY_PORT" not in os.environ
    code = "from ingestion.core.spark.session import submitted_conf; print(submitted_conf())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"


PROBE = """
import json
from ingestion.core.config import Settings, SparkSettings
from ingestion.core.spark.session import get_spark
spark = get_spark(Settings(spark=SparkSettings(master="local[2]", driver_memory="2g")))
conf = spark.sparkContext.getConf()
print(json.dumps({
    "master": spark.sparkContext.master,
    "memory": conf.get("spark.driver.memory"),
    "extensions": conf.get("spark.sql.extensions"),
    "ansi": spark.conf.get("spark.sql.ansi.enabled"),
    "delta_rows": spark.range(3).write.format("delta").mode("overwrite").save(__import__("sys").argv[1]) or
        spark.read.format("delta").load(__import__("sys").argv[1]).count(),
}))
"""


def test_a_spark_submitted_job_keeps_spark_submits_master_and_memory(tmp_path):
    """Under a real spark-submit, get_spark(master=local[2], 2g) runs on local[1] with 700m."""
    from ingestion.core.spark.jars import delta_coordinates

    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    spark_submit = Path(__import__("pyspark").__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYSPARK_PYTHON": sys.executable}
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    proc = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[1]",
            "--driver-memory",
            "700m",
            "--packages",
            ",".join(delta_coordinates()),
            str(script),
            str(tmp_path / "t"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {
        "master": "local[1]",
        "memory": "700m",
        "extensions": DELTA_CONF["spark.sql.extensions"],
        "ansi": "true",
        "delta_rows": 3,
    }
