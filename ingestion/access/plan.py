"""From ``settings.access`` to an ordered plan of ADLS Gen2 ACL changes (nothing is sent here).

Each zone is a container (``lake.containers``); a path inside it is lake-relative minus the zone
(``ingestion.core.lake``: ``bronze/orders`` is path ``orders`` of the bronze container). A plan
has two kinds of step, per container:

* ``recursive``: a zone root or a dataset folder gets its grants on itself and everything under
  it (``update_access_control_recursive``, which merges), as access entries and as ``default:``
  entries, so what is written there later inherits them.
* ``traverse``: every directory above a deeper grant, up to and including the container root,
  gets ``--x`` (non-recursive) for the principals of that grant, without which the grant below
  cannot be reached.

Zone grants (``access.<role>``)::

    landing     landing_writers rwx, functions r-x, spark r-x
    bronze      spark rwx
    silver      spark rwx
    gold        spark rwx, gold_readers r-x
    quarantine  spark rwx
    system      functions rwx, spark rwx

and ``access.datasets.<dataset>.<zone>`` adds ``readers`` (``r-x``) and ``writers`` (``rwx``) on
that dataset's folder in that zone: ``landing/<the landing pattern's folder>``,
``bronze/<dataset>``, ``silver/<dataset>``, ``gold/<its gold table>``, ``quarantine/<dataset>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

from ingestion.access.acl import BASE_ENTRIES, MAX_ENTRIES, AclEntry, union
from ingestion.core import lake as layout
from ingestion.core.config import ZONES, Principal, Settings
from ingestion.core.errors import ConfigError, SettingsError

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DATASET_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # ingestion.contracts.model.NAME_RE
READ = "r-x"
WRITE = "rwx"
TRAVERSE = "--x"

# (setting under ``access``, zone, permissions), in the order the plan lists them.
ZONE_ROLES: tuple[tuple[str, str, str], ...] = (
    ("landing_writers", "landing", WRITE),
    ("functions", "landing", READ),
    ("spark", "landing", READ),
    ("spark", "bronze", WRITE),
    ("spark", "silver", WRITE),
    ("spark", "gold", WRITE),
    ("gold_readers", "gold", READ),
    ("spark", "quarantine", WRITE),
    ("functions", "system", WRITE),
    ("spark", "system", WRITE),
)
# Zones with a folder per dataset (the system area's per-dataset files live in several folders).
DATASET_ZONES = ("landing", "bronze", "silver", "gold", "quarantine")


class AccessPlanError(SettingsError):
    """``settings.access`` cannot become a plan; every problem names its setting."""


@dataclass(frozen=True)
class Grantee:
    """A principal as an ACL names it, and what the plan shows for it.

    Attributes:
        kind: ``user`` or ``group``.
        object_id: the Entra ID object id (lower-case).
        label: its name (or object id) and the setting it came from.
    """

    kind: Literal["user", "group"]
    object_id: str
    label: str


@dataclass(frozen=True)
class DatasetFolders:
    """Where one dataset's folders are, beyond the ``<zone>/<dataset>`` convention.

    Attributes:
        landing: its landing pattern's folder (landing-relative: ``orders`` for
            ``orders/**/*.csv``); None when the pattern matches files at the landing root.
        gold: the gold table it publishes (``gold/<name>``); None when it publishes none.
    """

    landing: str | None
    gold: str | None = None


@dataclass(frozen=True)
class Step:
    """One ACL change on one path.

    Attributes:
        kind: ``recursive`` (the path and all under it, access and default entries) or
            ``traverse`` (the path alone, ``--x`` access entries).
        zone: the lake zone.
        container: the zone's container (file system).
        path: the directory inside the container; ``""`` is the container root.
        entries: the entries to hold.
        principals: who they are, one label per principal, in entry order.
    """

    kind: Literal["recursive", "traverse"]
    zone: str
    container: str
    path: str
    entries: tuple[AclEntry, ...]
    principals: tuple[str, ...]

    @property
    def recursive(self) -> bool:
        """Whether the change reaches everything under the path."""
        return self.kind == "recursive"

    @property
    def acl(self) -> str:
        """The ``x-ms-acl`` value this step sends (recursive) or merges in (traverse)."""
        return ",".join(e.spec for e in self.entries)

    @property
    def where(self) -> str:
        """``<container>/<path>`` (``<container>/`` for the root)."""
        return f"{self.container}/{self.path}"

    @property
    def key(self) -> str:
        """What names the step in the resume state: its kind and path."""
        return f"{self.kind}:{self.where}"

    def to_json(self) -> dict[str, Any]:
        """The step as plain data (``--json``)."""
        return {
            "kind": self.kind,
            "zone": self.zone,
            "container": self.container,
            "path": self.path,
            "recursive": self.recursive,
            "entries": [e.spec for e in self.entries],
            "principals": list(self.principals),
        }


@dataclass(frozen=True)
class AccessPlan:
    """The ordered ACL changes of one account: per container, recursive steps, then traverse steps.

    Attributes:
        account: the storage account's name.
        account_url: its DFS endpoint (``https://<account>.dfs.core.windows.net``).
        steps: the changes, in the order they are applied.
    """

    account: str
    account_url: str
    steps: tuple[Step, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain data (``--json``)."""
        return {
            "account": self.account,
            "account_url": self.account_url,
            "steps": [s.to_json() for s in self.steps],
        }


def landing_folder(pattern: str) -> str | None:
    """The folder a landing pattern's files are under: its literal leading directories.

    Args:
        pattern: a dataset's landing glob (``orders/**/*.{csv,csv.gz}``).

    Returns:
        ``orders`` for that example, ``sales/eu`` for ``sales/eu/*.csv``, None for ``*.csv``.
    """
    folder: list[str] = []
    for segment in pattern.strip("/").split("/")[:-1]:
        if any(c in segment for c in "*?[{"):
            break
        folder.append(segment)
    return "/".join(folder) or None


def dataset_folders(datasets: Iterable[Any]) -> dict[str, DatasetFolders]:
    """The folders of each dataset of a catalog.

    Args:
        datasets: ``ingestion.contracts.Dataset`` objects (``name``, ``landing``, ``gold``).

    Returns:
        Dataset name -> its landing folder and gold table.
    """
    out: dict[str, DatasetFolders] = {}
    for ds in datasets:
        gold = getattr(ds, "gold", None)
        out[ds.name] = DatasetFolders(landing=landing_folder(ds.landing), gold=getattr(gold, "name", None))
    return out


def account_url(settings: Settings) -> tuple[str, str]:
    """The account's name and DFS endpoint.

    ``lake.blob_endpoint`` (a sovereign cloud's ``https://<account>.blob.<suffix>``) gives the
    DFS endpoint ``https://<account>.dfs.<suffix>``; otherwise the public cloud's.

    Raises:
        ConfigError: the lake is local, or no account is configured.
    """
    lake = settings.lake
    if lake.kind == "local":
        raise ConfigError(
            f"lake.kind is 'local' (a folder, {lake.root}): a local lake has no ACLs to apply; "
            "set HEADWATER_LAKE__KIND=azure and HEADWATER_LAKE__ACCOUNT"
        )
    host = urlparse(lake.blob_endpoint or "").hostname or ""
    parts = host.split(".")
    if len(parts) > 2 and parts[1] == "blob":
        account = lake.account or parts[0]
        return account, f"https://{account}.{'.'.join(['dfs', *parts[2:]])}"
    if not lake.account:
        raise ConfigError("lake.account is not set (HEADWATER_LAKE__ACCOUNT): no account to apply ACLs to")
    return lake.account, f"https://{lake.account}.dfs.core.windows.net"


def plan_access(settings: Settings, *, folders: Mapping[str, DatasetFolders] | None = None) -> AccessPlan:
    """Turn ``settings.access`` into the ordered ACL changes of the lake's account.

    Args:
        settings: headwater settings (``access``, ``lake``).
        folders: each known dataset's folders (:func:`dataset_folders` of the catalog). When
            given, ``access.datasets`` may only name these datasets, and their landing and gold
            folders come from here; when None, the ``<zone>/<dataset>`` convention is used.

    Returns:
        The plan: per container in zone order, recursive steps (zone root first), then traverse
        steps (container root first).

    Raises:
        ConfigError: the lake is local or has no account.
        AccessPlanError: an object id is no GUID, a principal is both a user and a group, a
            zone or dataset is unknown, or a path would hold more than 32 entries of one type.
    """
    account, url = account_url(settings)
    problems: list[str] = []
    # (zone, path) -> ordered {(kind, object id): [permissions, labels]} of recursive grants.
    grants: dict[tuple[str, str], dict[tuple[str, str], list[Any]]] = {}
    kinds: dict[str, tuple[str, str]] = {}  # object id -> (kind, setting), to catch a mismatch

    def grantee(p: Principal, setting: str) -> Grantee | None:
        oid = p.object_id.strip()
        if not GUID_RE.match(oid):
            problems.append(f"{setting}.object_id: {p.object_id!r} is not an object id (a GUID)")
            return None
        oid = oid.lower()
        seen = kinds.setdefault(oid, (p.kind, setting))
        if seen[0] != p.kind:
            problems.append(f"{setting}.kind: {oid} is a {p.kind} here but a {seen[0]} in {seen[1]}")
            return None
        return Grantee(p.kind, oid, f"{p.name or oid} ({setting})")

    def grant(zone: str, path: str, g: Grantee, perms: str) -> None:
        slot = grants.setdefault((zone, path), {})
        held = slot.setdefault((g.kind, g.object_id), [perms, []])
        held[0] = union(held[0], perms)
        if g.label not in held[1]:
            held[1].append(g.label)

    access = settings.access
    for role, zone, perms in ZONE_ROLES:
        for i, p in enumerate(getattr(access, role)):
            g = grantee(p, f"access.{role}[{i}]")
            if g is not None:
                grant(zone, "", g, perms)
    for name in sorted(access.datasets):
        for zone in sorted(access.datasets[name]):
            setting = f"access.datasets.{name}.{zone}"
            path = _dataset_path(name, zone, setting, folders, problems)
            if path is None:
                continue
            folder = access.datasets[name][zone]
            for role, perms in (("readers", READ), ("writers", WRITE)):
                for i, p in enumerate(getattr(folder, role)):
                    g = grantee(p, f"{setting}.{role}[{i}]")
                    if g is not None:
                        grant(zone, path, g, perms)
    if problems:
        raise AccessPlanError(problems)

    steps = _steps(settings, grants)
    problems = _over_limit(steps)
    if problems:
        raise AccessPlanError(problems)
    return AccessPlan(account=account, account_url=url, steps=tuple(steps))


def _dataset_path(
    name: str, zone: str, setting: str, folders: Mapping[str, DatasetFolders] | None, problems: list[str]
) -> str | None:
    """The container-relative folder of dataset ``name`` in ``zone``, or None (a problem noted)."""
    if zone not in ZONES:
        problems.append(f"{setting}: unknown zone {zone!r} (zones: {', '.join(ZONES)})")
        return None
    if zone not in DATASET_ZONES:
        problems.append(
            f"{setting}: the {zone} zone has no folder per dataset (dataset folders are in: "
            f"{', '.join(DATASET_ZONES)})"
        )
        return None
    if not DATASET_RE.match(name):
        problems.append(
            f"access.datasets.{name}: {name!r} is not a dataset name (lower-case letters, digits, _)"
        )
        return None
    known = folders.get(name) if folders is not None else DatasetFolders(landing=name, gold=name)
    if known is None:
        problems.append(
            f"access.datasets.{name}: no dataset named {name!r} (known: {', '.join(sorted(folders or {})) or 'none'})"
        )
        return None
    if zone == "landing":
        if known.landing is None:
            problems.append(
                f"{setting}: dataset {name!r} lands at the landing root, not in a folder of its own"
            )
            return None
        lake_path = f"landing/{known.landing}"
    elif zone == "gold":
        if known.gold is None:
            problems.append(f"{setting}: dataset {name!r} publishes no gold table")
            return None
        lake_path = layout.gold_table(known.gold)
    elif zone == "bronze":
        lake_path = layout.bronze_table(name)
    elif zone == "silver":
        lake_path = layout.silver_table(name)
    else:  # quarantine/<dataset>: the parent of its files/ and rows
        lake_path = layout.quarantine_files(name).rsplit("/", 1)[0]
    return lake_path.split("/", 1)[1].strip("/")


def _parents(path: str) -> list[str]:
    """The directories above ``path`` inside its container, root (``""``) first."""
    parts = path.split("/") if path else []
    return ["/".join(parts[:i]) for i in range(len(parts))]


def _covers(ancestor: str, path: str) -> bool:
    return ancestor == "" or path == ancestor or path.startswith(ancestor + "/")


def _steps(settings: Settings, grants: dict[tuple[str, str], dict[tuple[str, str], list[Any]]]) -> list[Step]:
    steps: list[Step] = []
    for zone in ZONES:
        container = settings.lake.container(zone)
        paths = sorted((p for z, p in grants if z == zone), key=lambda p: (p.count("/") if p else -1, p))
        for path in paths:
            held = grants[(zone, path)]
            access = tuple(AclEntry(k, oid, perms) for (k, oid), (perms, _) in held.items())
            default = tuple(AclEntry(e.kind, e.qualifier, e.permissions, default=True) for e in access)
            labels = tuple("; ".join(labels) for _, labels in held.values())
            steps.append(Step("recursive", zone, container, path, access + default, labels))
        # --x above each deeper grant, for a principal no recursive grant at or above covers.
        traverse: dict[str, dict[tuple[str, str], list[str]]] = {}
        for path in paths:
            for who, (_, labels) in grants[(zone, path)].items():
                for parent in _parents(path):
                    covered = any(
                        who in grants[(zone, other)] and _covers(other, parent)
                        for other in paths
                        if other != path
                    )
                    if not covered:
                        slot = traverse.setdefault(parent, {}).setdefault(who, [])
                        slot.extend(label for label in labels if label not in slot)
        for parent in sorted(traverse, key=lambda p: (p.count("/") if p else -1, p)):
            who_labels = traverse[parent]
            entries = tuple(AclEntry(k, oid, TRAVERSE) for k, oid in who_labels)
            steps.append(
                Step(
                    "traverse",
                    zone,
                    container,
                    parent,
                    entries,
                    tuple("; ".join(v) for v in who_labels.values()),
                )
            )
    return steps


def _over_limit(steps: list[Step]) -> list[str]:
    """Paths whose ACL would hold more than 32 entries of one type once the plan is applied.

    A path ends up with the named entries of every recursive step at or above it, plus its own
    traverse entries; each ACL type also holds the four unnamed entries (owning user, owning
    group, mask, other). Entries already on the path from elsewhere are not known here.
    """
    problems: list[str] = []
    by_container: dict[str, list[Step]] = {}
    for s in steps:
        by_container.setdefault(s.container, []).append(s)
    for container, group in by_container.items():
        for path in dict.fromkeys(s.path for s in group):
            named: dict[bool, set[tuple[str, str]]] = {False: set(), True: set()}
            for s in group:
                reaches = (s.recursive and _covers(s.path, path)) or s.path == path
                if reaches:
                    for e in s.entries:
                        named[e.default].add((e.kind, e.qualifier))
            for default, who in named.items():
                total = len(who) + BASE_ENTRIES
                if who and total > MAX_ENTRIES:
                    problems.append(
                        f"{container}/{path}: {total} {'default' if default else 'access'} ACL entries "
                        f"({len(who)} named + {BASE_ENTRIES} for owner, owning group, mask and other) exceed "
                        f"the limit of {MAX_ENTRIES} per path; grant a security group instead of its members"
                    )
    return problems
