"""Finds the datasets declared in ``schemas/`` and routes landing paths to them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ingestion.contracts.model import Dataset
from ingestion.contracts.paths import check_landing_path, glob_match
from ingestion.core.config import Settings, get_settings
from ingestion.core.errors import ContractError, RejectedPathError, UnknownDatasetError
from ingestion.core.reasons import PathCode

if TYPE_CHECKING:  # pragma: no cover
    from ingestion.changes.sources import SqlSource


class Catalog:
    """The datasets of a project, by name, with path routing; and the SQL sources feeding them."""

    def __init__(self, datasets: Iterable[Dataset], sources: Iterable[SqlSource] = ()) -> None:
        self._by_name: dict[str, Dataset] = {}
        for ds in datasets:
            if ds.name in self._by_name:
                raise ContractError(ds.name, ["declared twice"])
            self._by_name[ds.name] = ds
        self._sources: dict[str, SqlSource] = {}
        for src in sources:
            if src.name in self._sources:
                raise ContractError(src.name, ["source declared twice"])
            self._sources[src.name] = src

    @classmethod
    def discover(cls, package: str | None = None, *, settings: Settings | None = None) -> Catalog:
        """Import every module of ``package`` and collect its ``DATASET`` and ``SOURCE``.

        Args:
            package: the package; by default ``settings.schemas_package`` (``schemas``, or
                ``HEADWATER_SCHEMAS_PACKAGE``).
            settings: headwater settings; the process-wide ones by default.

        Returns:
            The catalog of the datasets found.

        Raises:
            ContractError: a ``DATASET`` is not a Dataset, a ``SOURCE`` not a SqlSource, or a
                name is declared twice.
        """
        from ingestion.changes.sources import SqlSource

        package = package or (settings or get_settings()).schemas_package
        pkg = importlib.import_module(package)
        found: list[Dataset] = []
        sources: list[SqlSource] = []
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package}.{info.name}")
            ds = getattr(module, "DATASET", None)
            if ds is not None and not isinstance(ds, Dataset):
                raise ContractError(info.name, ["DATASET is not an ingestion.contracts.Dataset"])
            if ds is not None:
                found.append(ds)
            src = getattr(module, "SOURCE", None)
            if src is not None and not isinstance(src, SqlSource):
                raise ContractError(info.name, ["SOURCE is not an ingestion.changes.SqlSource"])
            if src is not None:
                sources.append(src)
        return cls(found, sources)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        """The dataset names, sorted."""
        return sorted(self._by_name)

    def sources(self) -> list[SqlSource]:
        """The SQL sources, by name."""
        return [self._sources[n] for n in sorted(self._sources)]

    def source(self, name: str) -> SqlSource:
        """The SQL source called ``name``.

        Raises:
            UnknownDatasetError: no such source (the error lists the known names).
        """
        try:
            return self._sources[name]
        except KeyError:
            raise UnknownDatasetError(name, sorted(self._sources)) from None

    def get(self, name: str) -> Dataset:
        """The dataset called ``name``.

        Raises:
            UnknownDatasetError: no such dataset (the error lists the known names).
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownDatasetError(name, self.names()) from None

    def route(self, path: str) -> tuple[Dataset, str]:
        """The dataset a landing path belongs to, and the path relative to the landing zone.

        Raises:
            RejectedPathError: hostile path, no dataset, or more than one dataset.
        """
        rel = check_landing_path(path)
        hits = [ds for ds in self._by_name.values() if glob_match(ds.landing, rel)]
        if not hits:
            raise RejectedPathError(path, "matches no dataset's landing pattern", PathCode.NO_DATASET)
        if len(hits) > 1:
            names = ", ".join(sorted(d.name for d in hits))
            raise RejectedPathError(path, f"matches several datasets ({names})", PathCode.AMBIGUOUS)
        return hits[0], rel
