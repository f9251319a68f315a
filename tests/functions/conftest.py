"""Fixtures for the Function App tests: Azurite, a runtime over it, real binding objects."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from functions.runtime import LANDING_CONNECTION, LandingRuntime, set_runtime
from ingestion.core.config import BatchingSettings, LakeSettings, Settings
from ingestion.events import Ledger
from ingestion.testing.azurite import CONNECTION_ENV, Azurite, azurite, azurite_storage  # noqa: F401


@dataclass
class RecordingSubmitter:
    """A Submitter that records each run and, like a real run, takes the queued files."""

    calls: list[str] = field(default_factory=list)
    ledger: Ledger | None = None

    def submit(self, dataset: str) -> dict[str, Any]:
        self.calls.append(dataset)
        taken = []
        if self.ledger is not None:
            for q in self.ledger.queued(dataset):
                entry = self.ledger.get(dataset, q.key)
                assert entry is not None
                self.ledger.update(entry, status="batched", batch=len(self.calls))
                taken.append(q.path)
        return {"dataset": dataset, "status": "recorded", "files": taken}


@pytest.fixture
def submitter() -> RecordingSubmitter:
    return RecordingSubmitter()


@pytest.fixture
def azure_settings(azurite_storage) -> Settings:  # noqa: F811
    return Settings(
        lake=LakeSettings(
            kind="azure",
            account="devstoreaccount1",
            containers=azurite_storage.containers,
            connection_string_env=CONNECTION_ENV,
        ),
        # High thresholds: a test that wants a run lowers them.
        batching=BatchingSettings(max_files=1000, max_bytes=10**12, max_age_seconds=3600),
        poison_max_attempts=3,
    )


@pytest.fixture
def runtime(
    azure_settings: Settings,
    azurite: Azurite,  # noqa: F811
    azurite_storage,  # noqa: F811
    submitter: RecordingSubmitter,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LandingRuntime]:
    """The runtime the functions use, over Azurite; the trigger's connection setting points there."""
    monkeypatch.setenv(LANDING_CONNECTION, azurite.connection_string)
    rt = LandingRuntime(azure_settings, azurite_storage, submitter=submitter)
    submitter.ledger = rt.ledger
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.fixture
def bind_blob(runtime: LandingRuntime) -> Callable[[str], Any]:
    """``bind_blob("orders/a.csv")``: the BlobClient the worker hands the function.

    Built the way the Python worker builds it: the host sends model binding data (connection
    setting name, container, blob name) and the extension's converter turns it into a client.
    """
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClient, BlobClientConverter

    def _bind(name: str, *, container: str | None = None) -> Any:
        content = json.dumps(
            {
                "Connection": LANDING_CONNECTION,
                "ContainerName": container or runtime.landing_container,
                "BlobName": name,
            }
        )
        # Same fields as the worker's ModelBindingData protobuf message.
        mbd = SimpleNamespace(
            version="1.0",
            source="AzureStorageBlobs",
            content_type="application/json",
            content=content.encode(),
        )
        return BlobClientConverter.decode(
            Datum(value=mbd, type="model_binding_data"), trigger_metadata={}, pytype=BlobClient
        )

    return _bind


@pytest.fixture(scope="session")
def function() -> Callable[[str], Callable[..., Any]]:
    """``function("landing_blob")``: the user function as the app registered it."""
    import function_app

    # The SDK indexes an app once (a second get_functions() sees its own names as duplicates).
    by_name = {f.get_function_name(): f for f in function_app.app.get_functions()}

    def _get(name: str) -> Callable[..., Any]:
        return by_name[name].get_user_function()

    return _get
