"""Send approved drafts from a person's own mailbox, each at most once.

Why the steps are in this order: a draft is first *claimed* (approved -> sending, a
conditional UPDATE only one caller can win), then given its RFC Message-ID and a
``send_attempts`` row, and only then handed to the mailbox. If the process dies
between the mailbox accepting the message and the draft being marked sent, the
draft is left in "sending" with a known Message-ID; :func:`recover_interrupted_sends`
asks the mailbox for that Message-ID and marks it sent instead of sending again.
Nothing here runs without a person's click: the page calls :func:`send_approved`
after a confirmation that lists the recipients from :func:`plan_send`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from lib.db import as_utc, utcnow
from lib.drafts import draft_from_row, send_block_reason
from lib.emails import canonical_address
from lib.errors import (
    AuthError,
    MailboxError,
    MessageError,
    SendError,
    SendLimitReached,
    StewardError,
)
from lib.mailbox.base import Mailbox
from lib.message import build_message, new_message_id
from lib.models import Draft, DraftStatus, OutgoingEmail, SendReceipt, TrackingLinks
from lib.schema import donors_table, drafts_table, send_attempts_table
from lib.suppression import suppressed_addresses, suppression_reason
from lib.tracking_links import links_for

log = logging.getLogger(__name__)

# A claim older than this whose message is not in Sent was interrupted before the
# mailbox took it: longer than any single send call (Gmail's client gives up well
# within a minute, with its retries) so a send still running elsewhere is never
# mistaken for a dead one.
STALE_CLAIM = timedelta(minutes=3)

SendProgress = Callable[[int, int], None]  # done, total

# Drafts this process is sending right now: recovery never touches them.
_in_flight: set[int] = set()
_in_flight_lock = threading.Lock()


@dataclass(frozen=True)
class PlannedSend:
    """One approved draft that will go out, as the confirmation shows it."""

    draft_id: int
    donor_name: str
    recipients: tuple[str, ...]
    subject: str


@dataclass
class SendPlan:
    """What a click on Send would do for one account."""

    account: str
    ready: list[PlannedSend] = field(default_factory=list)
    blocked: dict[int, str] = field(default_factory=dict)

    @property
    def recipients(self) -> list[str]:
        return [r for item in self.ready for r in item.recipients]


@dataclass
class SendReport:
    """What one send run did. ``skipped`` drafts were sent or claimed elsewhere
    (another tab, a double click) or were not approved by this account."""

    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    blocked: dict[int, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    stopped_reason: str | None = None


# -- planning -------------------------------------------------------------------


def plan_send(
    services: Any, account: str, draft_ids: Iterable[int] | None = None
) -> SendPlan:
    """The drafts approved by ``account`` that a send would deliver (all of them,
    or those in ``draft_ids``) and, separately, the ones that will be blocked with
    the reason (donor may not be emailed, no address, not approved by this
    account)."""
    account = account.strip().lower()
    wanted = None if draft_ids is None else list(draft_ids)
    d, o = drafts_table, donors_table
    query = select(d).order_by(d.c.id)
    if wanted is None:
        query = query.where(d.c.status == DraftStatus.APPROVED.value)
    else:
        query = query.where(d.c.id.in_(wanted))
    with services.engine.connect() as conn:
        suppressed = suppressed_addresses(conn)
        drafts = [draft_from_row(r) for r in conn.execute(query)]
        donors = {
            r.id: r
            for r in conn.execute(
                select(o).where(o.c.id.in_({x.donor_id for x in drafts}))
            )
        }
    plan = SendPlan(account=account)
    planned_to: dict[str, int] = {}
    for draft in drafts:
        assert draft.id is not None
        if draft.status != DraftStatus.APPROVED:
            plan.blocked[draft.id] = f"not approved ({draft.status.value})"
            continue
        if draft.approved_by != account:
            plan.blocked[draft.id] = f"approved for {draft.approved_by}"
            continue
        donor = donors.get(draft.donor_id)
        reason = send_block_reason(donor, draft.to_address, suppressed)
        for copied in (*draft.cc, *draft.bcc):  # nobody on Cc/Bcc who may not be
            reason = reason or _copy_block_reason(copied, suppressed.get)
        if reason:
            plan.blocked[draft.id] = reason
            continue
        to_key = canonical_address(draft.to_address)
        if to_key in planned_to:
            plan.blocked[draft.id] = (
                f"draft #{planned_to[to_key]} in this send goes to the same address"
            )
            continue
        planned_to[to_key] = draft.id
        recipients = (draft.to_address or "", *draft.cc, *draft.bcc)
        plan.ready.append(
            PlannedSend(
                draft.id, donor.name if donor else "", recipients, draft.subject
            )
        )
    return plan


# -- state changes (each one conditional on the status it expects) ---------------


def _settle(
    engine: Engine,
    draft_id: int,
    status: DraftStatus,
    *,
    attempt: str,
    attempt_values: dict[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Move a draft from "sending" to ``status`` and close its open send attempt
    as ``attempt``, in one transaction. False when the draft was not sending."""
    d, a = drafts_table, send_attempts_table
    now = utcnow()
    with engine.begin() as conn:
        changed = conn.execute(
            update(d)
            .where(d.c.id == draft_id)
            .where(d.c.status == DraftStatus.SENDING.value)
            .values(
                status=status.value, version=d.c.version + 1, updated_at=now, **values
            )
        ).rowcount
        conn.execute(
            update(a)
            .where(a.c.draft_id == draft_id)
            .where(a.c.state == "claimed")
            .values(state=attempt, finished_at=now, **(attempt_values or {}))
        )
    return bool(changed)


