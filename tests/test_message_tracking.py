"""Open and click tracking in the HTML part of sent emails, only when configured."""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lib.approval import approve
from lib.drafting.base import CampaignBrief, DraftResult
from lib.drafts import save_drafts
from lib.errors import ConfigError, MessageError
from lib.message import body_html, build_message, message_bytes
from lib.models import OutgoingEmail, TrackingLinks
from lib.schema import sandbox_messages_table
from lib.sending import send_approved
from lib.services import Services, open_services
from lib.settings import settings_from_mapping
from lib.tracking import (
    InvalidTrackingToken,
    read_tracked_link,
    read_tracking_token,
    tracking_key,
)
from lib.tracking_links import donor_fragments, links_for, signing_key
from lib.vault import load_or_create_key
from tests.test_drafts import add_donor

ACCOUNT = "fundraising@our-charity.example.org"
BASE = "https://track.our-charity.example.org"
KEY = tracking_key(b"k" * 44)
MSG = "<1a2b.c3d4@our-charity.example.org>"
GALA = "https://our-charity.example.org/gala?seat=2&fund=spring"
NEWS = "https://our-charity.example.org/news"
PHISH = "https://phish.example/login"
BODY = (
    "Dear Ann,\n\n"
    f"Join us at the gala: {GALA}.\n"
    f"Read more ({NEWS}) or reply.\n\n"
    f"Your note said: {PHISH}\n"
    "Warm regards"
)


