"""The tracking server, for real on 127.0.0.1: pixels, redirects, refusals, and
the counts reaching the sync dashboard."""

from __future__ import annotations

import io
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy
from http.client import HTTPMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from PIL import Image
from sqlalchemy import select

from lib.cli import build_parser, main
from lib.crm.sandbox import SandboxCrm
from lib.dashboard import sync_table
from lib.db import utcnow
from lib.models import CrmRecord
from lib.schema import tracking_events_table
from lib.services import Services
from lib.sync import sync_all
from lib.tracking import pixel_url, tracked_link, tracking_token
from lib.tracking_links import click_url, open_url, signing_key
from lib.tracking_server import PIXEL_GIF, make_tracking_server
from tests.test_message_tracking import BODY, GALA, NEWS, Tags, parts, send_one
from tests.test_message_tracking import tracked_services as tracked

MSG = "<5f.a1@our-charity.example.org>"
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0"
GOOGLE_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com "
    "GoogleImageProxy)"
)
TIMEOUT_S = 5.0


@dataclass
class Clock:
    """The server's idea of now, moved by the test."""

    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Running:
    base: str
    key: bytes
    clock: Clock


@pytest.fixture
def server(services: Services) -> Iterator[Running]:
    clock = Clock()
    key = signing_key(services.settings)
    httpd = make_tracking_server(services.engine, key, "127.0.0.1", 0, clock=clock)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield Running(f"http://127.0.0.1:{httpd.server_port}", key, clock)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT_S)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(
    url: str, agent: str = FIREFOX, method: str = "GET"
) -> tuple[int, HTTPMessage, bytes]:
    """(status, headers, body) without following redirects."""
    request = urllib.request.Request(url, method=method, headers={"User-Agent": agent})
    try:
        with _OPENER.open(request, timeout=TIMEOUT_S) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read()


def events(services: Services) -> list[tuple[str, str | None, bool, str, str]]:
    t = tracking_events_table.c
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(t.kind, t.url, t.machine, t.reason, t.user_agent).order_by(t.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_pixel_records_an_open(services: Services, server: Running) -> None:
    server.clock.now += timedelta(hours=2)  # long after any send: a person
    token = tracking_token(MSG, server.key)
    status, headers, body = fetch(open_url(server.base, token))
    assert status == 200 and headers["Content-Type"] == "image/gif"
    assert "no-store" in headers["Cache-Control"] and headers["Pragma"] == "no-cache"
    assert body == PIXEL_GIF
    image = Image.open(io.BytesIO(body))
    assert image.size == (1, 1)
    assert image.convert("RGBA").getpixel((0, 0))[3] == 0  # transparent
    assert events(services) == [("open", None, False, "", FIREFOX)]
    # lib.tracking's own pixel URL form is answered too.
    assert fetch(pixel_url(server.base, token))[0] == 200
    assert len(events(services)) == 2


def test_google_image_proxy_is_a_machine_open(
    services: Services, server: Running
) -> None:
    server.clock.now += timedelta(hours=2)
    fetch(open_url(server.base, tracking_token(MSG, server.key)), GOOGLE_PROXY)
    assert events(services) == [
        ("open", None, True, "Google image proxy", GOOGLE_PROXY)
    ]


def test_click_redirects_to_the_signed_url(services: Services, server: Running) -> None:
    server.clock.now += timedelta(hours=2)
    token = tracking_token(MSG, server.key)
    status, headers, _ = fetch(click_url(server.base, token, GALA, key=server.key))
    assert status == 302 and headers["Location"] == GALA
    assert headers["Referrer-Policy"] == "no-referrer"
    assert len(headers.get_all("Cache-Control") or []) == 1
    assert "no-store" in headers["Cache-Control"]
    assert events(services) == [("click", GALA, False, "", FIREFOX)]
    # lib.tracking's own tracked_link form redirects the same way.
    other = "https://our-charity.example.org/give"
    status, headers, _ = fetch(tracked_link(server.base, token, other, key=server.key))
    assert (status, headers["Location"]) == (302, other)


def test_tampered_links_are_refused(services: Services, server: Running) -> None:
    token = tracking_token(MSG, server.key)
    good = urlsplit(click_url(server.base, token, GALA, key=server.key))
    query = {k: v[0] for k, v in parse_qs(good.query).items()}
    evil = "https://evil.example/login"
    foreign = tracking_token(MSG, b"someone else's key")
    other_message = tracking_token("<other@our-charity.example.org>", server.key)

    def click(path_token: str, target: str, signature: str) -> str:
        q = urlencode({"u": target, "s": signature}, quote_via=quote)
        return f"{server.base}/c/{path_token}?{q}"

    refused = [
        click(token, evil, query["s"]),  # another target
        click(token, GALA + "#x", query["s"]),  # the target altered
        click(other_message, GALA, query["s"]),  # the token swapped
        click(foreign, GALA, query["s"]),  # a token signed with another key
        click(token, GALA, ""),  # no signature
        f"{server.base}{good.path}?{good.query}&u={quote(evil)}",  # u given twice
        open_url(server.base, foreign),
        open_url(server.base, "garbage"),
        f"{server.base}/o/.gif",
    ]
    for url in refused:
        status, headers, body = fetch(url)
        assert status == 400, url
        assert "Location" not in headers
        assert b"not valid" in body
    assert events(services) == []


def test_head_requests_count_as_machines(services: Services, server: Running) -> None:
    server.clock.now += timedelta(hours=2)
    token = tracking_token(MSG, server.key)
    status, headers, body = fetch(
        click_url(server.base, token, GALA, key=server.key), method="HEAD"
    )
    assert (status, headers["Location"], body) == (302, GALA, b"")
    status, headers, body = fetch(open_url(server.base, token), method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(PIXEL_GIF)))
    reason = "HEAD request (link checker)"
    assert [
        (kind, machine, why) for kind, _u, machine, why, _a in events(services)
    ] == [
        ("click", True, reason),
        ("open", True, reason),
    ]