def _mark_sent(
    engine: Engine, draft_id: int, receipt: SendReceipt, attempt: str
) -> None:
    ids = {
        "mailbox_message_id": receipt.mailbox_message_id,
        "thread_id": receipt.thread_id,
    }
    _settle(
        engine,
        draft_id,
        DraftStatus.SENT,
        attempt=attempt,
        attempt_values=ids,
        sent_at=receipt.sent_at,
        error=None,
        **ids,
    )


def _not_sent(engine: Engine, draft_id: int, status: DraftStatus, reason: str) -> None:
    """The message did not go out: back to approved, or failed/blocked with why."""
    extra = {} if status == DraftStatus.APPROVED else {"error": reason}
    _settle(
        engine,
        draft_id,
        status,
        attempt="failed",
        attempt_values={"error": reason},
        **extra,
    )


def _claim(
    engine: Engine, draft_id: int, account: str
) -> tuple[Draft, Any, bool] | None:
    """approved -> sending for this account, with the Message-ID fixed and a
    "claimed" send attempt recorded. Returns the draft, its donor row and whether
    an earlier attempt exists; None when someone else has the draft."""
    d, a = drafts_table, send_attempts_table
    now = utcnow()
    with engine.begin() as conn:
        won = conn.execute(
            update(d)
            .where(d.c.id == draft_id)
            .where(d.c.status == DraftStatus.APPROVED.value)
            .where(d.c.approved_by == account)
            .values(
                status=DraftStatus.SENDING.value,
                version=d.c.version + 1,
                updated_at=now,
            )
        ).rowcount
        if not won:
            return None
        draft = draft_from_row(conn.execute(select(d).where(d.c.id == draft_id)).one())
        donor = conn.execute(
            select(donors_table).where(donors_table.c.id == draft.donor_id)
        ).first()
        if draft.rfc_message_id is None:
            draft.rfc_message_id = new_message_id(account.rsplit("@", 1)[1])
            conn.execute(
                update(d)
                .where(d.c.id == draft_id)
                .values(rfc_message_id=draft.rfc_message_id)
            )
        earlier = (
            conn.execute(select(a.c.id).where(a.c.draft_id == draft_id)).first()
            is not None
        )
        conn.execute(
            a.insert().values(
                draft_id=draft_id,
                account=account,
                rfc_message_id=draft.rfc_message_id,
                state="claimed",
                started_at=now,
            )
        )
    return draft, donor, earlier


# -- sending --------------------------------------------------------------------


class _Stop(Exception):
    """Stop the batch: the daily limit or the account's permission."""


def _donor_values(donor: Any, draft: Draft) -> tuple[str, ...]:
    """Every text in the donor's record and the facts drawn from it: web
    addresses in them are never made into tracked links."""
    values: list[str] = []
    for value in donor._mapping.values() if donor is not None else ():
        items = value if isinstance(value, list) else [value]
        values += [item for item in items if isinstance(item, str) and item]
    return (*values, *draft.facts)


def _copy_block_reason(address: str, lookup: Callable[[str], str | None]) -> str | None:
    why = lookup(canonical_address(address))
    return f"Cc/Bcc {address}: {why}" if why else None


def _outgoing(
    draft: Draft, sender: str, tracking: TrackingLinks | None = None
) -> OutgoingEmail:
    return OutgoingEmail(
        sender=sender,
        to=(draft.to_address or "",),
        cc=tuple(draft.cc),
        bcc=tuple(draft.bcc),
        subject=draft.subject,
        body_text=draft.body,
        rfc_message_id=draft.rfc_message_id,
        thread_id=draft.thread_id,
        in_reply_to=draft.in_reply_to,
        references=draft.references,
        tracking=tracking,
    )


