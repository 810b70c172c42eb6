"""The draft store: every donor's draft from first version to sent email.

Why every status change is a conditional UPDATE (``WHERE status IN … AND version =
…``): two browser tabs, a double click or the send loop may act on the same draft at
once, and the database row is the only place they meet. Whoever's UPDATE matches
wins; the other sees ``rowcount == 0`` and says so instead of overwriting. Drafts
that are approved, being sent or sent are never rewritten by a new drafting run, so
a person's approval (and the text they approved) always stands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select, update

from lib.db import as_utc, utcnow
from lib.drafting.base import CampaignBrief, DraftResult
from lib.emails import (
    InvalidAddress,
    canonical_address,
    is_valid_address,
    normalise_address,
)
from lib.errors import MessageError, StewardError
from lib.models import Donor, Draft, DraftStatus
from lib.schema import donors_table, drafts_table
from lib.suppression import suppressed_addresses

log = logging.getLogger(__name__)

Review = Callable[[Donor, str, str], list[str]]

# Not yet approved or sent: a new drafting run may replace these in place.
UNSENT = (
    DraftStatus.DRAFT,
    DraftStatus.NEEDS_REVIEW,
    DraftStatus.FAILED,
    DraftStatus.BLOCKED,
)
# Held for sending: a drafting run leaves these alone.
HELD = (DraftStatus.APPROVED, DraftStatus.SENDING)
# A person may edit these (an approved draft goes back to "draft" when edited).
EDITABLE = (*UNSENT, DraftStatus.APPROVED)

LIST_COLUMNS = [
    "id",
    "donor_id",
    "donor_name",
    "to_address",
    "subject",
    "body",
    "status",
    "review_issues",
    "error",
    "approved_by",
    "sent_at",
    "version",
    "blocked_reason",
]


def status_values(statuses: Iterable[DraftStatus]) -> list[str]:
    return [s.value for s in statuses]


def draft_from_row(row: Any) -> Draft:
    """A Draft from a ``drafts`` row (a SQLAlchemy Row or mapping)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    return Draft(
        id=m["id"],
        donor_id=m["donor_id"],
        subject=m["subject"],
        body=m["body"],
        status=DraftStatus(m["status"]),
        to_address=m["to_address"],
        cc=list(m["cc"] or []),
        bcc=list(m["bcc"] or []),
        campaign=m["campaign"],
        drafter=m["drafter"],
        facts=list(m["facts"] or []),
        review_issues=list(m["review_issues"] or []),
        review_override=bool(m["review_override"]),
        error=m["error"],
        approved_by=m["approved_by"],
        rfc_message_id=m["rfc_message_id"],
        mailbox_message_id=m["mailbox_message_id"],
        thread_id=m["thread_id"],
        in_reply_to=m["in_reply_to"],
        references=m["references"],
        sent_at=as_utc(m["sent_at"]),
        version=m["version"],
    )


def _donor_flags(row: Any, to_address: str | None) -> Donor:
    """The donor's do-not-contact flags, with the address the draft goes to."""
    m = row._mapping if hasattr(row, "_mapping") else row
    return Donor(
        name=m["name"] or "",
        email=(to_address or "").strip() or None,
        do_not_email=bool(m["do_not_email"]),
        opted_out=bool(m["opted_out"]),
        deceased=bool(m["deceased"]),
        bounced=bool(m["bounced"]),
        id=m["id"],
    )


def send_block_reason(
    donor_row: Any,
    to_address: str | None,
    suppressed: Mapping[str, str] | None = None,
) -> str | None:
    """Why a draft to ``to_address`` for this donor must not be sent, or None.

    ``donor_row`` is a ``donors`` row (or None when the donor was removed). The
    donor's flags come first (deceased, opted out, do not email, bounced), then
    the address: blank is "no address", malformed is "not a valid address", and
    an address held by any record that may not be emailed (``suppressed``, from
    lib.suppression) is blocked too.
    """
    if donor_row is None:
        return "donor no longer in the list"
    reason = _donor_flags(donor_row, to_address).blocked_reason
    if reason is None and not is_valid_address(to_address or ""):
        return "not a valid address"
    if reason is None and suppressed:
        other = suppressed.get(canonical_address(to_address))
        if other:
            return f"{other} (a donor record with this address)"
    return reason


