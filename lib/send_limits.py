"""Gmail's daily sending limit, checked by Steward before each send.

Why check ourselves: Google answers a send over the limit with an error only some
minutes later (a 200 does not prove the limit is not reached), and going over locks
the account's sending for up to 24 hours. Counting our own sends, plus everything
sync saw in the Sent folder, over a rolling 24 hours lets a bulk send stop cleanly
with the remaining drafts still approved.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, union

from lib.db import as_utc, utcnow
from lib.emails import domain_of
from lib.errors import SendLimitReached
from lib.schema import send_attempts_table, sent_mail_table

# limits.md, "Gmail API": consumer Gmail about 500 messages per rolling 24 hours;
# Google Workspace 2,000 (500 during a trial: set daily_send_limit for a trial).
CONSUMER_DAILY_LIMIT = 500
WORKSPACE_DAILY_LIMIT = 2000
ROLLING_WINDOW = timedelta(hours=24)
CONSUMER_DOMAINS = frozenset({"gmail.com", "googlemail.com"})

# send_attempts states that mean the message went out, or may have (a claimed
# attempt interrupted by a crash is counted, to stay on the safe side).
_COUNTED_STATES = ("claimed", "sent", "recovered")


def is_workspace_address(account: str) -> bool:
    """True for an address outside gmail.com / googlemail.com (a Workspace
    account, since the Gmail API only sends from Google-hosted addresses)."""
    return domain_of(account) not in CONSUMER_DOMAINS


def daily_limit(account: str, configured: int | None = None) -> int:
    """The number of messages ``account`` may send in 24 hours: the configured
    value, else Google's default for its kind of account."""
    if configured:
        return int(configured)
    if is_workspace_address(account):
        return WORKSPACE_DAILY_LIMIT
    return CONSUMER_DAILY_LIMIT


def sends_in_window(
    engine: Engine,
    account: str,
    mailbox_key: str,
    *,
    now: datetime | None = None,
    exclude_rfc_message_id: str | None = None,
) -> tuple[int, datetime | None]:
    """How many distinct messages ``account`` sent in the last 24 hours, and when
    the oldest of them was sent.

    Counts Steward's own send attempts and every message sync recorded in this
    mailbox's Sent folder (mail sent from Gmail directly counts against the same
    limit), each Message-ID once. ``exclude_rfc_message_id`` leaves out the send
    being checked (its attempt is already claimed).
    """
    since = (now or utcnow()) - ROLLING_WINDOW
    attempts = select(
        send_attempts_table.c.rfc_message_id.label("rfc"),
        send_attempts_table.c.started_at.label("at"),
    ).where(
        func.lower(send_attempts_table.c.account) == account.lower(),
        send_attempts_table.c.state.in_(_COUNTED_STATES),
        send_attempts_table.c.started_at >= since,
    )
    seen = select(
        sent_mail_table.c.rfc_message_id.label("rfc"),
        sent_mail_table.c.sent_at.label("at"),
    ).where(
        sent_mail_table.c.mailbox == mailbox_key,
        sent_mail_table.c.sent_at >= since,
    )
    both = union(attempts, seen).subquery()
    query = select(func.count(func.distinct(both.c.rfc)), func.min(both.c.at))
    if exclude_rfc_message_id:
        query = query.where(both.c.rfc != exclude_rfc_message_id)
    with engine.connect() as conn:
        row = conn.execute(query).one()
    count: Any = row[0]
    oldest: Any = row[1]
    if isinstance(oldest, str):  # SQLite may hand back text from a UNION
        oldest = datetime.fromisoformat(oldest)
    return int(count or 0), as_utc(oldest)


def check_daily_limit(
    engine: Engine,
    account: str,
    mailbox_key: str,
    limit: int,
    *,
    now: datetime | None = None,
    rfc_message_id: str | None = None,
) -> int:
    """Return how many more messages ``account`` may send now.

    Raises SendLimitReached (the remaining drafts stay approved) when the limit for
    the rolling 24 hours is reached.
    """
    now = now or utcnow()
    count, oldest = sends_in_window(
        engine, account, mailbox_key, now=now, exclude_rfc_message_id=rfc_message_id
    )
    remaining = limit - count
    if remaining > 0:
        return remaining
    free_at = (oldest or now) + ROLLING_WINDOW
    raise SendLimitReached(
        f"The daily sending limit of this Gmail account is reached: {count} emails "
        f"in the last 24 hours (limit {limit}). The remaining drafts stay approved; "
        f"send them after {free_at:%Y-%m-%d %H:%M} UTC, when the oldest of these "
        "sends leaves the 24-hour window.",
        detail={"count": count, "limit": limit},
    )
