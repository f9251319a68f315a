"""Azurite (the Blob API emulator, from npm) for tests: a real Blob endpoint on loopback.

Fixtures (import them into a ``conftest.py``)::

    from ingestion.testing.azurite import azurite, azurite_storage  # noqa: F401

* ``azurite`` - session-scoped :class:`Azurite` server: ``node_modules/.bin/azurite-blob`` on a
  free loopback port with a temporary ``--location``; stopped at the end of the session.
* ``azurite_storage`` - a :class:`~ingestion.core.storage.azure_blob.BlobStorage` over containers
  unique to the test (so tests never see each other's blobs), created and then deleted.

The account key below is Azurite's documented, public development key, not a secret.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.core.storage.azure_blob import BlobStorage

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# The environment variable tests point `lake.connection_string_env` (and the Function's
# `LandingStorage` connection) at.
CONNECTION_ENV = "HW_TEST_AZURITE_CONNECTION"


class AzuriteError(RuntimeError):
    """Azurite could not be found or did not start."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_azurite(start: Path | None = None) -> Path:
    """``node_modules/.bin/azurite-blob`` in the project (or ``$AZURITE_BLOB``)."""
    explicit = os.environ.get("AZURITE_BLOB")
    if explicit:
        return Path(explicit)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "node_modules" / ".bin" / "azurite-blob"
        if candidate.exists():
            return candidate
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise AzuriteError(
        "azurite-blob not found: run `npm install --no-audit --no-fund` in the project "
        "(package.json lists azurite), or set AZURITE_BLOB"
    )


@dataclass
class Azurite:
    """One running Azurite blob service."""

    port: int
    location: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """The blob endpoint URL (path-style: the account is the first path segment)."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """A connection string with Azurite's well-known development key (not a secret)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={DEV_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    @classmethod
    def start(cls, *, location: Path, timeout: float = 30.0) -> Azurite:
        """Start Azurite on a free loopback port, storing its data in ``location``.

        Args:
            location: folder for Azurite's data and its log (``azurite.log``).
            timeout: seconds to wait for it to answer, per attempt (three attempts).

        Returns:
            The running server; call :meth:`stop` when done.

        Raises:
            AzuriteError: it did not start (the error carries the end of its log).
        """
        exe = find_azurite(Path(__file__).parent)
        last_error = ""
        for _ in range(3):  # the free port may be taken between probe and bind: retry
            port = _free_port()
            log = open(location / "azurite.log", "ab")
            proc = subprocess.Popen(
                [
                    str(exe),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    str(location),
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableProductStyleUrl",
                    "--disableTelemetry",
                    "--silent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            server = cls(port=port, location=location, process=proc)
            if server._wait_ready(timeout):
                return server
            server.stop()
            last_error = (location / "azurite.log").read_text(errors="replace")[-2000:]
        raise AzuriteError(f"Azurite did not start on loopback: {last_error}")

    def _wait_ready(self, timeout: float) -> bool:
        from urllib.error import HTTPError, URLError
        from urllib.request import urlopen

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            try:
                urlopen(f"{self.endpoint}?comp=list", timeout=1).close()  # noqa: S310
                return True
            except HTTPError:  # any HTTP answer (403 without auth) means it is serving
                return True
            except (URLError, OSError):
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Terminate the server (killed after 10 s); stopping twice is harmless."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def storage(self, *, prefix: str | None = None) -> BlobStorage:
        """A BlobStorage over fresh containers named ``<prefix>-<zone>``, created now."""
        from azure.storage.blob import BlobServiceClient

        from ingestion.core.config import ZONES
        from ingestion.core.storage.azure_blob import TRANSFER_OPTIONS, BlobStorage

        prefix = prefix or f"t{uuid.uuid4().hex[:10]}"
        service = BlobServiceClient.from_connection_string(self.connection_string, **TRANSFER_OPTIONS)
        storage = BlobStorage(service, containers={z: f"{prefix}-{z}" for z in ZONES}, account=ACCOUNT)
        storage.ensure_containers()
        return storage

    def drop(self, storage: BlobStorage) -> None:
        """Delete the containers of ``storage``."""
        from azure.core.exceptions import ResourceNotFoundError

        for name in set(storage.containers.values()):
            try:
                storage.service.delete_container(name)
            except ResourceNotFoundError:
                pass


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite blob service for the whole test session."""
    location = Path(tempfile.mkdtemp(prefix="azurite-"))
    server = Azurite.start(location=location)
    previous = os.environ.get(CONNECTION_ENV)
    os.environ[CONNECTION_ENV] = server.connection_string
    try:
        yield server
    finally:
        server.stop()
        if previous is None:
            os.environ.pop(CONNECTION_ENV, None)
        else:
            os.environ[CONNECTION_ENV] = previous
        shutil.rmtree(location, ignore_errors=True)


@pytest.fixture
def azurite_storage(azurite: Azurite) -> Iterator[BlobStorage]:
    """A BlobStorage on Azurite with containers of its own, deleted afterwards."""
    storage = azurite.storage()
    try:
        yield storage
    finally:
        azurite.drop(storage)
