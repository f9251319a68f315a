"""What every Storage backend must do, exercised the same way by each backend's test file."""

from __future__ import annotations

import threading

from ingestion.core.errors import AlreadyExistsError
from ingestion.core.storage import Storage


def race_exclusive_creates(st: Storage, path: str, contenders: int = 8) -> tuple[list[int], list[int]]:
    """``contenders`` threads create ``path`` exclusively at the same moment: (winners, losers).

    Each writes its own number, so the object's content tells which one won.
    """
    wins: list[int] = []
    losses: list[int] = []
    go = threading.Barrier(contenders)

    def attempt(i: int) -> None:
        go.wait()
        try:
            st.write_bytes(path, str(i).encode(), exclusive=True)
            wins.append(i)
        except AlreadyExistsError:
            losses.append(i)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins, losses
