"""An address on any record that may not be emailed is never emailed, whichever
donor's draft it is on (tester's finding: the check looked only at the draft's own
donor, so a duplicate record or a retyped To address got through)."""

from __future__ import annotations

from sqlalchemy import func, select, update

from lib.approval import approve
from lib.drafting.base import CampaignBrief
from lib.drafting.run import draft_for_donors
from lib.drafts import get_draft, update_draft
from lib.models import Donor, DraftStatus
from lib.schema import donors_table, drafts_table, sandbox_messages_table
from lib.sending import plan_send, send_approved
from lib.services import Services
from lib.suppression import suppressed_addresses, suppression_reason
from tests.test_drafts import add_donor


def _sent_count(services: Services) -> int:
    with services.engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(sandbox_messages_table))
        return int(total.scalar_one())


def _draft_retyped_to(services: Services, donor: Donor, to_address: str) -> int:
    """Draft for ``donor``, then change the draft's To as a person would."""
    assert donor.id is not None
    (draft_id,) = draft_for_donors(services, [donor.id], CampaignBrief()).draft_ids
    draft = get_draft(services.engine, draft_id)
    update_draft(
        services.engine,
        draft_id,
        subject=draft.subject,
        body=draft.body,
        to_address=to_address,
        expected_version=draft.version,
    )
    return draft_id


def test_a_second_record_at_a_do_not_email_address_is_not_drafted(
    services: Services,
) -> None:
    add_donor(services.engine, "Pat Shared", email="pat@example.org", do_not_email=True)
    patricia = add_donor(
        services.engine, "Patricia Shared", email="pat@example.org", donor_key="R2"
    )
    assert patricia.id is not None
    run = draft_for_donors(services, [patricia.id], CampaignBrief())
    assert run.draft_ids == []
    assert "do not email" in run.skipped[patricia.id]


def test_a_retyped_to_address_of_a_deceased_donor_is_refused_everywhere(
    services: Services,
) -> None:
    account = services.sandbox_account
    add_donor(services.engine, "Dead Person", email="dead@example.org", deceased=True)
    alive = add_donor(services.engine, "Alive Person", email="alive@example.org")
    draft_id = _draft_retyped_to(services, alive, "DEAD@example.org")
    assert "deceased" in (approve(services.engine, [draft_id], account)[draft_id] or "")
    assert get_draft(services.engine, draft_id).status != DraftStatus.APPROVED


def test_a_flag_set_on_another_record_after_approval_blocks_the_send(
    services: Services,
) -> None:
    account = services.sandbox_account
    alive = add_donor(services.engine, "Alive Person", email="alive@example.org")
    other = add_donor(
        services.engine, "Old Record", email="old@example.org", donor_key="OLD"
    )
    assert alive.id is not None and other.id is not None
    (draft_id,) = draft_for_donors(services, [alive.id], CampaignBrief()).draft_ids
    assert approve(services.engine, [draft_id], account) == {draft_id: None}
    assert [item.draft_id for item in plan_send(services, account).ready] == [draft_id]
    # An opt-out file arrives for another record that also holds this address.
    with services.engine.begin() as conn:
        conn.execute(
            update(donors_table)
            .where(donors_table.c.id == other.id)
            .values(emails=["old@example.org", "alive@example.org"], opted_out=True)
        )
    assert plan_send(services, account).ready == []
    report = send_approved(services, account, [draft_id])
    assert "opted out" in report.blocked[draft_id]
    assert _sent_count(services) == 0
    assert get_draft(services.engine, draft_id).status == DraftStatus.BLOCKED


def test_lookup_is_exact_for_addresses_with_like_wildcards(services: Services) -> None:
    add_donor(services.engine, "A", email="a_b@example.org", bounced=True)
    with services.engine.connect() as conn:
        assert suppression_reason(conn, "A_B@example.org") is not None
        assert suppression_reason(conn, "axb@example.org") is None
        assert suppressed_addresses(conn) == {"a_b@example.org": "address bounced"}


def test_other_written_forms_of_a_blocked_address_are_refused(
    services: Services,
) -> None:
    """Second tester: full-width letters, punycode and a decomposed umlaut in a
    retyped To reached do-not-email inboxes."""
    account = services.sandbox_account
    add_donor(services.engine, "FW", email="fw@example.org", do_not_email=True)
    add_donor(
        services.engine,
        "IDN",
        email="user@münchen.de",
        do_not_email=True,
        donor_key="I",
    )
    typed = ["fw@ｅｘａｍｐｌｅ.org", "user@xn--mnchen-3ya.de", "user@mu\u0308nchen.de"]
    for n, to in enumerate(typed):
        donor = add_donor(services.engine, f"R{n} Retyper", email=f"r{n}@example.org")
        draft_id = _draft_retyped_to(services, donor, to)
        refusal = approve(services.engine, [draft_id], account)[draft_id]
        assert "do not email" in (refusal or ""), to
    assert _sent_count(services) == 0


def test_a_non_ascii_secondary_address_is_checked_right_before_sending(
    services: Services,
) -> None:
    account = services.sandbox_account
    alive = add_donor(services.engine, "Alive", email="user@bücher.de")
    assert alive.id is not None
    (draft_id,) = draft_for_donors(services, [alive.id], CampaignBrief()).draft_ids
    assert approve(services.engine, [draft_id], account) == {draft_id: None}
    other = add_donor(services.engine, "Other", email="other@example.org")
    with services.engine.begin() as conn:
        conn.execute(
            update(donors_table)
            .where(donors_table.c.id == other.id)
            .values(emails=["other@example.org", "user@bücher.de"], opted_out=True)
        )
    report = send_approved(services, account, [draft_id])  # skips the plan
    assert "opted out" in report.blocked[draft_id]
    assert _sent_count(services) == 0


def test_nobody_blocked_is_copied_in(services: Services) -> None:
    account = services.sandbox_account
    add_donor(services.engine, "Gone", email="gone@example.org", deceased=True)
    alive = add_donor(services.engine, "Alive", email="alive@example.org")
    assert alive.id is not None
    (draft_id,) = draft_for_donors(services, [alive.id], CampaignBrief()).draft_ids
    assert approve(services.engine, [draft_id], account) == {draft_id: None}
    with services.engine.begin() as conn:
        conn.execute(
            update(drafts_table)
            .where(drafts_table.c.id == draft_id)
            .values(bcc=["GONE@example.org"])
        )
    assert "Cc/Bcc" in plan_send(services, account).blocked[draft_id]
    assert "Cc/Bcc" in send_approved(services, account, [draft_id]).blocked[draft_id]
    assert _sent_count(services) == 0
