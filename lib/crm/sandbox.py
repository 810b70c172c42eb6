"""The local CRM: donor records and the log of sent email, in Steward's own database.

Why it exists: with no Airtable (or other CRM) configured, Steward still needs a
place where "every sent email is logged on the donor's record exactly once" can be
seen and checked. It uses the same :class:`lib.crm.base.Crm` interface as the real
adapters, so sync and the dashboard never know which one they talk to.

Exactly-once logging rests on the unique constraint on (rfc_message_id, record_id)
in ``crm_log``: :meth:`SandboxCrm.write_log` inserts with ON CONFLICT DO NOTHING, so
writing an entry a second time (a retry after a crash) leaves one entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, case, func, select
from sqlalchemy.dialects import postgresql, sqlite

from lib.db import as_utc, utcnow
from lib.emails import address_key
from lib.models import CrmRecord, LogEntry, LoggedEmail, LogResult
from lib.schema import (
    crm_log_table,
    crm_record_emails_table,
    crm_records_table,
    tracking_events_table,
)

log = logging.getLogger(__name__)

# SQLite builds before 3.32 allow at most 999 bound variables per statement; 500
# keeps every IN list (and multi-column key lookups) well under that everywhere.
IN_LIST_BATCH = 500

T = TypeVar("T")


def chunked(items: Sequence[T], size: int = IN_LIST_BATCH) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dialect_insert(conn: Connection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT for this connection's dialect.

    Raises NotImplementedError for a database without ON CONFLICT support.
    """
    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"no upsert support for the {name} database")


def _emails_of(record: CrmRecord) -> list[str]:
    found: list[str] = []
    for value in record.emails:
        key = address_key(value or "")
        if key and key not in found:
            found.append(key)
    return found


