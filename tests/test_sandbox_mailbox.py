"""The sandbox mailbox: real RFC 5322 bytes in Sent, Gmail-like ids, a cursor."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import func, select

from lib.errors import MessageError
from lib.mailbox.sandbox import SandboxMailbox
from lib.models import OutgoingEmail
from lib.schema import sandbox_messages_table
from lib.services import Services

SENDER = "Development Office <fundraising@our-charity.example.org>"


def email(to: str = "donor@example.org", **extra: object) -> OutgoingEmail:
    return OutgoingEmail(
        sender=SENDER,
        to=(to,),
        subject=str(extra.pop("subject", "Thank you")),
        body_text="Dear friend,\n\nThank you.",
        **extra,  # type: ignore[arg-type]
    )


def stored_rows(services: Services) -> list:
    with services.engine.connect() as conn:
        return conn.execute(
            select(sandbox_messages_table).order_by(sandbox_messages_table.c.history_id)
        ).all()


def test_send_stores_real_bytes_in_sent(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    receipt = mailbox.send(email(bcc=("donor+gala@example.org",)))
    assert re.fullmatch(r"[0-9a-f]{16}", receipt.mailbox_message_id)
    assert receipt.thread_id == receipt.mailbox_message_id  # a new thread
    assert receipt.rfc_message_id.endswith("@our-charity.example.org>")
    (row,) = stored_rows(services)
    assert row.labels == ["SENT"]
    assert row.account == "fundraising@our-charity.example.org"
    parsed = BytesParser(policy=policy.default).parsebytes(row.raw)
    assert str(parsed["Message-ID"]) == receipt.rfc_message_id
    assert str(parsed["Bcc"]) == "donor+gala@example.org"  # the sender's copy
    assert mailbox.key == "sandbox:fundraising@our-charity.example.org"
    assert mailbox.account == "fundraising@our-charity.example.org"


def test_reply_keeps_the_thread_and_fixed_message_id(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    first = mailbox.send(email())
    reply = mailbox.send(
        email(
            thread_id=first.thread_id,
            in_reply_to=first.rfc_message_id,
            rfc_message_id="<reply.1@our-charity.example.org>",
        )
    )
    assert reply.thread_id == first.thread_id
    assert reply.mailbox_message_id != first.mailbox_message_id
    assert reply.rfc_message_id == "<reply.1@our-charity.example.org>"
    page = mailbox.read_sent(None)
    assert [m.subject for m in page.messages] == ["Thank you", "Re: Thank you"]


def test_find_sent(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    receipt = mailbox.send(email())
    found = mailbox.find_sent(receipt.rfc_message_id)
    assert found == receipt
    assert mailbox.find_sent("<never.sent@example.org>") is None
    other = SandboxMailbox(services.engine, "other@our-charity.example.org")
    assert other.find_sent(receipt.rfc_message_id) is None


def test_read_sent_follows_the_cursor(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    for i in range(3):
        mailbox.send(email(to=f"d{i}@example.org"))
    page = mailbox.read_sent(None)
    assert [m.to for m in page.messages] == [(f"d{i}@example.org",) for i in range(3)]
    assert not page.full_resync
    assert mailbox.read_sent(page.cursor).messages == []
    mailbox.send(email(to="late@example.org"))
    later = mailbox.read_sent(page.cursor)
    assert [m.to for m in later.messages] == [("late@example.org",)]
    assert int(later.cursor or 0) > int(page.cursor or 0)
    assert mailbox.read_sent(later.cursor).cursor == later.cursor


def test_read_sent_only_shows_this_account(services: Services) -> None:
    mine = SandboxMailbox(services.engine, SENDER)
    other = SandboxMailbox(services.engine, "Other <other@our-charity.example.org>")
    other.send(email())
    mine.send(email(to="mine@example.org"))
    assert [m.to for m in mine.read_sent(None).messages] == [("mine@example.org",)]


@pytest.mark.parametrize("cursor", ["not-a-number", "-4", "999999"])
def test_a_cursor_it_never_handed_out_means_full_resync(
    services: Services, cursor: str
) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    mailbox.send(email())
    page = mailbox.read_sent(cursor)
    assert page.full_resync
    assert len(page.messages) == 1


def test_add_external_sent_from_email_and_from_bytes(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    built = mailbox.add_external_sent(email(to="gmail-direct@example.org"))
    raw = (
        b"From: fundraising@our-charity.example.org\r\n"
        b"To: Someone <Someone@Example.org>\r\n"
        b"Subject: typed in Gmail\r\n"
        b"Message-ID: <direct.1@mail.gmail.com>\r\n\r\nHello there\r\n"
    )
    direct = mailbox.add_external_sent(raw)
    assert direct.rfc_message_id == "<direct.1@mail.gmail.com>"
    no_id = mailbox.add_external_sent(b"To: x@example.org\r\nSubject: x\r\n\r\nhi")
    assert no_id.rfc_message_id == ""
    messages = mailbox.read_sent(None).messages
    assert [m.rfc_message_id for m in messages] == [
        built.rfc_message_id,
        "<direct.1@mail.gmail.com>",
        None,
    ]
    assert messages[1].to == ("someone@example.org",)
    assert messages[1].excerpt == "Hello there"
    assert stored_rows(services)[1].raw == raw  # kept byte for byte


def test_a_message_that_cannot_be_built_stores_nothing(services: Services) -> None:
    mailbox = SandboxMailbox(services.engine, SENDER)
    with pytest.raises(MessageError):
        mailbox.send(email(to="   "))
    with pytest.raises(MessageError):
        mailbox.send(email(subject="two\nlines"))
    with services.engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(sandbox_messages_table)
        ).scalar()
    assert count == 0


def test_services_give_the_sandbox_mailbox(services: Services) -> None:
    mailbox = services.mailbox()
    assert isinstance(mailbox, SandboxMailbox)
    assert mailbox.account == services.sandbox_account


def test_sender_without_address_is_refused(services: Services) -> None:
    with pytest.raises(MessageError, match="sandbox_sender"):
        SandboxMailbox(services.engine, "Just a name")
