"""Tracking: machine opens and scanner clicks told apart (C18), signed tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from lib.db import utcnow
from lib.schema import sent_mail_table, tracking_events_table
from lib.services import Services
from lib.tracking import (
    InvalidTrackingToken,
    classify_click,
    classify_open,
    pixel_url,
    read_tracked_link,
    read_tracking_token,
    record_click,
    record_open,
    tracked_link,
    tracking_counts,
    tracking_key,
    tracking_token,
)

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MSG = "<c18.1@our-charity.example.org>"
GOOGLE_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
    "(via ggpht.com GoogleImageProxy)"
)
FIREFOX = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
)
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
APPLE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
KEY = tracking_key(b"0" * 44)


def events(services: Services) -> list[tuple]:
    t = tracking_events_table.c
    with services.engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(t.kind, t.user_agent, t.machine, t.reason, t.at).order_by(t.id)
            )
        ]


def test_c18_google_proxy_open_is_kept_but_machine(services: Services) -> None:
    at = SENT + timedelta(seconds=4)
    machine, reason = record_open(services.engine, MSG, GOOGLE_PROXY, at, SENT)
    assert machine and reason == "Google image proxy"
    ((kind, agent, stored_machine, stored_reason, stored_at),) = events(services)
    assert (kind, agent, stored_machine, stored_reason) == (
        "open",
        GOOGLE_PROXY,
        True,
        "Google image proxy",
    )
    assert stored_at.replace(tzinfo=UTC) == at
    counts = tracking_counts(services.engine).set_index("rfc_message_id")
    assert counts.loc[MSG, "human_opens"] == 0
    assert counts.loc[MSG, "machine_opens"] == 1


@pytest.mark.parametrize(
    ("agent", "seconds", "kwargs", "reason"),
    [
        (GOOGLE_PROXY, 7200, {}, "Google image proxy"),
        ("Mozilla/5.0", 7200, {}, "Apple Mail Privacy Protection"),
        (APPLE_MAIL, 7200, {}, "Apple Mail Privacy Protection"),
        (FIREFOX, 3, {}, "opened within 10 s of sending"),
        (FIREFOX, 7200, {"from_sender": True}, "sender viewing own copy"),
        ("", 7200, {}, "no user agent"),
        ("python-requests/2.32", 7200, {}, "script"),
        (FIREFOX, 7200, {"method": "HEAD"}, "HEAD request (link checker)"),
    ],
)
def test_machine_opens(agent: str, seconds: int, kwargs: dict, reason: str) -> None:
    assert classify_open(agent, SENT + timedelta(seconds=seconds), SENT, **kwargs) == (
        True,
        reason,
    )


@pytest.mark.parametrize("agent", [FIREFOX, SAFARI])
def test_person_opens(agent: str) -> None:
    assert classify_open(agent, SENT + timedelta(hours=2), SENT) == (False, "")
    assert classify_open(agent, SENT + timedelta(hours=2)) == (False, "")


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("Mozilla/5.0 SafeLinks/1.0", "Microsoft Safe Links"),
        ("Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Office", None),
        ("Proofpoint URL Defense", "Proofpoint URL defense"),
        ("Mimecast-URL-Protect/1.0", "Mimecast URL protection"),
        ("Barracuda Sentinel", "Barracuda link protection"),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0", "headless browser"),
        ("Googlebot/2.1", "bot"),
        ("curl/8.5.0", "script"),
    ],
)
def test_scanner_clicks(agent: str, reason: str | None) -> None:
    machine, why = classify_click(agent, SENT + timedelta(hours=1), SENT)
    assert machine
    if reason:
        assert why == reason


def test_click_timing_head_and_person() -> None:
    later = SENT + timedelta(hours=1)
    assert classify_click(FIREFOX, SENT + timedelta(seconds=5), SENT)[0]
    assert classify_click(FIREFOX, later, SENT, method="HEAD") == (
        True,
        "HEAD request (link checker)",
    )
    assert classify_click(FIREFOX, later, SENT, url="https://a.org/") == (False, "")


def test_burst_of_links_reclassifies_earlier_clicks(services: Services) -> None:
    start = SENT + timedelta(hours=1)
    record_click(services.engine, MSG, "https://x.org/a", FIREFOX, start, SENT)
    record_click(
        services.engine, MSG, "https://x.org/b", FIREFOX, start + timedelta(seconds=1)
    )
    machine, reason = record_click(
        services.engine,
        MSG,
        "https://x.org/c",
        FIREFOX,
        start + timedelta(seconds=2),
        SENT,
    )
    assert machine and reason == "many links clicked at once"
    assert [e[2] for e in events(services)] == [True, True, True]
    # A person clicking one link a day later still counts.
    person = record_click(
        services.engine, MSG, "https://x.org/a", FIREFOX, start + timedelta(days=1)
    )
    assert person == (False, "")
    counts = tracking_counts(services.engine).set_index("rfc_message_id")
    assert counts.loc[MSG, "scanner_clicks"] == 3
    assert counts.loc[MSG, "human_clicks"] == 1


def test_sent_time_is_looked_up(services: Services) -> None:
    sent = utcnow()
    with services.engine.begin() as conn:
        conn.execute(
            sent_mail_table.insert().values(
                mailbox="test:x",
                mailbox_message_id="id1",
                rfc_message_id=MSG,
                sent_at=sent,
                seen_at=sent,
            )
        )
    assert record_open(services.engine, MSG, FIREFOX, sent + timedelta(seconds=2))[0]
    assert not record_open(services.engine, MSG, FIREFOX, sent + timedelta(hours=1))[0]
    counts = tracking_counts(services.engine)
    assert counts[["human_opens", "machine_opens"]].values.tolist() == [[1, 1]]


def test_tokens_round_trip_and_refuse_tampering() -> None:
    token = tracking_token(MSG, KEY)
    assert read_tracking_token(token, KEY) == MSG
    body, _, signature = token.partition(".")
    other = tracking_token("<other@x.org>", KEY)
    forged = f"{other.partition('.')[0]}.{signature}"
    for bad in (
        forged,
        body,
        f"{body}.",
        "not-a-token",
        "",
        f"{body}.{signature[:-2]}AA",
    ):
        with pytest.raises(InvalidTrackingToken):
            read_tracking_token(bad, KEY)
    with pytest.raises(InvalidTrackingToken):
        read_tracking_token(token, tracking_key(b"1" * 44))


def test_tracked_link_and_pixel() -> None:
    token = tracking_token(MSG, KEY)
    url = "https://our-charity.example.org/give?fund=gala&x=1"
    link = tracked_link("https://steward.example.org/", token, url, key=KEY)
    parts = urlsplit(link)
    assert parts.path == "/t/click"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["u"] == url
    assert read_tracked_link(query["t"], query["u"], query["s"], KEY) == MSG
    with pytest.raises(InvalidTrackingToken):
        read_tracked_link(query["t"], "https://evil.example/", query["s"], KEY)
    with pytest.raises(InvalidTrackingToken):
        tracked_link("https://s.example", token, "javascript:alert(1)", key=KEY)
    pixel = pixel_url("https://steward.example.org", token)
    assert parse_qs(urlsplit(pixel).query)["t"] == [token]
