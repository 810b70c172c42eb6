"""Sync: every email in the Sent folder is logged on its CRM record exactly once.

Why it is built this way: a pass reads Sent from a saved cursor, then records what
it saw in ONE database transaction (the sent mail, one ``log_queue`` row per
recipient and record, and the new cursor) and only afterwards writes the queue to
the CRM. So:

- a crash before the commit leaves nothing behind and the next pass reads the same
  mail again from the old cursor;
- a crash after the commit leaves rows "pending", written by the next pass;
- writing an entry twice is harmless, because every CRM adapter upserts on
  (rfc_message_id, record_id), and ``sent_mail`` is unique on the Message-ID, so a
  full resync after an expired cursor (case C05) adds nothing twice.

Mail sent from Gmail directly (not through Steward) is logged the same way; mail
sent through Steward also carries the donor's record from its draft.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Connection, Engine, select

from lib.crm.base import Crm
from lib.crm.sandbox import chunked, dialect_insert
from lib.db import as_utc, utcnow
from lib.emails import address_key
from lib.errors import StewardError
from lib.exclusions import exclusion_rules
from lib.log_queue import (
    flush_log_queue,
    pending_log_count,
    requeue_entries,
    sync_status,
    unmatched_recipients,
)
from lib.mailbox.base import Mailbox
from lib.models import SentMessage, SentPage
from lib.recipients import (
    DraftLink,
    RecordMatcher,
    draft_links,
    message_key,
    recipients_of,
)
from lib.schema import log_queue_table, sent_mail_table, sync_cursors_table
from lib.services import Services

__all__ = [
    "SyncReport",
    "flush_log_queue",
    "message_key",
    "pending_log_count",
    "recipients_of",
    "requeue_entries",
    "sync_all",
    "sync_once",
    "sync_status",
    "unmatched_recipients",
]

log = logging.getLogger(__name__)

# Longest excerpt kept from a message (the CRM log shows a preview, not the body).
EXCERPT_CHARS = 500
# Reads of Sent in one pass: a mailbox hands back a page at a time (the sandbox
# 1,000 messages); a backlog larger than this many pages continues next pass.
MAX_READS_PER_PASS = 10


@dataclass
class SyncReport:
    """What one pass did for one mailbox (counts of log-queue rows and messages)."""

    mailbox: str
    read: int = 0  # messages the mailbox returned
    new_emails: int = 0  # of which not seen before
    queued: int = 0  # (recipient, record) rows now owed to the CRM
    unmatched: int = 0  # recipients with no record: listed for review
    excluded: int = 0  # recipients on the exclusion list
    logged: int = 0  # entries written to the CRM in this pass
    failed: int = 0  # entries the CRM refused in this pass (retried next pass)
    pending: int = 0  # entries still owed to the CRM after this pass
    full_resync: bool = False
    error: str | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line a person can read on the command line or a page."""
        head = f"{self.mailbox}: {self.new_emails} new of {self.read} read"
        if self.full_resync:
            head += " (full resync)"
        line = (
            f"{head}; logged {self.logged}, unmatched {self.unmatched}, "
            f"excluded {self.excluded}, failed {self.failed}, "
            f"still to log {self.pending}"
        )
        return f"{line}; error: {self.error}" if self.error else line


def masked(key: str) -> str:
    """A mailbox key or address fit for logs: ``gmail:a***@example.org``."""
    prefix, _, address = key.rpartition(":")
    local, at, domain = address.partition("@")
    shown = f"{local[:1]}***{at}{domain}" if at else address
    return f"{prefix}:{shown}" if prefix else shown


# -- cursor ------------------------------------------------------------------------


def _load_cursor(engine: Engine, mailbox_key: str) -> str | None:
    c = sync_cursors_table.c
    with engine.connect() as conn:
        return conn.execute(
            select(c.cursor).where(c.mailbox == mailbox_key)
        ).scalar_one_or_none()