def load_with_donor(conn: Connection, draft_id: int) -> tuple[Draft, Any] | None:
    d = drafts_table
    row = conn.execute(select(d).where(d.c.id == draft_id)).first()
    if row is None:
        return None
    donor = conn.execute(
        select(donors_table).where(donors_table.c.id == row.donor_id)
    ).first()
    return draft_from_row(row), donor


def missing_draft(draft_id: int) -> StewardError:
    return StewardError(
        f"Draft {draft_id} no longer exists (it was discarded, or its donor was "
        "removed). Refresh the page."
    )


# -- saving a drafting run ------------------------------------------------------


def _review_issues(
    review: Review | None, donor: Donor, result: DraftResult
) -> list[str]:
    if review is None or result.error:
        return []
    try:
        return [str(issue) for issue in review(donor, result.subject, result.body)]
    except StewardError as exc:  # a failed check must not lose the draft
        return [f"The automatic check could not run ({exc}); read it carefully."]


def save_drafts(
    engine: Engine,
    results: Sequence[DraftResult],
    brief: CampaignBrief,
    donors: Mapping[int, Donor],
    drafter: str,
    review: Review | None = None,
) -> list[int]:
    """Store one draft per donor result and return the ids of the drafts written.

    A donor's unsent draft (draft, needs review, failed, blocked) is replaced in
    place; an approved or sending draft is left alone and the result dropped; when
    the donor's latest draft was sent, a new draft is created. A result with an
    error is kept as a failed draft carrying the error text (an existing draft's
    text is kept). ``review`` returning issues makes the draft "needs review".
    """
    return list(
        save_drafts_by_donor(engine, results, brief, donors, drafter, review).values()
    )


def save_drafts_by_donor(
    engine: Engine,
    results: Sequence[DraftResult],
    brief: CampaignBrief,
    donors: Mapping[int, Donor],
    drafter: str,
    review: Review | None = None,
) -> dict[int, int]:
    """Like :func:`save_drafts`, returning {donor id: draft id} for the drafts
    written (donors whose result was dropped are absent)."""
    saved: dict[int, int] = {}
    d = drafts_table
    for result in results:
        donor = donors.get(result.donor_id)
        if donor is None:
            log.warning("no donor for drafting result (donor %s)", result.donor_id)
            continue
        issues = _review_issues(review, donor, result)
        if result.error:
            status = DraftStatus.FAILED
        elif issues:
            status = DraftStatus.NEEDS_REVIEW
        else:
            status = DraftStatus.DRAFT
        now = utcnow()
        values: dict[str, Any] = {
            "campaign": brief.campaign or donor.campaign,
            "to_address": donor.email,
            "status": status.value,
            "drafter": drafter,
            "facts": list(result.facts),
            "review_issues": issues,
            "review_override": False,
            "error": result.error,
            "approved_by": None,
            "approved_at": None,
            "updated_at": now,
        }
        if not result.error:
            values.update(subject=result.subject, body=result.body)
        with engine.begin() as conn:
            current = conn.execute(
                select(d.c.id, d.c.status)
                .where(d.c.donor_id == result.donor_id)
                .where(d.c.status != DraftStatus.SENT.value)
                .order_by(d.c.id.desc())
            ).first()
            if current is not None and current.status in status_values(HELD):
                log.info("draft %d is approved; new draft not saved", current.id)
                continue
            if current is not None:
                changed = conn.execute(
                    update(d)
                    .where(d.c.id == current.id)
                    .where(d.c.status.in_(status_values(UNSENT)))
                    .values(version=d.c.version + 1, **values)
                ).rowcount
                if changed:
                    saved[result.donor_id] = current.id
                continue
            values.setdefault("subject", result.subject)
            values.setdefault("body", result.body)
            inserted = conn.execute(
                d.insert().values(
                    donor_id=result.donor_id, created_at=now, version=1, **values
                )
            ).inserted_primary_key
            assert inserted is not None
            saved[result.donor_id] = int(inserted[0])
    return saved


def held_drafts(engine: Engine, donor_ids: Iterable[int]) -> dict[int, str]:
    """Donors whose draft is approved or being sent (a new run must not replace
    it), with the reason to show."""
    ids = list(donor_ids)
    d = drafts_table
    held: dict[int, str] = {}
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            rows = conn.execute(
                select(d.c.donor_id, d.c.status)
                .where(d.c.donor_id.in_(ids[start : start + 500]))
                .where(d.c.status.in_(status_values(HELD)))
            )
            for row in rows:
                held[row.donor_id] = f"a draft is {row.status} and waiting to be sent"
    return held


