"""The interface every mailbox offers to the send flow and to sync."""

from __future__ import annotations

from typing import Protocol

from lib.models import OutgoingEmail, SendReceipt, SentPage


class Mailbox(Protocol):
    """A mailbox of one account: sends mail and reads its Sent folder back.

    Implementations must never create Gmail drafts: drafts stay in Steward.
    """

    @property
    def account(self) -> str:
        """The sender address (lower case) this mailbox sends from."""
        ...

    @property
    def key(self) -> str:
        """A stable name for the sync cursor, e.g. ``"gmail:ann@example.org"``."""
        ...

    def send(self, email: OutgoingEmail) -> SendReceipt:
        """Send one message and return the mailbox's ids for it.

        The message is in the Sent folder when this returns. Raises SendError
        (SendLimitReached for the daily limit) or AuthError.
        """
        ...

    def find_sent(self, rfc_message_id: str) -> SendReceipt | None:
        """The sent message with this RFC Message-ID, or None.

        Used after a crash between "sending" and "sent" to learn whether a message
        already went out, so a retry never sends it twice.
        """
        ...

    def read_sent(self, cursor: str | None) -> SentPage:
        """Messages added to Sent after ``cursor`` (everything when None), in order.

        Raises MailboxError.
        """
        ...
