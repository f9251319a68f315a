"""Pipeline runs: ingest -> curate -> publish -> register for one dataset, on one Spark session."""

from transforms.pipeline.run import JOB, Fault, PipelineResult, run_pipeline

__all__ = ["JOB", "Fault", "PipelineResult", "run_pipeline"]
