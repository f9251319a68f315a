"""Delta's jars, for when Spark's own resolver (Ivy, ``spark.jars.packages``) cannot fetch them.

Maven resolves the same coordinates from Maven Central into a cache folder; the session then
takes them through ``spark.jars``. The coordinates come from the installed delta-spark, exactly
as ``configure_spark_with_delta_pip`` would choose them.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ingestion.core.errors import ConfigError

log = logging.getLogger(__name__)

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>headwater</groupId><artifactId>delta-jars</artifactId><version>1</version>
  <dependencies>{deps}</dependencies>
</project>
"""


def delta_coordinates() -> list[str]:
    """``group:artifact:version`` of the Delta package matching the installed delta-spark."""
    import importlib.metadata as md

    from pyspark import __version__ as spark_version

    delta_version = md.version("delta-spark")
    major = int(delta_version.split(".")[0])
    spark_mm = ".".join(spark_version.split(".")[:2])
    if major >= 4:
        # Delta 4.x publishes one artifact per Spark minor (Scala 2.13); 4.0 used the plain name.
        artifact = "delta-spark_2.13" if delta_version.startswith("4.0") else f"delta-spark_{spark_mm}_2.13"
    else:
        artifact = "delta-spark_2.12"
    return [f"io.delta:{artifact}:{delta_version}"]


def _artifact(jar_name: str) -> str:
    """``jackson-core-2.13.5.jar`` -> ``jackson-core``."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9.]+)?\.jar$", "", jar_name)


def _artifact_names(folder: Path) -> set[str]:
    return {_artifact(p.name) for p in folder.glob("*.jar")}


def fetch_delta_jars(cache_dir: Path, *, coordinates: list[str] | None = None) -> list[Path]:
    """Resolve Delta and its runtime dependencies with Maven into ``cache_dir``; return the jars.

    Raises:
        ConfigError: Maven is missing or could not resolve (the message says which artifact).
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ConfigError("Spark could not resolve Delta's jars and Maven (mvn) is not installed")
    coordinates = coordinates or delta_coordinates()
    cache_dir.mkdir(parents=True, exist_ok=True)
    deps = "".join(
        f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in (c.split(":") for c in coordinates)
    )
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "pom.xml").write_text(POM.format(deps=deps))
        proc = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={cache_dir}",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise ConfigError(f"Maven could not fetch {', '.join(coordinates)}: " + " | ".join(tail))
    # Spark ships its own Hadoop, Scala, Jackson, Parquet...: keep only what it lacks, so no
    # library is on the classpath twice in two versions.
    import pyspark

    shipped = _artifact_names(Path(pyspark.__path__[0]) / "jars")
    for jar in cache_dir.glob("*.jar"):
        if _artifact(jar.name) in shipped:
            jar.unlink()
    jars = sorted(cache_dir.glob("*.jar"))
    log.info("fetched %d jars for %s into %s", len(jars), coordinates, cache_dir)
    return jars
