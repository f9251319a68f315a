"""Landing path patterns (globs with ``**``) and the checks that reject hostile paths."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ingestion.core.errors import RejectedPathError
from ingestion.core.reasons import PathCode


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob: ``*`` and ``?`` stay inside a segment, ``**/`` spans any number of them."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif ch == "{":
            end = pattern.find("}", i + 1)
            if end == -1:
                out.append(re.escape(ch))
                i += 1
            else:
                alts = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(re.escape(a) for a in alts) + ")")
                i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(pattern: str, path: str) -> bool:
    """Whether the whole of ``path`` matches the landing glob ``pattern``."""
    return glob_regex(pattern).match(path) is not None


def check_landing_path(path: str) -> str:
    """Return the normalised landing-relative path, or raise RejectedPathError naming why.

    Accepts ``orders/a.csv`` or ``landing/orders/a.csv``; rejects traversal, absolute paths,
    control characters, empty segments and names a blob store cannot hold.
    """
    if not path or not path.strip():
        raise RejectedPathError(path, "empty path", PathCode.EMPTY)
    if any(unicodedata.category(c) == "Cc" for c in path):
        raise RejectedPathError(path, "path contains control characters", PathCode.CONTROL_CHARS)
    # Bidirectional overrides (U+202E), zero-width joiners and other format characters make a
    # name read as something it is not: refused like control characters.
    cf = sorted({f"U+{ord(c):04X}" for c in path if unicodedata.category(c) == "Cf"})
    if cf:
        raise RejectedPathError(
            path, f"path contains Unicode format characters ({', '.join(cf)})", PathCode.FORMAT_CHARS
        )
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path) or "://" in path:
        raise RejectedPathError(path, "absolute paths are not accepted", PathCode.ABSOLUTE)
    if "\\" in path:
        raise RejectedPathError(path, "backslashes are not accepted in lake paths", PathCode.BACKSLASH)
    segments = path.split("/")
    if any(s in ("..", ".") for s in segments):
        raise RejectedPathError(path, "path traversal ('..' or '.') is not allowed", PathCode.TRAVERSAL)
    if any(s == "" for s in segments):
        raise RejectedPathError(path, "path has an empty segment", PathCode.EMPTY_SEGMENT)
    if len(path) > 1024:
        raise RejectedPathError(path, "path longer than 1024 characters", PathCode.TOO_LONG)
    if segments[0] == "landing":
        segments = segments[1:]
        if not segments:
            raise RejectedPathError(path, "names the landing zone, not a file", PathCode.NOT_A_FILE)
    return "/".join(segments)
