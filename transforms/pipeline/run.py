"""A pipeline run for one dataset: ingest -> curate -> publish -> register, on one Spark session.

Each stage is the job it names, run with its own lease and its own run-ledger row, so each is
skipped when it has nothing new and is idempotent and resumable after a crash (the commit
protocol, :mod:`ingestion.core.spark.commits`, makes it so). The run adds no state of its own:
a rerun after a crash anywhere asks every stage again, and the stages that already did their
work skip.

* **Golds.** After curate, every gold that reads the dataset (and every gold reading those, in
  dependency order: :func:`~transforms.gold.graph.golds_fed_by`) is published from the latest
  version of each of its inputs, then registered. A gold whose input has no table yet is
  skipped with the reason (it publishes once that input is curated). Publish and register are
  always asked: a crash after the curate commit, or after publish, is resumed by the next run.
* **Failure isolation.** A failed stage stops only the stages downstream of it: a failed
  ingest or curate stops every gold; a failed publish stops its register and the golds reading
  that gold; the other golds go on. The failure is in the run ledger (the stage's row, and the
  pipeline's own ``pipeline`` row naming the stage), and the next run resumes from it.
* **Telemetry.** The run is the span ``headwater.pipeline``, opened before ingest; each stage's
  span (``headwater.ingest``, ``headwater.curate``, ``headwater.publish``, ``headwater.register``)
  is its child (:mod:`ingestion.core.telemetry`).
* **Leases.** Ingest is taken with ``lease_wait`` (0 by default): a run that meets another
  run ingesting the dataset is refused (exit 2), which a batcher counts as coalesced. Later
  stages wait up to ``settings.pipeline.lease_wait`` for the holder, so two runs reaching the
  same gold never publish twice: the second waits, then finds the pins unchanged and skips.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import partial
from typing import TYPE_CHECKING, Any

from ingestion.core import telemetry
from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import LeaseHeldError, classify
from ingestion.core.lifecycle import failed_run, job_run, run_error
from ingestion.core.reasons import RunCode, UnknownCodeError, run_error_code
from ingestion.core.runs import RunRecord
from ingestion.core.spark.delta import table_version
from ingestion.core.system import ensure_format
from transforms.gold.graph import golds_fed_by, input_tables

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ingestion.bronze.job import IngestResult
    from ingestion.contracts import Catalog, Gold
    from ingestion.core.storage import Storage
    from transforms.assets import AssetRegistry, Release

log = logging.getLogger(__name__)

JOB = "pipeline"
Fault = Callable[[str], None]  # test seam: called at named points between stages

# A stage's outcome: the job's own status, or what the pipeline decided for it.
#   blocked - not run: a stage upstream of it failed in this run
#   waiting - not run: an input of the gold has no table yet, or no rows curated into it
#   refused - its lease stayed held past the wait (another run does that work)


@dataclass
class PipelineResult(RunRecord):
    """One pipeline run: the typed result of each stage and the outcome of each.

    ``outcomes`` maps a stage (``ingest``, ``curate``, ``publish:<gold>``, ``register:<gold>``)
    to ``succeeded``, ``skipped``, ``failed``, ``refused``, ``blocked`` or ``waiting``;
    ``errors`` holds the failed or refused stages' ``"<code>: <Class>: <line>"``. The record's
    own ``status`` is ``failed`` when a stage failed, else ``succeeded`` when one did work,
    else ``skipped``.
    """

    ingest: IngestResult | None = None
    curate: RunRecord | None = None
    releases: dict[str, Release] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def stopped_at(self) -> str | None:
        """The first stage that failed (or stayed refused), or None."""
        return next((k for k, v in self.outcomes.items() if v in ("failed", "refused")), None)

    @property
    def code(self) -> str | None:
        """The reason code of the stage the run stopped at (its error's prefix), or None."""
        if self.stopped_at is None:
            return None
        try:
            return run_error_code(self.errors.get(self.stopped_at) or "").value
        except UnknownCodeError:
            return RunCode.UNKNOWN.value

    def overall(self) -> str:
        """The run's status from its stages' outcomes."""
        values = set(self.outcomes.values())
        if values & {"failed", "refused"}:
            return "failed"
        return "succeeded" if "succeeded" in values else "skipped"

    def as_dict(self) -> dict[str, Any]:
        """The pipeline's record, each stage's result and the outcomes, as JSON-able data."""
        # The record's own fields only: each stage's result renders itself below.
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(RunRecord)}
        out["duration_s"] = self.duration_s
        out["outcomes"] = dict(self.outcomes)
        out["errors"] = dict(self.errors)
        out["stopped_at"] = self.stopped_at
        out["code"] = self.code
        out["stages"] = {
            "ingest": self.ingest.as_dict() if self.ingest is not None else None,
            "curate": self.curate.as_dict() if self.curate is not None else None,
            "golds": {name: release.as_dict() for name, release in self.releases.items()},
        }
        return out


