"""The tracking server: answers the open pixels and click links in sent emails.

Why a separate small server: the links in an email are fetched from the donor's
mail client (or their provider's image proxy, or a link scanner), so they need an
address reachable from the internet, while the Streamlit app usually is not. This
is a plain WSGI app on the standard library (no new dependency); run it with
``python -m lib track`` behind the public address in ``steward.tracking_base_url``.

Routes (paths from lib.tracking_links; the ``/t/...`` forms are the ones
lib.tracking.pixel_url and lib.tracking.tracked_link build):

- ``GET|HEAD /o/<token>.gif`` or ``/t/open?t=<token>``: records an open and returns
  a 1x1 transparent GIF that no one may cache.
- ``GET|HEAD /c/<token>?u=<url>&s=<sig>`` or ``/t/click?t=<token>&u=<url>&s=<sig>``:
  checks the signature over (token, url), records a click and redirects (302) to
  that url. A token or target Steward did not sign gets 400: never an open redirect.

Every event is kept and classified by lib.tracking (machine opens, link scanners),
using the sent time from ``sent_mail``/``drafts``. Logs hold one line per hit with
no token, Message-ID, address or link.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib.db import utcnow
from lib.tracking import (
    InvalidTrackingToken,
    read_tracked_link,
    read_tracking_token,
    record_click,
    record_open,
)
from lib.tracking_links import CLICK_PREFIX, OPEN_PREFIX, OPEN_SUFFIX

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600
# RFC 9110 4.1: servers should accept request targets of at least 8000 octets;
# longer ones are refused rather than parsed.
MAX_TARGET_CHARS = 8000
# User agents are stored with each event; anything longer than this is not one.
MAX_USER_AGENT_CHARS = 512
# A client that sends nothing for this long is dropped (threads are not held).
REQUEST_TIMEOUT_S = 10.0


def _one_pixel_gif() -> bytes:
    """A 1x1 transparent GIF, assembled from the GIF89a specification."""
    header = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)  # 2-colour table
    colours = b"\x00\x00\x00\xff\xff\xff"
    transparent = b"\x21\xf9\x04\x01" + struct.pack("<H", 0) + b"\x00\x00"
    image = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00"
    # LZW, minimum code size 2: clear (4), index 0, end (5) in 3-bit codes.
    pixels = b"\x02\x02\x44\x01\x00"
    return header + colours + transparent + image + pixels + b"\x3b"


PIXEL_GIF = _one_pixel_gif()

_NO_CACHE = [
    ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0, private"),
    ("Pragma", "no-cache"),
    ("Expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
]

StartResponse = Callable[..., Any]


class TrackingApp:
    """The WSGI application: signed tokens in, events recorded, pixel or redirect
    out. ``clock`` gives the time of each hit (injectable for tests)."""

    def __init__(
        self,
        engine: Engine,
        key: bytes,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._key = key
        self._clock = clock

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        kind, status, headers, body, verdict = self._answer(environ, method)
        log.info(
            "tracking hit: kind=%s method=%s status=%s %s ms=%d",
            kind,
            method[:8],
            status.split()[0],
            verdict,
            (time.monotonic() - started) * 1000,
        )
        headers = [*headers, ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [b"" if method == "HEAD" else body]

    # -- routing --------------------------------------------------------------------

    def _answer(
        self, environ: dict[str, Any], method: str
    ) -> tuple[str, str, list[tuple[str, str]], bytes, str]:
        """(kind, status, headers, body, what to log) for one request."""
        path = str(environ.get("PATH_INFO") or "/")
        query = str(environ.get("QUERY_STRING") or "")
        if method not in ("GET", "HEAD"):
            return (
                "other",
                "405 Method Not Allowed",
                [("Allow", "GET, HEAD"), *_text()],
                b"Only GET and HEAD are answered here.\n",
                "",
            )
        if len(path) + len(query) > MAX_TARGET_CHARS:
            return "other", "414 URI Too Long", _text(), b"Link too long.\n", ""
        try:
            params = _params(query)
        except ValueError:
            return _refused("other", "malformed query")
        if path.startswith(OPEN_PREFIX) and path.endswith(OPEN_SUFFIX):
            token = path[len(OPEN_PREFIX) : -len(OPEN_SUFFIX)]
            return self._open(environ, method, token)
        if path == "/t/open":
            return self._open(environ, method, params.get("t", ""))
        if path.startswith(CLICK_PREFIX):
            token = path[len(CLICK_PREFIX) :]
            return self._click(environ, method, token, params)
        if path == "/t/click":
            return self._click(environ, method, params.get("t", ""), params)
        return "other", "404 Not Found", _text(), b"Not found.\n", ""

    # -- the two events ---------------------------------------------------------------

    def _open(
        self, environ: dict[str, Any], method: str, token: str
    ) -> tuple[str, str, list[tuple[str, str]], bytes, str]:
        try:
            message_id = read_tracking_token(token, self._key)
        except InvalidTrackingToken:
            return _refused("open", "token not signed by Steward")
        # Limit: the sender viewing their own Sent copy is not recognised (no
        # session or IP is kept); in Gmail it comes through the image proxy and is
        # counted as a machine open, elsewhere it may count as a person.
        verdict = self._record(
            record_open, message_id, _user_agent(environ), method=method
        )
        headers = [("Content-Type", "image/gif"), *_NO_CACHE]
        return "open", "200 OK", headers, PIXEL_GIF, verdict

    def _click(
        self,
        environ: dict[str, Any],
        method: str,
        token: str,
        params: dict[str, str],
    ) -> tuple[str, str, list[tuple[str, str]], bytes, str]:
        target = params.get("u", "")
        try:
            message_id = read_tracked_link(
                token, target, params.get("s", ""), self._key
            )
        except InvalidTrackingToken:
            return _refused("click", "link not signed by Steward")
        if not _is_web_address(target):  # signed, so never expected; still refused
            return _refused("click", "target is not a web address")
        verdict = self._record(
            record_click, message_id, target, _user_agent(environ), method=method
        )
        headers = [
            ("Location", target),
            ("Referrer-Policy", "no-referrer"),  # the token stays with us
            *_text(),
        ]
        return "click", "302 Found", headers, b"Redirecting.\n", verdict

    def _record(
        self, record: Callable[..., tuple[bool, str]], *args: str, method: str
    ) -> str:
        """Store the event (``args``: the Message-ID, then for a click its target,
        then the user agent); a database failure is logged and the donor still
        gets the pixel or the page they asked for."""
        try:
            machine, reason = record(self._engine, *args, self._clock(), method=method)
        except SQLAlchemyError as exc:
            log.warning("tracking event not stored: %s", type(exc).__name__)
            return "recorded=no"
        return f"machine={'yes' if machine else 'no'} reason={reason or 'person'!r}"


def _text() -> list[tuple[str, str]]:
    return [("Content-Type", "text/plain; charset=utf-8"), *_NO_CACHE]


def _refused(kind: str, why: str) -> tuple[str, str, list[tuple[str, str]], bytes, str]:
    body = b"This tracking link is not valid.\n"
    return kind, "400 Bad Request", _text(), body, f"refused={why!r}"


def _params(query: str) -> dict[str, str]:
    """The query's parameters; ValueError when one is given twice (no guessing
    which one was signed) or the query is malformed."""
    parsed = parse_qs(query, keep_blank_values=True, max_num_fields=8)
    if any(len(values) != 1 for values in parsed.values()):
        raise ValueError("a parameter is repeated")
    return {name: values[0] for name, values in parsed.items()}


def _is_web_address(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme.lower() in ("http", "https")
        and bool(parts.netloc)
        and url.isascii()
        and url.isprintable()
        and " " not in url
    )


def _user_agent(environ: dict[str, Any]) -> str:
    return str(environ.get("HTTP_USER_AGENT") or "")[:MAX_USER_AGENT_CHARS]


# -- the server -------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """The standard handler without its access log (it would print tokens)."""

    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def make_tracking_server(
    engine: Engine,
    key: bytes,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> WSGIServer:
    """A threaded server for :class:`TrackingApp` bound to (host, port); port 0
    picks a free port (``server.server_port``). Call ``serve_forever()`` to run it
    and ``shutdown()`` then ``server_close()`` to stop. Raises OSError when the
    address is taken."""
    return make_server(
        host,
        port,
        TrackingApp(engine, key, clock=clock),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
