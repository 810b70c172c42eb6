"""Turn an approved email into RFC 5322 bytes, and read sent mail back.

Why Steward encodes headers itself: the standard library's modern header folder
decodes text that merely *looks* like an RFC 2047 encoded word (``=?utf-8?q?…?=``)
and writes the result out unencoded, so a donor name can smuggle a line break and
a whole new ``Bcc:`` header into the message. Here every header value is checked for
line breaks, encoded by :class:`email.header.Header` (or written raw when it is
plain, short ASCII) and stored with ``set_raw`` so nothing re-folds it. As a last
guard, :func:`build_message` parses its own bytes back and refuses a message whose
subject, recipients or header set differ from what was asked for.

The output is 7-bit ASCII with CRLF line ends, so it needs no SMTPUTF8 support
anywhere on its way (Gmail's ``raw`` send form, the sandbox, the CRM log).
"""

from __future__ import annotations

import copy
import html
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, formataddr, getaddresses

from email_validator import EmailNotValidError, validate_email

from lib.emails import address_key
from lib.errors import MessageError
from lib.models import OutgoingEmail, SentMessage, TrackingLinks
from lib.tracking_links import HtmlTracking

# Gmail API: at most 100 recipients per message (shared/limits.md, "Gmail API").
MAX_RECIPIENTS = 100
# RFC 5322 2.1.1: header lines SHOULD stay within 78 characters.
HEADER_LINE_CHARS = 78
# How much of a body the CRM log and the dashboard show.
EXCERPT_CHARS = 200

# Every character str.splitlines() treats as a line end: any of them in a header
# value could end the header early in some reader.
_LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
_MSG_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")  # printable ASCII, no < or >
_PLAIN_HEADER_TEXT = re.compile(r"[ -~]*")  # printable ASCII only

# Modern parsing and generation, CRLF line ends, 7-bit headers, and no re-folding
# of the values this module has already encoded.
_POLICY = policy.SMTP.clone(refold_source="none")
_READ_POLICY = policy.default


@dataclass(frozen=True)
class _Mailbox:
    """One parsed address: the display name as typed and the ASCII address."""

    name: str
    address: str


# -- checks ---------------------------------------------------------------------


def _check_header_text(field: str, value: str) -> str:
    """Refuse a header value with a line break or another control character."""
    if any(ch in _LINE_BREAKS for ch in value):
        raise MessageError(
            f"The {field} contains a line break, which is not allowed in an email "
            f"header. Remove it and try again."
        )
    if any(ord(ch) < 32 and ch != "\t" or ord(ch) == 127 for ch in value):
        raise MessageError(
            f"The {field} contains a control character. Remove it and try again."
        )
    return value


def _ascii_address(field: str, address: str) -> str:
    """The address in ASCII form (IDNA domain), or MessageError naming the field."""
    try:
        checked = validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        # C02: an unusable To address means there is no one to send to.
        lead = "No address to send to: the" if field == "To" else "The"
        raise MessageError(
            f"{lead} {field} address {address!r} is not a valid email address "
            f"({str(exc).rstrip('.')}). Correct it and try again."
        ) from exc
    if checked.ascii_email is None:
        # Limit: addresses with non-ASCII characters before the @ need SMTPUTF8,
        # which this builder does not produce.
        raise MessageError(
            f"The {field} address {address!r} has non-English characters before "
            "the @, which Steward cannot send to yet. Use another address."
        )
    return checked.ascii_email


def _split_mailbox(field: str, entry: str) -> _Mailbox | None:
    """Parse ``Name <addr>`` or a bare address; None for a blank entry."""
    _check_header_text(field, entry)
    text = entry.strip()
    if not text:
        return None
    name = ""
    address = text
    if text.endswith(">") and "<" in text:
        cut = text.rfind("<")
        name = text[:cut].strip()
        address = text[cut + 1 : -1].strip()
        if len(name) >= 2 and name[0] == name[-1] == '"':
            name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return _Mailbox(name=name, address=_ascii_address(field, address))


def _mailboxes(field: str, entries: tuple[str, ...]) -> list[_Mailbox]:
    found: list[_Mailbox] = []
    seen: set[str] = set()
    for entry in entries:
        mailbox = _split_mailbox(field, entry or "")
        if mailbox is not None and address_key(mailbox.address) not in seen:
            seen.add(address_key(mailbox.address))
            found.append(mailbox)
    return found


def _message_ids(field: str, value: str) -> list[str]:
    """The Message-IDs in an In-Reply-To or References value."""
    _check_header_text(field, value)
    ids = value.split()
    for item in ids:
        if not _MSG_ID.fullmatch(item):
            raise MessageError(
                f"The {field} value {item!r} is not a Message-ID header such as "
                "<abc@example.org> (a Gmail message id will not thread)."
            )
    return ids


# -- encoding -------------------------------------------------------------------


