"""The CRM log queue: writing owed entries to the CRM, and what the dashboard asks.

Why apart from sync: reading Sent and deciding who a message is logged on is one
job (lib.sync); getting those rows into a CRM that may be slow, rate limited or
down, without dropping or doubling any, is another. Rows are only ever marked
"logged" after the CRM answered for them; every other outcome leaves them owed
("pending" or "error") so the next pass writes them again. Writing twice is safe
because every CRM adapter upserts on (rfc_message_id, record_id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, bindparam, func, select, text

from lib.crm.base import Crm
from lib.crm.sandbox import chunked
from lib.db import as_utc, utcnow
from lib.errors import StewardError
from lib.models import LogEntry, LogStatus
from lib.schema import log_queue_table, sent_mail_table, sync_cursors_table

log = logging.getLogger(__name__)

# Queue rows handed to the CRM adapter at once; adapters split further where the
# service demands it (Airtable: 10 records per request, limits.md).
LOG_WRITE_BATCH = 100
# Upper bound on log entries written in one pass, so a large backlog against a
# rate-limited CRM (Airtable: 5 requests/s, 10 records each) cannot hold the
# background thread for long; the rest stay queued for the next pass.
MAX_LOG_ENTRIES_PER_PASS = 5_000

OWED = (LogStatus.PENDING.value, LogStatus.ERROR.value)


@dataclass
class FlushResult:
    logged: int = 0
    failed: int = 0
    error: str | None = None


def flush_log_queue(
    engine: Engine,
    crm: Crm,
    *,
    limit: int = MAX_LOG_ENTRIES_PER_PASS,
    batch_size: int = LOG_WRITE_BATCH,
) -> FlushResult:
    """Write owed queue rows (pending, and earlier errors) to the CRM in batches.

    Each row ends "logged" with its time, or "error" with the CRM's message and one
    more attempt counted; nothing is dropped. A CrmError (or any StewardError) stops
    the pass and marks that batch as errors. Any other exception propagates and
    leaves the batch pending, to be written again (idempotently) next time.
    """
    q, s = log_queue_table.c, sent_mail_table.c
    query = (
        select(
            q.id,
            q.record_id,
            q.recipient,
            q.rfc_message_id,
            s.mailbox_message_id,
            s.thread_id,
            s.subject,
            s.excerpt,
            s.sender,
            s.sent_at,
        )
        .join_from(log_queue_table, sent_mail_table, q.sent_mail_id == s.id)
        .where(q.status.in_(OWED))
        .order_by(q.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        owed = conn.execute(query).all()
    result = FlushResult()
    for batch in chunked(owed, batch_size):
        entries = [
            LogEntry(
                record_id=row.record_id,
                rfc_message_id=row.rfc_message_id,
                mailbox_message_id=row.mailbox_message_id,
                thread_id=row.thread_id or "",
                subject=row.subject,
                excerpt=row.excerpt,
                sender=row.sender,
                recipient=row.recipient,
                sent_at=as_utc(row.sent_at),  # type: ignore[arg-type]
            )
            for row in batch
        ]
        try:
            answers = crm.write_log(entries)
        except StewardError as exc:
            _mark(engine, [(row.id, None, str(exc)) for row in batch])
            result.failed += len(batch)
            result.error = str(exc)
            break
        marks: list[tuple[int, str | None, str | None]] = []
        for index, row in enumerate(batch):
            answer = answers[index] if index < len(answers) else None
            if answer is None or (answer.rfc_message_id, answer.record_id) != (
                row.rfc_message_id,
                row.record_id,
            ):
                marks.append((row.id, None, "The CRM gave no answer for this entry."))
            elif answer.error:
                marks.append((row.id, None, answer.error))
            else:
                marks.append((row.id, answer.crm_entry_id or "", None))
        _mark(engine, marks)
        result.logged += sum(1 for m in marks if m[2] is None)
        result.failed += sum(1 for m in marks if m[2] is not None)
    return result


def _mark(engine: Engine, marks: list[tuple[int, str | None, str | None]]) -> None:
    """(queue id, crm entry id, error): logged when error is None, else error."""
    now = utcnow()
    q = log_queue_table.c
    logged = [
        {"_id": row_id, "_entry": entry, "_at": now}
        for row_id, entry, error in marks
        if error is None
    ]
    failed = [
        {"_id": row_id, "_error": error}
        for row_id, _e, error in marks
        if error is not None
    ]
    with engine.begin() as conn:
        if logged:
            conn.execute(
                log_queue_table.update()
                .where(q.id == bindparam("_id"))
                .values(
                    status="logged",
                    crm_entry_id=bindparam("_entry"),
                    logged_at=bindparam("_at"),
                    error=None,
                    attempts=q.attempts + 1,
                ),
                logged,
            )
        if failed:
            conn.execute(
                log_queue_table.update()
                .where(q.id == bindparam("_id"))
                .values(
                    status="error", error=bindparam("_error"), attempts=q.attempts + 1
                ),
                failed,
            )


def requeue_entries(engine: Engine, keys: Iterable[tuple[str, str]]) -> int:
    """Mark (message id, record id) rows owed again, e.g. after someone deleted the
    entry in the CRM; the next pass writes them (idempotently). Returns how many."""
    q = log_queue_table.c
    wanted = list(dict.fromkeys(keys))
    changed = 0
    with engine.begin() as conn:
        for message_id, record_id in wanted:
            changed += conn.execute(
                log_queue_table.update()
                .where(
                    q.rfc_message_id == message_id,
                    q.record_id == record_id,
                    q.record_id != "",
                    q.status == LogStatus.LOGGED.value,
                )
                .values(status=LogStatus.PENDING.value, logged_at=None)
            ).rowcount
    return changed


# -- for the dashboard -------------------------------------------------------------


def pending_log_count(engine: Engine) -> int:
    """Log entries owed to the CRM: queued, or failed earlier and to be retried."""
    q = log_queue_table.c
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(log_queue_table)
                .where(q.status.in_(OWED))
            ).scalar_one()
        )


def unmatched_recipients(engine: Engine) -> pd.DataFrame:
    """Recipients with no CRM record, for review: recipient, emails, last_sent_at.

    Steward never creates records for them; add the address to a record (or to the
    exclusion list) in the CRM.
    """
    query = text(
        "SELECT q.recipient AS recipient, COUNT(DISTINCT q.rfc_message_id) AS emails,"
        " MAX(s.sent_at) AS last_sent_at"
        " FROM log_queue q JOIN sent_mail s ON s.id = q.sent_mail_id"
        " WHERE q.status = 'unmatched' GROUP BY q.recipient"
        " ORDER BY last_sent_at DESC, recipient"
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    frame["emails"] = frame["emails"].astype("int64")
    frame["last_sent_at"] = pd.to_datetime(
        frame["last_sent_at"], utc=True, format="ISO8601"
    )
    return frame


def sync_status(engine: Engine) -> pd.DataFrame:
    """Per mailbox: last_sync_at, last_full_sync_at, last_error (for the dashboard)."""
    c = sync_cursors_table.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.mailbox, c.last_sync_at, c.last_full_sync_at, c.last_error)
        ).all()
    frame = pd.DataFrame(
        rows, columns=["mailbox", "last_sync_at", "last_full_sync_at", "last_error"]
    )
    for column in ("last_sync_at", "last_full_sync_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
