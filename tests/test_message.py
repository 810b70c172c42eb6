"""Building RFC 5322 messages: encoding, recipients, threading, header safety."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from lib.errors import MessageError
from lib.message import (
    MAX_RECIPIENTS,
    body_html,
    build_message,
    message_bytes,
    new_message_id,
    parse_sent_message,
    recipient_copy,
)
from lib.models import OutgoingEmail

SENDER = "Development Office <fundraising@our-charity.example.org>"


def outgoing(**changes: object) -> OutgoingEmail:
    base = OutgoingEmail(
        sender=SENDER,
        to=("donor@example.org",),
        subject="Thank you",
        body_text="Dear Ann,\n\nThank you.\n",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def addresses(msg: EmailMessage, name: str) -> set[str]:
    return {a.addr_spec for h in msg.get_all(name) or [] for a in h.addresses}


def roundtrip(email: OutgoingEmail) -> tuple[bytes, EmailMessage]:
    raw = message_bytes(build_message(email))
    return raw, parse(raw)


# -- C01: UTF-8 subject -------------------------------------------------------------


def test_c01_utf8_subject_is_encoded_and_reads_back_exactly() -> None:
    subject = "Gala de Otoño — ¡Gracias, José!"
    raw, msg = roundtrip(outgoing(subject=subject))
    raw.decode("ascii")  # 7-bit: no SMTPUTF8 needed
    assert b"=?utf-8?" in header_block(raw)
    assert str(msg["Subject"]) == subject


@pytest.mark.parametrize(
    "subject",
    [
        "Price =?utf-8?q?x?= looks encoded",
        " leading and trailing spaces ",
        "x" * 1200,
        "Ünïcode " * 40,
        "tab\tinside",
        "",
    ],
)
def test_subject_reads_back_exactly(subject: str) -> None:
    raw, msg = roundtrip(outgoing(subject=subject))
    assert str(msg["Subject"]) == subject
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


# -- C02: no address ----------------------------------------------------------------


@pytest.mark.parametrize(
    "to", [(), ("",), ("   ",), ("\t ",), ("not-an-address",), ("Ann <>",)]
)
def test_c02_no_valid_recipient_is_no_address(to: tuple[str, ...]) -> None:
    with pytest.raises(MessageError, match="(?i)no address"):
        build_message(outgoing(to=to))


def test_blank_to_entries_are_dropped_when_a_valid_one_remains() -> None:
    _raw, msg = roundtrip(outgoing(to=("  ", "donor@example.org", "")))
    assert addresses(msg, "To") == {"donor@example.org"}


# -- C03: Cc / Bcc ------------------------------------------------------------------


def test_c03_to_and_bcc_sit_in_the_top_level_header_block() -> None:
    email = outgoing(to=("board@example.org",), bcc=("donor+gala@example.org",))
    raw, msg = roundtrip(email)
    names = {k.lower() for k in msg.keys()}
    assert {"from", "to", "bcc", "subject", "date", "message-id"} <= names
    assert "cc" not in names
    assert addresses(msg, "To") == {"board@example.org"}
    assert addresses(msg, "Bcc") == {"donor+gala@example.org"}
    assert addresses(msg, "Cc") == set()
    top = header_block(raw)
    assert b"\r\nTo: board@example.org" in top
    assert b"\r\nBcc: donor+gala@example.org" in top
    for part in msg.iter_parts():
        assert part["To"] is None and part["Bcc"] is None


def test_c03_recipient_copy_has_no_bcc() -> None:
    email = outgoing(
        to=("board@example.org",),
        cc=("treasurer@example.org",),
        bcc=("donor+gala@example.org",),
    )
    built = build_message(email)
    copy = parse(message_bytes(recipient_copy(built)))
    assert copy["Bcc"] is None
    assert b"donor+gala" not in message_bytes(recipient_copy(built))
    assert addresses(copy, "To") == {"board@example.org"}
    assert addresses(copy, "Cc") == {"treasurer@example.org"}
    assert built["Bcc"] is not None  # the sender's copy keeps it


def test_cc_and_bcc_sets_are_exact() -> None:
    email = outgoing(
        to=("a@example.org", "b@example.org"),
        cc=("c@example.org",),
        bcc=("d@example.org", "e@example.org"),
    )
    _raw, msg = roundtrip(email)
    assert addresses(msg, "To") == {"a@example.org", "b@example.org"}
    assert addresses(msg, "Cc") == {"c@example.org"}
    assert addresses(msg, "Bcc") == {"d@example.org", "e@example.org"}


# -- C04: threading -----------------------------------------------------------------


def test_c04_follow_up_threads_on_the_parent_message_id() -> None:
    parent = "<parent.1@our-charity.example.org>"
    email = outgoing(
        subject="A new subject for the follow-up",
        thread_id="18c2f0a1b2c3d4e5",
        in_reply_to=parent,
        references="<root.0@our-charity.example.org>",
    )
    _raw, msg = roundtrip(email)
    assert str(msg["In-Reply-To"]) == parent
    assert str(msg["References"]).split() == [
        "<root.0@our-charity.example.org>",
        parent,
    ]
    assert str(msg["Subject"]) == "Re: A new subject for the follow-up"


def test_reply_subject_already_prefixed_is_kept() -> None:
    email = outgoing(subject="RE: Thank you", in_reply_to="<p@example.org>")
    _raw, msg = roundtrip(email)
    assert str(msg["Subject"]) == "RE: Thank you"
    assert str(msg["References"]) == "<p@example.org>"


def test_a_gmail_id_is_not_accepted_as_in_reply_to() -> None:
    with pytest.raises(MessageError, match="In-Reply-To"):
        build_message(outgoing(in_reply_to="18c2f0a1b2c3d4e5"))


# -- header injection ---------------------------------------------------------------

BREAKS = ["\r\n", "\n", "\r", "\u2028", "\x85"]
FIELDS = {
    "subject": lambda v: {"subject": f"Hello{v}Bcc: evil@example.org"},
    "From": lambda v: {"sender": f"Office{v}Bcc: evil@example.org <f@example.org>"},
    "To": lambda v: {"to": (f"Ann{v}Bcc: evil@example.org <ann@example.org>",)},
    "Cc": lambda v: {"cc": (f"c@example.org{v}Bcc: evil@example.org",)},
    "Bcc": lambda v: {"bcc": (f"d@example.org{v}X-Evil: 1",)},
    "Reply-To": lambda v: {"reply_to": f"r@example.org{v}X-Evil: 1"},
    "In-Reply-To": lambda v: {"in_reply_to": f"<p@example.org>{v}X-Evil: 1"},
    "References": lambda v: {"references": f"<p@example.org>{v}X-Evil: 1"},
    "Message-ID": lambda v: {"rfc_message_id": f"<m@example.org>{v}X-Evil: 1"},
}


@pytest.mark.parametrize("line_break", BREAKS)
@pytest.mark.parametrize("field", sorted(FIELDS))
def test_line_breaks_in_any_header_are_refused_naming_the_field(
    field: str, line_break: str
) -> None:
    with pytest.raises(MessageError) as caught:
        build_message(outgoing(**FIELDS[field](line_break)))
    assert field.lower() in str(caught.value).lower()


def test_encoded_word_lookalikes_cannot_inject_headers() -> None:
    trap = "=?utf-8?q?x=0D=0ABcc:_evil@example.org?="
    email = outgoing(
        sender=f"{trap} <f@example.org>",
        to=(f"{trap} <ann@example.org>",),
        subject=f"Hi {trap} there",
    )
    raw, msg = roundtrip(email)
    assert b"evil@example.org" not in raw  # only ever inside an encoded word
    assert msg["Bcc"] is None
    assert str(msg["Subject"]) == f"Hi {trap} there"
    assert addresses(msg, "To") == {"ann@example.org"}


# -- display names and addresses ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Smith, Ann",
        'Ann "Nan" Smith',
        "José Ñúñez-O'Brien",
        "Núñez, José \\ Pepe",
        "Whitcombe & Co. (Trust)",
    ],
)
def test_display_names_read_back_exactly(name: str) -> None:
    quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    _raw, msg = roundtrip(outgoing(to=(f"{quoted} <ann@example.org>",)))
    (address,) = msg["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "ann@example.org")


def test_sender_display_name_with_non_ascii_and_comma() -> None:
    _raw, msg = roundtrip(outgoing(sender='"Oficina, Desarrollo ñ" <f@example.org>'))
    (address,) = msg["From"].addresses
    assert address.display_name == "Oficina, Desarrollo ñ"


def test_plus_tag_is_kept_and_idn_domain_is_encoded() -> None:
    _raw, msg = roundtrip(outgoing(to=("donor+gala@example.org", "jose@bücher.de")))
    assert addresses(msg, "To") == {"donor+gala@example.org", "jose@xn--bcher-kva.de"}


def test_non_ascii_local_part_is_refused() -> None:
    with pytest.raises(MessageError, match="To"):
        build_message(outgoing(to=("jörg@example.org",)))


def test_invalid_cc_is_refused_naming_cc() -> None:
    with pytest.raises(MessageError, match="Cc"):
        build_message(outgoing(cc=("not an address",)))


def test_recipient_limit() -> None:
    hundred = tuple(f"d{i}@example.org" for i in range(MAX_RECIPIENTS - 1))
    build_message(outgoing(cc=hundred))  # 100 in all: fine
    with pytest.raises(MessageError, match="100"):
        build_message(outgoing(cc=hundred, bcc=("one-more@example.org",)))


# -- body ---------------------------------------------------------------------------


def test_body_is_multipart_alternative_with_escaped_html() -> None:
    body = "Dear <script>alert(1)</script> & Co,\n\nThank you.\nSee you soon."
    raw, msg = roundtrip(outgoing(body_text=body))
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == body + "\n"
    html_text = html.get_content()
    assert "<script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html_text
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF line ends only


def test_body_html_keeps_paragraphs_and_line_breaks() -> None:
    html = body_html('One "a" & b\nline two\n\n\nPara <2>')
    assert "<p>One &quot;a&quot; &amp; b<br>\nline two</p>" in html
    assert "<p>Para &lt;2&gt;</p>" in html
    assert html.count("<p>") == 2


def test_message_has_date_and_message_id() -> None:
    _raw, msg = roundtrip(outgoing())
    assert msg["Date"].datetime.tzinfo is not None
    assert str(msg["Message-ID"]).endswith("@our-charity.example.org>")
    _raw, msg = roundtrip(outgoing(rfc_message_id="<fixed.1@example.org>"))
    assert str(msg["Message-ID"]) == "<fixed.1@example.org>"


def test_new_message_id_is_unique_and_well_formed() -> None:
    ids = {new_message_id("bücher.de") for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("<") and i.endswith("@xn--bcher-kva.de>") for i in ids)
    with pytest.raises(MessageError):
        new_message_id("  ")


# -- reading back -------------------------------------------------------------------


def test_parse_sent_message_reads_what_was_built() -> None:
    email = outgoing(
        to=("Ann <Ann@Example.org>",),
        cc=("c@example.org",),
        bcc=("donor+gala@example.org",),
        subject="Gala de Otoño — ¡Gracias, José!",
        body_text="Dear Ann,\n\n" + "word " * 100,
        rfc_message_id="<m.1@our-charity.example.org>",
    )
    raw = message_bytes(build_message(email))
    at = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    sent = parse_sent_message(raw, "abc", "thread", at)
    assert sent.sender == "fundraising@our-charity.example.org"
    assert sent.to == ("ann@example.org",)
    assert sent.cc == ("c@example.org",)
    assert sent.bcc == ("donor+gala@example.org",)
    assert sent.subject == "Gala de Otoño — ¡Gracias, José!"
    assert sent.rfc_message_id == "<m.1@our-charity.example.org>"
    assert (sent.mailbox_message_id, sent.thread_id, sent.sent_at) == (
        "abc",
        "thread",
        at,
    )
    assert sent.excerpt.startswith("Dear Ann, word word")
    assert len(sent.excerpt) <= 200


def test_parse_sent_message_tolerates_odd_mail() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    sent = parse_sent_message(b"Subject: hi\r\n\r\nno ids here", "x", "y", at)
    assert sent.rfc_message_id is None
    assert sent.to == () and sent.sender == ""
    assert sent.excerpt == "no ids here"
    html_only = (
        b"From: a@example.org\r\nTo: b@example.org\r\nContent-Type: text/html\r\n"
        b"\r\n<p>Hello &amp; <b>welcome</b></p>"
    )
    assert parse_sent_message(html_only, "x", "y", at).excerpt == "Hello & welcome"
    garbage = parse_sent_message(b"\x00\xff\xfe not mail", "x", "y", at)
    assert garbage.to == ()