def _needs_encoding(text: str) -> bool:
    return (
        not _PLAIN_HEADER_TEXT.fullmatch(text)
        or "=?" in text
        or text != text.strip()
        or len(text) > HEADER_LINE_CHARS - len("Subject: ")
    )


def _encode_text(text: str, header_name: str) -> str:
    """An unstructured header value (Subject), folded, 7-bit."""
    if not _needs_encoding(text):
        return text
    encoded = Header(text, "utf-8", header_name=header_name).encode(linesep="\r\n")
    return encoded.replace("\r\n", "\n")  # the generator writes the policy's linesep


def _format_mailbox(mailbox: _Mailbox) -> str:
    name = mailbox.name
    if not name:
        return mailbox.address
    if _needs_encoding(name):
        phrase = Header(name, "utf-8").encode(linesep="\r\n").replace("\r\n", "\n")
        return f"{phrase} <{mailbox.address}>"
    return formataddr((name, mailbox.address))


def _address_list(mailboxes: list[_Mailbox], header_name: str) -> str:
    """Addresses joined with commas, folded between addresses."""
    lines: list[str] = []
    current = ""
    for item in (_format_mailbox(m) for m in mailboxes):
        candidate = f"{current}, {item}" if current else item
        first_line_prefix = len(header_name) + 2 if not lines else 1
        if current and first_line_prefix + len(candidate) > HEADER_LINE_CHARS:
            lines.append(current + ",")
            current = item
        else:
            current = candidate
    lines.append(current)
    return "\n ".join(lines)


def new_message_id(sender_domain: str) -> str:
    """A fresh, globally unique Message-ID such as ``<1a2b…@example.org>``.

    Raises MessageError when the domain is blank or not a valid domain name.
    """
    domain = (sender_domain or "").strip().rstrip(".")
    _check_header_text("sender domain", domain)
    if not domain:
        raise MessageError("The sender has no domain to build a Message-ID from.")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise MessageError(f"The sender domain {domain!r} is not valid.") from exc
    stamp = format(int(time.time()), "x")
    return f"<{stamp}.{secrets.token_hex(12)}@{ascii_domain}>"


