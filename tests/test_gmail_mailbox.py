"""The Gmail mailbox (lib.mailbox.gmail) with the real google-api-python-client
against the local fake Gmail: sending with the header cases (C01, C03, C04),
retries without double sends, the daily limit, incremental and full reads of Sent
(C05), batches and pagination, token refresh and withdrawal."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from email.utils import getaddresses

import pytest
from sqlalchemy import insert

from lib import google_oauth
from lib.db import utcnow
from lib.errors import AuthError, MessageError, SendError, SendLimitReached
from lib.google_oauth import SCOPE_EMAIL, SCOPE_OPENID, SCOPE_SEND
from lib.mailbox import gmail
from lib.mailbox.gmail import (
    GmailMailbox,
    open_all_gmail_mailboxes,
    open_gmail_mailbox,
)
from lib.models import OutgoingEmail
from lib.quota import Backoff, QuotaBudget
from lib.schema import send_attempts_table, sync_cursors_table
from lib.send_limits import daily_limit
from lib.services import Services, open_services
from tests.fakes.gmail_server import (
    FakeGoogle,
    Fault,
    connect_account,
    gmail_settings,
)

ANN = "ann@example.org"
BOB = "bob@gmail.com"
SUBJECT_C01 = "Gala de Otoño — ¡Gracias, José!"


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http, tests only
    with FakeGoogle((ANN, BOB)) as server:
        yield server
        assert server.violations == []
        assert server.drafts_calls() == []  # drafts stay in Steward


@pytest.fixture
def gsvc(google: FakeGoogle) -> Services:
    return open_services(gmail_settings(google, daily_send_limit=5))


@pytest.fixture
def sleeps() -> list[float]:
    return []


class QuotaClock:
    """Quota time that moves only when the budget waits (nothing really sleeps)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def open_box(services: Services, sleeps: list[float], email: str = ANN) -> GmailMailbox:
    clock = QuotaClock()
    budget = QuotaBudget(6000, clock=clock, sleep=clock.sleep)
    backoff = Backoff(sleep=sleeps.append, rng=lambda: 0.0)
    return open_gmail_mailbox(services, email, budget=budget, backoff=backoff)


@pytest.fixture
def mailbox(gsvc: Services, sleeps: list[float]) -> GmailMailbox:
    connect_account(gsvc)
    return open_box(gsvc, sleeps)


def email(**overrides: object) -> OutgoingEmail:
    values: dict[str, object] = {
        "sender": f"Development Office <{ANN}>",
        "to": ("donor@example.net",),
        "subject": "Thank you",
        "body_text": "Dear Pat,\n\nThank you for your gift.",
    }
    values.update(overrides)
    return OutgoingEmail(**values)  # type: ignore[arg-type]


def addresses(message: object, name: str) -> set[str]:
    return {a for _n, a in getaddresses(message.get_all(name) or [])}  # type: ignore[attr-defined]


def add_external(google: FakeGoogle, count: int, user: str = ANN) -> list[str]:
    """Mail sent from Gmail directly (not through Steward)."""
    ids = []
    for i in range(count):
        raw = (
            f"From: {user}\r\nTo: friend{i}@example.net\r\nSubject: Hello {i}\r\n"
            f"Message-ID: <external-{i}-{len(google.mailboxes[user].stored)}@x.org>\r\n"
            "\r\nHi there.\r\n"
        ).encode()
        ids.append(google.mailboxes[user].add(raw).id)
    return ids


# -- sending -------------------------------------------------------------------------


