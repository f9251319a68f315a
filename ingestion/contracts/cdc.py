"""How a dataset fed by row changes (a SQL source) is applied to silver: ``Cdc``.

A change row carries the table's columns plus two reserved ones the SQL path adds
(``_change_op``: insert, update or delete; ``_change_seq``: the change version when the source
has one). ``sequence_by`` names what orders the changes of one key: a contract column (a
``rowversion`` or an updated-at the table keeps) or ``_change_seq``. It is the dataset's one
ordering concept: ``order_by`` is either unset or the same column (``headwater validate``
rejects a contract where they differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CdcMode = Literal["scd1", "scd2"]
Deletes = Literal["hard", "soft"]


@dataclass(frozen=True, kw_only=True)
class Cdc:
    """The CDC apply of a dataset.

    Args:
        mode: ``scd1`` keeps the current state per key; ``scd2`` keeps full history.
        sequence_by: the column ordering one key's changes (a contract column or
            ``_change_seq``). A change older than what silver holds for its key is ignored.
        deletes: ``hard`` removes the key's row (a tombstone keeps its delete sequence, so a
            late, older change cannot bring it back); ``soft`` keeps the row with
            ``_deleted = true`` and its last values.
        tombstone_days: how long a hard delete's tombstone is kept; a change older than the
            delete arriving after that could resurrect the row.
        track_history_columns: SCD2 only: the columns whose change opens a new history row
            (others update the current row in place); empty means all columns.
    """

    mode: CdcMode
    sequence_by: str
    deletes: Deletes = "hard"
    tombstone_days: float = 7.0
    track_history_columns: tuple[str, ...] = ()