def run_pipeline(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    dataset: str,
    *,
    settings: Settings | None = None,
    lease_wait: float = 0.0,
    stage_lease_wait: float | None = None,
    register_asset: bool = True,
    registry: AssetRegistry | None = None,
    fault: Fault | None = None,
) -> PipelineResult:
    """Run ingest, curate, publish and register for ``dataset`` (see the module docstring).

    Args:
        spark: the one session every stage runs on.
        storage: the lake.
        catalog: the project's datasets.
        dataset: the dataset whose queued files to take.
        settings: headwater settings; the process-wide ones by default.
        lease_wait: seconds ingest waits for a running ingest of the dataset.
        stage_lease_wait: seconds each later stage waits for a lease another run holds;
            ``settings.pipeline.lease_wait`` by default.
        register_asset: False stops each gold after publish.
        registry: the asset registry (Azure ML when configured, else the local one).
        fault: test seam, called with ``after_ingest``, ``after_curate``,
            ``after_publish:<gold>`` and ``after_register:<gold>`` (and handed to ingest, which
            calls it at its own crash points).

    Returns:
        The run's result; it is appended to the run ledger as a ``pipeline`` run.

    Raises:
        UnknownDatasetError, ContractError: refused before anything ran.
        LeaseHeldError: another run is ingesting the dataset (refused: nothing ran or recorded).
    """
    from ingestion.bronze.job import ingest
    from transforms.silver import curate

    settings = settings or get_settings()
    ds = catalog.get(dataset)
    golds = golds_fed_by(catalog, ds.name)
    ensure_format(storage)  # refuse a lake written by a newer headwater, before any stage
    wait = settings.pipeline.lease_wait if stage_lease_wait is None else stage_lease_wait
    result = PipelineResult(job=JOB, dataset=ds.name)
    result.details = {"golds": [g.name for _, g in golds], "env": settings.env.value}
    point = fault or (lambda name: None)

    with telemetry.run_span(result) as span:  # the stages' spans are its children
        try:
            result.ingest = ingest(
                spark, storage, catalog, ds.name, settings=settings, lease_wait=lease_wait, fault=fault
            )
            result.outcomes["ingest"] = result.ingest.status
        except LeaseHeldError as err:
            if failed_run(err) is None:
                raise  # another run is taking the dataset's files: this one is refused
            result.ingest = _failed(result, "ingest", err)  # type: ignore[assignment]
        except Exception as err:  # noqa: BLE001 - recorded; downstream stops, the next run resumes
            result.ingest = _failed(result, "ingest", err)  # type: ignore[assignment]

        with job_run(spark, storage, result) as run:
            if result.outcomes["ingest"] == "failed":
                _block(
                    result, ["curate", *(f"{s}:{g.name}" for _, g in golds for s in ("publish", "register"))]
                )
            else:
                point("after_ingest")
                result.curate = _stage(
                    result,
                    "curate",
                    lambda: curate(spark, storage, catalog, ds.name, settings=settings, lease_wait=wait),
                )
                if result.outcomes["curate"] in ("failed", "refused"):
                    _block(result, [f"{s}:{g.name}" for _, g in golds for s in ("publish", "register")])
                else:
                    point("after_curate")
                    _golds(
                        spark,
                        storage,
                        catalog,
                        golds,
                        result,
                        settings,
                        wait,
                        register_asset,
                        registry,
                        point,
                    )
            result.details.update(
                outcomes=result.outcomes, errors=result.errors, stopped_at=result.stopped_at
            )
            status = result.overall()
            if status == "failed":
                # The stopping stage's own "<code>: <Class>: <line>"; which stage it was is in details.
                assert result.stopped_at is not None
                run.record.finish("failed", result.errors.get(result.stopped_at) or "failed")
            elif status == "skipped":
                run.skip("every stage had nothing new")

        _annotate(span, result)
    return result


