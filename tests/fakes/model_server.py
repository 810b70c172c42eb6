"""A local stand-in for an OpenAI-compatible server, so tests run the real ``openai``
client over real HTTP without the internet.

It speaks ``POST /v1/chat/completions`` (plain, JSON mode and ``json_schema``
structured output) and ``GET /v1/models``, listens on 127.0.0.1 on a free port in a
thread, and can be told to misbehave: latency, 429 with ``retry-after``, 429
``insufficient_quota``, 500s, hanging past the client's timeout, no structured
output support, scripted replies for one donor, and replies that are not JSON.
Every request is kept in :attr:`FakeModelServer.requests` so tests can check what
the client sent and that nothing unexpected arrived.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DATA_BLOCK = re.compile(r"<donor_data>\s*(\{.*?\})\s*</donor_data>", re.S)
# A safety net for tests: no test needs more requests than this.
MAX_REQUESTS = 5_000


@dataclass
class Failure:
    """One scripted error answer (used once, in order)."""

    status: int
    code: str = "server_error"
    retry_after: float | None = None
    hang_s: float = 0.0  # sleep this long before answering (past the client timeout)


@dataclass
class Recorded:
    """What the server saw for one request."""

    path: str
    body: dict[str, Any]
    authorization: str | None
    at: float
    status: int = 0

    @property
    def donor(self) -> dict[str, Any] | None:
        return donor_data(self.body)

    @property
    def response_format(self) -> str | None:
        value = self.body.get("response_format") or {}
        return value.get("type")


def donor_data(body: dict[str, Any]) -> dict[str, Any] | None:
    """The donor facts of a chat request (the JSON inside <donor_data>)."""
    for message in body.get("messages", []):
        match = DATA_BLOCK.search(str(message.get("content", "")))
        if match:
            return json.loads(match.group(1))
    return None


def grounded_reply(donor: dict[str, Any]) -> dict[str, Any]:
    """A draft that states only the donor's own facts."""
    greeting = donor.get("greeting") or donor.get("first_name") or donor.get("name")
    lines = [f"Dear {greeting},", "", "Thank you for standing with us."]
    if donor.get("last_gift_amount"):
        amount = donor["last_gift_amount"]
        lines.append(f"Your gift of ${amount:,.2f} made a difference.")
    return {
        "subject": "Thank you",
        "body": "\n".join(lines),
        "facts": ["last gift"] if donor.get("last_gift_amount") else [],
    }


@dataclass
class FakeModelServer:
    """Start with ``with FakeModelServer() as server:``; point the client at
    ``server.base_url``."""

    latency_s: float = 0.0
    json_schema_supported: bool = True
    json_mode_supported: bool = True
    model: str = "fake-model"
    # donor name (exact "name" field) -> reply dict, or raw text when a str
    scripted: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    # donor name -> failures answered for that donor only (in order)
    donor_failures: dict[str, list[Failure]] = field(default_factory=dict)
    reply_for: Callable[[dict[str, Any]], dict[str, Any]] = grounded_reply
    requests: list[Recorded] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> FakeModelServer:
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes any hanging handler
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- scripting -------------------------------------------------------------------

    def fail_next(self, *failures: Failure) -> None:
        with self._lock:
            self.failures.extend(failures)

    def chat_requests(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- answering -------------------------------------------------------------------

    def _record(self, path: str, body: dict[str, Any], auth: str | None) -> Recorded:
        entry = Recorded(path=path, body=body, authorization=auth, at=time.monotonic())
        with self._lock:
            self.requests.append(entry)
        return entry

    def _next_failure(self, donor: dict[str, Any] | None) -> Failure | None:
        with self._lock:
            name = (donor or {}).get("name")
            queue = self.donor_failures.get(name) if name else None
            if queue:
                return queue.pop(0)
            if self.failures:
                return self.failures.pop(0)
        return None

    def answer_chat(
        self, entry: Recorded
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = entry.body
        donor = entry.donor
        failure = self._next_failure(donor)
        if failure is not None and failure.hang_s:
            self._stopping.wait(failure.hang_s)
        if failure is not None and failure.status >= 400:
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = f"{failure.retry_after:g}"
            quota = failure.code == "insufficient_quota"
            error = {
                "message": f"fake {failure.status} ({failure.code})",
                "type": "insufficient_quota" if quota else "server_error",
                "code": failure.code,
                "param": None,
            }
            return failure.status, {"error": error}, headers
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        mode = entry.response_format
        if (mode == "json_schema" and not self.json_schema_supported) or (
            mode == "json_object" and not self.json_mode_supported
        ):
            error = {
                "message": f"response_format {mode} is not supported by this server",
                "type": "invalid_request_error",
                "code": None,
                "param": "response_format",
            }
            return 400, {"error": error}, {}
        content = self._content(donor, mode)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body["messages"])
        reply = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(content) // 4,
                "total_tokens": prompt_chars // 4 + len(content) // 4,
            },
        }
        return 200, reply, {}

    def _content(self, donor: dict[str, Any] | None, mode: str | None) -> str:
        if donor is None:
            return "OK"
        scripted = self.scripted.get(str(donor.get("name")))
        if isinstance(scripted, str):
            return scripted
        reply = scripted if scripted is not None else self.reply_for(donor)
        text = json.dumps(reply)
        if mode is None:  # a chatty local model without JSON mode
            return f"Here is the draft:\n```json\n{text}\n```"
        return text


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else ~40 ms delayed-ACK stalls per reply

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return  # keep test output quiet

        def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def do_GET(self) -> None:  # noqa: N802
            server._record(self.path, {}, self.headers.get("Authorization"))
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": server.model}]}, {})
            else:
                self._send(404, {"error": {"message": "not found"}}, {})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            entry = server._record(self.path, body, self.headers.get("Authorization"))
            if len(server.requests) > MAX_REQUESTS:
                status, payload, headers = 500, {"error": {"message": "budget"}}, {}
            elif self.path.rstrip("/").endswith("/chat/completions"):
                status, payload, headers = server.answer_chat(entry)
            else:
                status, payload, headers = 404, {"error": {"message": "not found"}}, {}
            entry.status = status
            self._send(status, payload, headers)

    return Handler
