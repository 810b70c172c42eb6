"""The send flow: each approved draft goes out at most once, whatever happens."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from lib.approval import approve
from lib.db import utcnow
from lib.drafts import get_draft
from lib.errors import AuthError, SendError, SendLimitReached, StewardError
from lib.mailbox.sandbox import SandboxMailbox
from lib.models import Donor, DraftStatus, OutgoingEmail, SendReceipt, SentPage
from lib.schema import drafts_table, sandbox_messages_table, send_attempts_table
from lib.sending import plan_send, recover_interrupted_sends, send_approved
from lib.services import Services
from tests.test_drafts import add_donor, save_one, set_flag

ACCOUNT = "fundraising@our-charity.example.org"


class WrappedMailbox:
    """The sandbox mailbox with hooks before and after each real send."""

    def __init__(
        self,
        inner: SandboxMailbox,
        before: Callable[[int], None] | None = None,
        after: Callable[[int], None] | None = None,
    ) -> None:
        self.inner = inner
        self.before = before
        self.after = after
        self.calls = 0

    @property
    def account(self) -> str:
        return self.inner.account

    @property
    def key(self) -> str:
        return self.inner.key

    def send(self, email: OutgoingEmail) -> SendReceipt:
        self.calls += 1
        if self.before:
            self.before(self.calls)
        receipt = self.inner.send(email)
        if self.after:
            self.after(self.calls)
        return receipt

    def find_sent(self, rfc_message_id: str) -> SendReceipt | None:
        return self.inner.find_sent(rfc_message_id)

    def read_sent(self, cursor: str | None) -> SentPage:
        return self.inner.read_sent(cursor)


def sandbox(services: Services) -> SandboxMailbox:
    mailbox = services.mailbox()
    assert isinstance(mailbox, SandboxMailbox)
    return mailbox


def approved_drafts(services: Services, count: int, first: int = 0) -> list[int]:
    ids = []
    for i in range(first, first + count):
        donor = add_donor(services.engine, f"Donor{i} Lee", email=f"d{i}@example.org")
        ids.append(save_one(services.engine, donor, f"for {i}"))
    assert set(approve(services.engine, ids, ACCOUNT).values()) == {None}
    return ids


def sent_copies(services: Services) -> Counter[str]:
    """How many times each Message-ID is in the sandbox Sent folder."""
    with services.engine.connect() as conn:
        rows = conn.execute(select(sandbox_messages_table.c.rfc_message_id))
        return Counter(r for (r,) in rows)


def statuses(services: Services, ids: list[int]) -> list[str]:
    return [get_draft(services.engine, i).status.value for i in ids]


def attempt_states(services: Services, draft_id: int) -> list[str]:
    a = send_attempts_table
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(a.c.state).where(a.c.draft_id == draft_id).order_by(a.c.id)
        )
        return [r for (r,) in rows]


# -- planning -----------------------------------------------------------------------


def test_plan_lists_recipients_and_what_will_be_blocked(services: Services) -> None:
    ids = approved_drafts(services, 3)
    donor_id = get_draft(services.engine, ids[1]).donor_id
    set_flag(services.engine, Donor(name="", id=donor_id), opted_out=True)
    plan = plan_send(services, ACCOUNT)
    assert [p.draft_id for p in plan.ready] == [ids[0], ids[2]]
    assert plan.recipients == ["d0@example.org", "d2@example.org"]
    assert plan.blocked == {ids[1]: "opted out"}
    other = plan_send(services, "someone@our-charity.example.org", ids)
    assert other.ready == [] and set(other.blocked) == set(ids)


# -- sending ------------------------------------------------------------------------


def test_send_approved_sends_each_draft_and_records_it(services: Services) -> None:
    ids = approved_drafts(services, 3)
    progress: list[tuple[int, int]] = []
    report = send_approved(
        services, ACCOUNT, ids, progress=lambda d, t: progress.append((d, t))
    )
    assert report.sent == ids and not report.failed and report.stopped_reason is None
    assert progress == [(1, 3), (2, 3), (3, 3)]
    for draft_id in ids:
        draft = get_draft(services.engine, draft_id)
        assert draft.status == DraftStatus.SENT
        assert draft.sent_at is not None and draft.mailbox_message_id
        assert sent_copies(services)[draft.rfc_message_id] == 1
        assert attempt_states(services, draft_id) == ["sent"]
    received = sandbox(services).read_sent(None).messages
    assert [m.to for m in received] == [(f"d{i}@example.org",) for i in range(3)]


def test_sending_twice_sends_nothing_more(services: Services) -> None:
    ids = approved_drafts(services, 2)
    send_approved(services, ACCOUNT, ids)
    again = send_approved(services, ACCOUNT, ids)
    assert again.sent == [] and again.skipped == ids
    assert sum(sent_copies(services).values()) == 2


def test_double_click_in_two_threads_sends_each_draft_once(services: Services) -> None:
    ids = approved_drafts(services, 12)
    barrier = threading.Barrier(2)
    reports = []

    def click() -> None:
        barrier.wait(timeout=5)
        reports.append(send_approved(services, ACCOUNT, ids))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(reports) == 2
    sent = reports[0].sent + reports[1].sent
    assert sorted(sent) == ids  # every draft once, by one of the two clicks
    copies = sent_copies(services)
    assert len(copies) == 12 and set(copies.values()) == {1}
    assert set(statuses(services, ids)) == {"sent"}


def test_only_drafts_approved_by_this_account_are_sent(services: Services) -> None:
    ids = approved_drafts(services, 1)
    report = send_approved(services, ACCOUNT, ids)
    assert report.sent == ids
    other = SandboxMailbox(services.engine, "Someone <someone@our-charity.example.org>")
    ids2 = approved_drafts(services, 1, first=1)
    report = send_approved(services, other.account, ids2, mailbox=other)
    assert report.skipped == ids2 and report.sent == []
    with pytest.raises(StewardError, match="sends as"):
        send_approved(services, ACCOUNT, ids2, mailbox=other)


# -- crashes and retries ------------------------------------------------------------


def test_crash_right_after_sending_never_sends_twice(services: Services) -> None:
    ids = approved_drafts(services, 2)

    def crash(_n: int) -> None:
        raise RuntimeError("process killed after the mailbox took the message")

    crashing = WrappedMailbox(sandbox(services), after=crash)
    with pytest.raises(RuntimeError):
        send_approved(services, ACCOUNT, ids, mailbox=crashing)
    assert statuses(services, ids) == ["sending", "approved"]
    report = send_approved(services, ACCOUNT, ids)  # the person clicks again
    assert report.sent == [ids[1]]  # the first was recovered, not re-sent
    assert statuses(services, ids) == ["sent", "sent"]
    assert set(sent_copies(services).values()) == {1}
    assert attempt_states(services, ids[0]) == ["recovered"]


def test_crash_before_sending_is_retried_once_the_claim_is_stale(
    services: Services,
) -> None:
    ids = approved_drafts(services, 1)

    def crash(_n: int) -> None:
        raise RuntimeError("killed before the mailbox was called")

    with pytest.raises(RuntimeError):
        send_approved(
            services,
            ACCOUNT,
            ids,
            mailbox=WrappedMailbox(sandbox(services), before=crash),
        )
    # A fresh claim might still be sending elsewhere: it is left alone.
    assert send_approved(services, ACCOUNT, ids).sent == []
    assert statuses(services, ids) == ["sending"]
    later = utcnow() + timedelta(minutes=5)
    assert recover_interrupted_sends(services, ACCOUNT, now=later) == 1
    assert statuses(services, ids) == ["approved"]
    assert attempt_states(services, ids[0]) == ["failed"]
    assert send_approved(services, ACCOUNT, ids).sent == ids
    assert set(sent_copies(services).values()) == {1}


def test_a_failed_send_that_did_go_out_is_not_sent_again(services: Services) -> None:
    ids = approved_drafts(services, 1)

    def fail(_n: int) -> None:
        raise SendError("Gmail answered 500 after accepting the message")

    report = send_approved(
        services, ACCOUNT, ids, mailbox=WrappedMailbox(sandbox(services), after=fail)
    )
    assert report.failed == {ids[0]: "Gmail answered 500 after accepting the message"}
    draft = get_draft(services.engine, ids[0])
    assert draft.status == DraftStatus.FAILED and draft.body == "Body for 0"
    assert approve(services.engine, ids, ACCOUNT) == {ids[0]: None}
    mailbox = WrappedMailbox(sandbox(services))
    assert send_approved(services, ACCOUNT, ids, mailbox=mailbox).sent == ids
    assert mailbox.calls == 0  # found in Sent: marked sent without sending
    assert list(sent_copies(services).values()) == [1]


def test_a_send_error_fails_that_draft_and_the_rest_go_on(services: Services) -> None:
    ids = approved_drafts(services, 3)

    def refuse_second(n: int) -> None:
        if n == 2:
            raise SendError("Message rejected: too large")

    report = send_approved(
        services,
        ACCOUNT,
        ids,
        mailbox=WrappedMailbox(sandbox(services), before=refuse_second),
    )
    assert report.sent == [ids[0], ids[2]]
    assert report.failed == {ids[1]: "Message rejected: too large"}
    failed = get_draft(services.engine, ids[1])
    assert (failed.status, failed.error, failed.body) == (
        "failed",
        "Message rejected: too large",
        "Body for 1",
    )


@pytest.mark.parametrize(
    "error",
    [
        SendLimitReached("The daily sending limit is reached."),
        AuthError("Gmail permission was withdrawn; reconnect."),
    ],
)
def test_daily_limit_or_lost_permission_stops_and_keeps_the_rest_approved(
    services: Services, error: Exception
) -> None:
    ids = approved_drafts(services, 5)

    def third_refused(n: int) -> None:
        if n == 3:
            raise error

    mailbox = WrappedMailbox(sandbox(services), before=third_refused)
    report = send_approved(services, ACCOUNT, ids, mailbox=mailbox)
    assert report.sent == ids[:2]
    assert report.stopped_reason == str(error)
    assert not report.failed
    assert statuses(services, ids) == [
        "sent",
        "sent",
        "approved",
        "approved",
        "approved",
    ]
    assert mailbox.calls == 3
    assert attempt_states(services, ids[2]) == ["failed"]
    assert send_approved(services, ACCOUNT, ids[2:]).sent == ids[2:]


# -- who may be emailed -------------------------------------------------------------


def test_a_donor_flagged_after_approval_is_blocked_at_send(services: Services) -> None:
    ids = approved_drafts(services, 2)
    flagged = get_draft(services.engine, ids[0])
    set_flag(services.engine, Donor(name="", id=flagged.donor_id), do_not_email=True)
    mailbox = WrappedMailbox(sandbox(services))
    report = send_approved(services, ACCOUNT, ids, mailbox=mailbox)
    assert report.blocked == {ids[0]: "do not email"}
    assert report.sent == [ids[1]]
    assert mailbox.calls == 1
    blocked = get_draft(services.engine, ids[0])
    assert (blocked.status, blocked.error) == ("blocked", "do not email")
    assert sent_copies(services).get(blocked.rfc_message_id or "", 0) == 0


@pytest.mark.parametrize("address", ["", "   ", "not-an-address"])
def test_c02_no_address_at_send_never_reaches_the_mailbox(
    services: Services, address: str
) -> None:
    ids = approved_drafts(services, 1)
    with services.engine.begin() as conn:
        conn.execute(
            update(drafts_table)
            .where(drafts_table.c.id == ids[0])
            .values(to_address=address)
        )
    mailbox = WrappedMailbox(sandbox(services))
    report = send_approved(services, ACCOUNT, ids, mailbox=mailbox)
    assert mailbox.calls == 0
    assert report.blocked[ids[0]] in ("no address", "not a valid address")
    assert statuses(services, ids) == ["blocked"]
