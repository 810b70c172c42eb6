"""A local stand-in for Google's OAuth endpoints and Gmail's REST API, so tests and
the benchmark run the real google-api-python-client and google-auth-oauthlib over
real HTTP without the internet.

What it checks: every Gmail request against the discovery document shipped inside
google-api-python-client (HTTP method, path, required and known parameters, enum
values, the method's scopes against the bearer token's grant); every sent ``raw``
message is decoded and parsed with the stdlib email parser; PKCE (S256), the exact
redirect URI, one-use codes and client credentials on the token endpoint. Anything
wrong is answered 400 and kept in :attr:`FakeGoogle.violations`.

What it serves: the OAuth authorize endpoint (a direct redirect with ``code`` and
``state``, or with ``error``), token (code and refresh grants), revoke; Gmail
getProfile, messages.send / list / get, history.list (paging, 404 for expired
ids) and batch requests (multipart/mixed at /batch/gmail/v1, at most 100 parts).
A mailbox can hold any number of synthetic sent messages, generated on demand
(the benchmark uses 100,000). Faults can be injected (429 storms, 500s, 403
reasons). Every request is recorded, so tests can count them and check that no
drafts endpoint was ever called.

Listens on 127.0.0.1 on a free port, in a thread; use it as a context manager.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import googleapiclient
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

DISCOVERY = (
    Path(googleapiclient.__file__).parent
    / "discovery_cache"
    / "documents"
    / "gmail.v1.json"
)
CLIENT_ID = "steward-test.apps.googleusercontent.com"
CLIENT_SECRET = "test-client-secret"
REDIRECT_URI = "http://localhost:8501/connect"
MAX_BATCH_PARTS = 100  # Google's limit per batch request
HISTORY_BASE = 1000
MAX_HTTP_REQUESTS = 20_000  # safety net: no test or benchmark needs more


# -- the discovery document ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method_id: str
    http_method: str
    pattern: re.Pattern[str]
    parameters: dict[str, dict[str, Any]]
    scopes: tuple[str, ...]


def _routes() -> tuple[list[Route], dict[str, dict[str, Any]]]:
    doc = json.loads(DISCOVERY.read_text())
    routes: list[Route] = []

    def walk(resource: dict[str, Any]) -> None:
        for method in resource.get("methods", {}).values():
            paths = [method.get("flatPath") or method["path"]]
            simple = method.get("mediaUpload", {}).get("protocols", {}).get("simple")
            if simple:
                paths.append(simple["path"].lstrip("/"))
            for path in paths:
                regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
                routes.append(
                    Route(
                        method["id"],
                        method["httpMethod"],
                        re.compile(f"^{regex}$"),
                        method.get("parameters", {}),
                        tuple(method.get("scopes", [])),
                    )
                )
        for child in resource.get("resources", {}).values():
            walk(child)

    walk(doc)
    return routes, doc["parameters"]


ROUTES, GLOBAL_PARAMETERS = _routes()


# -- recorded traffic and faults -----------------------------------------------------


@dataclass
class Recorded:
    """One request the server answered."""

    http_method: str
    path: str
    query: dict[str, list[str]]
    status: int = 0
    method_id: str | None = None
    in_batch: bool = False


@dataclass
class Fault:
    """Answer the next ``count`` calls whose method id contains ``match`` (or
    "batch" for the batch request itself) with an error."""

    status: int
    reason: str
    count: int
    match: str = ""
    message: str = "Injected fault"
    retry_after: float | None = None
    after_handling: bool = False  # do the work, then answer the error (lost reply)


class _Problem(Exception):
    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.retry_after = retry_after


def _error_body(status: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


# -- one user's Sent folder ----------------------------------------------------------


@dataclass
class _Stored:
    id: str
    thread_id: str
    history_id: int
    internal_ms: int
    raw: bytes
    parsed: tuple[list[tuple[str, str]], list[tuple[str, str]], str] | None = None


class FakeMailbox:
    """The Sent folder of one user: ``synthetic`` generated messages (oldest first)
    followed by the messages actually sent or added."""

    def __init__(self, email: str, synthetic: int = 0) -> None:
        self.email = email
        self.synthetic = synthetic
        self.base_ms = int(time.time() * 1000) - (synthetic + 3600) * 1000
        self.stored: list[_Stored] = []
        self._positions: dict[str, int] = {}  # stored id -> position
        self._threads: set[str] = set()
        self.history_floor = 0  # start ids below this answer 404
        self.decode_headers = True  # hand back decoded header values, as Gmail does

    # positions 0..total-1, oldest first; history ids and dates grow with position
    @property
    def total(self) -> int:
        return self.synthetic + len(self.stored)

    @property
    def history_id(self) -> int:
        return HISTORY_BASE + self.total

    def history_of(self, position: int) -> int:
        return HISTORY_BASE + position + 1

    def date_of(self, position: int) -> int:
        if position < self.synthetic:
            return self.base_ms + position * 1000
        return self.stored[position - self.synthetic].internal_ms

    def id_of(self, position: int) -> str:
        if position < self.synthetic:
            return f"5{position:015x}"
        return self.stored[position - self.synthetic].id

    def thread_of(self, position: int) -> str:
        if position < self.synthetic:
            return self.id_of(position)
        return self.stored[position - self.synthetic].thread_id

    def position(self, message_id: str) -> int | None:
        if message_id.startswith("5") and len(message_id) == 16:
            try:
                index = int(message_id[1:], 16)
            except ValueError:
                return None
            return index if index < self.synthetic else None
        offset = self._positions.get(message_id)
        return None if offset is None else self.synthetic + offset

    def _synthetic_headers(self, position: int) -> list[tuple[str, str]]:
        domain = self.email.rsplit("@", 1)[-1]
        return [
            ("From", self.email),
            ("To", f"donor{position}@example.net"),
            ("Subject", f"Thank you, donor {position}"),
            ("Message-ID", f"<synthetic-{position}@{domain}>"),
            ("Date", "Mon, 01 Dec 2025 10:00:00 +0000"),
        ]

    def raw_of(self, position: int) -> bytes:
        if position >= self.synthetic:
            return self.stored[position - self.synthetic].raw
        head = "".join(f"{k}: {v}\r\n" for k, v in self._synthetic_headers(position))
        return f"{head}\r\nThank you for your gift, donor {position}.\r\n".encode()

    def add(self, raw: bytes, thread_id: str | None = None) -> _Stored:
        message_id = f"a{secrets.randbits(60):015x}"
        last = self.date_of(self.total - 1) if self.total else 0
        stored = _Stored(
            id=message_id,
            thread_id=thread_id or message_id,
            history_id=self.history_id + 1,
            internal_ms=max(int(time.time() * 1000), last + 1),
            raw=raw,
        )
        self._positions[message_id] = len(self.stored)
        self._threads.add(stored.thread_id)
        self.stored.append(stored)
        return stored

    def has_thread(self, thread_id: str) -> bool:
        return thread_id in self._threads or self.position(thread_id) is not None

    def first_after(self, epoch_s: int) -> int:
        """The first position sent after ``epoch_s`` (dates only grow)."""
        key = epoch_s * 1000
        return bisect.bisect_right(range(self.total), key, key=self.date_of)

    def resource(self, position: int, fmt: str, headers: list[str]) -> dict[str, Any]:
        raw = self.raw_of(position)
        resource: dict[str, Any] = {
            "id": self.id_of(position),
            "threadId": self.thread_of(position),
            "labelIds": ["SENT"],
            "historyId": str(self.history_of(position)),
            "internalDate": str(self.date_of(position)),
            "sizeEstimate": len(raw),
        }
        if fmt == "raw":
            resource["raw"] = base64.urlsafe_b64encode(raw).decode("ascii")
        if fmt in ("metadata", "full"):
            pairs, snippet = self._headers_and_snippet(position)
            wanted = {h.lower() for h in headers}
            resource["snippet"] = snippet.replace("'", "&#39;")
            resource["payload"] = {
                "headers": [
                    {"name": name, "value": value}
                    for name, value in pairs
                    if not wanted or name.lower() in wanted
                ],
            }
        return resource

    def _headers_and_snippet(self, position: int) -> tuple[list[tuple[str, str]], str]:
        if position < self.synthetic:
            return self._synthetic_headers(position), f"Thank you, donor {position}."
        stored = self.stored[position - self.synthetic]
        if stored.parsed is None:  # parse once: Gmail indexes a message on arrival
            stored.parsed = _index(
                BytesParser(policy=policy.default).parsebytes(stored.raw)
            )
        decoded, raw_values, snippet = stored.parsed
        return (decoded if self.decode_headers else raw_values), snippet


# -- the server ----------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class FakeGoogle:
    """Google's OAuth endpoints and Gmail API for a few users, on 127.0.0.1."""

    def __init__(
        self,
        users: tuple[str, ...] = ("ann@example.org",),
        *,
        synthetic: int = 0,
        redirect_uri: str = REDIRECT_URI,
    ) -> None:
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.redirect_uri = redirect_uri
        self.mailboxes = {u: FakeMailbox(u, synthetic) for u in users}
        self.login_user = users[0]
        # How the next sign-in goes.
        self.authorize_error: str | None = None
        self.grant_only: list[str] | None = None  # the person unticks the others
        self.earlier_grants: dict[str, set[str]] = {}  # added by include_granted
        self.issue_refresh_tokens = True
        self.access_token_lifetime_s = 3600
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.sent: list[EmailMessage] = []
        self._http_count = 0
        self._local = threading.local()  # Retry-After of this thread's answer
        self._codes: dict[str, dict[str, Any]] = {}
        self._refresh: dict[str, dict[str, Any]] = {}
        self._access: dict[str, dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    # -- lifecycle and settings -----------------------------------------------------

    def __enter__(self) -> FakeGoogle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def gmail_section(self, **overrides: Any) -> dict[str, Any]:
        """A [gmail] settings section pointing at this server."""
        section = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uri": self.redirect_uri,
            "auth_uri": f"{self.url}/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "revoke_uri": f"{self.url}/revoke",
            "api_endpoint": f"{self.url}/",
        }
        section.update(overrides)
        return section

    # -- test helpers ---------------------------------------------------------------

    def http_requests(self, *, since: int = 0) -> list[Recorded]:
        """Top-level HTTP requests (a batch counts once)."""
        return [r for r in self.requests[since:] if not r.in_batch]

    def calls(self, method_id: str) -> list[Recorded]:
        return [r for r in self.requests if r.method_id == method_id]

    def drafts_calls(self) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if "drafts" in r.path or ".drafts." in (r.method_id or "")
        ]

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def expire_history(self, user: str | None = None) -> None:
        """Every history id up to now becomes too old (answers 404)."""
        box = self.mailboxes[user or self.login_user]
        box.history_floor = box.history_id

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self._access.values():
                token["expires"] = 0.0

    def revoke_everything(self, user: str | None = None) -> None:
        """What a password change or the 7-day testing limit does."""
        with self._lock:
            for grant in self._refresh.values():
                if user is None or grant["user"] == user:
                    grant["revoked"] = True

    def live_refresh_tokens(self, user: str) -> int:
        return sum(
            1 for g in self._refresh.values() if g["user"] == user and not g["revoked"]
        )

    # -- WSGI -----------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except Exception as exc:  # a bug in the fake: say so loudly in the test
            self.violations.append(f"fake server crashed: {exc!r}")
            response = Response(str(exc), status=500)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        self._http_count += 1
        if self._http_count > MAX_HTTP_REQUESTS:
            self.violations.append("more HTTP requests than any test needs")
            return Response("too many requests for a test", status=503)
        if path == "/o/oauth2/auth":
            return self._authorize(request)
        if path == "/token":
            return self._token(request)
        if path == "/revoke":
            return self._revoke(request)
        if path == "/batch/gmail/v1":
            return self._batch(request)
        query = parse_qs(request.query_string.decode(), keep_blank_values=True)
        self._local.retry_after = None
        status, body = self._api(
            request.method,
            path,
            query,
            request.headers.get("Authorization", ""),
            request.get_data(),
            in_batch=False,
        )
        response = _json_response(status, body)
        if self._local.retry_after is not None:
            response.headers["Retry-After"] = str(int(self._local.retry_after))
        return response

    # -- OAuth ----------------------------------------------------------------------

    def _record(self, request: Request, status: int, in_batch: bool = False) -> None:
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                parse_qs(request.query_string.decode()),
                status,
                None,
                in_batch,
            )
        )

    def _authorize(self, request: Request) -> Response:
        args = request.args
        problems = []
        if args.get("client_id") != self.client_id:
            problems.append("unknown client_id")
        if args.get("redirect_uri") != self.redirect_uri:
            problems.append("redirect_uri_mismatch")
        if args.get("response_type") != "code":
            problems.append("response_type must be code")
        if args.get("code_challenge_method") != "S256" or not args.get(
            "code_challenge"
        ):
            problems.append("PKCE S256 challenge missing")
        if not args.get("state") or not args.get("scope"):
            problems.append("state and scope are required")
        if problems:
            self.violations.extend(f"authorize: {p}" for p in problems)
            self._record(request, 400)
            return Response("; ".join(problems), status=400)
        user = self.login_user
        state = args["state"]
        if self.authorize_error:
            self._record(request, 302)
            return _redirect(
                self.redirect_uri, {"error": self.authorize_error, "state": state}
            )
        asked = args["scope"].split()
        granted = set(self.grant_only if self.grant_only is not None else asked)
        if args.get("include_granted_scopes") == "true":
            granted |= self.earlier_grants.get(user, set())
        offline = args.get("access_type") == "offline"
        consent = "consent" in args.get("prompt", "").split()
        first_time = user not in self.earlier_grants
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "user": user,
                "scopes": sorted(granted),
                "challenge": args["code_challenge"],
                "redirect_uri": args["redirect_uri"],
                "refresh": offline
                and (consent or first_time)
                and self.issue_refresh_tokens,
            }
            self.earlier_grants.setdefault(user, set()).update(granted)
        self._record(request, 302)
        return _redirect(
            self.redirect_uri,
            {"state": state, "code": code, "scope": " ".join(sorted(granted))},
        )

    def _client_ok(self, request: Request) -> bool:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            return (auth.username, auth.password) == (
                self.client_id,
                self.client_secret,
            )
        form = request.form
        return (form.get("client_id"), form.get("client_secret")) == (
            self.client_id,
            self.client_secret,
        )

    def _token(self, request: Request) -> Response:
        form = request.form
        if request.method != "POST":
            return self._oauth_error(request, 405, "invalid_request")
        if not self._client_ok(request):
            return self._oauth_error(request, 401, "invalid_client")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            with self._lock:
                code = self._codes.pop(form.get("code", ""), None)
            if code is None:
                return self._oauth_error(request, 400, "invalid_grant", "Bad code")
            if form.get("redirect_uri") != code["redirect_uri"]:
                self.violations.append("token: redirect_uri differs from authorize")
                return self._oauth_error(request, 400, "redirect_uri_mismatch")
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            if challenge != code["challenge"]:
                self.violations.append("token: PKCE verifier does not match")
                return self._oauth_error(
                    request, 400, "invalid_grant", "Invalid code verifier."
                )
            body = self._new_access(code["user"], code["scopes"])
            if code["refresh"]:
                refresh = "1//" + secrets.token_urlsafe(32)
                self._refresh[refresh] = {
                    "user": code["user"],
                    "scopes": code["scopes"],
                    "revoked": False,
                }
                body["refresh_token"] = refresh
            if "openid" in code["scopes"]:
                body["id_token"] = self._id_token(code["user"])
            self._record(request, 200)
            return _json_response(200, body)
        if grant == "refresh_token":
            grant_info = self._refresh.get(form.get("refresh_token", ""))
            if grant_info is None or grant_info["revoked"]:
                return self._oauth_error(
                    request,
                    400,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                )
            self._record(request, 200)
            return _json_response(
                200, self._new_access(grant_info["user"], grant_info["scopes"])
            )
        return self._oauth_error(request, 400, "unsupported_grant_type")

    def _new_access(self, user: str, scopes: list[str]) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self._access[token] = {
                "user": user,
                "scopes": set(scopes),
                "expires": time.time() + self.access_token_lifetime_s,
            }
        return {
            "access_token": token,
            "expires_in": self.access_token_lifetime_s,
            "token_type": "Bearer",
            "scope": " ".join(scopes),
        }

    def _id_token(self, user: str) -> str:
        def part(data: dict[str, Any]) -> str:
            raw = json.dumps(data).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": self.client_id,
            "sub": hashlib.sha256(user.encode()).hexdigest()[:20],
            "email": user,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        }
        return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"

    def _revoke(self, request: Request) -> Response:
        token = request.form.get("token") or request.args.get("token", "")
        with self._lock:
            if token in self._refresh and not self._refresh[token]["revoked"]:
                grant = self._refresh[token]
                grant["revoked"] = True
                for access in self._access.values():
                    if access["user"] == grant["user"]:
                        access["expires"] = 0.0
                self._record(request, 200)
                return _json_response(200, {})
            if token in self._access:
                self._access.pop(token)
                self._record(request, 200)
                return _json_response(200, {})
        return self._oauth_error(request, 400, "invalid_token", "Token expired")

    def _oauth_error(
        self, request: Request, status: int, error: str, description: str = ""
    ) -> Response:
        self._record(request, status)
        body = {"error": error, "error_description": description or error}
        return _json_response(status, body)

    # -- Gmail ----------------------------------------------------------------------

    def _route(self, http_method: str, path: str) -> Route | None:
        candidates = [r for r in ROUTES if r.pattern.match(path)]
        for route in candidates:
            if route.http_method == http_method:
                return route
        if candidates:
            raise _Problem(405, "badRequest", f"{http_method} not allowed on {path}")
        return None

    def _check(self, route: Route, path: str, query: dict[str, list[str]]) -> None:
        match = route.pattern.match(path)
        assert match is not None
        given = dict(match.groupdict())
        for name, values in query.items():
            spec = route.parameters.get(name) or GLOBAL_PARAMETERS.get(name)
            if spec is None:
                raise _Problem(400, "badRequest", f"unknown parameter {name}")
            if len(values) > 1 and not spec.get("repeated"):
                raise _Problem(400, "badRequest", f"{name} is not repeated")
            for value in values:
                if "enum" in spec and value not in spec["enum"]:
                    raise _Problem(400, "badRequest", f"bad {name} value {value!r}")
                if spec.get("type") == "integer" and not value.isdigit():
                    raise _Problem(400, "badRequest", f"{name} must be an integer")
            given[name] = values[0]
        for name, spec in route.parameters.items():
            if spec.get("required") and name not in given:
                raise _Problem(400, "badRequest", f"missing required {name}")

    def _api(
        self,
        http_method: str,
        full_path: str,
        query: dict[str, list[str]],
        authorization: str,
        body: bytes,
        *,
        in_batch: bool,
    ) -> tuple[int, dict[str, Any]]:
        record = Recorded(http_method, full_path, query, in_batch=in_batch)
        self.requests.append(record)
        path = full_path.lstrip("/")
        try:
            route = self._route(http_method, path)
            if route is None:
                raise _Problem(404, "notFound", f"no Gmail method at {full_path}")
            record.method_id = route.method_id
            self._check(route, path, query)
            user = self._authorised_user(authorization, route)
            self._fault(route.method_id)
            match = route.pattern.match(path)
            assert match is not None
            if match.group("userId") not in ("me", user):
                raise _Problem(403, "forbidden", "Delegation denied")
            answer = self._handle(route.method_id, user, match, query, body)
            self._fault(route.method_id, after_handling=True)
            record.status = 200
            return 200, answer
        except _Problem as problem:
            if problem.status == 400:
                self.violations.append(f"{http_method} {full_path}: {problem.message}")
            record.status = problem.status
            self._local.retry_after = problem.retry_after
            return problem.status, _error_body(
                problem.status, problem.reason, problem.message
            )

    def _authorised_user(self, authorization: str, route: Route) -> str:
        token = authorization.removeprefix("Bearer ").strip()
        access = self._access.get(token)
        if access is None or access["expires"] <= time.time():
            raise _Problem(401, "authError", "Invalid Credentials")
        if not access["scopes"] & set(route.scopes):
            raise _Problem(
                403,
                "insufficientPermissions",
                "Request had insufficient authentication scopes.",
            )
        return str(access["user"])

    def _fault(self, method_id: str, *, after_handling: bool = False) -> None:
        with self._lock:
            for fault in self.faults:
                if fault.after_handling != after_handling:
                    continue
                if fault.count > 0 and fault.match in method_id:
                    fault.count -= 1
                    raise _Problem(
                        fault.status, fault.reason, fault.message, fault.retry_after
                    )

    def _handle(
        self,
        method_id: str,
        user: str,
        match: re.Match[str],
        query: dict[str, list[str]],
        body: bytes,
    ) -> dict[str, Any]:
        box = self.mailboxes[user]
        arg = {k: v[0] for k, v in query.items()}
        if method_id == "gmail.users.getProfile":
            return {
                "emailAddress": user,
                "messagesTotal": box.total,
                "threadsTotal": box.total,
                "historyId": str(box.history_id),
            }
        if method_id == "gmail.users.messages.send":
            return self._send(box, body)
        if method_id == "gmail.users.messages.list":
            return self._list(box, arg)
        if method_id == "gmail.users.messages.get":
            position = box.position(match.group("id"))
            if position is None:
                raise _Problem(404, "notFound", "Requested entity was not found.")
            headers = query.get("metadataHeaders", [])
            return box.resource(position, arg.get("format", "full"), headers)
        if method_id == "gmail.users.history.list":
            return self._history(box, arg)
        raise _Problem(501, "notImplemented", f"{method_id} is not in this fake")

    def _send(self, box: FakeMailbox, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
            raw = base64.urlsafe_b64decode(payload["raw"] + "=" * 4)
        except (ValueError, KeyError, TypeError) as exc:
            raise _Problem(400, "invalidArgument", f"raw is required: {exc}") from exc
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        recipients = [
            a
            for name in ("To", "Cc", "Bcc")
            for header in message.get_all(name) or []
            for a in header.addresses
        ]
        if not message["From"] or not recipients:
            raise _Problem(400, "invalidArgument", "Recipient address required")
        if len(recipients) > 100:
            raise _Problem(400, "invalidArgument", "Too many recipients")
        thread = payload.get("threadId")
        if thread and not box.has_thread(thread):
            thread = None
        with self._lock:
            stored = box.add(raw, thread)
            stored.parsed = _index(message)
            self.sent.append(message)
        return {"id": stored.id, "threadId": stored.thread_id, "labelIds": ["SENT"]}

    def _list(self, box: FakeMailbox, arg: dict[str, str]) -> dict[str, Any]:
        if arg.get("labelIds") not in (None, "SENT"):
            raise _Problem(400, "badRequest", "this fake holds only SENT")
        q = arg.get("q", "")
        first = 0
        if q.startswith("rfc822msgid:"):
            wanted = q.removeprefix("rfc822msgid:").strip().strip("<>")
            hits = [
                p
                for p in range(box.total - 1, -1, -1)
                if _message_id(box.raw_of(p)) == wanted
            ]
            return {
                "messages": [
                    {"id": box.id_of(p), "threadId": box.thread_of(p)} for p in hits
                ],
                "resultSizeEstimate": len(hits),
            }
        if q.startswith("after:"):
            first = box.first_after(int(q.removeprefix("after:")))
        elif q:
            raise _Problem(400, "badRequest", f"this fake does not search {q!r}")
        size = min(int(arg.get("maxResults", 100)), 500)
        offset = int(arg.get("pageToken", 0))
        newest = box.total - 1 - offset
        page = range(newest, max(newest - size, first - 1), -1)
        answer: dict[str, Any] = {
            "messages": [
                {"id": box.id_of(p), "threadId": box.thread_of(p)} for p in page
            ],
            "resultSizeEstimate": box.total - first,
        }
        if page and page[-1] > first:
            answer["nextPageToken"] = str(offset + size)
        return answer

    def _history(self, box: FakeMailbox, arg: dict[str, str]) -> dict[str, Any]:
        start = int(arg["startHistoryId"])
        if start < box.history_floor:
            raise _Problem(404, "notFound", "Requested entity was not found.")
        if arg.get("labelId") not in (None, "SENT"):
            raise _Problem(400, "badRequest", "this fake holds only SENT")
        size = min(int(arg.get("maxResults", 100)), 500)
        offset = int(arg.get("pageToken", 0))
        first = bisect.bisect_right(range(box.total), start, key=box.history_of)
        positions = range(first + offset, min(first + offset + size, box.total))
        records = []
        for p in positions:
            message = {"id": box.id_of(p), "threadId": box.thread_of(p)}
            records.append(
                {
                    "id": str(box.history_of(p)),
                    "messages": [message],
                    "messagesAdded": [{"message": {**message, "labelIds": ["SENT"]}}],
                }
            )
        answer: dict[str, Any] = {"historyId": str(box.history_id)}
        if records:
            answer["history"] = records
        if positions and positions[-1] < box.total - 1:
            answer["nextPageToken"] = str(offset + size)
        return answer

    # -- batch ----------------------------------------------------------------------

    def _batch(self, request: Request) -> Response:
        record = Recorded(request.method, request.path, {}, method_id="batch")
        self.requests.append(record)
        content_type = request.headers.get("Content-Type", "")
        if request.method != "POST" or not content_type.startswith("multipart/mixed"):
            self.violations.append("batch: not a multipart/mixed POST")
            record.status = 400
            return _json_response(400, _error_body(400, "badRequest", "bad batch"))
        envelope = BytesParser(policy=policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.get_data()
        )
        parts = list(envelope.iter_parts()) if envelope.is_multipart() else []
        if not parts or len(parts) > MAX_BATCH_PARTS:
            self.violations.append(f"batch: {len(parts)} parts")
            record.status = 400
            return _json_response(400, _error_body(400, "badRequest", "batch size"))
        try:
            self._fault("batch")
        except _Problem as problem:
            record.status = problem.status
            return _json_response(
                problem.status,
                _error_body(problem.status, problem.reason, problem.message),
            )
        boundary = "batch_" + secrets.token_hex(8)
        chunks = []
        for part in parts:
            status, body = self._batch_part(part)
            content_id = str(part.get("Content-ID", "<x>"))
            chunks.append(
                f"--{boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id[1:]}\r\n\r\n"
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                "Content-Type: application/json; charset=UTF-8\r\n\r\n"
                f"{json.dumps(body)}\r\n"
            )
        chunks.append(f"--{boundary}--\r\n")
        record.status = 200
        return Response(
            "".join(chunks),
            status=200,
            content_type=f"multipart/mixed; boundary={boundary}",
        )

    def _batch_part(self, part: Any) -> tuple[int, dict[str, Any]]:
        text = part.get_payload(decode=True).decode("utf-8")
        head, _, body = text.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        http_method, target, _version = lines[0].split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        return self._api(
            http_method,
            split.path,
            query,
            headers.get("Authorization", headers.get("authorization", "")),
            body.encode(),
            in_batch=True,
        )


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
_REASONS.update({404: "Not Found", 429: "Too Many Requests", 500: "Server Error"})


def _index(parsed: Any) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
    """What the fake keeps of a message to answer format=metadata: the header
    values decoded and as written, and a snippet of the plain text."""
    body = parsed.get_body(preferencelist=("plain",))
    snippet = " ".join(str(body.get_content()).split())[:100] if body else ""
    items = list(parsed.raw_items())
    return (
        [(name, str(parsed[name])) for name, _raw in items],
        [(name, " ".join(str(raw).split())) for name, raw in items],
        snippet,
    )


def _message_id(raw: bytes) -> str:
    match = re.search(rb"^Message-ID:\s*<([^>]+)>", raw, re.M | re.I)
    return match.group(1).decode() if match else ""


def _json_response(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _redirect(target: str, params: dict[str, str]) -> Response:
    return Response(
        "", status=302, headers={"Location": f"{target}?{urlencode(params)}"}
    )


def authorize_redirect(auth_url: str) -> dict[str, str]:
    """Follow a consent URL like a browser would, and return the query parameters
    Google's redirect carries back to the Connect page."""
    import requests

    answer = requests.get(auth_url, allow_redirects=False, timeout=10)
    location = answer.headers.get("Location")
    if answer.status_code != 302 or not location:
        raise AssertionError(f"authorize answered {answer.status_code}: {answer.text}")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def gmail_settings(server: FakeGoogle, **overrides: Any) -> Any:
    """Steward settings whose [gmail] section points at ``server``."""
    from lib.settings import settings_from_mapping

    return settings_from_mapping({"gmail": server.gmail_section(**overrides)})


def connect_account(services: Any) -> Any:
    """Run the whole consent round trip against the fake: Connect click, Google's
    redirect, and the exchange (two separate Flow objects, as in the app)."""
    from lib import google_oauth

    url = google_oauth.begin_connect(services)
    return google_oauth.finish_connect(services, authorize_redirect(url))
