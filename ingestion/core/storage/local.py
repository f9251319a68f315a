"""The lake as a local folder: one sub-folder per zone.

Exclusive create uses ``O_EXCL``; conditional replace holds an ``flock`` on a side lock file while
it compares etags, then renames a temp file into place, so readers never see half an object.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from ingestion.core.errors import AlreadyExistsError, NotFoundError, PreconditionFailedError
from ingestion.core.storage.base import ObjectInfo, Storage, split_zone

_LOCKS = ".locks"


def _etag(st: os.stat_result) -> str:
    # mtime_ns + size + inode changes on every replace (rename gives a new inode).
    raw = f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}".encode()
    return '"' + hashlib.sha1(raw).hexdigest()[:16] + '"'


class LocalStorage(Storage):
    """A lake rooted at a local folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _fs(self, path: str) -> Path:
        zone, rest = split_zone(path)
        return self.root / zone / rest

    def _info(self, path: str, fs: Path) -> ObjectInfo:
        st = fs.stat()
        return ObjectInfo(
            path=path.strip("/"),
            size=st.st_size,
            etag=_etag(st),
            modified=datetime.fromtimestamp(st.st_mtime, tz=timezone.utc),
        )

    def info(self, path: str) -> ObjectInfo | None:
        """The file's size and etag (from mtime, size and inode), or None when absent."""
        fs = self._fs(path)
        return self._info(path, fs) if fs.is_file() else None

    def open_read(self, path: str) -> BinaryIO:
        """The file, opened for binary reading."""
        try:
            return open(self._fs(path), "rb")
        except FileNotFoundError:
            raise NotFoundError(path) from None

    @contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        lock_dir = self.root / _LOCKS
        lock_dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(path.strip("/").encode()).hexdigest()
        with open(lock_dir / name, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _replace(self, fs: Path, stream: BinaryIO) -> None:
        fs.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=fs.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, 4 * 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, fs)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(
        self, path: str, data: bytes, *, exclusive: bool = False, if_match: str | None = None
    ) -> ObjectInfo:
        """Write aside and rename into place; ``exclusive`` links instead (fails if the name exists)."""
        fs = self._fs(path)
        fs.parent.mkdir(parents=True, exist_ok=True)
        if exclusive:
            # Write aside, then link into place: link fails if the name exists, atomically.
            fd, tmp = tempfile.mkstemp(dir=fs.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                try:
                    os.link(tmp, fs)
                except FileExistsError:
                    raise AlreadyExistsError(path) from None
            finally:
                Path(tmp).unlink(missing_ok=True)
            return self._info(path, fs)
        import io

        with self._locked(path):
            if if_match is not None:
                current = self.info(path)
                if current is None or current.etag != if_match:
                    raise PreconditionFailedError(path)
            self._replace(fs, io.BytesIO(data))
        return self._info(path, fs)

    def write_stream(self, path: str, stream: BinaryIO) -> ObjectInfo:
        """Copy the stream to a temp file in 4 MiB chunks, then rename it into place."""
        fs = self._fs(path)
        with self._locked(path):
            self._replace(fs, stream)
        return self._info(path, fs)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Files below ``prefix`` (or ``prefix`` itself when it is a file), skipping temp files."""
        base = self._fs(prefix)
        if base.is_file():
            yield self._info(prefix, base)
            return
        if not base.is_dir():
            return
        zone, _ = split_zone(prefix)
        zone_root = self.root / zone
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".tmp-"):
                    continue
                fs = Path(dirpath) / name
                rel = fs.relative_to(zone_root).as_posix()
                try:
                    yield self._info(f"{zone}/{rel}", fs)
                except FileNotFoundError:  # removed while listing
                    continue

    def delete(self, path: str, *, if_match: str | None = None) -> None:
        """Unlink the file, under the path's lock when ``if_match`` is given."""
        fs = self._fs(path)
        with self._locked(path):
            if if_match is not None:
                current = self.info(path)
                if current is not None and current.etag != if_match:
                    raise PreconditionFailedError(path)
            fs.unlink(missing_ok=True)

    def delta_rs_options(self) -> dict[str, str] | None:
        """Local files need no options."""
        return {}

    def uri(self, path: str) -> str:
        """A ``file:`` URI."""
        return self._fs(path).as_uri()
