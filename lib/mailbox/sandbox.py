"""A mailbox that lives in the local database and never lets mail leave the machine.

Why it stores real RFC 5322 bytes: sync, the CRM log and the dashboard then read
sandbox mail through exactly the parser they use for Gmail, so sandbox mode tests
the same code paths as a real account. Ids look like Gmail's (16 hex digits; a new
thread's id is its first message's id), and the ``history_id`` column plays the part
of Gmail's history cursor.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from lib.db import as_utc, utcnow
from lib.errors import MailboxError, MessageError
from lib.message import build_message, message_bytes, new_message_id, parse_sent_message
from lib.models import OutgoingEmail, SendReceipt, SentMessage, SentPage
from lib.schema import sandbox_messages_table

log = logging.getLogger(__name__)

SENT_LABEL = "SENT"
# One read hands back at most this many messages; the cursor resumes after them.
READ_PAGE_SIZE = 1000


def _mailbox_id() -> str:
    """16 hex digits, like a Gmail message id."""
    return secrets.token_hex(8)


class SandboxMailbox:
    """The sandbox mailbox of one sender, over the ``sandbox_messages`` table."""

    def __init__(
        self,
        engine: Engine,
        sender: str,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        address = parseaddr(sender)[1].strip().lower()
        if "@" not in address:
            raise MessageError(
                f"The sandbox sender {sender!r} has no email address; set "
                "steward.sandbox_sender to 'Name <address>'."
            )
        self._engine = engine
        self._sender = sender
        self._account = address
        self._clock = clock

    @property
    def account(self) -> str:
        return self._account

    @property
    def sender(self) -> str:
        """The From value this mailbox sends with ("Name <address>")."""
        return self._sender

    @property
    def key(self) -> str:
        return f"sandbox:{self._account}"

    def send(self, email: OutgoingEmail) -> SendReceipt:
        """Put the message into Sent at once and return its ids.

        Raises MessageError when the message cannot be built (nothing is stored).
        """
        started = time.monotonic()
        receipt = self._store(email)
        log.info(
            "sandbox send: status=sent ms=%d",
            (time.monotonic() - started) * 1000,
        )
        return receipt

    def add_external_sent(self, email: OutgoingEmail | bytes) -> SendReceipt:
        """Put mail "sent from Gmail directly" (not through Steward) into Sent.

        ``email`` is an OutgoingEmail (built here) or finished RFC 5322 bytes, kept
        as they are. The receipt's rfc_message_id is "" when the bytes have no
        Message-ID header.
        """
        if isinstance(email, OutgoingEmail):
            return self._store(email)
        mailbox_id = _mailbox_id()
        parsed = parse_sent_message(email, mailbox_id, mailbox_id, self._clock())
        return self._insert(
            raw=email,
            mailbox_id=mailbox_id,
            thread_id=mailbox_id,
            rfc_message_id=parsed.rfc_message_id,
        )

    def _store(self, email: OutgoingEmail) -> SendReceipt:
        if not email.sender:
            email = replace(email, sender=self._sender)
        if not email.rfc_message_id:
            domain = self._account.rsplit("@", 1)[1]
            email = replace(email, rfc_message_id=new_message_id(domain))
        raw = message_bytes(build_message(email))
        mailbox_id = _mailbox_id()
        return self._insert(
            raw=raw,
            mailbox_id=mailbox_id,
            thread_id=email.thread_id or mailbox_id,
            rfc_message_id=email.rfc_message_id,
        )

    def _insert(
        self,
        *,
        raw: bytes,
        mailbox_id: str,
        thread_id: str,
        rfc_message_id: str | None,
    ) -> SendReceipt:
        sent_at = self._clock()
        with self._engine.begin() as conn:
            conn.execute(
                sandbox_messages_table.insert().values(
                    message_id=mailbox_id,
                    thread_id=thread_id,
                    account=self._account,
                    rfc_message_id=rfc_message_id,
                    labels=[SENT_LABEL],
                    raw=raw,
                    internal_date=sent_at,
                )
            )
        return SendReceipt(
            mailbox_message_id=mailbox_id,
            thread_id=thread_id,
            rfc_message_id=rfc_message_id or "",
            sent_at=sent_at,
        )

    def find_sent(self, rfc_message_id: str) -> SendReceipt | None:
        """The first message in this account's Sent with that Message-ID, or None."""
        t = sandbox_messages_table
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t.c.message_id, t.c.thread_id, t.c.internal_date, t.c.labels)
                .where(t.c.account == self._account)
                .where(t.c.rfc_message_id == rfc_message_id)
                .order_by(t.c.history_id)
            ).first()
        if row is None or SENT_LABEL not in (row.labels or []):
            return None
        sent_at = as_utc(row.internal_date)
        assert sent_at is not None
        return SendReceipt(
            mailbox_message_id=row.message_id,
            thread_id=row.thread_id,
            rfc_message_id=rfc_message_id,
            sent_at=sent_at,
        )

    def read_sent(self, cursor: str | None) -> SentPage:
        """Sent messages added after ``cursor`` (all when None), oldest first.

        A cursor this mailbox cannot have handed out (not a number, or past the
        newest message, e.g. after the database was replaced) is treated like
        Gmail's expired cursor: everything is listed again and ``full_resync`` is
        True. Raises MailboxError when the database cannot be read.
        """
        full_resync = False
        after = 0
        if cursor is not None:
            try:
                after = int(cursor)
            except ValueError:
                full_resync = True
        t = sandbox_messages_table
        started = time.monotonic()
        try:
            with self._engine.connect() as conn:
                newest = conn.execute(select(func.max(t.c.history_id))).scalar() or 0
                if after < 0 or after > newest:
                    after, full_resync = 0, True
                rows = conn.execute(
                    select(t)
                    .where(t.c.account == self._account)
                    .where(t.c.history_id > after)
                    .order_by(t.c.history_id)
                    .limit(READ_PAGE_SIZE)
                ).all()
        except OperationalError as exc:  # a locked or broken database file
            raise MailboxError(
                f"Reading the sandbox Sent folder failed ({type(exc).__name__}); "
                "try again in a moment."
            ) from exc
        messages = [
            self._parse(row) for row in rows if SENT_LABEL in (row.labels or [])
        ]
        last = rows[-1].history_id if rows else after
        log.info(
            "sandbox read_sent: status=ok messages=%d ms=%d",
            len(messages),
            (time.monotonic() - started) * 1000,
        )
        return SentPage(messages=messages, cursor=str(last), full_resync=full_resync)

    @staticmethod
    def _parse(row: Any) -> SentMessage:
        sent_at = as_utc(row.internal_date)
        assert sent_at is not None
        return parse_sent_message(row.raw, row.message_id, row.thread_id, sent_at)
