"""The tracking URLs a sent email carries, and how its HTML part gets them.

Why a module of its own: the links in the HTML part and the routes of the tracking
server (lib.tracking_server) must agree, so both read the paths from here; the
tokens and link signatures themselves come from lib.tracking (HMAC-SHA256, keyed
with a key derived from Steward's encryption key).

Only web addresses the team wrote become links. The body is plain text partly
filled in from the donor's record, and a donor (or whoever typed their record)
could put a phishing address in a name or a note; so a web address in which any
web address, domain or dotted word from the donor's own values appears stays plain,
escaped text. Every other character stays HTML-escaped exactly as before.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from lib.models import TrackingLinks
from lib.settings import Settings
from lib.tracking import tracked_link, tracking_key, tracking_token
from lib.vault import load_or_create_key

OPEN_PREFIX = "/o/"  # /o/<token>.gif
OPEN_SUFFIX = ".gif"
CLICK_PREFIX = "/c/"  # /c/<token>?u=<url>&s=<signature>

# The characters RFC 3986 allows in a URI (2.2, 2.3, and % for escapes); any other
# character ends a web address, so a link target is always plain ASCII.
_URI_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%"
# Limit: only addresses written with http:// or https:// are tracked; a bare
# "www.example.org" stays text (a mail client may still link it, untracked).
_WEB_ADDRESS = re.compile(rf"(?<![\w.+-])https?://[{_URI_CHARS}]+", re.IGNORECASE)
_RUN = re.compile(rf"[{_URI_CHARS}]+")
_TRAILING = ".,;:!?'\"*"  # sentence punctuation after an address, not part of it
# Shorter dotted words from donor data ("J.R") would block too many real links.
MIN_DONOR_FRAGMENT = 3


def signing_key(settings: Settings) -> bytes:
    """The key that signs tracking links, derived from Steward's encryption key
    (secrets or the owner-only key file), so the app that sends and the tracking
    server that reads the links agree. Raises ConfigError for a bad configured key.
    """
    return tracking_key(load_or_create_key(settings.data_dir, settings.encryption_key))


def links_for(
    settings: Settings, donor_values: Iterable[str] = ()
) -> TrackingLinks | None:
    """How to track an email to a donor with these values; None when tracking is
    off (no ``steward.tracking_base_url``)."""
    if not settings.tracking_base_url:
        return None
    return TrackingLinks(
        base_url=settings.tracking_base_url,
        key=signing_key(settings),
        donor_values=tuple(donor_values),
    )


def open_url(base_url: str, token: str) -> str:
    """The 1x1 image URL that records an open of the message behind ``token``."""
    return f"{base_url.rstrip('/')}{OPEN_PREFIX}{token}{OPEN_SUFFIX}"


def click_url(base_url: str, token: str, url: str, *, key: bytes) -> str:
    """The redirect URL that records a click and then goes to ``url``.

    It carries lib.tracking's signature over (token, url), so the server follows
    only targets Steward wrote. Raises InvalidTrackingToken for a non-web URL.
    """
    signed = tracked_link(base_url, token, url, key=key)
    signature = parse_qs(urlsplit(signed).query)["s"][0]
    query = urlencode({"u": url, "s": signature}, quote_via=quote)
    return f"{base_url.rstrip('/')}{CLICK_PREFIX}{token}?{query}"


def _trim(address: str) -> str:
    """An address without the sentence punctuation or unmatched bracket after it."""
    while address:
        last = address[-1]
        if last in _TRAILING:
            address = address[:-1]
        elif last == ")" and address.count("(") < address.count(")"):
            address = address[:-1]
        elif last == "]" and address.count("[") < address.count("]"):
            address = address[:-1]
        else:
            break
    return address


def _host(address: str) -> str | None:
    try:
        return urlsplit(address).hostname
    except ValueError:  # e.g. a malformed [IPv6] part
        return None


def donor_fragments(values: Iterable[str]) -> frozenset[str]:
    """Lower-case web addresses, host names and dotted words found in donor values:
    a web address containing any of them is never made into a link."""
    found: set[str] = set()
    for value in values:
        for run in _RUN.findall(value or ""):
            run = _trim(run).casefold()
            if "://" in run:
                host = _host(run)
                if host:
                    found.add(host)
                found.add(run)
            else:
                # "phish.example/login" blocks any link to phish.example.
                for piece in (run, run.split("/", 1)[0]):
                    if "." in piece.strip(".") and len(piece) >= MIN_DONOR_FRAGMENT:
                        found.add(piece)
    return frozenset(found)


class HtmlTracking:
    """Renders body lines for one message with tracked links, plus its pixel."""

    def __init__(self, links: TrackingLinks, rfc_message_id: str) -> None:
        self._links = links
        self._token = tracking_token(rfc_message_id, links.key)
        self._blocked = donor_fragments(links.donor_values)

    def linkable(self, address: str) -> bool:
        """True when ``address`` is a web address with a host and nothing from the
        donor's values in it."""
        # Limit: a donor's address reworded by a drafter ("phish dot example")
        # is not recognised; a person reviews every draft before it is sent.
        lowered = address.casefold()
        if not _host(address):
            return False
        return not any(fragment in lowered for fragment in self._blocked)

    def line(self, text: str) -> str:
        """One escaped line, its web addresses (those the team wrote) as tracked
        links whose visible text is the address itself."""
        out: list[str] = []
        position = 0
        for match in _WEB_ADDRESS.finditer(text):
            address = _trim(match.group())
            if not self.linkable(address):
                continue
            start, end = match.start(), match.start() + len(address)
            target = click_url(
                self._links.base_url, self._token, address, key=self._links.key
            )
            out.append(html.escape(text[position:start]))
            out.append(
                f'<a href="{html.escape(target, quote=True)}">'
                f"{html.escape(address)}</a>"
            )
            position = end
        out.append(html.escape(text[position:]))
        return "".join(out)

    def pixel(self) -> str:
        """The 1x1 image tag that records an open."""
        source = html.escape(open_url(self._links.base_url, self._token), quote=True)
        return (
            f'<img src="{source}" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px">'
        )
