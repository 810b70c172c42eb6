"""A staff member's real Gmail behind the same Mailbox interface as the sandbox.

Sending uses ``users.messages.send`` with the raw RFC 5322 bytes of lib.message
(never the drafts endpoints: drafts stay in Steward). Reading the Sent folder is
incremental: ``history.list`` from the saved historyId, then the new messages'
headers fetched in batch requests. Without a usable cursor (first sync, or Google
answers 404 because the historyId is too old, case C05) the Sent folder is listed
in full, one page per read, and incremental reading resumes from the historyId
taken before the listing started, so nothing added meanwhile is missed.

The sync cursor is an opaque string (times in epoch seconds):
    ``h:<historyId>:<taken>``                       read history after this id
    ``f:<historyId>:<taken>:<after>:<pageToken>``   a full listing in progress
``taken`` is when the historyId was current: if it has expired, the full listing
reads only mail sent since then (less a margin), so the bound never depends on
how long the app was off.

Quota, retries, token upkeep and error translation are lib.mailbox.gmail_client's.
Errors leave as SendError / SendLimitReached / MailboxError / AuthError.
"""

from __future__ import annotations

import base64
import html
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import formataddr, getaddresses, parseaddr
from functools import partial
from typing import Any

from google.oauth2.credentials import Credentials
from sqlalchemy import select

from lib import google_oauth, quota
from lib.db import as_utc, utcnow
from lib.errors import AuthError, MailboxError, SendError
from lib.google_oauth import ConnectedAccount, mask_address
from lib.mailbox.gmail_client import GmailClient, NotFound, Retryable, fetch_profile
from lib.message import build_message, message_bytes, parse_sent_message
from lib.models import OutgoingEmail, SendReceipt, SentMessage, SentPage
from lib.schema import sync_cursors_table
from lib.send_limits import check_daily_limit, daily_limit

__all__ = [
    "GmailMailbox",
    "fetch_profile",
    "open_all_gmail_mailboxes",
    "open_gmail_mailbox",
]

log = logging.getLogger(__name__)

# limits.md: at most 100 calls per batch (Google advises 50). Each batch is one
# HTTP request, so batches of 100 keep an incremental read of n new messages at
# 2 + ceil(n / 100) requests; quota is charged per call either way, and a batch
# item answered 429 is simply fetched again in the next batch.
BATCH_SIZE = 100
LIST_PAGE_SIZE = 500  # discovery document: messages.list maxResults at most 500
HISTORY_PAGE_SIZE = 500  # discovery document: history.list maxResults at most 500
# More history pages than this in one read means a long absence: list instead.
MAX_HISTORY_PAGES = 40
# limits.md: at most 100 recipients per message sent through the API.
MAX_RECIPIENTS_PER_MESSAGE = 100
# limits.md: the plain JSON send endpoint has failed at about 1 MiB.
MAX_RAW_MESSAGE_BYTES = 1024 * 1024
METADATA_HEADERS = ["From", "To", "Cc", "Bcc", "Subject", "Message-ID", "Date"]
SENT_LABEL = "SENT"
# A full listing after a lost cursor starts this long before the last sync, so a
# clock difference cannot hide a message (duplicates are dropped by Message-ID).
RESYNC_MARGIN = timedelta(hours=1)
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to", "sender"})


def _epoch(text: str) -> int | None:
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class _Cursor:
    """Where the next read of Sent starts; ``str()`` gives the sync cursor."""

    history_id: str
    taken: int | None = None  # when history_id was current
    listing: bool = False  # a full listing is in progress
    after: int | None = None  # the listing's lower time bound
    page_token: str = ""

    def __str__(self) -> str:
        taken = self.taken or ""
        if self.listing:
            after = self.after or ""
            return f"f:{self.history_id}:{taken}:{after}:{self.page_token}"
        return f"h:{self.history_id}:{taken}"

    @classmethod
    def parse(cls, text: str) -> _Cursor | None:
        """The cursor in ``text`` (a bare historyId too), None if unreadable."""
        kind, _, rest = text.partition(":")
        if kind == "f":
            history_id, taken, after, token = (rest.split(":", 3) + ["", "", ""])[:4]
            cursor = cls(history_id, _epoch(taken), True, _epoch(after), token)
        elif kind == "h":
            history_id, _, taken = rest.partition(":")
            cursor = cls(history_id, _epoch(taken))
        else:
            cursor = cls(text)
        return cursor if cursor.history_id.isdigit() else None


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _ascii_header(name: str, value: str) -> str:
    """A header value from Gmail's metadata made 7-bit again (Gmail may hand back
    decoded text), so lib.message's parser reads it exactly as written."""
    value = " ".join(value.splitlines())
    if value.isascii():
        return value
    if name.lower() in _ADDRESS_HEADERS:
        joined = ", ".join(
            formataddr((display, address), charset="utf-8")
            for display, address in getaddresses([value])
        )
        if joined.isascii():
            return joined
    return Header(value, "utf-8").encode(linesep="\r\n")


