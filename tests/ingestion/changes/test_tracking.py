"""The change puller's change-tracking mode (SQL Server / Azure SQL).

There is no SQL Server here: these tests run the puller against a recording DB-API connection
that answers the documented change-tracking queries, and assert the exact statements and bound
parameters it sends, the prerequisite errors, and what lands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ingestion.changes.puller import PullState, pull
from ingestion.changes.tracking import PrerequisiteError
from ingestion.contracts import Catalog
from ingestion.core.config import Settings
from ingestion.events import EventHandler, Ledger

CT_DB = "SELECT COUNT(*) FROM sys.change_tracking_databases WHERE database_id = DB_ID()"
CT_TABLE = "SELECT COUNT(*) FROM sys.change_tracking_tables WHERE object_id = OBJECT_ID(?)"
SNAPSHOT = "SELECT snapshot_isolation_state FROM sys.databases WHERE database_id = DB_ID()"
PERMS = "SELECT HAS_PERMS_BY_NAME(?, 'OBJECT', 'VIEW CHANGE TRACKING')"
CURRENT = "SELECT CHANGE_TRACKING_CURRENT_VERSION()"
MIN_VALID = "SELECT CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?))"
PROBE = "SELECT * FROM [dbo].[members] WHERE 1 = 0"
RELOAD = "SELECT [id], [name], [version] FROM [dbo].[members] ORDER BY [id]"
CHANGES = (
    "SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.[id], t.[name], t.[version] "
    "FROM CHANGETABLE(CHANGES [dbo].[members], ?) AS ct LEFT JOIN [dbo].[members] AS t ON t.[id] = ct.[id] "
    "ORDER BY ct.SYS_CHANGE_VERSION, ct.[id]"
)


@dataclass
class FakeSqlServer:
    """Answers the change-tracking statements as SQL Server documents them; records each one."""

    rows: dict[str, tuple[str, int]]  # id -> (name, version)
    changes: list[tuple[int, str, str]] = field(default_factory=list)  # (version, I/U/D, id)
    current: int = 10
    min_valid: int = 0
    ct_db: bool = True
    ct_table: bool = True
    snapshot: bool = True
    perms: bool = True
    sent: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def cursor(self) -> FakeSqlServer:
        return self

    def execute(self, sql: str, *params: Any) -> None:
        self.sent.append((sql, params))
        answers: dict[str, Any] = {
            CT_DB: [(int(self.ct_db),)],
            CT_TABLE: [(int(self.ct_table),)],
            SNAPSHOT: [(int(self.snapshot),)],
            PERMS: [(int(self.perms),)],
            CURRENT: [(self.current,)],
            MIN_VALID: [(self.min_valid,)],
            "SET TRANSACTION ISOLATION LEVEL SNAPSHOT": [],
        }
        # pyodbc's description: (name, type_code, display_size, internal_size, precision, scale, null_ok)
        table = [
            (n, t, None, None, None, None, True) for n, t in (("id", str), ("name", str), ("version", int))
        ]
        if sql in answers:
            self._result, self.description = answers[sql], [("x", int, None, None, None, None, True)]
        elif sql == PROBE:
            self._result, self.description = [], table
        elif sql == RELOAD:
            self.description = table
            self._result = [(k, *v) for k, v in sorted(self.rows.items())]
        elif sql == CHANGES:
            self.description = [
                ("SYS_CHANGE_VERSION", int, None, None, None, None, False),
                ("SYS_CHANGE_OPERATION", str, None, None, None, None, False),
                *table,
            ]
            since = params[0]
            self._result = [
                (ver, op, key, *(self.rows.get(key) or (None, None)))
                for ver, op, key in sorted(self.changes)
                if ver > since
            ]
        else:
            raise AssertionError(f"unexpected SQL: {sql}")

    def fetchone(self) -> Any:
        return self._result[0] if self._result else None

    def fetchmany(self, n: int) -> list[Any]:
        out, self._result = self._result[:n], self._result[n:]
        return out

    def commit(self) -> None:
        self.sent.append(("COMMIT", ()))

    def close(self) -> None:
        pass


@pytest.fixture
def members(lake):  # noqa: ANN001, ANN201
    catalog = Catalog.discover("tests.ingestion.changes.pull_schemas")
    source = replace(
        catalog.source("club"),
        mode="change_tracking",
        table="dbo.members",
        watermark=None,
        soft_delete_column=None,
        columns=("id", "name", "version"),
    )
    handler = EventHandler(Ledger(lake), catalog)

    def run(server: FakeSqlServer):  # noqa: ANN202
        return pull(
            lake,
            catalog,
            source,
            settings=Settings(),
            record=lambda f: handler.file_landed(f.path, etag=f.etag, size=f.size),
            connect=lambda _settings, _source: server,
        )

    return source, run


def landed(lake, result) -> list[dict]:  # noqa: ANN001
    return [
        json.loads(x)
        for f in result.files
        for x in lake.read_bytes(f"landing/{f.path}").decode().splitlines()
    ]


def test_a_first_pull_is_a_full_reload_then_net_changes_follow_with_their_versions(lake, members):
    source, run = members
    server = FakeSqlServer(rows={"M-1": ("ann", 1), "M-2": ("bob", 1)})
    first = run(server)
    assert [s for s, _ in server.sent] == [CT_DB, CT_TABLE, SNAPSHOT, PERMS, "COMMIT",
                                           "SET TRANSACTION ISOLATION LEVEL SNAPSHOT", CURRENT, MIN_VALID, PROBE, RELOAD, "COMMIT"]  # fmt: skip
    assert dict(server.sent)[CT_TABLE] == ("dbo.members",)
    assert (first.full, first.rows, first.watermark) == (True, 2, 10)
    assert first.files[0].path.startswith("members/club/reload-000000000000-0-10-")
    assert landed(lake, first) == [
        {"id": "M-1", "name": "ann", "version": 1, "_change_op": "U", "_change_seq": 10},
        {"id": "M-2", "name": "bob", "version": 1, "_change_op": "U", "_change_seq": 10},
    ]

    server.rows.update({"M-1": ("ann2", 2), "M-3": ("cy", 1)})
    del server.rows["M-2"]
    server.changes = [(12, "U", "M-1"), (11, "I", "M-3"), (13, "D", "M-2")]
    server.current, server.sent = 13, []
    second = run(server)
    assert (CHANGES, (10,)) in server.sent  # the stored version, bound
    assert (second.full, second.rows, second.watermark) == (False, 3, 13)
    assert landed(lake, second) == [
        {"id": "M-3", "name": "cy", "version": 1, "_change_op": "I", "_change_seq": 11},
        {"id": "M-1", "name": "ann2", "version": 2, "_change_op": "U", "_change_seq": 12},
        {"id": "M-2", "_change_op": "D", "_change_seq": 13},  # a delete carries only its key
    ]
    assert PullState.load(lake, "club").mark == {"type": "int", "value": 13}


def test_a_version_older_than_the_minimum_valid_one_reloads_and_deletes_the_vanished_keys(lake, members):
    _, run = members
    server = FakeSqlServer(rows={"M-1": ("ann", 1), "M-2": ("bob", 1)})
    run(server)
    del server.rows["M-1"]  # deleted while change tracking cleaned up past our version
    server.current, server.min_valid = 40, 30
    reload = run(server)
    assert reload.full and reload.vanished == 1
    assert landed(lake, reload) == [
        {"id": "M-2", "name": "bob", "version": 1, "_change_op": "U", "_change_seq": 40},
        {"id": "M-1", "_change_op": "D", "_change_seq": 40},
    ]


@pytest.mark.parametrize(
    ("flag", "missing"),
    [
        ("ct_db", "change tracking is off for the database"),
        ("ct_table", "change tracking is off for table dbo.members"),
        ("snapshot", "snapshot isolation is not allowed (ALLOW_SNAPSHOT_ISOLATION is OFF)"),
        ("perms", "the login lacks the VIEW CHANGE TRACKING permission on dbo.members"),
    ],
)
def test_a_missing_prerequisite_is_named_and_nothing_is_stored(lake, members, flag, missing):
    _, run = members
    server = FakeSqlServer(rows={"M-1": ("ann", 1)}, **{flag: False})
    with pytest.raises(PrerequisiteError) as err:
        run(server)
    assert err.value.missing == missing and "source 'club'" in str(err.value)
    assert not lake.exists(PullState.path("club")) and list(lake.list("landing")) == []


def test_every_statement_sent_parses_as_t_sql(lake, members):
    import sqlglot
    from sqlglot import exp

    _, run = members
    server = FakeSqlServer(rows={"M-1": ("ann", 1)})
    run(server)
    server.changes, server.current = [(11, "U", "M-1")], 11
    run(server)
    # The isolation statement is a fixed text (sqlglot does not parse SET TRANSACTION options).
    sent = sorted(
        {s for s, _ in server.sent if s not in ("COMMIT", "SET TRANSACTION ISOLATION LEVEL SNAPSHOT")}
    )
    assert CHANGES in sent and RELOAD in sent

    def parse(sql: str) -> exp.Expression:
        # sqlglot's T-SQL grammar lacks the CHANGES keyword of CHANGETABLE(CHANGES t, v): it is
        # checked as text, and the rest of the statement parsed.
        return sqlglot.parse_one(sql.replace("CHANGETABLE(CHANGES ", "CHANGETABLE("), read="tsql")

    for sql in sent:
        assert parse(sql) is not None, sql  # raises on a malformed statement
    assert "FROM CHANGETABLE(CHANGES [dbo].[members], ?) AS ct" in CHANGES
    changes = parse(CHANGES)
    assert [t.name for t in changes.find_all(exp.Table) if t.name] == ["members"]  # the joined table
    with pytest.raises(sqlglot.errors.ParseError):
        parse("SELECT ct.[id] FROM CHANGETABLE(CHANGES [dbo].[members], ?) AS ct LEFT JOIN")