def _annotate(span: telemetry.Stage, result: PipelineResult) -> None:
    """The pipeline span's batch and bronze range: its ingest's batch, what its curate read."""
    ingested = result.ingest  # a failed ingest's record may lack the batch
    if ingested is not None:
        span.set_batch(getattr(ingested, "batch", None))
        version = getattr(ingested, "bronze_version", None)
        span.set_bronze_range(version, version)
    if result.curate is not None and result.curate.status != "skipped":
        span.set_bronze_range(result.curate.input_from, result.curate.input_to)
    span.set({"headwater.stopped_at": result.stopped_at})


def _golds(
    spark: SparkSession,
    storage: Storage,
    catalog: Catalog,
    golds: list[tuple[Any, Gold]],
    result: PipelineResult,
    settings: Settings,
    wait: float,
    register_asset: bool,
    registry: AssetRegistry | None,
    point: Fault,
) -> None:
    from transforms.assets import Release, register
    from transforms.gold import publish

    stopped: set[str] = set()  # golds that did not publish in this run: their readers wait
    for ds, gold in golds:
        key = f"publish:{gold.name}"
        upstream = [name for name in gold.inputs if name in stopped]
        if upstream:
            _block(result, [key, f"register:{gold.name}"], because=", ".join(upstream))
            stopped.add(gold.name)
            continue
        missing = [n for n, t in input_tables(catalog, gold).items() if not _has_data(spark, storage, t)]
        if missing:
            result.outcomes[key] = "waiting"
            result.details.setdefault("waiting", {})[gold.name] = missing
            log.info("gold %s waits for its input(s) %s", gold.name, ", ".join(missing))
            stopped.add(gold.name)
            continue
        published = _stage(
            result,
            key,
            partial(publish, spark, storage, catalog, ds.name, settings=settings, lease_wait=wait),
        )
        if published is None or published.status == "failed":
            stopped.add(gold.name)
            if register_asset:
                _block(result, [f"register:{gold.name}"], because=gold.name)
            if published is not None:
                result.releases[gold.name] = Release(published)
            continue
        point(f"after_publish:{gold.name}")
        release = Release(published)
        result.releases[gold.name] = release
        if register_asset:
            release.register = _stage(
                result,
                f"register:{gold.name}",
                partial(
                    register,
                    spark,
                    storage,
                    catalog,
                    ds.name,
                    settings=settings,
                    registry=registry,
                    lease_wait=wait,
                ),
            )
            point(f"after_register:{gold.name}")


def _has_data(spark: SparkSession, storage: Storage, table: str) -> bool:
    """Whether one of our commits gave ``table`` data (not only its empty creation).

    Silver and gold are created empty before their first MERGE or write; a gold published from
    an input at that version would be empty. Our commits are in the commit index (filled from
    the log once for a table written before it).
    """
    from ingestion.core.spark.commits import CommitIndex

    index = CommitIndex(storage, table)
    if index.last() is not None:  # the usual case: no snapshot loaded
        return True
    uri = storage.uri(table)
    return table_version(spark, uri) is not None and index.sync(spark, uri).last() is not None


def _stage(result: PipelineResult, key: str, fn: Callable[[], Any]) -> Any:
    """Run one stage; record its outcome (a failure or held lease is recorded, not raised)."""
    try:
        record = fn()
    except LeaseHeldError as err:
        if failed_run(err) is not None:  # lost mid-run: the stage failed
            return _failed(result, key, err)
        result.outcomes[key] = "refused"
        result.errors[key] = run_error(err)
        log.warning("pipeline %s: %s refused: %s", result.dataset, key, result.errors[key])
        return None
    except Exception as err:  # noqa: BLE001 - recorded by the stage; downstream stops
        return _failed(result, key, err)
    result.outcomes[key] = record.status
    if record.status == "failed":
        result.errors[key] = record.error or "failed"
    return record


def _failed(result: PipelineResult, key: str, err: Exception) -> RunRecord | None:
    record = failed_run(err)
    result.outcomes[key] = "failed"
    result.errors[key] = record.error if record is not None and record.error else run_error(err)
    code, _ = classify(err)
    log.error("pipeline %s: %s failed (%s): %s", result.dataset, key, code, result.errors[key])
    return record


def _block(result: PipelineResult, keys: list[str], *, because: str | None = None) -> None:
    for key in keys:
        result.outcomes[key] = "blocked"
    if because:
        result.details.setdefault("blocked_by", {}).update({k: because for k in keys})


__all__ = ["JOB", "Fault", "PipelineResult", "run_pipeline"]