def body_html(
    body_text: str,
    tracking: TrackingLinks | None = None,
    rfc_message_id: str = "",
) -> str:
    """The HTML part for a plain-text body: every character escaped, paragraphs
    (blank lines) as ``<p>`` and single line breaks as ``<br>``.

    With ``tracking`` (and the message's ``rfc_message_id``), web addresses the team
    wrote become signed click-tracking links and a 1x1 open-tracking image is
    added (lib.tracking_links); without it the output is exactly as before.
    Raises MessageError when ``tracking`` is given without a Message-ID.
    """
    if tracking is not None and not rfc_message_id:
        raise MessageError("A tracked email needs its Message-ID; none was given.")
    text = body_text.replace("\r\n", "\n").replace("\r", "\n")
    blocks = re.split(r"\n(?:[ \t]*\n)+", text.strip("\n"))
    paragraphs = [p for p in blocks if p.strip()]
    tracker = HtmlTracking(tracking, rfc_message_id) if tracking else None
    render_line = tracker.line if tracker else html.escape
    rendered = "\n".join(
        "<p>" + "<br>\n".join(render_line(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    if tracker:
        rendered += "\n" + tracker.pixel()
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n'
        f"<body>\n{rendered}\n</body></html>\n"
    )


def _thread_subject(subject: str, replying: bool) -> str:
    if replying and not re.match(r"\s*re\s*:", subject, re.IGNORECASE):
        return f"Re: {subject}"
    return subject


def build_message(email: OutgoingEmail) -> EmailMessage:
    """The RFC 5322 message for ``email``: multipart/alternative plain + escaped
    HTML, with From, To, Cc, Bcc, Subject, Date, Message-ID and threading headers
    all in the top-level header block.

    Raises MessageError naming the field when a header value holds a line break or
    an invalid address, when there is no valid To address ("no address"), or when
    there are more than MAX_RECIPIENTS recipients.
    """
    sender = _mailboxes("From", (email.sender,))
    if not sender:
        raise MessageError("The email has no sender address.")
    to = _mailboxes("To", email.to)
    if not to:
        raise MessageError(
            "No address: the email has no recipient in To. Add the donor's email "
            "address and try again."
        )
    cc = _mailboxes("Cc", email.cc)
    bcc = _mailboxes("Bcc", email.bcc)
    count = len(to) + len(cc) + len(bcc)
    if count > MAX_RECIPIENTS:
        raise MessageError(
            f"The email has {count} recipients; Gmail accepts at most "
            f"{MAX_RECIPIENTS} per message. Split it into several emails."
        )
    reply_to = _mailboxes("Reply-To", (email.reply_to,)) if email.reply_to else []
    _check_header_text("subject", email.subject)
    in_reply_to = _message_ids("In-Reply-To", email.in_reply_to or "")
    if len(in_reply_to) > 1:
        raise MessageError("In-Reply-To must hold exactly one parent Message-ID.")
    references = _message_ids("References", email.references or "")
    if in_reply_to and in_reply_to[0] not in references:
        references.append(in_reply_to[0])
    subject = _thread_subject(email.subject, bool(in_reply_to))
    sender_domain = sender[0].address.rsplit("@", 1)[1]
    message_id = email.rfc_message_id or new_message_id(sender_domain)
    _message_ids("Message-ID", message_id)

    msg = EmailMessage(policy=_POLICY)
    msg.set_raw("From", _address_list(sender, "From"))
    msg.set_raw("To", _address_list(to, "To"))
    if cc:
        msg.set_raw("Cc", _address_list(cc, "Cc"))
    if bcc:
        msg.set_raw("Bcc", _address_list(bcc, "Bcc"))
    if reply_to:
        msg.set_raw("Reply-To", _address_list(reply_to, "Reply-To"))
    msg.set_raw("Subject", _encode_text(subject, "Subject"))
    msg.set_raw("Date", format_datetime(datetime.now(UTC)))
    msg.set_raw("Message-ID", message_id)
    if in_reply_to:
        msg.set_raw("In-Reply-To", in_reply_to[0])
        msg.set_raw("References", "\n ".join(references))
    text = email.body_text.replace("\r\n", "\n").replace("\r", "\n")
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(
        body_html(text, email.tracking, message_id),
        subtype="html",
        charset="utf-8",
        cte="quoted-printable",
    )
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs in the top-level header block only
    _verify(msg, subject=subject, to=to, cc=cc, bcc=bcc)
    return msg


def _verify(
    msg: EmailMessage,
    *,
    subject: str,
    to: list[_Mailbox],
    cc: list[_Mailbox],
    bcc: list[_Mailbox],
) -> None:
    """Parse the built bytes back; refuse anything that does not read as asked."""
    parsed = BytesParser(policy=_READ_POLICY).parsebytes(message_bytes(msg))
    names = [k.lower() for k in parsed.keys()]
    expected = [k.lower() for k in msg.keys()]
    if names != expected:
        raise MessageError(
            "The email could not be built safely: its headers did not read back "
            "as written. Check the subject and names for unusual characters."
        )
    if str(parsed["Subject"]) != subject:
        raise MessageError(
            "The email could not be built safely: the subject did not read back "
            "as typed. Check it for unusual characters."
        )
    for field, wanted in (("To", to), ("Cc", cc), ("Bcc", bcc)):
        got = _addresses(parsed, field)
        if got != tuple(address_key(m.address) for m in wanted):
            raise MessageError(
                f"The email could not be built safely: the {field} addresses did "
                "not read back as typed. Check the names for unusual characters."
            )


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as RFC 5322 bytes: CRLF line ends, 7-bit ASCII throughout.

    Raises MessageError if anything non-ASCII slipped into the output.
    """
    raw = msg.as_bytes(policy=_POLICY)
    try:
        raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MessageError(
            "The email could not be encoded as plain ASCII; check the subject and "
            "names for unusual characters."
        ) from exc
    return raw


def recipient_copy(msg: EmailMessage) -> EmailMessage:
    """The copy recipients receive: the same message without the Bcc header."""
    copied = copy.deepcopy(msg)
    del copied["Bcc"]
    return copied


# -- reading sent mail back -----------------------------------------------------


def _addresses(msg: EmailMessage, field: str) -> tuple[str, ...]:
    """Every address in all ``field`` headers, as comparison keys, in order."""
    found: list[str] = []
    for header in msg.get_all(field) or []:
        try:
            specs = [a.addr_spec for a in header.addresses]
        except (AttributeError, ValueError):  # unparseable: fall back to the text
            specs = [addr for _name, addr in getaddresses([str(header)])]
        for spec in specs:
            if "@" in spec and address_key(spec) not in found:
                found.append(address_key(spec))
    return tuple(found)


def _excerpt(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # unknown charset or broken encoding
        return ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = html.unescape(re.sub(r"<[^>]*>", " ", content))
    return " ".join(content.split())[:EXCERPT_CHARS]


def parse_sent_message(
    raw: bytes, mailbox_message_id: str, thread_id: str, sent_at: datetime
) -> SentMessage:
    """Read one message from a Sent folder: sender, To/Cc/Bcc addresses (lower
    case, in order), decoded subject, Message-ID (None when missing) and a short
    plain-text excerpt. Never raises on a malformed message; missing parts come
    back empty."""
    msg = BytesParser(policy=_READ_POLICY).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    senders = _addresses(msg, "From")
    message_id = (str(msg["Message-ID"] or "")).strip() or None
    return SentMessage(
        mailbox_message_id=mailbox_message_id,
        thread_id=thread_id,
        rfc_message_id=message_id,
        sender=senders[0] if senders else "",
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        bcc=_addresses(msg, "Bcc"),
        subject=str(msg["Subject"] or ""),
        sent_at=sent_at,
        excerpt=_excerpt(msg),
    )
