"""The draft store: saving runs, edits with optimistic concurrency, approval."""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, update

from lib.approval import approve, discard, set_review_override, unapprove
from lib.db import create_db_engine, utcnow
from lib.drafting.base import CampaignBrief, DraftResult
from lib.drafts import get_draft, list_drafts, save_drafts, update_draft
from lib.errors import MessageError, StewardError
from lib.models import Donor, DraftStatus
from lib.schema import donors_table, drafts_table
from lib.services import Services

ACCOUNT = "fundraising@our-charity.example.org"
BRIEF = CampaignBrief(campaign="Spring Appeal")


def add_donor(engine: Engine, name: str = "Ann Lee", **fields: Any) -> Donor:
    """Insert a donor row directly (the importer is tested on its own)."""
    email = fields.pop("email", f"{name.split()[0].lower()}@example.org")
    now = utcnow()
    with engine.begin() as conn:
        donor_id = conn.execute(
            donors_table.insert().values(
                donor_key=fields.pop("donor_key", f"{name}:{email}"),
                name=name,
                first_name=name.split()[0],
                email=email,
                emails=[email] if email else [],
                created_at=now,
                updated_at=now,
                **fields,
            )
        ).inserted_primary_key[0]
    return Donor(name=name, email=email, first_name=name.split()[0], id=donor_id)


def result(donor: Donor, text: str = "v1", **extra: Any) -> DraftResult:
    assert donor.id is not None
    if extra.get("error"):  # a drafter that failed has no text to give
        return DraftResult(donor_id=donor.id, **extra)
    return DraftResult(
        donor_id=donor.id, subject=f"Subject {text}", body=f"Body {text}", **extra
    )


def save_one(engine: Engine, donor: Donor, text: str = "v1", **extra: Any) -> int:
    (draft_id,) = save_drafts(
        engine, [result(donor, text, **extra)], BRIEF, {donor.id: donor}, "template"
    )
    return draft_id


def set_flag(engine: Engine, donor: Donor, **flags: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(donors_table).where(donors_table.c.id == donor.id).values(**flags)
        )


def force_status(engine: Engine, draft_id: int, status: DraftStatus) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(drafts_table)
            .where(drafts_table.c.id == draft_id)
            .values(status=status.value)
        )


# -- saving -------------------------------------------------------------------------


def test_save_creates_one_draft_per_donor(services: Services) -> None:
    ann, bob = add_donor(services.engine), add_donor(services.engine, "Bob Roy")
    ids = save_drafts(
        services.engine,
        [result(ann), result(bob)],
        BRIEF,
        {ann.id: ann, bob.id: bob},
        "template",
    )
    assert len(set(ids)) == 2
    draft = get_draft(services.engine, ids[0])
    assert (draft.subject, draft.body, draft.status) == (
        "Subject v1",
        "Body v1",
        "draft",
    )
    assert draft.to_address == "ann@example.org"
    assert draft.campaign == "Spring Appeal"


def test_redrafting_replaces_an_unsent_draft_in_place(services: Services) -> None:
    ann = add_donor(services.engine)
    first = save_one(services.engine, ann, "v1")
    second = save_one(services.engine, ann, "v2")
    assert second == first
    draft = get_draft(services.engine, first)
    assert draft.body == "Body v2"
    assert draft.version == 2
    assert len(list_drafts(services.engine)) == 1


def test_redrafting_never_touches_an_approved_draft(services: Services) -> None:
    ann = add_donor(services.engine)
    first = save_one(services.engine, ann, "v1")
    assert approve(services.engine, [first], ACCOUNT) == {first: None}
    saved = save_drafts(
        services.engine, [result(ann, "v2")], BRIEF, {ann.id: ann}, "template"
    )
    assert saved == []
    draft = get_draft(services.engine, first)
    assert (draft.body, draft.status) == ("Body v1", DraftStatus.APPROVED)


def test_a_sent_draft_gets_a_new_draft_beside_it(services: Services) -> None:
    ann = add_donor(services.engine)
    first = save_one(services.engine, ann, "v1")
    force_status(services.engine, first, DraftStatus.SENT)
    second = save_one(services.engine, ann, "v2")
    assert second != first
    assert get_draft(services.engine, first).body == "Body v1"
    assert get_draft(services.engine, second).status == DraftStatus.DRAFT


def test_a_failed_result_keeps_the_row_and_the_error(services: Services) -> None:
    ann, bob = add_donor(services.engine), add_donor(services.engine, "Bob Roy")
    new_id = save_one(services.engine, bob, error="draft timed out - retry")
    failed = get_draft(services.engine, new_id)
    assert failed.status == DraftStatus.FAILED
    assert failed.error == "draft timed out - retry"
    # An error on a donor who already has a draft keeps that draft's text.
    existing = save_one(services.engine, ann, "v1")
    save_one(services.engine, ann, "v2", error="model refused")
    kept = get_draft(services.engine, existing)
    assert (kept.body, kept.status, kept.error) == (
        "Body v1",
        "failed",
        "model refused",
    )
    frame = list_drafts(services.engine)
    assert set(frame["error"].dropna()) == {"draft timed out - retry", "model refused"}