class Tags(HTMLParser):
    """The links and images in an HTML part, and its text outside links."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []  # (href, visible text)
        self.images: list[dict[str, str | None]] = []
        self.plain = ""
        self._href: str | None = None
        self._text = ""
        self.feed(source)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", ""
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text))
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data
        else:
            self.plain += data


def parts(raw: bytes) -> tuple[str, str]:
    """(plain text, html) of a built message."""
    msg = BytesParser(policy=default_policy).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    plain = msg.get_body(preferencelist=("plain",))
    rich = msg.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    crlf = "\r\n"
    return (
        plain.get_content().replace(crlf, "\n"),
        rich.get_content().replace(crlf, "\n"),
    )


def click_target(href: str, key: bytes = KEY) -> tuple[str, str]:
    """(Message-ID, target) of a tracked link, after checking its signatures."""
    split = urlsplit(href)
    assert split.path.startswith("/c/")
    query = {k: v[0] for k, v in parse_qs(split.query).items()}
    token = split.path.removeprefix("/c/")
    return read_tracked_link(token, query["u"], query["s"], key), query["u"]


def outgoing(**changes: object) -> OutgoingEmail:
    email = OutgoingEmail(
        sender=f"Development Office <{ACCOUNT}>",
        to=("ann@example.org",),
        subject="Thank you",
        body_text=BODY,
        rfc_message_id=MSG,
    )
    return replace(email, **changes)  # type: ignore[arg-type]


def test_tracked_html_has_pixel_and_signed_links_and_plain_text_is_unchanged() -> None:
    links = TrackingLinks(BASE, KEY, donor_values=("Ann Lee", PHISH))
    plain, rich = parts(message_bytes(build_message(outgoing(tracking=links))))
    assert plain.rstrip("\n") == BODY  # the text part is exactly what was approved
    assert BASE not in plain
    tags = Tags(rich)
    (pixel,) = tags.images
    src = urlsplit(str(pixel["src"]))
    assert f"{src.scheme}://{src.netloc}" == BASE
    assert src.path.startswith("/o/") and src.path.endswith(".gif")
    assert read_tracking_token(src.path[3:-4], KEY) == MSG
    assert (pixel["width"], pixel["height"]) == ("1", "1")
    found = [(click_target(href), text) for href, text in tags.links]
    assert found == [((MSG, GALA), GALA), ((MSG, NEWS), NEWS)]
    # Sentence punctuation and brackets stay outside the link.
    assert "gala: " in tags.plain and ".\nRead more (" in tags.plain
    # The donor's own web address is text, never a link.
    assert PHISH in tags.plain
    assert all(PHISH not in text for _href, text in tags.links)


def test_tracking_off_leaves_the_message_as_before() -> None:
    plain, rich = parts(message_bytes(build_message(outgoing())))
    assert rich == body_html(BODY)
    assert "<a " not in rich and "<img" not in rich
    assert plain.rstrip("\n") == BODY
    assert body_html(BODY, None, MSG) == body_html(BODY)


def test_donor_values_stay_escaped_and_unlinked() -> None:
    hostile = '<script>alert(1)</script> "https://evil.example/x"'
    body = (
        f"Dear {hostile},\n"
        "Visit https://evil.example/x/more and https://phish.example\n"
        "and https://our-charity.example.org/a?b=<c>&d=1"
    )
    links = TrackingLinks(
        BASE, KEY, donor_values=(hostile, "phish.example", "Mrs. Smith")
    )
    rich = body_html(body, links, MSG)
    assert "<script>" not in rich and "&lt;script&gt;" in rich
    tags = Tags(rich)
    targets = [click_target(href)[1] for href, _text in tags.links]
    # Only the team's own link is tracked; it stops at "<", which is not a URL
    # character, and the rest stays escaped text.
    assert targets == ["https://our-charity.example.org/a?b="]
    assert "&lt;c&gt;&amp;d=1" in rich
    assert "https://evil.example/x/more" in tags.plain
    assert "https://phish.example" in tags.plain


def test_donor_fragments() -> None:
    found = donor_fragments(
        ["see https://Phish.example:8080/a, thanks", "evil.example/path", "Ann", "e."]
    )
    assert "phish.example" in found and "https://phish.example:8080/a" in found
    assert {"evil.example/path", "evil.example"} <= found
    assert "ann" not in found and "e" not in found


def test_a_forged_or_foreign_key_cannot_read_the_links() -> None:
    rich = body_html(BODY, TrackingLinks(BASE, KEY), MSG)
    href = Tags(rich).links[0][0]
    with pytest.raises(InvalidTrackingToken):
        click_target(href, key=tracking_key(b"x" * 44))


def test_tracking_needs_a_message_id() -> None:
    with pytest.raises(MessageError, match="Message-ID"):
        body_html(BODY, TrackingLinks(BASE, KEY), "")


# -- configuration ----------------------------------------------------------------


def test_tracking_base_url_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_mapping({}).tracking_base_url == ""
    on = settings_from_mapping({"steward": {"tracking_base_url": f"{BASE}/"}})
    assert on.tracking_base_url == BASE
    for bad in ("ftp://x.org", "https://x.org/?a=1", "track.org", "https://x:y"):
        with pytest.raises(ConfigError, match="tracking_base_url"):
            settings_from_mapping({"steward": {"tracking_base_url": bad}})
    monkeypatch.setenv("STEWARD_TRACKING_BASE_URL", "http://127.0.0.1:8600")
    assert settings_from_mapping({}).tracking_base_url == "http://127.0.0.1:8600"


def test_links_are_signed_with_a_key_derived_from_the_encryption_key(
    isolated_environment: Path,
) -> None:
    settings = settings_from_mapping({"steward": {"tracking_base_url": BASE}})
    assert links_for(replace(settings, tracking_base_url="")) is None
    links = links_for(settings, ["Ann"])
    assert links is not None and links.donor_values == ("Ann",)
    encryption_key = load_or_create_key(settings.data_dir)
    assert links.key == tracking_key(encryption_key) == signing_key(settings)
    assert links.key != encryption_key
    assert "key" not in repr(links) and "Ann" not in repr(links)


# -- the send flow ----------------------------------------------------------------


def send_one(services: Services, body: str, **donor_fields: object) -> bytes:
    """Approve and send one draft with ``body``; the raw message in Sent."""
    donor = add_donor(services.engine, "Ann Lee", **donor_fields)
    assert donor.id is not None
    result = DraftResult(donor_id=donor.id, subject="Thank you", body=body)
    ids = save_drafts(
        services.engine, [result], CampaignBrief(), {donor.id: donor}, "template"
    )
    assert set(approve(services.engine, ids, ACCOUNT).values()) == {None}
    report = send_approved(services, ACCOUNT, ids)
    assert report.sent == ids
    with services.engine.connect() as conn:
        (raw,) = conn.execute(select(sandbox_messages_table.c.raw)).scalars()
    return bytes(raw)


def tracked_services(services: Services, base: str = BASE) -> Services:
    return open_services(replace(services.settings, tracking_base_url=base))


def test_sent_email_is_tracked_when_configured(services: Services) -> None:
    tracked = tracked_services(services)
    raw = send_one(tracked, BODY, notes=f"Asked us to visit {PHISH}")
    message_id = str(BytesParser(policy=default_policy).parsebytes(raw)["Message-ID"])
    plain, rich = parts(raw)
    assert plain.rstrip("\n") == BODY
    tags = Tags(rich)
    key = signing_key(services.settings)
    assert [click_target(h, key) for h, _ in tags.links] == [
        (message_id, GALA),
        (message_id, NEWS),
    ]
    src = urlsplit(str(tags.images[0]["src"]))
    assert read_tracking_token(src.path[3:-4], key) == message_id
    assert PHISH in tags.plain  # from the donor's notes: never a link


def test_sent_email_is_unchanged_when_tracking_is_off(services: Services) -> None:
    raw = send_one(services, BODY)
    plain, rich = parts(raw)
    assert rich == body_html(BODY)
    assert plain.rstrip("\n") == BODY
