"""The fundraiser's nouns as plain data: donor, draft, outgoing email, sent mail,
CRM record and log entry.

These are the values that cross module boundaries (importer -> store -> drafter ->
mailbox -> sync -> CRM); keeping them free of database and service types lets each
adapter (sandbox, Gmail, Airtable, a model) be swapped behind the same shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DraftStatus(StrEnum):
    """Where a draft is on its way from the drafter to the donor's inbox."""

    DRAFT = "draft"
    NEEDS_REVIEW = "needs_review"  # grounding check failed; edit or override first
    APPROVED = "approved"
    SENDING = "sending"  # claimed by one send; never claimed twice
    SENT = "sent"
    FAILED = "failed"
    BLOCKED = "blocked"  # donor may not be emailed, or has no address


class LogStatus(StrEnum):
    """State of one (sent email, recipient, record) row of the CRM log queue."""

    PENDING = "pending"
    LOGGED = "logged"
    UNMATCHED = "unmatched"
    EXCLUDED = "excluded"
    ERROR = "error"


@dataclass
class Donor:
    """One person (or organisation) the team may write to.

    ``rows`` are the source record numbers (1 = first record after the header) the
    donor was built from, so every figure can be traced to the export.
    """

    name: str
    email: str | None = None
    emails: list[str] = field(default_factory=list)
    first_name: str = ""
    last_name: str = ""
    greeting: str = ""  # how a letter opens: informal name or joint salutation
    salutation: str = ""  # formal: "Mrs. Whitcombe"
    organization: str = ""
    record_id: str | None = None
    last_gift_amount: float | None = None
    last_gift_date: str | None = None  # ISO yyyy-mm-dd
    lifetime_giving: float | None = None
    gift_count: int = 0
    currency: str | None = None
    campaign: str = ""
    notes: str = ""
    do_not_email: bool = False
    opted_out: bool = False
    deceased: bool = False
    bounced: bool = False
    rows: list[int] = field(default_factory=list)
    id: int | None = None  # database id once stored

    @property
    def blocked_reason(self) -> str | None:
        """Why this donor must never be emailed, or None when they may be."""
        if self.deceased:
            return "deceased"
        if self.opted_out:
            return "opted out"
        if self.do_not_email:
            return "do not email"
        if self.bounced:
            return "address bounced"
        if not self.email:
            return "no address"
        return None

    @property
    def emailable(self) -> bool:
        return self.blocked_reason is None


@dataclass
class Draft:
    """A first draft (then an edited, approved, sent email) for one donor."""

    donor_id: int
    subject: str
    body: str
    status: DraftStatus = DraftStatus.DRAFT
    to_address: str | None = None
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    campaign: str = ""
    drafter: str = "template"
    facts: list[str] = field(default_factory=list)
    review_issues: list[str] = field(default_factory=list)
    review_override: bool = False
    error: str | None = None
    approved_by: str | None = None
    rfc_message_id: str | None = None
    mailbox_message_id: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    sent_at: datetime | None = None
    version: int = 1
    id: int | None = None


@dataclass(frozen=True)
class TrackingLinks:
    """How to track one email's opens and clicks (only when a tracking base URL is
    configured): where the tracking server is, the key that signs its links, and
    the donor's own values, whose URLs are never made into links."""

    base_url: str
    key: bytes = field(repr=False)  # lib.tracking.tracking_key; never shown
    donor_values: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class OutgoingEmail:
    """Everything needed to build one RFC 5322 message.

    Header values are checked by lib.message (no CR/LF); ``body_text`` is plain text
    typed or approved by a person; the HTML part is derived from it with escaping.
    """

    sender: str  # "Name <addr>" or bare address
    to: tuple[str, ...]
    subject: str
    body_text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    rfc_message_id: str | None = None
    thread_id: str | None = None
    in_reply_to: str | None = None
    references: str | None = None
    reply_to: str | None = None
    tracking: TrackingLinks | None = None  # None: the HTML part has no tracking


@dataclass(frozen=True)
class SendReceipt:
    """What the mailbox says about a message it has sent."""

    mailbox_message_id: str
    thread_id: str
    rfc_message_id: str
    sent_at: datetime


@dataclass(frozen=True)
class SentMessage:
    """A message read back from the Sent folder (sent by Steward or not)."""

    mailbox_message_id: str
    thread_id: str
    rfc_message_id: str | None
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    sent_at: datetime
    excerpt: str = ""


@dataclass(frozen=True)
class SentPage:
    """One read of the Sent folder: new messages and where to resume next time."""

    messages: list[SentMessage]
    cursor: str | None
    full_resync: bool = False  # True when an expired cursor forced a full listing


@dataclass(frozen=True)
class CrmRecord:
    """A donor record in the CRM, as far as logging needs it."""

    record_id: str
    name: str
    emails: tuple[str, ...]


@dataclass(frozen=True)
class LogEntry:
    """One sent email to be logged on one CRM record (the idempotency key is
    ``(rfc_message_id, record_id)``)."""

    record_id: str
    rfc_message_id: str
    mailbox_message_id: str
    thread_id: str
    subject: str
    excerpt: str
    sender: str
    recipient: str
    sent_at: datetime


@dataclass(frozen=True)
class LogResult:
    """Outcome of writing one log entry: ``error`` is None when it is in the CRM."""

    record_id: str
    rfc_message_id: str
    crm_entry_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class LoggedEmail:
    """A log entry as the CRM holds it (read back for the dashboard)."""

    record_id: str
    rfc_message_id: str
    mailbox_message_id: str | None
    thread_id: str | None
    subject: str
    sender: str
    recipient: str
    sent_at: datetime
    logged_at: datetime | None
    opens: int = 0
    clicks: int = 0
