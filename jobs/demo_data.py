"""The demo's embedded data: two batches of orders (CSV) and customers (JSON lines).

Deterministic (seeded), small enough for a laptop, and deliberately imperfect: each batch holds
rows a contract must reject (bad amounts, one that would need rounding, unknown statuses, dates
that do not parse, a malformed line, a garbage file), and the second batch updates earlier
orders, brings one late update that must not win, and shifts the distribution of ``amount`` so
drift has something to find.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta

ORDER_COLUMNS = "order_id,customer_id,status,amount,quantity,order_date,ship_date,updated_at"
COUNTRIES = ["DE", "FR", "NL", "SE", "US", "GB"]
STATUSES = ["new", "paid", "shipped", "cancelled"]
N_CUSTOMERS = 120


def _ts(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S")


def customers(batch: int) -> dict[str, bytes]:
    """Batch 1 or 2 of the CRM export: ``{landing path: JSON lines}``, one file."""
    rng = random.Random(1000 + batch)
    lines = []
    ids = range(1, N_CUSTOMERS + 1) if batch == 1 else range(N_CUSTOMERS - 20, N_CUSTOMERS + 31)
    for i in ids:
        rec: dict[str, object] = {
            "customer_id": f"C-{i:03d}",
            "name": f"Customer {i}",
            "email": f"customer{i}@example.com",
            "country": rng.choice(COUNTRIES),
            "segment": rng.choice(["consumer", "business"]),
            "signup_date": str(date(2024, 1, 1) + timedelta(days=rng.randrange(600))),
            "lifetime_value": round(rng.uniform(0, 5000), 2),
        }
        if batch == 2 and i % 7 == 0:
            rec["loyalty_tier"] = rng.choice(["silver", "gold"])  # unknown to the contract: rescued
        lines.append(json.dumps(rec))
    if batch == 1:
        lines += [
            json.dumps(
                {
                    "customer_id": "C-901",
                    "name": "No Email Ltd",
                    "email": "not-an-email",
                    "country": "DE",
                    "signup_date": "2024-05-01",
                }
            ),
            json.dumps(
                {"customer_id": "C-902", "name": "Atlantis", "country": "XX", "signup_date": "2024-05-02"}
            ),
            json.dumps({"customer_id": "C-903", "name": "", "country": "FR", "signup_date": "2024-13-40"}),
            '{"customer_id": "C-904", "name": "broken line"',
        ]
    return {f"customers/2026/11/crm_export_{batch}.jsonl": ("\n".join(lines) + "\n").encode()}


def orders(batch: int) -> dict[str, bytes]:
    """Batch 1 or 2 of the shop's order exports: ``{landing path: CSV bytes}``, several files."""
    rng = random.Random(2000 + batch)
    start = datetime(2026, 11, 1, 8, 0, 0) + timedelta(days=14 * (batch - 1))
    files: dict[str, bytes] = {}
    rows: list[str] = []
    first, count = (1, 400) if batch == 1 else (401, 300)
    scale = 1.0 if batch == 1 else 1.8  # batch 2 shifts the amount distribution
    for n in range(first, first + count):
        od = start + timedelta(hours=rng.randrange(24 * 10))
        status = rng.choices(STATUSES, weights=[3, 4, 4, 1])[0]
        ship = (od + timedelta(days=rng.randrange(1, 6))).date() if status == "shipped" else ""
        amount = round(rng.lognormvariate(3.5, 0.6) * scale, 2)
        rows.append(
            f"O-{n:05d},C-{rng.randrange(1, N_CUSTOMERS + 1):03d},{status},{amount:.2f},"
            f"{rng.randrange(1, 6)},{od.date()},{ship},{_ts(od)}"
        )
    if batch == 2:
        # Updates to batch-1 orders: later updated_at wins...
        for n in range(1, 41):
            od = datetime(2026, 11, 2, 9, 0, 0)
            rows.append(
                f"O-{n:05d},C-{n % N_CUSTOMERS + 1:03d},shipped,{20 + n:.2f},1,{od.date()},"
                f"{(od + timedelta(days=2)).date()},{_ts(start + timedelta(days=12, minutes=n))}"
            )
        # ...and a stale update arriving late must not roll O-00041 back.
        rows.append("O-00041,C-041,cancelled,1.00,1,2026-10-01,,2026-10-01T00:00:00")
    bad = [
        f"O-9{batch}001,C-001,paid,-5.00,1,2026-11-03,,2026-11-03T10:00:00",  # amount < 0
        f"O-9{batch}002,C-002,lost,12.00,1,2026-11-03,,2026-11-03T10:00:00",  # unknown status
        f"O-9{batch}003,C-003,paid,abc,1,2026-11-03,,2026-11-03T10:00:00",  # not a number
        f"O-9{batch}004,C-004,shipped,9.99,1,2026-11-05,2026-11-01,2026-11-05T10:00:00",  # ships first
        f"O-9{batch}005,C-005,paid,5.00,1,2026-02-30,,2026-11-03T10:00:00",  # no such date
        f"BAD-{batch},C-006,paid,5.00,1,2026-11-03,,2026-11-03T10:00:00",  # id pattern
        f"O-9{batch}007,C-007,paid",  # malformed line: too few fields
        f"O-9{batch}008,C-008,paid,12.345,1,2026-11-03,,2026-11-03T10:00:00",  # would be rounded
    ]
    rng.shuffle(rows)
    half = len(rows) // 2
    files[f"orders/2026/11/shop_{batch}a.csv"] = (
        ORDER_COLUMNS + "\n" + "\n".join(rows[:half] + bad) + "\n"
    ).encode()
    files[f"orders/2026/11/shop_{batch}b.csv"] = (
        ORDER_COLUMNS + "\n" + "\n".join(rows[half:]) + "\n"
    ).encode()
    if batch == 1:
        files["orders/2026/11/shop_1c.csv"] = b"\x89PNG\r\n\x1a\n\x00\x00 a picture, not an export"
    return files