def _send_one(
    services: Any,
    account: str,
    mailbox: Mailbox,
    draft_id: int,
    report: SendReport,
    tracking: TrackingLinks | None = None,
) -> None:
    engine = services.engine
    claimed = _claim(engine, draft_id, account)
    if claimed is None:
        report.skipped.append(draft_id)
        return
    draft, donor, earlier = claimed
    rfc = draft.rfc_message_id
    assert rfc is not None
    # The donor's flags (or another record's at this address) may have changed
    # since the draft was approved.
    reason = send_block_reason(donor, draft.to_address)
    if reason is None:
        with engine.connect() as conn:
            reason = suppression_reason(conn, draft.to_address)
            for copied in (*draft.cc, *draft.bcc):
                reason = reason or _copy_block_reason(
                    copied, lambda key: suppression_reason(conn, key)
                )
    if reason:
        _not_sent(engine, draft_id, DraftStatus.BLOCKED, reason)
        report.blocked[draft_id] = reason
        return
    if tracking is not None:
        tracking = replace(tracking, donor_values=_donor_values(donor, draft))
    email = _outgoing(draft, getattr(mailbox, "sender", "") or account, tracking)
    try:
        build_message(email)
    except MessageError as exc:
        _not_sent(engine, draft_id, DraftStatus.FAILED, str(exc))
        report.failed[draft_id] = str(exc)
        return
    if earlier:
        # A retry: an earlier attempt may have gone out after all.
        try:
            found = mailbox.find_sent(rfc)
        except MailboxError as exc:
            message = f"Could not check whether it was already sent: {exc}"
            _not_sent(engine, draft_id, DraftStatus.FAILED, message)
            report.failed[draft_id] = message
            return
        if found is not None:
            _mark_sent(engine, draft_id, found, "recovered")
            report.sent.append(draft_id)
            return
    try:
        receipt = mailbox.send(email)
    except (SendLimitReached, AuthError) as exc:
        _not_sent(engine, draft_id, DraftStatus.APPROVED, str(exc))
        raise _Stop(str(exc)) from exc
    except SendError as exc:
        _not_sent(engine, draft_id, DraftStatus.FAILED, str(exc))
        report.failed[draft_id] = str(exc)
        return
    _mark_sent(engine, draft_id, receipt, "sent")
    report.sent.append(draft_id)


def send_approved(
    services: Any,
    account: str,
    draft_ids: Sequence[int],
    progress: SendProgress | None = None,
    *,
    mailbox: Mailbox | None = None,
) -> SendReport:
    """Send the approved drafts in ``draft_ids`` from ``account``, in order.

    Each draft is sent at most once however often this is called, concurrently or
    after a crash. A draft whose donor may no longer be emailed becomes "blocked";
    a send error marks that draft "failed" with the error (its text is kept); the
    daily limit or a withdrawn permission stops the batch with ``stopped_reason``
    and leaves the rest approved. With ``steward.tracking_base_url`` set, each
    HTML part carries open and click tracking (lib.tracking_links). Raises
    AuthError when the mailbox cannot be opened, StewardError when it sends as
    another account, ConfigError when the encryption key is unusable.
    """
    account = account.strip().lower()
    mailbox = mailbox or services.mailbox(account)
    if mailbox.account.lower() != account:
        raise StewardError(
            f"The mailbox sends as {mailbox.account}, not {account}; sign in again."
        )
    report = SendReport()
    tracking = links_for(services.settings)  # before any claim: a bad key stops here
    recover_interrupted_sends(services, account, mailbox=mailbox)
    total = len(draft_ids)
    for done, draft_id in enumerate(draft_ids, start=1):
        with _in_flight_lock:
            mine = draft_id not in _in_flight
            _in_flight.add(draft_id)
        if not mine:
            report.skipped.append(draft_id)
        else:
            try:
                _send_one(services, account, mailbox, draft_id, report, tracking)
            except _Stop as stop:
                report.stopped_reason = str(stop)
                break
            finally:
                with _in_flight_lock:
                    _in_flight.discard(draft_id)
        if progress is not None:
            progress(done, total)
    log.info(
        "send run: sent=%d failed=%d blocked=%d skipped=%d stopped=%s",
        len(report.sent),
        len(report.failed),
        len(report.blocked),
        len(report.skipped),
        report.stopped_reason is not None,
    )
    return report


def recover_interrupted_sends(
    services: Any,
    account: str,
    *,
    mailbox: Mailbox | None = None,
    stale_after: timedelta = STALE_CLAIM,
    now: datetime | None = None,
) -> int:
    """Settle drafts left in "sending" by a crash; return how many were settled.

    A draft whose Message-ID is in Sent becomes "sent"; one that is not, and was
    claimed longer than ``stale_after`` ago, goes back to "approved" (it never
    left). Drafts this process is sending right now are left alone. Raises
    AuthError when the mailbox cannot be opened.
    """
    account = account.strip().lower()
    mailbox = mailbox or services.mailbox(account)
    now = now or utcnow()
    d = drafts_table
    with services.engine.connect() as conn:
        stuck = conn.execute(
            select(d.c.id, d.c.rfc_message_id, d.c.updated_at)
            .where(d.c.status == DraftStatus.SENDING.value)
            .where(d.c.approved_by == account)
        ).all()
    settled = 0
    for draft_id, rfc, claimed_at in stuck:
        with _in_flight_lock:
            if draft_id in _in_flight:
                continue
        try:
            found = mailbox.find_sent(rfc) if rfc else None
        except MailboxError as exc:
            log.warning(
                "draft %d: cannot check Sent (%s)", draft_id, type(exc).__name__
            )
            continue
        if found is not None:
            _mark_sent(services.engine, draft_id, found, "recovered")
            settled += 1
        elif (as_utc(claimed_at) or now) <= now - stale_after:
            _not_sent(
                services.engine,
                draft_id,
                DraftStatus.APPROVED,
                "interrupted before sending",
            )
            settled += 1
    if settled:
        log.info("recovered %d interrupted send(s)", settled)
    return settled
