"""Benchmark: building the sync dashboard table for 100,000 sent emails.

Target (task brief): ``sync_table`` within 2x of the time it takes just to read the
same rows (sent mail joined with its log-queue rows) from SQLite into pandas with
``pd.read_sql``. Reading the CRM's log (``Crm.read_log``) is the table's input, not
part of building it, and is reported on its own.

    .venv/bin/python bench/bench_dashboard.py [N]

prints ``dashboard_ratio: <build time / read time>`` and the figures behind it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENT_EMAILS = 100_000
REPEATS = 5
INSERT_BATCH = 20_000


def _fill(engine, n: int) -> None:  # noqa: ANN001 - imported lazily below
    from lib.schema import (
        crm_log_table,
        crm_record_emails_table,
        crm_records_table,
        log_queue_table,
        sent_mail_table,
        tracking_events_table,
    )

    start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    records = max(n // 4, 1)
    mail, queue, log, events = [], [], [], []
    for i in range(n):
        rfc = f"<bench{i}@our-charity.example.org>"
        sent_at = start + timedelta(seconds=30 * i)
        record = i % records
        mail.append(
            {
                "id": i + 1,
                "mailbox": "sandbox:fundraising@our-charity.example.org",
                "mailbox_message_id": f"{i:016x}",
                "rfc_message_id": rfc,
                "thread_id": f"{i:016x}",
                "sender": "fundraising@our-charity.example.org",
                "subject": f"Thank you for your gift #{i}",
                "excerpt": "Dear friend, thank you",
                "sent_at": sent_at,
                "seen_at": sent_at,
            }
        )
        kind = i % 20
        status = "logged"
        record_id = f"rec{record:06d}"
        if kind == 0:
            status, record_id = "unmatched", ""
        elif kind == 1:
            status, record_id = "excluded", ""
        elif kind == 2:
            status = "pending"
        queue.append(
            {
                "sent_mail_id": i + 1,
                "rfc_message_id": rfc,
                "recipient": f"donor{record}@example.org",
                "recipient_kind": "to",
                "record_id": record_id,
                "status": status,
                "attempts": 1,
                "queued_at": sent_at,
            }
        )
        if status == "logged":
            log.append(
                {
                    "record_id": record_id,
                    "rfc_message_id": rfc,
                    "subject": f"Thank you for your gift #{i}",
                    "sender": "fundraising@our-charity.example.org",
                    "recipient": f"donor{record}@example.org",
                    "sent_at": sent_at,
                    "logged_at": sent_at + timedelta(seconds=5 + i % 50),
                }
            )
        if i % 10 == 0:
            events.append(
                {
                    "rfc_message_id": rfc,
                    "kind": "open",
                    "user_agent": "GoogleImageProxy",
                    "machine": True,
                    "reason": "Google image proxy",
                    "at": sent_at + timedelta(seconds=3),
                }
            )
    now = datetime.now(UTC)
    crm_rows = [
        {
            "record_id": f"rec{r:06d}",
            "name": f"Donor {r}",
            "emails": [f"donor{r}@example.org"],
            "created_at": now,
        }
        for r in range(records)
    ]
    emails = [
        {"record_id": row["record_id"], "email": row["emails"][0]} for row in crm_rows
    ]
    with engine.begin() as conn:
        for table, rows in (
            (crm_records_table, crm_rows),
            (crm_record_emails_table, emails),
            (sent_mail_table, mail),
            (log_queue_table, queue),
            (crm_log_table, log),
            (tracking_events_table, events),
        ):
            for part in range(0, len(rows), INSERT_BATCH):
                conn.execute(table.insert(), rows[part : part + INSERT_BATCH])


def _best(action, repeats: int = REPEATS) -> tuple[float, object]:  # noqa: ANN001
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def run(n: int = SENT_EMAILS) -> dict[str, float]:
    """Fill a fresh database with ``n`` sent emails and time the dashboard table.

    Returns sent_emails, read_s, build_s, crm_read_s and dashboard_ratio
    (build_s / read_s; best of several runs each).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import pandas as pd
    from sqlalchemy import text

    from lib.crm.sandbox import SandboxCrm
    from lib.dashboard import SYNC_ROWS_SQL, sync_table
    from lib.db import create_db_engine

    with tempfile.TemporaryDirectory() as folder:
        engine = create_db_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        try:
            _fill(engine, n)

            def read() -> pd.DataFrame:
                with engine.connect() as conn:
                    return pd.read_sql(text(SYNC_ROWS_SQL), conn)

            crm_read_s, crm_log = _best(SandboxCrm(engine).read_log, 1)
            # Interleave the two measurements so both see the same machine load.
            read_s = build_s = float("inf")
            for _ in range(REPEATS):
                once, frame = _best(read, 1)
                read_s = min(read_s, once)
                once, table = _best(lambda: sync_table(engine, crm_log), 1)
                build_s = min(build_s, once)
            assert len(table) == len(frame) == n  # type: ignore[arg-type]
        finally:
            engine.dispose()
    return {
        "sent_emails": float(n),
        "read_s": read_s,
        "build_s": build_s,
        "crm_read_s": crm_read_s,
        "dashboard_ratio": build_s / read_s,
    }


if __name__ == "__main__":
    figures = run(int(sys.argv[1]) if len(sys.argv) > 1 else SENT_EMAILS)
    for name, value in figures.items():
        if name != "dashboard_ratio":
            print(f"{name}: {value:.3f}")
    print(f"dashboard_ratio: {figures['dashboard_ratio']:.2f}")