class SandboxCrm:
    """The local CRM over ``crm_records``, ``crm_record_emails`` and ``crm_log``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def name(self) -> str:
        return "local CRM"

    # -- records ---------------------------------------------------------------------

    def upsert_records(self, records: Iterable[CrmRecord]) -> int:
        """Create or replace records (name and addresses) by record id.

        Built for the importer's 100,000-donor files: one executemany per table.
        Returns how many distinct records were written.
        """
        by_id: dict[str, CrmRecord] = {}
        for record in records:
            by_id[record.record_id] = record  # the last row for an id wins
        if not by_id:
            return 0
        now = utcnow()
        rows: list[dict[str, Any]] = []
        email_rows: list[dict[str, str]] = []
        for record in by_id.values():
            emails = _emails_of(record)
            rows.append(
                {
                    "record_id": record.record_id,
                    "name": record.name,
                    "emails": emails,
                    "created_at": now,
                }
            )
            email_rows.extend(
                {"record_id": record.record_id, "email": email} for email in emails
            )
        ids = list(by_id)
        with self._engine.begin() as conn:
            stmt = dialect_insert(conn, crm_records_table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["record_id"],
                set_={"name": stmt.excluded.name, "emails": stmt.excluded.emails},
            )
            conn.execute(stmt, rows)
            for part in chunked(ids):
                conn.execute(
                    crm_record_emails_table.delete().where(
                        crm_record_emails_table.c.record_id.in_(part)
                    )
                )
            if email_rows:
                conn.execute(crm_record_emails_table.insert(), email_rows)
        return len(ids)

    def records_for_emails(self, emails: Iterable[str]) -> dict[str, list[CrmRecord]]:
        """Map each address (compared in lower case) to the records holding it.

        Addresses with no record are absent. Large inputs are looked up in batches.
        """
        keys = sorted({address_key(e) for e in emails if e and e.strip()})
        found: dict[str, list[CrmRecord]] = {}
        if not keys:
            return found
        e, r = crm_record_emails_table.c, crm_records_table.c
        with self._engine.connect() as conn:
            for part in chunked(keys):
                query = (
                    select(e.email, r.record_id, r.name, r.emails)
                    .join_from(
                        crm_record_emails_table,
                        crm_records_table,
                        e.record_id == r.record_id,
                    )
                    .where(e.email.in_(part))
                    .order_by(e.email, r.record_id)
                )
                result: Any = conn.execute(query)
                for email, record_id, name, record_emails in result:
                    found.setdefault(email, []).append(
                        CrmRecord(record_id, name, tuple(record_emails or ()))
                    )
        return found

    def record(self, record_id: str) -> CrmRecord | None:
        """One record by id, or None when it does not exist."""
        r = crm_records_table.c
        with self._engine.connect() as conn:
            row = conn.execute(
                select(r.record_id, r.name, r.emails).where(r.record_id == record_id)
            ).first()
        if row is None:
            return None
        return CrmRecord(row.record_id, row.name, tuple(row.emails or ()))

    # -- the log ---------------------------------------------------------------------

    def write_log(self, entries: Sequence[LogEntry]) -> list[LogResult]:
        """Log each entry on its record; an entry already logged stays one entry.

        Returns one result per entry, in order. An entry whose record no longer
        exists gets a result with ``error``; the others are still written.
        """
        if not entries:
            return []
        started = time.perf_counter()
        record_ids = sorted({entry.record_id for entry in entries})
        now = utcnow()
        with self._engine.begin() as conn:
            existing: set[str] = set()
            for part in chunked(record_ids):
                existing.update(
                    conn.execute(
                        select(crm_records_table.c.record_id).where(
                            crm_records_table.c.record_id.in_(part)
                        )
                    ).scalars()
                )
            rows = [
                {
                    "record_id": entry.record_id,
                    "rfc_message_id": entry.rfc_message_id,
                    "mailbox_message_id": entry.mailbox_message_id,
                    "thread_id": entry.thread_id,
                    "subject": entry.subject,
                    "excerpt": entry.excerpt,
                    "sender": entry.sender,
                    "recipient": entry.recipient,
                    "sent_at": as_utc(entry.sent_at),
                    "logged_at": now,
                }
                for entry in entries
                if entry.record_id in existing
            ]
            if rows:
                stmt = dialect_insert(conn, crm_log_table).on_conflict_do_nothing(
                    index_elements=["rfc_message_id", "record_id"]
                )
                conn.execute(stmt, rows)
            entry_ids = self._entry_ids(conn, entries)
        results = []
        for entry in entries:
            key = (entry.rfc_message_id, entry.record_id)
            if entry.record_id not in existing:
                results.append(
                    LogResult(
                        entry.record_id,
                        entry.rfc_message_id,
                        error=(
                            f"Record {entry.record_id} no longer exists in the local "
                            "CRM; restore it or re-import the donor list."
                        ),
                    )
                )
            else:
                results.append(
                    LogResult(entry.record_id, entry.rfc_message_id, entry_ids[key])
                )
        log.info(
            "local CRM write_log: %d entries, %d refused, %.0f ms",
            len(entries),
            sum(1 for r in results if r.error),
            (time.perf_counter() - started) * 1000,
        )
        return results

    @staticmethod
    def _entry_ids(
        conn: Connection, entries: Sequence[LogEntry]
    ) -> dict[tuple[str, str], str]:
        wanted = {(e.rfc_message_id, e.record_id) for e in entries}
        message_ids = sorted({e.rfc_message_id for e in entries})
        c = crm_log_table.c
        found: dict[tuple[str, str], str] = {}
        for part in chunked(message_ids):
            query = select(c.id, c.rfc_message_id, c.record_id).where(
                c.rfc_message_id.in_(part)
            )
            result: Any = conn.execute(query)
            for row_id, message_id, record_id in result:
                if (message_id, record_id) in wanted:
                    found[(message_id, record_id)] = str(row_id)
        return found

    def read_log(self) -> list[LoggedEmail]:
        """Every log entry, oldest first, with opens and clicks by people.

        Opens and clicks are counted from tracking events classified as human
        (machine opens and scanner clicks left out); they are approximate.
        """
        t = tracking_events_table.c
        human = t.machine.is_(False)
        counts = (
            select(
                t.rfc_message_id,
                func.sum(case((human & (t.kind == "open"), 1), else_=0)).label("o"),
                func.sum(case((human & (t.kind == "click"), 1), else_=0)).label("c"),
            )
            .group_by(t.rfc_message_id)
            .subquery()
        )
        c = crm_log_table.c
        query = (
            select(
                c.record_id,
                c.rfc_message_id,
                c.mailbox_message_id,
                c.thread_id,
                c.subject,
                c.sender,
                c.recipient,
                c.sent_at,
                c.logged_at,
                (c.opens + func.coalesce(counts.c.o, 0)).label("opens"),
                (c.clicks + func.coalesce(counts.c.c, 0)).label("clicks"),
            )
            .select_from(
                crm_log_table.outerjoin(
                    counts, counts.c.rfc_message_id == c.rfc_message_id
                )
            )
            .order_by(c.id)
        )
        with self._engine.connect() as conn:
            rows: Any = conn.execute(query).all()
        return [
            LoggedEmail(
                record_id=record_id,
                rfc_message_id=message_id,
                mailbox_message_id=mailbox_id,
                thread_id=thread_id,
                subject=subject,
                sender=sender,
                recipient=recipient,
                sent_at=as_utc(sent_at),  # type: ignore[arg-type]
                logged_at=as_utc(logged_at),
                opens=int(opens or 0),
                clicks=int(clicks or 0),
            )
            for (
                record_id,
                message_id,
                mailbox_id,
                thread_id,
                subject,
                sender,
                recipient,
                sent_at,
                logged_at,
                opens,
                clicks,
            ) in rows
        ]
