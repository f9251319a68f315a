"""The Maven fallback for Delta's jars: same coordinates as delta-spark's, and they really work."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingestion.core.spark.jars import _artifact, delta_coordinates, fetch_delta_jars


def test_coordinates_match_delta_spark_pip_helper():
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    builder = configure_spark_with_delta_pip(SparkSession.Builder())
    assert builder._options["spark.jars.packages"] == ",".join(delta_coordinates())


def test_artifact_names():
    assert _artifact("jackson-core-2.13.5.jar") == "jackson-core"
    assert _artifact("delta-spark_4.2_2.13-4.4.0.jar") == "delta-spark_4.2_2.13"
    assert _artifact("zstd-jni-1.5.7-3.jar") == "zstd-jni"


@pytest.mark.skipif(not __import__("shutil").which("mvn"), reason="needs Maven")
def test_fetched_jars_start_a_delta_session(tmp_path):
    jars = fetch_delta_jars(tmp_path / "jars")
    names = {_artifact(j.name) for j in jars}
    assert {n for n in names if n.startswith("delta-spark")} and "delta-storage" in names
    shipped = {
        _artifact(p.name) for p in (Path(__import__("pyspark").__file__).parent / "jars").glob("*.jar")
    }
    assert not names & shipped  # nothing Spark already ships, in another version
    script = (
        "from ingestion.core.spark.session import get_spark\n"
        f"s = get_spark()\n"
        f"s.range(3).write.format('delta').save({str(tmp_path / 't')!r})\n"
        f"print(s.read.format('delta').load({str(tmp_path / 't')!r}).count(), s.conf.get('spark.jars.packages', 'none'))\n"
    )
    env = {**os.environ, "HEADWATER_SPARK__JARS_DIR": str(tmp_path / "jars")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "3 none"