def test_review_issues_make_a_draft_need_review(services: Services) -> None:
    ann = add_donor(services.engine)
    seen: list[tuple[str, str, str]] = []

    def review(donor: Donor, subject: str, body: str) -> list[str]:
        seen.append((donor.name, subject, body))
        return ["mentions a $5,000 gift not in the record"]

    (draft_id,) = save_drafts(
        services.engine, [result(ann)], BRIEF, {ann.id: ann}, "ai", review
    )
    draft = get_draft(services.engine, draft_id)
    assert draft.status == DraftStatus.NEEDS_REVIEW
    assert draft.review_issues == ["mentions a $5,000 gift not in the record"]
    assert seen == [("Ann Lee", "Subject v1", "Body v1")]


# -- listing ------------------------------------------------------------------------


def test_list_drafts_shows_donor_and_blocked_reason(services: Services) -> None:
    ann = add_donor(services.engine)
    gone = add_donor(services.engine, "Cal Dee", deceased=True)
    save_one(services.engine, ann)
    save_one(services.engine, gone)
    frame = list_drafts(services.engine)
    assert {"id", "donor_id", "donor_name", "to_address", "subject", "body"} <= set(
        frame.columns
    )
    reasons = dict(zip(frame["donor_name"], frame["blocked_reason"], strict=True))
    assert reasons["Cal Dee"] == "deceased"
    assert pd.isna(reasons["Ann Lee"])
    assert len(list_drafts(services.engine, [DraftStatus.SENT])) == 0
    assert list_drafts(services.engine, ["draft"])["status"].tolist() == ["draft"] * 2


# -- editing ------------------------------------------------------------------------


def test_edit_with_a_stale_version_is_refused(services: Services) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    opened = get_draft(services.engine, draft_id)
    update_draft(
        services.engine,
        draft_id,
        subject="Tab one",
        body="edited in tab one",
        expected_version=opened.version,
    )
    with pytest.raises(StewardError, match="changed in another tab"):
        update_draft(
            services.engine,
            draft_id,
            subject="Tab two",
            body="edited in tab two",
            expected_version=opened.version,
        )
    assert get_draft(services.engine, draft_id).body == "edited in tab one"


def test_editing_an_approved_or_flagged_draft_returns_it_to_draft(
    services: Services,
) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    approve(services.engine, [draft_id], ACCOUNT)
    approved = get_draft(services.engine, draft_id)
    edited = update_draft(
        services.engine,
        draft_id,
        subject="New",
        body="New body",
        expected_version=approved.version,
    )
    assert (edited.status, edited.approved_by) == (DraftStatus.DRAFT, None)
    force_status(services.engine, draft_id, DraftStatus.NEEDS_REVIEW)
    current = get_draft(services.engine, draft_id)
    edited = update_draft(
        services.engine,
        draft_id,
        subject="Fixed",
        body="Fixed body",
        expected_version=current.version,
    )
    assert edited.status == DraftStatus.DRAFT


@pytest.mark.parametrize("status", [DraftStatus.SENT, DraftStatus.SENDING])
def test_sent_or_sending_drafts_cannot_be_edited(
    services: Services, status: DraftStatus
) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    force_status(services.engine, draft_id, status)
    version = get_draft(services.engine, draft_id).version
    with pytest.raises(StewardError, match=status.value):
        update_draft(
            services.engine,
            draft_id,
            subject="x",
            body="y",
            expected_version=version,
        )
    assert get_draft(services.engine, draft_id).body == "Body v1"


def test_edit_checks_subject_and_address(services: Services) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    version = get_draft(services.engine, draft_id).version
    with pytest.raises(MessageError, match="subject"):
        update_draft(
            services.engine,
            draft_id,
            subject="two\r\nBcc: x@example.org",
            body="b",
            expected_version=version,
        )
    with pytest.raises(MessageError, match="not a valid"):
        update_draft(
            services.engine,
            draft_id,
            subject="s",
            body="b",
            to_address="nobody",
            expected_version=version,
        )
    kept = update_draft(
        services.engine,
        draft_id,
        subject="s",
        body="b",
        to_address=" donor+gala@example.org ",
        expected_version=version,
    )
    assert kept.to_address == "donor+gala@example.org"
    cleared = update_draft(
        services.engine,
        draft_id,
        subject="s",
        body="b",
        to_address="",
        expected_version=kept.version,
    )
    assert cleared.to_address is None
    assert approve(services.engine, [draft_id], ACCOUNT) == {draft_id: "no address"}


def test_an_edit_survives_a_new_engine_on_the_same_file(services: Services) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    update_draft(
        services.engine,
        draft_id,
        subject="Kept",
        body="Kept body, José",
        expected_version=1,
    )
    services.engine.dispose()
    fresh = create_db_engine(services.settings.database_url)
    try:
        draft = get_draft(fresh, draft_id)
    finally:
        fresh.dispose()
    assert (draft.subject, draft.body) == ("Kept", "Kept body, José")


