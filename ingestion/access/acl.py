"""ADLS Gen2 ACL entries: their text form, parsing, and the merge a non-recursive set needs.

An entry is ``[default:]<kind>:<qualifier>:<permissions>``: ``group:<oid>:r-x``,
``user:<oid>:rwx``, ``default:group:<oid>:r-x``; the unnamed ``user::``, ``group::``,
``mask::`` and ``other::`` entries have an empty qualifier. ``x-ms-acl`` holds them comma-separated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

# The service's limit per path and per ACL type (access, default): 32 entries, the four unnamed
# ones (owning user, owning group, mask, other) included, so 28 named entries.
MAX_ENTRIES = 32
BASE_ENTRIES = 4

_PERMS_RE = re.compile(r"^[r-][w-][x-]$")
_ENTRY_RE = re.compile(
    r"^(?P<default>default:)?(?P<kind>user|group|mask|other):(?P<qualifier>[^:]*):(?P<perms>[^:]+)$"
)
PrincipalKind = Literal["user", "group"]


@dataclass(frozen=True)
class AclEntry:
    """One ACL entry.

    Attributes:
        kind: ``user`` or ``group`` for a named principal; ``mask`` or ``other`` for unnamed ones.
        qualifier: the principal's object id; empty for the unnamed entries.
        permissions: ``rwx``, ``r-x``, ``--x``...
        default: a ``default:`` entry (a directory's template for new children).
    """

    kind: str
    qualifier: str
    permissions: str
    default: bool = False

    @property
    def spec(self) -> str:
        """The entry as ``x-ms-acl`` writes it."""
        return f"{'default:' if self.default else ''}{self.kind}:{self.qualifier}:{self.permissions}"

    @property
    def slot(self) -> tuple[bool, str, str]:
        """What identifies the entry in an ACL (scope, kind, qualifier); permissions aside."""
        return (self.default, self.kind, self.qualifier.lower())

    @property
    def named(self) -> bool:
        """Whether the entry names a principal (``user:<oid>:...``, ``group:<oid>:...``)."""
        return bool(self.qualifier)


def parse_entry(text: str) -> AclEntry:
    """Parse one entry.

    Args:
        text: e.g. ``default:group:<oid>:r-x`` or ``mask::rwx``.

    Returns:
        The entry.

    Raises:
        ValueError: ``text`` is not an ACL entry.
    """
    m = _ENTRY_RE.match(text.strip())
    if m is None or not _PERMS_RE.match(m["perms"]):
        raise ValueError(f"not an ACL entry: {text!r}")
    return AclEntry(m["kind"], m["qualifier"], m["perms"], default=bool(m["default"]))


def parse_acl(text: str | None) -> list[AclEntry]:
    """Parse an ``x-ms-acl`` value (comma-separated entries; empty or None: no entries).

    Raises:
        ValueError: an entry is malformed.
    """
    return [parse_entry(part) for part in (text or "").split(",") if part.strip()]


def format_acl(entries: Iterable[AclEntry]) -> str:
    """The ``x-ms-acl`` value of ``entries``, in their order."""
    return ",".join(e.spec for e in entries)


def union(a: str, b: str) -> str:
    """The permissions holding every bit of ``a`` and of ``b`` (``r--`` | ``--x`` = ``r-x``)."""
    return "".join(x if x != "-" else y for x, y in zip(a, b, strict=True))


def count(entries: Iterable[AclEntry], *, default: bool) -> int:
    """How many entries of one ACL type (access or default) ``entries`` hold."""
    return sum(1 for e in entries if e.default == default)


def merge(existing: Iterable[AclEntry], wanted: Iterable[AclEntry]) -> tuple[list[AclEntry], list[AclEntry]]:
    """Add ``wanted`` to ``existing`` without taking any permission away.

    A wanted entry whose principal already has every wanted bit changes nothing; one whose
    principal has fewer bits gets the union; a new principal is appended. When an entry is added
    or widened, the ``mask`` entry of the same scope (if any) is widened by the same bits, so the
    grant takes effect (as ``setfacl -m`` recalculates the mask).

    Args:
        existing: the path's current ACL, access and default entries.
        wanted: entries to hold.

    Returns:
        The merged ACL (existing order kept, new entries last) and the entries that changed
        (empty when ``existing`` already holds everything).
    """
    out = list(existing)
    index = {e.slot: i for i, e in enumerate(out)}
    changed: list[AclEntry] = []
    added_bits: dict[bool, str] = {}
    for w in wanted:
        i = index.get(w.slot)
        if i is None:
            out.append(w)
            index[w.slot] = len(out) - 1
            changed.append(w)
        else:
            perms = union(out[i].permissions, w.permissions)
            if perms == out[i].permissions:
                continue
            out[i] = AclEntry(out[i].kind, out[i].qualifier, perms, out[i].default)
            changed.append(out[i])
        added_bits[w.default] = union(added_bits.get(w.default, "---"), w.permissions)
    for scope, bits in added_bits.items():
        i = index.get((scope, "mask", ""))
        if i is not None:
            m = out[i]
            out[i] = AclEntry(m.kind, m.qualifier, union(m.permissions, bits), m.default)
    return out, changed
