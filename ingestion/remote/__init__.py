"""Pipeline runs on remote services: the registry and poller (``runs``), one module per target."""

from ingestion.remote.runs import (
    RemoteRun,
    RemoteRunError,
    RemoteRuns,
    RemoteRunSubmitter,
    RemoteService,
    RemoteStatus,
    idempotency_token,
    poll_open,
)

__all__ = [
    "RemoteRun",
    "RemoteRunError",
    "RemoteRunSubmitter",
    "RemoteRuns",
    "RemoteService",
    "RemoteStatus",
    "idempotency_token",
    "poll_open",
]
