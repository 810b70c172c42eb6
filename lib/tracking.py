"""Open and click tracking, with machine opens and link-scanner clicks told apart.

Why: a raw open count overstates interest. Gmail fetches images through its proxy
(often right at delivery, then caches them), Apple Mail Privacy Protection fetches
every pixel in the background, the sender viewing their own Sent copy fires the
pixel, and security gateways (Microsoft Safe Links, Proofpoint, Mimecast, Barracuda)
follow links seconds after delivery (limits.md "Email tracking", case C18).

Every event is kept, with its user agent and time, and classified: ``machine`` with
a reason, or a person. Counts by people are still **approximate**: a proxy may hide
a real open, and a person may read without loading images. Pages must say so.

Tracking links are signed (HMAC-SHA256) so a later tracking endpoint can refuse
forged or tampered tokens, and the click redirect only goes to links Steward signed
(never an open redirect).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

import pandas as pd
from sqlalchemy import Connection, Engine, select, text

from lib.db import as_utc
from lib.errors import StewardError
from lib.schema import drafts_table, sent_mail_table, tracking_events_table

log = logging.getLogger(__name__)

# Opens this soon after sending are proxies prefetching or the sender's own view,
# not the donor (limits.md: Gmail's proxy often fetches right at delivery).
MACHINE_OPEN_WINDOW_S = 10.0
# Gateways follow links "seconds after delivery" (limits.md); a person rarely does.
SCANNER_CLICK_WINDOW_S = 30.0
# A scanner follows every link of a message at once: this many distinct links of one
# message clicked within BURST_WINDOW_S seconds marks all of them as scanner clicks.
BURST_MIN_LINKS = 3
BURST_WINDOW_S = 5.0

_TOKEN_CONTEXT = b"steward-tracking-v1\x00"
_LINK_CONTEXT = b"steward-link-v1\x00"

# User-agent fragments (lower case) and what they are.
_PROXY_AGENTS = (
    ("googleimageproxy", "Google image proxy"),
    ("ggpht.com", "Google image proxy"),
    ("yahoomailproxy", "Yahoo image proxy"),
)
_SCANNER_AGENTS = (
    ("safelinks", "Microsoft Safe Links"),
    ("microsoft office", "Microsoft link preview"),
    ("bingpreview", "Microsoft link preview"),
    ("proofpoint", "Proofpoint URL defense"),
    ("mimecast", "Mimecast URL protection"),
    ("barracuda", "Barracuda link protection"),
    ("headlesschrome", "headless browser"),
    ("phantomjs", "headless browser"),
    ("python-requests", "script"),
    ("python-urllib", "script"),
    ("go-http-client", "script"),
    ("okhttp", "script"),
    ("curl/", "script"),
    ("wget/", "script"),
    ("bot", "bot"),
    ("crawler", "bot"),
    ("spider", "bot"),
    ("scanner", "link scanner"),
    ("preview", "link preview"),
)


class InvalidTrackingToken(StewardError, ValueError):
    """A tracking token or link that Steward did not sign, or that was altered."""


# -- classification --------------------------------------------------------------


def _seconds_after(at: datetime, sent_at: datetime | None) -> float | None:
    if sent_at is None:
        return None
    return (as_utc(at) - as_utc(sent_at)).total_seconds()  # type: ignore[operator]


def _is_apple_privacy_fetch(agent: str) -> bool:
    # Mail Privacy Protection fetches with a bare "Mozilla/5.0", or with Apple
    # Mail's WebKit agent (no "Safari"/"Version" token); with MPP on by default,
    # such an open cannot be told from a prefetch.
    # Limit: without the fetching IP (not stored, personal data) a real Apple Mail
    # open without MPP is counted as machine too; opens stay approximate.
    if agent.strip() == "Mozilla/5.0":
        return True
    lowered = agent.lower()
    apple = any(device in lowered for device in ("iphone", "ipad", "macintosh"))
    return (
        apple
        and "applewebkit" in lowered
        and "safari" not in lowered
        and "version/" not in lowered
    )


def _generic_machine(agent: str, method: str) -> str | None:
    if method.upper() == "HEAD":
        return "HEAD request (link checker)"
    if not agent.strip():
        return "no user agent"
    lowered = agent.lower()
    for fragment, reason in _SCANNER_AGENTS:
        if fragment in lowered:
            return reason
    return None


def classify_open(
    user_agent: str,
    at: datetime,
    sent_at: datetime | None = None,
    *,
    from_sender: bool = False,
    method: str = "GET",
) -> tuple[bool, str]:
    """(machine, reason) for one pixel fetch; reason is "" for a person.

    ``from_sender`` is set by the endpoint when the fetch comes from the sending
    account's own session (the sender viewing their Sent copy).
    """
    lowered = (user_agent or "").lower()
    if from_sender:
        return True, "sender viewing own copy"
    for fragment, reason in _PROXY_AGENTS:
        if fragment in lowered:
            return True, reason
    if _is_apple_privacy_fetch(user_agent or ""):
        return True, "Apple Mail Privacy Protection"
    generic = _generic_machine(user_agent or "", method)
    if generic:
        return True, generic
    after = _seconds_after(at, sent_at)
    if after is not None and after < MACHINE_OPEN_WINDOW_S:
        return True, f"opened within {MACHINE_OPEN_WINDOW_S:g} s of sending"
    return False, ""


def classify_click(
    user_agent: str,
    at: datetime,
    sent_at: datetime | None = None,
    *,
    method: str = "GET",
    url: str | None = None,
    recent_clicks: Sequence[tuple[datetime, str]] = (),
) -> tuple[bool, str]:
    """(machine, reason) for one link follow; reason is "" for a person.

    ``recent_clicks`` are (time, url) of other clicks on the same message; many
    distinct links followed within seconds are a scanner, not a reader.
    """
    generic = _generic_machine(user_agent or "", method)
    if generic:
        return True, generic
    after = _seconds_after(at, sent_at)
    if after is not None and after < SCANNER_CLICK_WINDOW_S:
        return True, f"clicked within {SCANNER_CLICK_WINDOW_S:g} s of delivery"
    if url is not None:
        window = timedelta(seconds=BURST_WINDOW_S)
        near = {
            u
            for t, u in recent_clicks
            if abs(as_utc(t) - as_utc(at)) <= window  # type: ignore[operator]
        }
        near.add(url)
        if len(near) >= BURST_MIN_LINKS:
            return True, "many links clicked at once"
    return False, ""


# -- recording -------------------------------------------------------------------


def _sent_at_of(engine: Engine, rfc_message_id: str) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(
            select(sent_mail_table.c.sent_at).where(
                sent_mail_table.c.rfc_message_id == rfc_message_id
            )
        ).scalar_one_or_none()
        if value is None:
            value = conn.execute(
                select(drafts_table.c.sent_at).where(
                    drafts_table.c.rfc_message_id == rfc_message_id
                )
            ).scalar_one_or_none()
    return as_utc(value)


def record_open(
    engine: Engine,
    rfc_message_id: str,
    user_agent: str,
    at: datetime,
    sent_at: datetime | None = None,
    *,
    from_sender: bool = False,
    method: str = "GET",
) -> tuple[bool, str]:
    """Store one pixel fetch (always kept) and return its (machine, reason).

    ``sent_at`` defaults to the sent mail's (or draft's) time in the database.
    """
    if sent_at is None:
        sent_at = _sent_at_of(engine, rfc_message_id)
    machine, reason = classify_open(
        user_agent, at, sent_at, from_sender=from_sender, method=method
    )
    with engine.begin() as conn:
        _insert_event(
            conn, rfc_message_id, "open", None, user_agent, machine, reason, at
        )
    return machine, reason


def _insert_event(
    conn: Connection,
    rfc_message_id: str,
    kind: str,
    url: str | None,
    user_agent: str,
    machine: bool,
    reason: str,
    at: datetime,
) -> None:
    """Keep one tracking event, whatever its classification."""
    conn.execute(
        tracking_events_table.insert().values(
            rfc_message_id=rfc_message_id,
            kind=kind,
            url=url,
            user_agent=user_agent or "",
            machine=machine,
            reason=reason[:80],
            at=as_utc(at),
        )
    )


def record_click(
    engine: Engine,
    rfc_message_id: str,
    url: str,
    user_agent: str,
    at: datetime,
    sent_at: datetime | None = None,
    *,
    method: str = "GET",
) -> tuple[bool, str]:
    """Store one link follow (always kept) and return its (machine, reason).

    When it completes a burst of many links followed at once, the earlier clicks of
    that burst are reclassified as scanner clicks too.
    """
    if sent_at is None:
        sent_at = _sent_at_of(engine, rfc_message_id)
    t = tracking_events_table.c
    window = timedelta(seconds=BURST_WINDOW_S)
    at_utc = as_utc(at)
    assert at_utc is not None
    with engine.begin() as conn:
        recent = conn.execute(
            select(t.id, t.at, t.url).where(
                t.rfc_message_id == rfc_message_id,
                t.kind == "click",
                t.at >= at_utc - window,
                t.at <= at_utc + window,
            )
        ).all()
        machine, reason = classify_click(
            user_agent,
            at_utc,
            sent_at,
            method=method,
            url=url,
            recent_clicks=[(row.at, row.url or "") for row in recent],
        )
        _insert_event(
            conn, rfc_message_id, "click", url, user_agent, machine, reason, at_utc
        )
        if reason == "many links clicked at once" and recent:
            conn.execute(
                tracking_events_table.update()
                .where(t.id.in_([row.id for row in recent]), t.machine.is_(False))
                .values(machine=True, reason=reason)
            )
    return machine, reason


def tracking_counts(engine: Engine) -> pd.DataFrame:
    """Per message: rfc_message_id, human_opens, machine_opens, human_clicks,
    scanner_clicks. Counts by people are approximate (see the module docstring)."""
    query = text(
        "SELECT rfc_message_id,"
        " SUM(CASE WHEN kind = 'open' AND NOT machine THEN 1 ELSE 0 END)"
        "   AS human_opens,"
        " SUM(CASE WHEN kind = 'open' AND machine THEN 1 ELSE 0 END) AS machine_opens,"
        " SUM(CASE WHEN kind = 'click' AND NOT machine THEN 1 ELSE 0 END)"
        "   AS human_clicks,"
        " SUM(CASE WHEN kind = 'click' AND machine THEN 1 ELSE 0 END)"
        "   AS scanner_clicks"
        " FROM tracking_events GROUP BY rfc_message_id"
    )
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    for column in ("human_opens", "machine_opens", "human_clicks", "scanner_clicks"):
        frame[column] = frame[column].fillna(0).astype("int64")
    return frame


# -- signed tokens and URLs ----------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _mac(key: bytes, context: bytes, payload: bytes) -> bytes:
    return hmac.new(key, context + payload, hashlib.sha256).digest()


def tracking_key(encryption_key: bytes) -> bytes:
    """A key for tracking signatures derived from Steward's encryption key, so the
    encryption key itself never signs anything that leaves the machine."""
    return _mac(encryption_key, b"steward-tracking-key\x00", b"")


def tracking_token(rfc_message_id: str, key: bytes) -> str:
    """A URL-safe token naming the message, signed with ``key``."""
    payload = rfc_message_id.encode("utf-8")
    return f"{_b64(payload)}.{_b64(_mac(key, _TOKEN_CONTEXT, payload))}"


def read_tracking_token(token: str, key: bytes) -> str:
    """The Message-ID inside a token. Raises InvalidTrackingToken when the token is
    not signed with ``key`` or was altered."""
    try:
        body, _, signature = (token or "").partition(".")
        payload = _unb64(body)
        given = _unb64(signature)
        message_id = payload.decode("utf-8")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidTrackingToken("This tracking link is malformed.") from exc
    if not body or not hmac.compare_digest(given, _mac(key, _TOKEN_CONTEXT, payload)):
        raise InvalidTrackingToken("This tracking link was not issued by Steward.")
    return message_id


def pixel_url(base_url: str, token: str) -> str:
    """The open-tracking image URL for a message token."""
    return f"{base_url.rstrip('/')}/t/open?{urlencode({'t': token})}"


def _link_signature(token: str, url: str, key: bytes) -> str:
    return _b64(_mac(key, _LINK_CONTEXT, f"{token}\x00{url}".encode()))


def tracked_link(base_url: str, token: str, url: str, *, key: bytes) -> str:
    """A click-tracking URL that redirects to ``url`` (http or https only).

    The link carries a signature over (token, url), so the endpoint redirects only
    to links Steward wrote. Raises InvalidTrackingToken for another URL scheme.
    """
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise InvalidTrackingToken(
            f"Only web links can be tracked, not {url[:40]!r}; leave it untracked."
        )
    query = urlencode(
        {"t": token, "u": url, "s": _link_signature(token, url, key)}, quote_via=quote
    )
    return f"{base_url.rstrip('/')}/t/click?{query}"


def read_tracked_link(token: str, url: str, signature: str, key: bytes) -> str:
    """The Message-ID of a clicked tracked link, after checking its signatures.

    Raises InvalidTrackingToken when the token or the link target was altered.
    """
    message_id = read_tracking_token(token, key)
    expected = _link_signature(token, url, key)
    if not hmac.compare_digest(expected.encode(), (signature or "").encode()):
        raise InvalidTrackingToken("This tracked link was altered; it is not followed.")
    return message_id