def test_two_tabs_saving_at_once_only_one_wins(services: Services) -> None:
    ann = add_donor(services.engine)
    draft_id = save_one(services.engine, ann)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def tab(name: str) -> None:
        barrier.wait(timeout=5)
        try:
            update_draft(
                services.engine, draft_id, subject=name, body=name, expected_version=1
            )
            outcomes.append("saved")
        except StewardError:
            outcomes.append("refused")

    threads = [threading.Thread(target=tab, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == ["refused", "saved"]
    assert get_draft(services.engine, draft_id).version == 2


# -- approval -----------------------------------------------------------------------


def test_approve_refuses_with_reasons(services: Services) -> None:
    engine = services.engine
    ok = save_one(engine, add_donor(engine, "Ann Lee"))
    dne = save_one(engine, add_donor(engine, "Bo Dee", do_not_email=True))
    out = save_one(engine, add_donor(engine, "Cy Fox", opted_out=True))
    no_mail = save_one(engine, add_donor(engine, "Di Gray", email=None))
    review = save_one(engine, add_donor(engine, "Ed Hill"))
    force_status(engine, review, DraftStatus.NEEDS_REVIEW)
    sent = save_one(engine, add_donor(engine, "Flo Ives"))
    force_status(engine, sent, DraftStatus.SENT)
    empty = save_one(engine, add_donor(engine, "Gus Jay"), error="timed out")
    outcome = approve(
        engine, [ok, dne, out, no_mail, review, sent, empty, 999], ACCOUNT
    )
    assert outcome[ok] is None
    assert outcome[dne] == "do not email"
    assert outcome[out] == "opted out"
    assert outcome[no_mail] == "no address"
    assert "needs review" in (outcome[review] or "")
    assert outcome[sent] == "already sent"
    assert "no text" in (outcome[empty] or "")
    assert outcome[999] == "no longer exists"
    approved = get_draft(engine, ok)
    assert (approved.status, approved.approved_by) == ("approved", ACCOUNT)
    assert get_draft(engine, dne).status == DraftStatus.DRAFT


def test_review_override_allows_approval(services: Services) -> None:
    engine = services.engine
    draft_id = save_one(engine, add_donor(engine))
    force_status(engine, draft_id, DraftStatus.NEEDS_REVIEW)
    assert approve(engine, [draft_id], ACCOUNT)[draft_id] is not None
    assert set_review_override(engine, draft_id, True).review_override
    assert approve(engine, [draft_id], ACCOUNT) == {draft_id: None}
    with pytest.raises(StewardError, match="approved"):
        set_review_override(engine, draft_id, False)


def test_approve_is_idempotent_per_account(services: Services) -> None:
    engine = services.engine
    draft_id = save_one(engine, add_donor(engine))
    assert approve(engine, [draft_id], ACCOUNT.upper()) == {draft_id: None}
    assert approve(engine, [draft_id], ACCOUNT) == {draft_id: None}
    other = approve(engine, [draft_id], "someone@our-charity.example.org")
    assert "already approved by" in (other[draft_id] or "")


def test_unapprove_and_discard(services: Services) -> None:
    engine = services.engine
    a = save_one(engine, add_donor(engine, "Ann Lee"))
    b = save_one(engine, add_donor(engine, "Bob Roy"))
    c = save_one(engine, add_donor(engine, "Cal Dee"))
    approve(engine, [a, b], ACCOUNT)
    assert unapprove(engine, [a, c]) == 1
    assert get_draft(engine, a).status == DraftStatus.DRAFT
    force_status(engine, c, DraftStatus.SENT)
    assert discard(engine, [a, b, c]) == 2
    assert list_drafts(engine)["id"].tolist() == [c]
    with pytest.raises(StewardError, match="no longer exists"):
        get_draft(engine, a)


def test_only_one_draft_per_address_can_be_approved(services: Services) -> None:
    """Two donor records sharing an inbox (household, or a CRM duplicate)."""
    ann = add_donor(services.engine, "Ann Lee", email="home@example.org")
    bob = add_donor(services.engine, "Bob Lee", email="home@example.org")
    first = save_one(services.engine, ann)
    second = save_one(services.engine, bob)
    outcome = approve(services.engine, [first, second], ACCOUNT)
    assert outcome[first] is None
    assert "same address" in (outcome[second] or "")
    assert get_draft(services.engine, second).status == DraftStatus.DRAFT


def test_an_address_that_cannot_be_sent_is_refused_when_saving(
    services: Services,
) -> None:
    """Tester: josé@exämple.org was accepted on save and failed only at send."""
    ann = add_donor(services.engine, "Ann Lee")
    draft = get_draft(services.engine, save_one(services.engine, ann))
    assert draft.id is not None
    with pytest.raises(MessageError, match="before the @"):
        update_draft(
            services.engine,
            draft.id,
            subject=draft.subject,
            body=draft.body,
            to_address="josé@exämple.org",
            expected_version=draft.version,
        )
    assert get_draft(services.engine, draft.id).to_address == ann.email
