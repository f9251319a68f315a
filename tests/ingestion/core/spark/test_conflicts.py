"""Delta conflicts: a retryable one is retried with backoff, any other error fails at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ingestion.core.config import RetrySettings
from ingestion.core.spark.commits import CommitTag, conflict_name, retry_conflicts, write_once


class _JavaClass:
    def __init__(self, name: str) -> None:
        self.name = name

    def getName(self) -> str:  # noqa: N802 - py4j's spelling
        return self.name


class _Java:
    """What py4j hands Python for a JVM exception: its class and its cause."""

    def __init__(self, name: str, cause: _Java | None = None) -> None:
        self.cls, self.cause = _JavaClass(name), cause

    def getClass(self) -> _JavaClass:  # noqa: N802
        return self.cls

    def getCause(self) -> _Java | None:  # noqa: N802
        return self.cause


class Py4JLike(Exception):
    def __init__(self, message: str, java: _Java) -> None:
        super().__init__(message)
        self.java_exception = java


@pytest.mark.parametrize(
    ("exc", "name"),
    [
        # Delta 3.2 and 4.4 raise io.delta.exceptions.<Name> (maybe wrapped by Spark).
        (Py4JLike("x", _Java("io.delta.exceptions.ConcurrentAppendException")), "ConcurrentAppendException"),
        (
            Py4JLike(
                "job aborted",
                _Java(
                    "org.apache.spark.SparkException",
                    _Java("io.delta.exceptions.ConcurrentTransactionException"),
                ),
            ),
            "ConcurrentTransactionException",
        ),
        (
            Py4JLike("x", _Java("org.apache.spark.sql.delta.ProtocolChangedException")),
            "ProtocolChangedException",
        ),
        # Delta 4's error class at the head of the message.
        (RuntimeError("[DELTA_CONCURRENT_APPEND.WITHOUT_HINT] Files were added"), "DELTA_CONCURRENT_APPEND"),
        # Not conflicts: another error class, or a conflict merely mentioned in free text.
        (Py4JLike("x", _Java("org.apache.spark.sql.AnalysisException")), None),
        (RuntimeError("cannot write: ConcurrentAppendException was seen earlier"), None),
        (ValueError("bad value"), None),
    ],
)
def test_conflicts_are_recognised_by_their_class(exc, name):
    assert conflict_name(exc) == name


def test_delta_sparks_python_conflict_classes_are_recognised():
    from delta.exceptions import ConcurrentAppendException, MetadataChangedException

    for cls in (ConcurrentAppendException, MetadataChangedException):
        err = cls.__new__(cls)  # constructing one needs a live JVM on pyspark 3.5: not needed here
        assert conflict_name(err) == cls.__name__


def test_a_conflict_is_retried_with_backoff_until_it_passes():
    calls, sleeps = [], []

    def write() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Py4JLike("lost", _Java("io.delta.exceptions.ConcurrentAppendException"))
        return "committed"

    retry = RetrySettings(attempts=4, wait_seconds=0.5, max_wait_seconds=8)
    assert retry_conflicts(write, what="t", retry=retry, sleep=sleeps.append) == "committed"
    assert len(calls) == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.5 and 1.0 <= sleeps[1] <= 3.0  # exponential, with jitter


def test_any_other_error_fails_at_once_and_conflicts_stop_at_the_bound():
    calls, sleeps = [], []

    def broken() -> None:
        calls.append(1)
        raise ValueError("schema mismatch")

    with pytest.raises(ValueError, match="schema mismatch"):
        retry_conflicts(broken, what="t", sleep=sleeps.append)
    assert len(calls) == 1 and sleeps == []

    def always_conflicts() -> None:
        calls.append(1)
        raise Py4JLike("lost", _Java("io.delta.exceptions.ConcurrentDeleteReadException"))

    calls.clear()
    with pytest.raises(Py4JLike):
        retry_conflicts(always_conflicts, what="t", retry=RetrySettings(attempts=3), sleep=sleeps.append)
    assert len(calls) == 3 and len(sleeps) == 2


@pytest.mark.floor
def test_write_once_wins_a_real_race_with_a_concurrent_writer(spark, lake, tmp_path):
    """Two writers of one partition: ours loses the race once (a real Delta conflict) and retries.

    Our write's source waits inside its Spark job (a file handshake with the test) after its
    transaction has read the table, while the other writer overwrites the same partition: our
    first commit fails with Delta's conflict; the retry sees the winner's commit and lands.
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    uri = lake.uri("bronze/race")
    spark.createDataFrame([(1, "seed")], "p INT, v STRING").write.format("delta").partitionBy("p").save(uri)
    started, go = str(tmp_path / "started"), str(tmp_path / "go")

    def gate(v: str) -> str:
        import os as _os
        import time as _time

        if not _os.path.exists(go):  # first attempt: let the other writer commit in between
            open(started, "w").close()
            deadline = _time.time() + 120
            while not _os.path.exists(go) and _time.time() < deadline:
                _time.sleep(0.05)
        return v

    gated = F.udf(gate, T.StringType())
    attempts: list[int] = []
    errors: list[BaseException] = []

    def ours(stamp):  # noqa: ANN001, ANN202
        attempts.append(1)
        source = spark.createDataFrame([(1, "ours")], "p INT, v STRING").select("p", gated("v").alias("v"))
        stamp(source.write.format("delta").mode("overwrite").option("replaceWhere", "p = 1")).save(uri)

    tag = CommitTag("bronze", "race", 1)
    made: list[object] = []

    def run() -> None:
        try:
            made.append(
                write_once(
                    spark, lake, "bronze/race", tag, ours, retry=RetrySettings(attempts=3, wait_seconds=0.1)
                )
            )
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread
            errors.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 120
    while not Path(started).exists() and time.time() < deadline:
        time.sleep(0.05)
    assert Path(started).exists(), "our write never reached its job"
    theirs = spark.createDataFrame([(1, "theirs")], "p INT, v STRING")
    theirs.write.format("delta").mode("overwrite").option("replaceWhere", "p = 1").save(uri)
    Path(go).touch()
    thread.join(180)
    assert not errors, errors
    assert len(attempts) == 2  # the first lost the race, the retry committed
    assert [r.v for r in spark.read.format("delta").load(uri).collect()] == ["ours"]
    commit = made[0]
    assert commit is not None and commit.version == 2 and commit.tag == tag
