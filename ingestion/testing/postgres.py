"""A throwaway PostgreSQL server for tests: Debian's binaries, a data folder of its own, loopback.

``PostgresServer().start()`` runs ``initdb`` (trust authentication, loopback only) and
``pg_ctl start`` on a free port, with its socket in the folder; ``stop()`` ends it. Run as root
(as in CI containers), the server runs as the ``postgres`` user, which PostgreSQL requires.
``odbc(database)`` is the connection string for Debian's ``PostgreSQL Unicode`` ODBC driver.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ingestion.testing.cluster import HOST, free_port

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder, or None."""
    for d in BIN_DIRS:
        if (d / "initdb").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@dataclass
class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 (see the module docstring)."""

    folder: Path | None = None  # default: a new folder in the system temp dir (postgres must reach it)
    port: int = 0
    user: str = "headwater"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Initialise and start the server; return when it accepts connections.

        Raises:
            RuntimeError: no PostgreSQL binaries, or the server did not start (the log is named).
        """
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian: postgresql)")
        if self.folder is None:
            # Not under the test's tmp_path: its parents are private to the user running the
            # tests, and the server runs as postgres.
            self.folder = Path(tempfile.mkdtemp(prefix="headwater-pg-"))
            self.folder.chmod(0o755)
        self.folder.mkdir(parents=True, exist_ok=True)
        data, log = self.folder / "data", self.folder / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self.port = self.port or free_port()
        subprocess.run(
            self._as_owner(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
        )
        opts = f"-p {self.port} -k {self.folder} -c listen_addresses={HOST} -c fsync=off"
        proc = subprocess.run(
            self._as_owner(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    opts,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {proc.stderr.strip()[-500:]} (log: {log})")
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder."""
        bin_dir, folder = postgres_bin(), self.folder
        if folder is None:
            return
        if bin_dir is not None and (folder / "data").exists():
            stop = [str(bin_dir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"]
            subprocess.run(self._as_owner(stop), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    def odbc(self, database: str = "postgres") -> str:
        """The ODBC connection string for ``database`` (Debian's ``PostgreSQL Unicode`` driver)."""
        return f"Driver={{PostgreSQL Unicode}};Server={HOST};Port={self.port};Database={database};Uid={self.user};"