def test_send_uses_messages_send_with_raw_and_returns_ids(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    receipt = mailbox.send(email(subject=SUBJECT_C01))
    sent = google.sent[0]
    assert str(sent["Subject"]) == SUBJECT_C01  # case C01, parsed by the stdlib
    assert str(sent["Message-ID"]) == receipt.rfc_message_id
    assert addresses(sent, "From") == {ANN}
    stored = google.mailboxes[ANN].stored[0]
    assert (receipt.mailbox_message_id, receipt.thread_id) == (
        stored.id,
        stored.thread_id,
    )
    assert [r.method_id for r in google.http_requests()][-1] == (
        "gmail.users.messages.send"
    )


def test_cc_and_bcc_sit_in_the_top_level_header_block(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    """Case C03."""
    mailbox.send(email(to=("board@example.org",), bcc=("donor+gala@example.org",)))
    sent = google.sent[0]
    assert addresses(sent, "To") == {"board@example.org"}
    assert addresses(sent, "Bcc") == {"donor+gala@example.org"}
    assert addresses(sent, "Cc") == set()
    for part in sent.iter_parts():
        assert part["Bcc"] is None and part["To"] is None


def test_a_follow_up_keeps_the_gmail_thread(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    """Case C04: thread id in the request, In-Reply-To / References from the
    parent's Message-ID header, a subject that keeps the thread."""
    first = mailbox.send(email(subject="Our autumn gala"))
    follow = mailbox.send(
        email(
            subject="Seats for the gala",
            thread_id=first.thread_id,
            in_reply_to=first.rfc_message_id,
            references=first.rfc_message_id,
        )
    )
    assert follow.thread_id == first.thread_id
    reply = google.sent[1]
    assert str(reply["In-Reply-To"]) == first.rfc_message_id
    assert first.rfc_message_id in str(reply["References"])
    assert str(reply["Subject"]) == "Re: Seats for the gala"


def test_mail_always_goes_out_from_the_connected_address(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    mailbox.send(email(sender="Office <someone-else@example.org>"))
    assert addresses(google.sent[0], "From") == {ANN}


def test_no_recipient_never_reaches_gmail(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    before = len(google.requests)
    with pytest.raises(MessageError, match="No address"):
        mailbox.send(email(to=("   ",)))
    assert len(google.requests) == before


def test_more_than_100_recipients_is_refused_before_calling_gmail(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    before = len(google.requests)
    many = tuple(f"d{i}@example.net" for i in range(101))
    with pytest.raises(SendError, match="at most 100"):
        mailbox.send(email(to=many))
    assert len(google.requests) == before


def test_a_429_storm_is_waited_out_with_exponential_backoff(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(Fault(429, "rateLimitExceeded", count=3, match="messages.send"))
    mailbox.send(email())
    assert sleeps == [1.0, 2.0, 4.0]
    assert len(google.calls("gmail.users.messages.send")) == 4
    assert len(google.sent) == 1


def test_a_429_storm_that_does_not_end_fails_the_send(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(Fault(429, "rateLimitExceeded", count=99, match="messages.send"))
    with pytest.raises(SendError, match="after 6 tries"):
        mailbox.send(email())
    assert sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert google.sent == []


def test_user_rate_limit_403_is_retried_and_retry_after_honoured(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(
        Fault(
            403,
            "userRateLimitExceeded",
            count=1,
            match="messages.send",
            retry_after=7,
        )
    )
    mailbox.send(email())
    assert sleeps == [7.0]
    assert len(google.sent) == 1


def test_a_500_before_sending_is_retried_once_sent(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(Fault(500, "backendError", count=2, match="messages.send"))
    mailbox.send(email())
    assert len(google.sent) == 1
    assert len(google.calls("gmail.users.messages.list")) == 2  # looked first


def test_a_lost_reply_after_sending_never_sends_twice(
    mailbox: GmailMailbox, google: FakeGoogle
) -> None:
    google.add_fault(
        Fault(500, "backendError", count=1, match="messages.send", after_handling=True)
    )
    receipt = mailbox.send(email(subject="Only once"))
    assert len(google.sent) == 1
    assert receipt.mailbox_message_id == google.mailboxes[ANN].stored[0].id
    assert len(google.calls("gmail.users.messages.send")) == 1


def test_domain_policy_is_explained_as_an_admin_block(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(Fault(403, "domainPolicy", count=1, match="messages.send"))
    with pytest.raises(AuthError, match="Admin console"):
        mailbox.send(email())
    assert sleeps == []


def test_the_daily_limit_stops_before_calling_gmail(
    mailbox: GmailMailbox, google: FakeGoogle, gsvc: Services
) -> None:
    now = utcnow()
    rows = [
        {
            "account": ANN,
            "rfc_message_id": f"<old{i}@example.org>",
            "state": "sent",
            "started_at": now - timedelta(hours=hours),
        }
        for i, hours in enumerate([1, 2, 3, 4, 30])  # the last is outside 24 h
    ]
    with gsvc.engine.begin() as conn:
        conn.execute(insert(send_attempts_table), rows)
    mailbox.send(email())  # 4 in the window, limit 5: one more may go
    with gsvc.engine.begin() as conn:
        conn.execute(
            insert(send_attempts_table).values(
                account=ANN,
                rfc_message_id="<new@example.org>",
                state="sent",
                started_at=now,
            )
        )
    before = len(google.requests)
    with pytest.raises(SendLimitReached, match="stay approved"):
        mailbox.send(email())
    assert len(google.requests) == before
    assert len(google.sent) == 1


def test_gmails_own_sending_limit_answer_stops_the_batch(
    mailbox: GmailMailbox, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.add_fault(Fault(403, "dailyLimitExceeded", count=1, match="messages.send"))
    with pytest.raises(SendLimitReached):
        mailbox.send(email())
    assert sleeps == []


def test_default_daily_limits_by_kind_of_account() -> None:
    assert daily_limit("someone@gmail.com") == 500
    assert daily_limit("someone@googlemail.com") == 500
    assert daily_limit("someone@our-charity.org") == 2000
    assert daily_limit("someone@gmail.com", 120) == 120


def test_find_sent_answers_from_the_sent_folder(mailbox: GmailMailbox) -> None:
    receipt = mailbox.send(email())
    found = mailbox.find_sent(receipt.rfc_message_id)
    assert found is not None
    assert found.mailbox_message_id == receipt.mailbox_message_id
    assert mailbox.find_sent("<never-sent@example.org>") is None


def test_sends_are_charged_to_the_shared_budget(gsvc: Services) -> None:
    connect_account(gsvc)
    budget = QuotaBudget(6000, clock=lambda: 0.0, sleep=lambda s: None)
    box = open_gmail_mailbox(gsvc, ANN, budget=budget)
    box.send(email())
    box.read_sent(None)
    used = budget.used()
    assert used["send"] == 100
    assert used["sync"] == 1 + 5 + 20  # profile, list, one message


# -- reading Sent --------------------------------------------------------------------


def test_first_read_lists_sent_in_pages_then_reads_history(
    google: FakeGoogle,
    gsvc: Services,
    sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gmail, "LIST_PAGE_SIZE", 100)  # pages, without 1000s of mails
    google.mailboxes[ANN].synthetic = 243
    connect_account(gsvc)
    box = open_box(gsvc, sleeps)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = box.read_sent(cursor)
        assert page.full_resync
        seen += [m.mailbox_message_id for m in page.messages]
        cursor = page.cursor
        if cursor and cursor.startswith("h:"):
            break
    assert len(seen) == len(set(seen)) == 243
    assert len(google.calls("gmail.users.messages.list")) == 3
    new = add_external(google, 3)
    page = box.read_sent(cursor)
    assert not page.full_resync
    assert [m.mailbox_message_id for m in page.messages] == new
    assert page.messages[0].subject == "Hello 0"
    assert page.messages[0].to == ("friend0@example.net",)


def test_incremental_read_stays_within_the_request_bound(
    google: FakeGoogle, mailbox: GmailMailbox
) -> None:
    box = google.mailboxes[ANN]
    box.synthetic = 5000
    cursor = f"h:{box.history_id}"
    new = add_external(google, 150)
    before = len(google.http_requests())
    page = mailbox.read_sent(cursor)
    made = len(google.http_requests()) - before
    assert made <= 2 + math.ceil(150 / 100)
    assert [m.mailbox_message_id for m in page.messages] == new
    assert page.cursor and page.cursor.startswith(f"h:{box.history_id}:")
    gets = google.calls("gmail.users.messages.get")
    assert all(r.in_batch for r in gets)
    assert gets[0].query["format"] == ["metadata"]
    assert set(gets[0].query["metadataHeaders"]) >= {"To", "Cc", "Bcc", "Message-ID"}
    assert mailbox.read_sent(page.cursor).messages == []


def test_history_is_read_over_several_pages(
    google: FakeGoogle, mailbox: GmailMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gmail, "HISTORY_PAGE_SIZE", 100)
    cursor = f"h:{google.mailboxes[ANN].history_id}"
    new = add_external(google, 220)
    page = mailbox.read_sent(cursor)
    assert len(google.calls("gmail.users.history.list")) == 3
    assert [m.mailbox_message_id for m in page.messages] == new


@pytest.mark.parametrize("timed", [True, False])
def test_an_expired_cursor_falls_back_to_a_listing_since_then(
    google: FakeGoogle, gsvc: Services, mailbox: GmailMailbox, timed: bool
) -> None:
    """Case C05: the app was off for two weeks. The cursor says when it was taken
    (an older, bare cursor falls back to the last sync time)."""
    box = google.mailboxes[ANN]
    two_weeks_ago = utcnow() - timedelta(days=14)
    if timed:
        old_cursor = f"h:{box.history_id}:{int(two_weeks_ago.timestamp())}"
    else:
        old_cursor = str(box.history_id)
        with gsvc.engine.begin() as conn:
            conn.execute(
                insert(sync_cursors_table).values(
                    mailbox=mailbox.key, cursor=old_cursor, last_sync_at=two_weeks_ago
                )
            )
    box.synthetic = 400
    box.base_ms -= 20 * 86400 * 1000  # those were sent three weeks ago
    new = add_external(google, 4)
    google.expire_history()
    page = mailbox.read_sent(old_cursor)
    assert page.full_resync
    assert [m.mailbox_message_id for m in page.messages] == new
    assert page.cursor and page.cursor.startswith(f"h:{box.history_id}:")
    after = int(google.calls("gmail.users.messages.list")[-1].query["q"][0][6:])
    assert after == int(two_weeks_ago.timestamp()) - 3600
    more = add_external(google, 2)
    page = mailbox.read_sent(page.cursor)
    assert not page.full_resync
    assert [m.mailbox_message_id for m in page.messages] == more


def test_an_unreadable_cursor_means_a_full_listing(
    google: FakeGoogle, mailbox: GmailMailbox
) -> None:
    new = add_external(google, 2)
    page = mailbox.read_sent("h:not-a-number")
    assert page.full_resync
    assert [m.mailbox_message_id for m in page.messages] == new
    assert "q" not in google.calls("gmail.users.messages.list")[-1].query


def test_batch_items_answered_429_are_fetched_again(
    google: FakeGoogle, mailbox: GmailMailbox, sleeps: list[float]
) -> None:
    cursor = f"h:{google.mailboxes[ANN].history_id}"
    new = add_external(google, 30)
    google.add_fault(Fault(429, "rateLimitExceeded", count=2, match="messages.get"))
    page = mailbox.read_sent(cursor)
    assert [m.mailbox_message_id for m in page.messages] == new
    assert sleeps == [1.0]
    assert len(google.calls("gmail.users.messages.get")) == 32


def test_a_whole_batch_failing_with_500_is_retried(
    google: FakeGoogle, mailbox: GmailMailbox, sleeps: list[float]
) -> None:
    cursor = f"h:{google.mailboxes[ANN].history_id}"
    new = add_external(google, 3)
    google.add_fault(Fault(500, "backendError", count=2, match="batch"))
    page = mailbox.read_sent(cursor)
    assert [m.mailbox_message_id for m in page.messages] == new
    assert sleeps == [1.0, 2.0]


def test_a_message_deleted_meanwhile_is_skipped(
    google: FakeGoogle, mailbox: GmailMailbox
) -> None:
    cursor = f"h:{google.mailboxes[ANN].history_id}"
    new = add_external(google, 3)
    google.add_fault(Fault(404, "notFound", count=1, match="messages.get"))
    page = mailbox.read_sent(cursor)
    assert [m.mailbox_message_id for m in page.messages] == new[1:]


@pytest.mark.parametrize("decoded", [True, False])
def test_headers_read_back_exactly_as_sent(
    google: FakeGoogle, mailbox: GmailMailbox, decoded: bool
) -> None:
    google.mailboxes[ANN].decode_headers = decoded
    cursor = f"h:{google.mailboxes[ANN].history_id}"
    mailbox.send(
        email(
            subject=SUBJECT_C01,
            to=("José Ñúñez-O'Brien <jose@example.net>",),
            cc=("Board, Chair <chair@example.org>",),
            bcc=("donor+gala@example.org",),
        )
    )
    message = mailbox.read_sent(cursor).messages[0]
    assert message.subject == SUBJECT_C01
    assert message.to == ("jose@example.net",)
    assert message.cc == ("chair@example.org",)
    assert message.bcc == ("donor+gala@example.org",)
    assert message.sender == ANN
    assert message.excerpt.startswith("Dear Pat")


# -- tokens and accounts -------------------------------------------------------------


def test_an_expired_access_token_is_renewed_and_stored(
    google: FakeGoogle, mailbox: GmailMailbox, gsvc: Services
) -> None:
    before = google_oauth.load_credentials(gsvc, ANN).token
    google.expire_access_tokens()
    mailbox.send(email())
    after = google_oauth.load_credentials(gsvc, ANN).token
    assert after != before
    assert len(google.sent) == 1


def test_a_withdrawn_permission_disconnects_and_says_so(
    google: FakeGoogle, mailbox: GmailMailbox, gsvc: Services
) -> None:
    """Case C07 during a sync: no traceback, a reconnect hint, account marked."""
    google.revoke_everything()
    google.expire_access_tokens()
    with pytest.raises(AuthError, match="Reconnect Gmail"):
        mailbox.read_sent("h:1000")
    account = google_oauth.get_account(gsvc, ANN)
    assert account is not None and not account.connected
    with pytest.raises(AuthError):
        gsvc.mailbox(ANN)
    assert gsvc.mailboxes() == []


def test_without_read_permission_sync_and_checks_refuse_clearly(
    google: FakeGoogle, gsvc: Services, sleeps: list[float]
) -> None:
    google.grant_only = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND]
    connect_account(gsvc)
    box = open_box(gsvc, sleeps)
    box.send(email())
    with pytest.raises(AuthError, match="Sent folder"):
        box.read_sent(None)
    with pytest.raises(AuthError, match="interrupted send"):
        box.find_sent("<x@example.org>")


def test_every_connected_account_gets_its_own_mailbox(
    google: FakeGoogle, gsvc: Services
) -> None:
    connect_account(gsvc)
    google.login_user = BOB
    connect_account(gsvc)
    assert sorted(m.account for m in open_all_gmail_mailboxes(gsvc)) == [ANN, BOB]
    with pytest.raises(AuthError, match="choose yours"):
        gsvc.mailbox(None)
    google_oauth.disconnect(gsvc, BOB)
    assert [m.key for m in gsvc.mailboxes()] == [f"gmail:{ANN}"]
    assert gsvc.mailbox(None).account == ANN


def test_no_connected_account_is_an_auth_error(gsvc: Services) -> None:
    with pytest.raises(AuthError, match="Connect Gmail"):
        gsvc.mailbox(None)