# -- reading --------------------------------------------------------------------


def list_drafts(
    engine: Engine, statuses: Iterable[DraftStatus | str] | None = None
) -> pd.DataFrame:
    """Every draft (or those with ``statuses``), newest first, with the donor's
    name and the reason the donor may not be emailed (None when they may)."""
    d, o = drafts_table, donors_table
    flags = ("name", "do_not_email", "opted_out", "deceased", "bounced")
    query = select(
        d,
        o.c.id.label("donor_row_id"),
        *(o.c[name].label(f"donor_{name}") for name in flags),
    ).select_from(d.outerjoin(o, d.c.donor_id == o.c.id))
    if statuses is not None:
        query = query.where(d.c.status.in_([str(s) for s in statuses]))
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(d.c.id.desc())).all()
        suppressed = suppressed_addresses(conn)
    records = []
    for row in rows:
        donor = None
        if row.donor_row_id is not None:
            donor = {"id": row.donor_row_id}
            donor.update({name: row._mapping[f"donor_{name}"] for name in flags})
        records.append(
            {
                "id": row.id,
                "donor_id": row.donor_id,
                "donor_name": (donor or {}).get("name") or "",
                "to_address": row.to_address,
                "subject": row.subject,
                "body": row.body,
                "status": row.status,
                "review_issues": "; ".join(row.review_issues or []),
                "error": row.error,
                "approved_by": row.approved_by,
                "sent_at": as_utc(row.sent_at),
                "version": row.version,
                "blocked_reason": send_block_reason(donor, row.to_address, suppressed),
            }
        )
    return pd.DataFrame(records, columns=LIST_COLUMNS)


def get_draft(engine: Engine, draft_id: int) -> Draft:
    """The draft with this id. Raises StewardError when it no longer exists."""
    with engine.connect() as conn:
        loaded = load_with_donor(conn, draft_id)
    if loaded is None:
        raise missing_draft(draft_id)
    return loaded[0]


# -- a person's changes ---------------------------------------------------------


def _checked_address(to_address: str) -> str | None:
    text = to_address.strip()
    if not text:
        return None
    try:
        normalise_address(text)
    except InvalidAddress as exc:
        raise MessageError(
            f"The To address {text!r} is not a valid email address ({exc.reason}). "
            "Correct it and save again."
        ) from exc
    if not text.rsplit("@", 1)[0].isascii():
        # Same limit as lib.message: such addresses need SMTPUTF8.
        raise MessageError(
            f"The To address {text!r} has accented or non-Latin letters before the "
            "@; Steward cannot send to such addresses yet. Use another address."
        )
    return normalise_address(text)  # the form every safety check compares


def update_draft(
    engine: Engine,
    draft_id: int,
    *,
    subject: str,
    body: str,
    expected_version: int,
    to_address: str | None = None,
) -> Draft:
    """Save a person's edit and return the updated draft.

    An approved or needs-review draft goes back to "draft" (it must be approved
    again). ``to_address`` None keeps the address; "" clears it. Raises
    MessageError for a subject with a line break or an invalid address, and
    StewardError when the draft changed in another tab (``expected_version`` is
    stale), is being sent or sent, or no longer exists.
    """
    if any(ch in subject for ch in "\r\n\u2028\u2029\x85"):
        raise MessageError("The subject contains a line break; keep it on one line.")
    values: dict[str, Any] = {
        "subject": subject,
        "body": body,
        "status": DraftStatus.DRAFT.value,
        "approved_by": None,
        "approved_at": None,
        "error": None,
        "updated_at": utcnow(),
    }
    if to_address is not None:
        values["to_address"] = _checked_address(to_address)
    d = drafts_table
    with engine.begin() as conn:
        changed = conn.execute(
            update(d)
            .where(d.c.id == draft_id)
            .where(d.c.version == expected_version)
            .where(d.c.status.in_(status_values(EDITABLE)))
            .values(version=d.c.version + 1, **values)
        ).rowcount
        loaded = load_with_donor(conn, draft_id)
    if loaded is None:
        raise missing_draft(draft_id)
    draft = loaded[0]
    if changed:
        return draft
    if draft.status in (DraftStatus.SENT, DraftStatus.SENDING):
        raise StewardError(
            f"Draft {draft_id} is {draft.status.value} and can no longer be edited."
        )
    raise StewardError(
        f"Draft {draft_id} was changed in another tab or window since you opened "
        "it. Your edit was not saved: reload the draft and make it again."
    )