def _save_cursor(
    conn: Connection, mailbox_key: str, cursor: str | None, full_resync: bool
) -> None:
    """Store the new cursor and a clean sync time (inside the ingest transaction)."""
    now = utcnow()
    values: dict[str, object] = {"last_sync_at": now, "last_error": None}
    if cursor is not None:
        values["cursor"] = cursor
    if full_resync:
        values["last_full_sync_at"] = now
    stmt = dialect_insert(conn, sync_cursors_table).values(
        mailbox=mailbox_key, **values
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["mailbox"], set_=values))


def _record_error(engine: Engine, mailbox_key: str, message: str) -> None:
    values = {"last_error": message, "last_sync_at": utcnow()}
    with engine.begin() as conn:
        stmt = dialect_insert(conn, sync_cursors_table).values(
            mailbox=mailbox_key, **values
        )
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["mailbox"], set_=values)
        )


def _seen_keys(conn: Connection, keys: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    column = sent_mail_table.c.rfc_message_id
    for part in chunked(keys):
        seen.update(conn.execute(select(column).where(column.in_(part))).scalars())
    return seen


# -- ingest: one transaction -------------------------------------------------------


def _ingest(
    conn: Connection,
    mailbox_key: str,
    planned: list[tuple[str, SentMessage, list[dict[str, str]]]],
    links: dict[str, DraftLink],
    report: SyncReport,
) -> None:
    """Insert sent mail and its queue rows; a message already present is skipped."""
    if not planned:
        return
    seen = _seen_keys(conn, [key for key, _m, _r in planned])
    fresh = [p for p in planned if p[0] not in seen]
    if not fresh:
        return
    now = utcnow()
    mail_rows = []
    for key, message, _rows in fresh:
        link = links.get(key)
        mail_rows.append(
            {
                "mailbox": mailbox_key,
                "mailbox_message_id": message.mailbox_message_id,
                "rfc_message_id": key,
                "thread_id": message.thread_id,
                "sender": address_key(parseaddr(message.sender)[1] or message.sender),
                "subject": message.subject or "",
                "excerpt": (message.excerpt or "")[:EXCERPT_CHARS],
                "sent_at": as_utc(message.sent_at),
                "seen_at": now,
                "draft_id": link.draft_id if link else None,
            }
        )
    insert_mail = dialect_insert(conn, sent_mail_table).on_conflict_do_nothing(
        index_elements=["rfc_message_id"]
    )
    conn.execute(insert_mail, mail_rows)
    ids: dict[str, int] = {}
    s = sent_mail_table.c
    for part in chunked([key for key, _m, _r in fresh]):
        query = select(s.rfc_message_id, s.id).where(s.rfc_message_id.in_(part))
        result: Any = conn.execute(query)
        ids.update({rfc: row_id for rfc, row_id in result})
    queue_rows = []
    for key, _message, rows in fresh:
        for row in rows:
            queue_rows.append(
                {
                    **row,
                    "sent_mail_id": ids[key],
                    "rfc_message_id": key,
                    "queued_at": now,
                }
            )
            if row["status"] == "pending":
                report.queued += 1
            elif row["status"] == "unmatched":
                report.unmatched += 1
            else:
                report.excluded += 1
    if queue_rows:
        insert_queue = dialect_insert(conn, log_queue_table).on_conflict_do_nothing(
            index_elements=["rfc_message_id", "recipient", "record_id"]
        )
        conn.execute(insert_queue, queue_rows)
    report.new_emails += len(fresh)


# -- the pass --------------------------------------------------------------------


def _take_page(
    services: Services, mailbox: Mailbox, crm: Crm, page: SentPage, report: SyncReport
) -> None:
    """Match one page of Sent against the CRM, then store it and its cursor in one
    transaction. Raises StewardError when the CRM cannot be asked for records."""
    engine = services.engine
    report.read += len(page.messages)
    report.full_resync = report.full_resync or page.full_resync
    unique: dict[str, SentMessage] = {}
    for message in page.messages:
        unique.setdefault(message_key(message), message)
    with engine.connect() as conn:
        seen = _seen_keys(conn, list(unique))
    new = {k: m for k, m in unique.items() if k not in seen}
    links = draft_links(engine, list(new))
    rules = exclusion_rules(services.settings, engine, mailbox.account)
    # Only ask the CRM about addresses that can be logged.
    addresses = {
        a
        for m in new.values()
        for a, _kind in recipients_of(m)
        if not rules.excludes(a)
    }
    matches = crm.records_for_emails(sorted(addresses)) if addresses else {}
    planner = RecordMatcher(crm, rules, matches, links)
    planned = [(k, m, planner.rows(k, m)) for k, m in new.items()]
    with engine.begin() as conn:
        _ingest(conn, mailbox.key, planned, links, report)
        _save_cursor(conn, mailbox.key, page.cursor, page.full_resync)


def sync_once(
    services: Services, mailbox: Mailbox, crm: Crm | None = None
) -> SyncReport:
    """Read new Sent mail of ``mailbox``, queue it for logging, write the queue.

    Returns the report of the pass; CRM write failures are in ``report.error`` and
    the rows stay queued. Raises StewardError (MailboxError, AuthError, CrmError)
    when Sent could not be read or the CRM could not be asked for records; then
    nothing is recorded except ``last_error`` and the cursor stays where it was.
    """
    started = time.perf_counter()
    engine = services.engine
    crm = crm if crm is not None else services.crm()
    key = mailbox.key
    report = SyncReport(mailbox=key)
    try:
        cursor = _load_cursor(engine, key)
        for _ in range(MAX_READS_PER_PASS):
            page = mailbox.read_sent(cursor)
            _take_page(services, mailbox, crm, page, report)
            if not page.messages or page.cursor in (None, cursor):
                break
            cursor = page.cursor
    except StewardError as exc:
        _record_error(engine, key, str(exc))
        log.warning("sync %s failed: %s", masked(key), type(exc).__name__)
        raise
    flushed = flush_log_queue(engine, crm)
    report.logged, report.failed = flushed.logged, flushed.failed
    if flushed.error:
        report.error = f"Some entries could not be logged in the CRM: {flushed.error}"
        _record_error(engine, key, report.error)
    report.pending = pending_log_count(engine)
    report.duration_s = time.perf_counter() - started
    log.info(
        "sync %s: read %d, new %d, queued %d, unmatched %d, excluded %d, "
        "logged %d, failed %d, pending %d, full_resync %s, %.0f ms",
        masked(key),
        report.read,
        report.new_emails,
        report.queued,
        report.unmatched,
        report.excluded,
        report.logged,
        report.failed,
        report.pending,
        report.full_resync,
        report.duration_s * 1000,
    )
    return report


def sync_all(services: Services) -> list[SyncReport]:
    """One pass over every mailbox; a failing mailbox is reported, others go on.

    Never raises StewardError: failures are in each report's ``error``.
    """
    try:
        mailboxes = services.mailboxes()
        crm = services.crm()
    except StewardError as exc:
        log.warning("sync could not start: %s", type(exc).__name__)
        return [SyncReport(mailbox="(setup)", error=str(exc))]
    reports = []
    flushed_any = False
    for mailbox in mailboxes:
        try:
            reports.append(sync_once(services, mailbox, crm))
            flushed_any = True
        except StewardError as exc:
            reports.append(SyncReport(mailbox=mailbox.key, error=str(exc)))
    if not flushed_any and pending_log_count(services.engine):
        # No mailbox could be read: still write what earlier passes queued.
        flushed = flush_log_queue(services.engine, crm)
        log.info(
            "sync flush only: logged %d, failed %d", flushed.logged, flushed.failed
        )
    return reports