def test_other_requests(services: Services, server: Running) -> None:
    token = tracking_token(MSG, server.key)
    assert fetch(f"{server.base}/", method="GET")[0] == 404
    assert fetch(f"{server.base}/c/", method="GET")[0] == 400
    status, headers, _ = fetch(open_url(server.base, token), method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert fetch(f"{server.base}/o/{'A' * 9000}.gif")[0] == 414
    assert events(services) == []


def test_hits_are_logged_without_tokens_or_links(
    services: Services, server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    token = tracking_token(MSG, server.key)
    with caplog.at_level(logging.INFO, logger="lib.tracking_server"):
        fetch(open_url(server.base, token), GOOGLE_PROXY)
        fetch(click_url(server.base, token, GALA, key=server.key))
        fetch(open_url(server.base, "forged"))
    lines = [r.getMessage() for r in caplog.records if r.name == "lib.tracking_server"]
    assert len(lines) == 3
    assert "kind=open" in lines[0] and "Google image proxy" in lines[0]
    assert "status=302" in lines[1] and "status=400" in lines[2]
    for line in lines:
        for secret in (token, token.split(".")[0], MSG, GALA, "our-charity"):
            assert secret not in line


# -- end to end: send with tracking on, hit the links, see the dashboard ----------


def test_tracked_send_reaches_the_dashboard(
    services: Services, server: Running
) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("recAnn", "Ann Lee", ("ann@example.org",))])
    sending = tracked(services, server.base)
    raw = send_one(sending, BODY)
    message_id = str(BytesParser(policy=default_policy).parsebytes(raw)["Message-ID"])
    tags = Tags(parts(raw)[1])
    pixel = str(tags.images[0]["src"])
    links = {text: href for href, text in tags.links}
    gala_link, news_link = links[GALA], links[NEWS]
    assert pixel.startswith(server.base) and gala_link.startswith(server.base)

    # Google's proxy fetches at delivery, a scanner follows a link at once.
    server.clock.now = utcnow() + timedelta(seconds=2)
    fetch(pixel, GOOGLE_PROXY)
    assert fetch(news_link)[0] == 302  # seconds after sending: a scanner
    # The donor, an hour later, opens and clicks.
    server.clock.now = utcnow() + timedelta(hours=1)
    assert fetch(pixel)[0] == 200
    status, headers, _ = fetch(gala_link)
    assert (status, headers["Location"]) == (302, GALA)

    sync_all(sending)
    table = sync_table(services.engine, crm.read_log())
    (row,) = table[table["message_id"] == message_id].itertuples()
    assert (row.opens, row.machine_opens) == (1, 1)
    assert (row.clicks, row.scanner_clicks) == (1, 1)
    assert row.recipient == "ann@example.org" and row.status == "logged"


def test_tracked_links_of_another_installation_are_refused(
    services: Services, server: Running, tmp_path: Path
) -> None:
    other_key = signing_key(replace(services.settings, data_dir=tmp_path / "other"))
    assert other_key != server.key
    token = tracking_token(MSG, other_key)
    assert fetch(click_url(server.base, token, GALA, key=other_key))[0] == 400
    assert fetch(open_url(server.base, token))[0] == 400
    assert events(services) == []


# -- the command ------------------------------------------------------------------


def test_track_command(services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["track"])
    assert (args.host, args.port) == ("127.0.0.1", 8600)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["track", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "tracking_base_url is not set" in err
    assert f"Cannot listen on 127.0.0.1:{port}" in err