def _header_block(headers: Sequence[dict[str, str]]) -> bytes:
    lines = [
        f"{h['name']}: {_ascii_header(h['name'], str(h.get('value', '')))}"
        for h in headers
        if h.get("name") and str(h["name"]).isascii()
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii", "replace")


def _sent_message(resource: dict[str, Any]) -> SentMessage:
    """A SentMessage from a messages.get(format=metadata) answer."""
    sent_at = datetime.fromtimestamp(int(resource.get("internalDate", 0)) / 1000, UTC)
    headers = resource.get("payload", {}).get("headers", [])
    message = parse_sent_message(
        _header_block(headers), resource["id"], resource.get("threadId", ""), sent_at
    )
    if not message.excerpt and resource.get("snippet"):
        message = replace(message, excerpt=html.unescape(resource["snippet"]))
    return message


class GmailMailbox:
    """The Gmail mailbox of one connected account (see the module docstring)."""

    def __init__(
        self,
        services: Any,
        account: ConnectedAccount,
        credentials: Credentials,
        *,
        budget: quota.QuotaBudget | None = None,
        backoff: quota.Backoff | None = None,
    ) -> None:
        self._services = services
        self._info = account
        self._client = GmailClient(
            services, account, credentials, budget=budget, backoff=backoff
        )
        self._messages = self._client.service.users().messages()

    @property
    def account(self) -> str:
        return self._info.email

    @property
    def key(self) -> str:
        return f"gmail:{self._info.email}"

    @property
    def http_requests(self) -> int:
        """HTTP requests this mailbox made (a batch counts once)."""
        return self._client.http_requests

    # -- sending ---------------------------------------------------------------------

    def _from_account(self, email: OutgoingEmail) -> OutgoingEmail:
        # Limit: Gmail send-as aliases are not supported; mail always goes out from
        # the connected address (Gmail would rewrite any other From anyway).
        name, address = parseaddr(email.sender)
        if address.strip().lower() == self.account:
            return email
        return replace(email, sender=formataddr((name, self.account)))

    def send(self, email: OutgoingEmail) -> SendReceipt:
        """Send ``email`` from this account with users.messages.send.

        Raises SendLimitReached before calling Gmail when the rolling 24-hour limit
        is reached, AuthError when the account may not send, MessageError for an
        email that cannot be built, SendError for other failures.
        """
        count = len(email.to) + len(email.cc) + len(email.bcc)
        if count > MAX_RECIPIENTS_PER_MESSAGE:
            raise SendError(
                f"This email has {count} recipients; Gmail sends to at most "
                f"{MAX_RECIPIENTS_PER_MESSAGE} per message. Split it up."
            )
        if not self._info.can_send:
            raise AuthError(
                "This Gmail account did not allow Steward to send. Click Reconnect "
                "Gmail on the Connect page and allow sending."
            )
        check_daily_limit(
            self._services.engine,
            self.account,
            self.key,
            daily_limit(self.account, self._client.gmail.daily_send_limit),
            rfc_message_id=email.rfc_message_id,
        )
        msg = build_message(self._from_account(email))
        raw = message_bytes(msg)
        if len(raw) > MAX_RAW_MESSAGE_BYTES:
            # Limit: large messages would need the media upload endpoint; Steward
            # sends text emails, far below this size.
            raise SendError("This email is larger than 1 MiB; shorten it.")
        rfc_message_id = str(msg["Message-ID"])
        body: dict[str, str] = {"raw": base64.urlsafe_b64encode(raw).decode("ascii")}
        if email.thread_id:
            body["threadId"] = email.thread_id

        def went_out_already() -> SendReceipt | None:
            # After a 5xx or a dropped connection the message may be in Sent: look
            # before sending again, so a retry never sends it twice.
            # Limit: Gmail's search can lag a few seconds behind a send.
            return self.find_sent(rfc_message_id) if self._info.can_read_sent else None

        result = self._client.call(
            "messages.send",
            lambda: self._messages.send(userId="me", body=body),
            cost=quota.COST_SEND,
            purpose=quota.SEND,
            fail=SendError,
            before_retry=went_out_already,
        )
        if isinstance(result, SendReceipt):
            return result
        return SendReceipt(
            mailbox_message_id=result["id"],
            thread_id=result.get("threadId") or result["id"],
            rfc_message_id=rfc_message_id,
            sent_at=utcnow(),
        )

    def find_sent(self, rfc_message_id: str) -> SendReceipt | None:
        """The message with this Message-ID in Sent, or None when it is not there.

        Raises AuthError or MailboxError when Gmail cannot be asked (never None
        then: None means "not sent" and would allow a second send).
        """
        if not self._info.can_read_sent:
            raise AuthError(
                "Steward may not read this account's Sent folder, so it cannot "
                "check whether an interrupted send went out. Click Reconnect Gmail "
                "and allow reading the Sent folder."
            )
        query = f"rfc822msgid:{rfc_message_id.strip().strip('<>')}"
        found = self._client.call(
            "messages.list",
            lambda: self._messages.list(
                userId="me", q=query, labelIds=[SENT_LABEL], maxResults=10
            ),
            cost=quota.COST_LIST,
            purpose=quota.SEND,
            fail=MailboxError,
        ).get("messages", [])
        if not found:
            return None
        message = self._client.call(
            "messages.get",
            lambda: self._messages.get(
                userId="me", id=found[0]["id"], format="minimal"
            ),
            cost=quota.COST_GET,
            purpose=quota.SEND,
            fail=MailboxError,
        )
        sent_ms = int(message.get("internalDate", 0))
        return SendReceipt(
            mailbox_message_id=message["id"],
            thread_id=message.get("threadId") or message["id"],
            rfc_message_id=rfc_message_id,
            sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
        )

    # -- reading Sent ----------------------------------------------------------------

    def read_sent(self, cursor: str | None) -> SentPage:
        """New messages in Sent after ``cursor`` (see the module docstring).

        An incremental read returns every new message, oldest first. A full listing
        returns one page (newest pages first) with ``full_resync=True`` and a cursor
        that continues it. Raises MailboxError or AuthError.
        """
        if not self._info.can_read_sent:
            raise AuthError(
                "This Gmail account did not allow Steward to read its Sent folder, so "
                "sent email cannot be logged. Click Reconnect Gmail and allow it."
            )
        where = _Cursor.parse(cursor) if cursor else None
        if where is None:
            return self._list_page(None)  # first sync: the whole Sent folder
        if where.listing:
            return self._list_page(where)
        try:
            return self._history_page(where.history_id)
        except NotFound:
            log.info(
                "gmail history cursor expired for %s: full resync since then",
                mask_address(self.account),
            )
            return self._list_page(None, after=self._resync_after(where))

    def _resync_after(self, expired: _Cursor) -> int | None:
        """Epoch seconds to list Sent from after an expired cursor: when that
        cursor was taken (or, for an older cursor, the last sync), less a margin."""
        if expired.taken is not None:
            return expired.taken - int(RESYNC_MARGIN.total_seconds())
        with self._services.engine.connect() as conn:
            last = conn.execute(
                select(sync_cursors_table.c.last_sync_at).where(
                    sync_cursors_table.c.mailbox == self.key
                )
            ).scalar()
        last = as_utc(last)
        return None if last is None else int((last - RESYNC_MARGIN).timestamp())

    def _history_page(self, start: str) -> SentPage:
        taken = int(utcnow().timestamp())
        ids: list[str] = []
        latest, token = start, None
        history = self._client.service.users().history()
        for _page in range(MAX_HISTORY_PAGES):
            params: dict[str, Any] = {
                "userId": "me",
                "startHistoryId": start,
                "historyTypes": ["messageAdded"],
                "labelId": SENT_LABEL,
                "maxResults": HISTORY_PAGE_SIZE,
            }
            if token:
                params["pageToken"] = token
            answer = self._client.call(
                "history.list",
                partial(history.list, **params),
                cost=quota.COST_HISTORY,
                purpose=quota.SYNC,
                fail=MailboxError,
                not_found_raises=True,
            )
            for record in answer.get("history", []):
                for added in record.get("messagesAdded", []):
                    message = added.get("message", {})
                    if SENT_LABEL in message.get("labelIds", [SENT_LABEL]):
                        ids.append(message["id"])
            latest = str(answer.get("historyId") or latest)
            token = answer.get("nextPageToken")
            if not token:
                break
        else:
            raise NotFound("more history than one read should hold")
        cursor = _Cursor(latest, taken)
        return SentPage(self.fetch_headers(ids), str(cursor), full_resync=False)

    def _list_page(self, where: _Cursor | None, after: int | None = None) -> SentPage:
        """One page of a full listing of Sent (since ``after`` when given)."""
        if where is None:
            # Taken before listing: anything sent meanwhile is read from history.
            taken = int(utcnow().timestamp())
            profile = self._client.call(
                "users.getProfile",
                lambda: self._client.service.users().getProfile(userId="me"),
                cost=quota.COST_PROFILE,
                purpose=quota.SYNC,
                fail=MailboxError,
            )
            where = _Cursor(str(profile["historyId"]), taken, True, after)
        params: dict[str, Any] = {
            "userId": "me",
            "labelIds": [SENT_LABEL],
            "maxResults": LIST_PAGE_SIZE,
        }
        if where.after:
            params["q"] = f"after:{where.after}"
        if where.page_token:
            params["pageToken"] = where.page_token
        answer = self._client.call(
            "messages.list",
            lambda: self._messages.list(**params),
            cost=quota.COST_LIST,
            purpose=quota.SYNC,
            fail=MailboxError,
        )
        ids = [m["id"] for m in answer.get("messages", [])]
        next_token = answer.get("nextPageToken")
        if next_token:
            following = replace(where, page_token=str(next_token))
        else:
            following = _Cursor(where.history_id, where.taken)
        return SentPage(self.fetch_headers(ids), str(following), full_resync=True)

    def fetch_headers(self, ids: Sequence[str]) -> list[SentMessage]:
        """The headers of each message in ``ids``, fetched in batches of
        BATCH_SIZE, oldest first; messages deleted meanwhile are skipped.

        Items Gmail answers with 429 or 5xx are fetched again (bounded) after a
        backoff. Raises MailboxError or AuthError.
        """
        found: dict[str, SentMessage] = {}

        def keep(message_id: str, answer: Any) -> None:
            found[message_id] = _sent_message(answer)

        pending = list(dict.fromkeys(ids))
        backoff = self._client.backoff
        for attempt in range(backoff.max_retries + 1):
            retry: list[str] = []
            for chunk in _chunks(pending, BATCH_SIZE):
                requests = {
                    message_id: self._messages.get(
                        userId="me",
                        id=message_id,
                        format="metadata",
                        metadataHeaders=METADATA_HEADERS,
                    )
                    for message_id in chunk
                }
                try:
                    retry += self._client.batch(
                        "messages.get",
                        requests,
                        cost=quota.COST_GET * len(chunk),
                        on_answer=keep,
                    )
                except Retryable:
                    retry += chunk
            if not retry:
                break
            if attempt == backoff.max_retries:
                raise MailboxError(
                    f"Gmail kept refusing to hand over {len(retry)} sent messages; "
                    "the next sync tries again."
                )
            backoff.wait(attempt)
            pending = retry
        return sorted(found.values(), key=lambda m: (m.sent_at, m.mailbox_message_id))


def open_gmail_mailbox(
    services: Any,
    account: str | None,
    *,
    budget: quota.QuotaBudget | None = None,
    backoff: quota.Backoff | None = None,
) -> GmailMailbox:
    """The Gmail mailbox of ``account`` (or of the only connected account).

    Raises AuthError when that account is not connected, none is, or several are
    and none was chosen.
    """
    if account is None:
        connected = [a for a in google_oauth.list_accounts(services) if a.connected]
        if not connected:
            raise AuthError(
                "No Gmail account is connected. Click Connect Gmail on the Connect "
                "page."
            )
        if len(connected) > 1:
            raise AuthError(
                "Several Gmail accounts are connected: choose yours on the Connect "
                "page."
            )
        info = connected[0]
    else:
        found = google_oauth.get_account(services, account)
        if found is None or not found.connected:
            reason = (
                f" ({found.status_reason})" if found and found.status_reason else ""
            )
            raise AuthError(
                f"Gmail is not connected for this account{reason}. Click "
                "Reconnect Gmail on the Connect page.",
                detail={"reason": "not_connected"},
            )
        info = found
    creds = google_oauth.load_credentials(services, info.email)
    return GmailMailbox(services, info, creds, budget=budget, backoff=backoff)


def open_all_gmail_mailboxes(services: Any) -> list[GmailMailbox]:
    """A mailbox for every connected account; one whose permission was withdrawn
    is skipped (and shown as disconnected on the Connect page)."""
    mailboxes = []
    for info in google_oauth.list_accounts(services):
        if not info.connected:
            continue
        try:
            mailboxes.append(open_gmail_mailbox(services, info.email))
        except AuthError as exc:
            log.warning("skipping gmail account %s: %s", mask_address(info.email), exc)
    return mailboxes
