"""A Sent folder held in a list, implementing the Mailbox protocol's read side.

Sync tests use it to shape exactly what a mailbox returns (duplicates, expired
cursors, failures) without depending on any one adapter.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lib.errors import MailboxError
from lib.models import OutgoingEmail, SendReceipt, SentMessage, SentPage

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class ListMailbox:
    """Sent messages in a list; the cursor is the number of messages already read.

    Set ``expired`` to make the next read answer like an expired Gmail cursor (a
    full listing with ``full_resync``); set ``fail`` to make reads raise it.
    """

    def __init__(self, account: str = "fundraising@our-charity.example.org") -> None:
        self.account = account
        self.key = f"test:{account}"
        self.sent: list[SentMessage] = []
        self.expired = False
        self.fail: Exception | None = None
        self.page_size: int | None = None
        self.reads: list[str | None] = []

    def add(
        self,
        to: tuple[str, ...] = (),
        *,
        cc: tuple[str, ...] = (),
        bcc: tuple[str, ...] = (),
        subject: str = "Thank you",
        rfc_message_id: str | None = "auto",
        sent_at: datetime | None = None,
    ) -> SentMessage:
        number = len(self.sent) + 1
        if rfc_message_id == "auto":
            rfc_message_id = f"<m{number}.{self.account}>"
        message = SentMessage(
            mailbox_message_id=f"id{number:04d}",
            thread_id=f"th{number:04d}",
            rfc_message_id=rfc_message_id,
            sender=f"Development Office <{self.account}>",
            to=to,
            cc=cc,
            bcc=bcc,
            subject=subject,
            sent_at=sent_at or START + timedelta(minutes=number),
            excerpt=f"Dear friend, message {number}",
        )
        self.sent.append(message)
        return message

    def send(self, email: OutgoingEmail) -> SendReceipt:
        raise MailboxError("ListMailbox does not send")

    def find_sent(self, rfc_message_id: str) -> SendReceipt | None:
        return None

    def read_sent(self, cursor: str | None) -> SentPage:
        self.reads.append(cursor)
        if self.fail is not None:
            raise self.fail
        full = self.expired and cursor is not None
        start = 0 if (cursor is None or self.expired) else int(cursor)
        self.expired = False
        end = len(self.sent)
        if self.page_size is not None:
            end = min(end, start + self.page_size)
        return SentPage(self.sent[start:end], str(end), full_resync=full)