def batch_files(batch: int) -> dict[str, bytes]:
    """Landing-relative path -> bytes for demo batch 1 or 2."""
    return {**customers(batch), **orders(batch)}


# The demo's SQL source (schemas/members.py): a members table changed in two steps. Step 2
# changes M-001 twice between pulls (a watermark pull sees its net state, v3), renames M-002
# (tier unchanged: tracked columns are only the tier, so the row is updated in place), moves
# M-004 to another tier (a new history row), and deletes M-003 outright (the key snapshot finds it).
SQL_TABLE = (
    "CREATE TABLE members (member_id TEXT PRIMARY KEY, name TEXT, tier TEXT, version INTEGER NOT NULL)"
)
SQL_STEPS: dict[int, list[str]] = {
    1: [
        "INSERT INTO members VALUES ('M-001', 'Ada', 'basic', 1)",
        "INSERT INTO members VALUES ('M-002', 'Bo', 'basic', 1)",
        "INSERT INTO members VALUES ('M-003', 'Cy', 'plus', 1)",
        "INSERT INTO members VALUES ('M-004', 'Di', 'basic', 1)",
        "INSERT INTO members VALUES ('M-005', 'Ed', 'platinum', 1)",  # not a tier: quarantined
    ],
    2: [
        "UPDATE members SET tier = 'plus', version = 2 WHERE member_id = 'M-001'",
        "UPDATE members SET tier = 'gold', version = 3 WHERE member_id = 'M-001'",
        "UPDATE members SET name = 'Bob', version = 2 WHERE member_id = 'M-002'",
        "UPDATE members SET tier = 'plus', version = 2 WHERE member_id = 'M-004'",
        "DELETE FROM members WHERE member_id = 'M-003'",
    ],
}
