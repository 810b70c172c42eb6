"""Approval: a person's decision that a draft may be sent, from which account.

Kept apart from the draft store because approval is where the safety rules meet:
a draft that needs review, a donor who may not be emailed, an empty draft or a
second draft to an inbox that already has one approved is refused here, with the
reason shown on the page. Every change is a conditional UPDATE, like the store's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Engine

from lib.db import utcnow
from lib.drafts import (
    UNSENT,
    load_with_donor,
    missing_draft,
    send_block_reason,
    status_values,
)
from lib.emails import canonical_address
from lib.errors import StewardError
from lib.models import Draft, DraftStatus
from lib.schema import drafts_table
from lib.suppression import suppressed_addresses


def _approval_refusal(
    draft: Draft, donor: Any, account: str, suppressed: Mapping[str, str]
) -> str | None:
    if draft.status == DraftStatus.SENT:
        return "already sent"
    if draft.status == DraftStatus.SENDING:
        return "being sent right now"
    if draft.status == DraftStatus.APPROVED and draft.approved_by != account:
        return f"already approved by {draft.approved_by}"
    if draft.status == DraftStatus.NEEDS_REVIEW and not draft.review_override:
        return "needs review: check the flagged facts or tick the override first"
    blocked = send_block_reason(donor, draft.to_address, suppressed)
    if blocked:
        return blocked
    if not draft.body.strip():
        return "the draft has no text (draft it again or write it)"
    if not draft.subject.strip():
        return "the subject is empty"
    return None


def _same_address_refusal(conn: Any, draft: Draft) -> str | None:
    """One email per address: two donor records may share an address (a household,
    or an un-merged duplicate in the CRM); only one of their drafts goes out."""
    if not draft.to_address:
        return None
    d = drafts_table
    other = conn.execute(
        select(d.c.id)
        .where(func.lower(d.c.to_address) == canonical_address(draft.to_address))
        .where(d.c.status.in_([DraftStatus.APPROVED.value, DraftStatus.SENDING.value]))
        .where(d.c.id != draft.id)
        .limit(1)
    ).scalar()
    if other is None:
        return None
    return f"draft #{other} to the same address is already approved"


def approve(
    engine: Engine, draft_ids: Iterable[int], account: str
) -> dict[int, str | None]:
    """Approve drafts for sending from ``account``.

    Returns, per draft id, None when it is approved (or already was, by this
    account) and otherwise the reason it was refused: needs review without
    override, donor may not be emailed, no address, already sent, and so on.
    """
    account = account.strip().lower()
    outcome: dict[int, str | None] = {}
    d = drafts_table
    with engine.connect() as conn:
        suppressed = suppressed_addresses(conn)
    for draft_id in draft_ids:
        with engine.begin() as conn:
            loaded = load_with_donor(conn, draft_id)
            if loaded is None:
                outcome[draft_id] = "no longer exists"
                continue
            draft, donor = loaded
            refusal = _approval_refusal(draft, donor, account, suppressed)
            if refusal is None and draft.status != DraftStatus.APPROVED:
                refusal = _same_address_refusal(conn, draft)
            if refusal is None and draft.status != DraftStatus.APPROVED:
                changed = conn.execute(
                    update(d)
                    .where(d.c.id == draft_id)
                    .where(d.c.version == draft.version)
                    .where(d.c.status == draft.status.value)
                    .values(
                        status=DraftStatus.APPROVED.value,
                        approved_by=account,
                        approved_at=utcnow(),
                        error=None,
                        version=d.c.version + 1,
                        updated_at=utcnow(),
                    )
                ).rowcount
                if not changed:
                    refusal = "changed in another tab; reload and approve again"
            outcome[draft_id] = refusal
    return outcome


def unapprove(engine: Engine, draft_ids: Iterable[int]) -> int:
    """Put approved drafts back to "draft"; return how many changed (drafts being
    sent or sent are left as they are)."""
    d = drafts_table
    ids = list(draft_ids)
    with engine.begin() as conn:
        return conn.execute(
            update(d)
            .where(d.c.id.in_(ids))
            .where(d.c.status == DraftStatus.APPROVED.value)
            .values(
                status=DraftStatus.DRAFT.value,
                approved_by=None,
                approved_at=None,
                version=d.c.version + 1,
                updated_at=utcnow(),
            )
        ).rowcount


def set_review_override(engine: Engine, draft_id: int, override: bool) -> Draft:
    """Record that a person checked the flagged facts (or withdrew that).

    Withdrawing the override from an approved needs-review draft is refused: put
    it back to draft first. Raises StewardError when the draft is sent, being
    sent or gone.
    """
    d = drafts_table
    with engine.begin() as conn:
        changed = conn.execute(
            update(d)
            .where(d.c.id == draft_id)
            .where(d.c.status.in_(status_values(UNSENT)))
            .values(
                review_override=bool(override),
                version=d.c.version + 1,
                updated_at=utcnow(),
            )
        ).rowcount
        loaded = load_with_donor(conn, draft_id)
    if loaded is None:
        raise missing_draft(draft_id)
    if not changed and loaded[0].review_override != bool(override):
        raise StewardError(
            f"Draft {draft_id} is {loaded[0].status.value}; put it back to draft "
            "before changing the review override."
        )
    return loaded[0]


def discard(engine: Engine, draft_ids: Iterable[int]) -> int:
    """Delete drafts that were not sent and are not being sent; return how many."""
    d = drafts_table
    ids = list(draft_ids)
    with engine.begin() as conn:
        return conn.execute(
            delete(d)
            .where(d.c.id.in_(ids))
            .where(
                d.c.status.not_in(
                    status_values((DraftStatus.SENT, DraftStatus.SENDING))
                )
            )
        ).rowcount
