"""What a secret looks like, so nothing that prints settings or errors can show one.

Settings hold no secrets (they name the variable or vault secret holding one), but a value can
still be pasted where it does not belong: a connection string with its key in a profile, a
token in ``submit.env``. :func:`looks_secret` recognises the usual shapes; ``settings show``
redacts what it matches and a test scans the profiles with it.
"""

from __future__ import annotations

import math
import re
from collections import Counter

REDACTED = "<redacted>"

# Settings whose values are secret whatever they look like (spark-submit's extra environment).
SECRET_SETTINGS: tuple[tuple[str, ...], ...] = (("submit", "env"),)

_SHAPES = re.compile(
    r"""(
        AccountKey=|SharedAccessSignature=|SharedAccessKey=|[?&]sig=|
        (?:^|;)\s*(?:Password|Pwd)\s*=|client_secret=|
        -----BEGIN[ A-Z]*PRIVATE\ KEY-----|
        \bdapi[0-9a-f]{32}\b|                       # Databricks personal access token
        \beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.|  # a JWT (bearer token)
        \bgh[pousr]_[A-Za-z0-9]{30,}\b|             # GitHub tokens
        \bAKIA[0-9A-Z]{16}\b                        # AWS access key id
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# A long run of base64/hex with high entropy: a storage key, a client secret.
_OPAQUE = re.compile(r"[A-Za-z0-9+/=_~.-]{32,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_secret(value: str) -> bool:
    """Whether ``value`` has the shape of a credential.

    Args:
        value: any text (a setting's value, a line of a file).

    Returns:
        True for connection strings with keys or passwords, SAS signatures, private keys, bearer
        tokens, personal access tokens, and long high-entropy strings (keys, client secrets).
        URLs, paths, GUIDs and names are not secrets.
    """
    if _SHAPES.search(value):
        return True
    for run in _OPAQUE.findall(value):
        if "/" in run.strip("/") and not run.endswith("=="):
            continue  # a path or URL, not a key
        if _entropy(run) >= 4.5 and sum(c.isdigit() for c in run) >= 3 and any(c.isupper() for c in run):
            return True
    return False


def is_secret_setting(path: tuple[str, ...]) -> bool:
    """Whether the setting at ``path`` always holds secrets (its value is never shown)."""
    return any(path[: len(p)] == p for p in SECRET_SETTINGS)


__all__ = ["REDACTED", "SECRET_SETTINGS", "is_secret_setting", "looks_secret"]
