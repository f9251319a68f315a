"""Progress of an apply, kept in a JSON file so a cut apply resumes where it stopped.

One record per step (keyed by :attr:`~ingestion.access.plan.Step.key`), holding the entries it
applies, whether it is done, its running counts and, for a recursive step cut mid-way, the
continuation token the service gave for the next batch. A record whose entries differ from the
step's (the settings changed since) is ignored: that step starts again. The file is written
after every batch (atomically: a temporary file, then a rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ingestion.access.plan import Step

VERSION = 1


@dataclass
class StepRecord:
    """What an earlier apply did of one step.

    Attributes:
        acl: the entries it applied (``Step.acl``); a different value invalidates the record.
        done: finished with no failure; a later apply skips it.
        continuation: where a cut recursive step goes on (the service's continuation token).
        directories: directories changed so far.
        files: files changed so far.
        failure_count: entries that failed so far.
    """

    acl: str
    done: bool = False
    continuation: str | None = None
    directories: int = 0
    files: int = 0
    failure_count: int = 0


class ApplyState:
    """The resume state of one account's apply, in memory and (when ``path`` is set) on disk.

    Args:
        account: the storage account the state belongs to.
        path: the JSON file; None keeps the state in memory only.
    """

    def __init__(self, account: str, path: Path | None = None) -> None:
        self.account = account
        self.path = path
        self.steps: dict[str, StepRecord] = {}

    @classmethod
    def load(cls, account: str, path: Path | None) -> ApplyState:
        """Read the state file; a missing file, or one of another account, is a fresh state.

        Raises:
            ValueError: the file is not a state file of this format.
        """
        state = cls(account, path)
        if path is None or not path.exists():
            return state
        data: Any = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"{path}: not an apply-access state file (version {VERSION})")
        if data.get("account") != account:
            return state
        for key, rec in (data.get("steps") or {}).items():
            state.steps[key] = StepRecord(**rec)
        return state

    def record(self, step: Step) -> StepRecord | None:
        """The record of ``step``, when it applied the same entries."""
        rec = self.steps.get(step.key)
        return rec if rec is not None and rec.acl == step.acl else None

    def put(self, step: Step, rec: StepRecord) -> None:
        """Store ``rec`` for ``step`` and write the file."""
        self.steps[step.key] = rec
        self.save()

    def save(self) -> None:
        """Write the file (when the state has one)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = {
            "version": VERSION,
            "account": self.account,
            "steps": {k: asdict(v) for k, v in self.steps.items()},
        }
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        """Forget everything and remove the file (an apply finished with every step done)."""
        self.steps.clear()
        if self.path is not None and self.path.exists():
            self.path.unlink()
