"""The Airtable client every Steward module uses, and Airtable's refusals in words.

Why a module of its own: the records code (lib.crm.airtable), the metadata code
(lib.airtable_schema) and the Connect page must all go through the same process-wide
pacer, with finite timeouts and one log line per request. Putting the pacer inside
the transport of pyairtable's session means no request can skip it, whichever
pyairtable method sends it, and a 429 pauses every caller of that base.

Log lines name the method, the path (base, table, record id) and the status; never
the query string, which carries formulas with donors' addresses.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from pyairtable import Api
from requests.adapters import HTTPAdapter

from lib.errors import CrmError
from lib.pacer import Pacer, airtable_pacer

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT_URL = "https://api.airtable.com"
# (connect, read) seconds: a stalled connection never holds a sync pass forever.
AIRTABLE_TIMEOUT_S = (10, 60)
# 429s in a row for one request before giving up; each is followed by the 30 s
# pause Airtable asks for (limits.md), so this bounds a request to ~90 s.
MAX_RATE_LIMIT_RETRIES = 3
NON_BASE_KEY = "meta"  # budget for calls that name no base (whoami, list bases)


def base_key(url: str) -> str:
    """The base a request URL is about (the pacer counts per base)."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if "v0" in parts:
        parts = parts[parts.index("v0") + 1 :]
    if not parts:
        return NON_BASE_KEY
    if parts[0] == "meta":
        if len(parts) > 2 and parts[1] == "bases":
            return parts[2]
        return NON_BASE_KEY
    return parts[0]


class PacedAdapter(HTTPAdapter):
    """A requests transport that waits for the pacer before each request and,
    on 429, pauses the base and sends the same request again (a 429 means
    Airtable did nothing, so sending again cannot duplicate anything)."""

    def __init__(
        self, pacer: Pacer, max_rate_limit_retries: int = MAX_RATE_LIMIT_RETRIES
    ) -> None:
        super().__init__(max_retries=0)
        self.pacer = pacer
        self.max_rate_limit_retries = max_rate_limit_retries
        self.rate_limited = 0  # 429 answers this transport has seen

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        key = base_key(request.url)
        path = urlsplit(request.url).path
        attempt = 0
        while True:
            with self.pacer.slot(key):
                started = time.perf_counter()
                response = super().send(request, *args, **kwargs)
            log.info(
                "airtable %s %s -> %d (%.0f ms)",
                request.method,
                path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
            if response.status_code != 429:
                return response
            self.rate_limited += 1
            if attempt >= self.max_rate_limit_retries:
                return response
            attempt += 1
            response.close()
            self.pacer.pause(key)


def open_api(
    token: str,
    endpoint_url: str = DEFAULT_ENDPOINT_URL,
    pacer: Pacer | None = None,
    max_rate_limit_retries: int = MAX_RATE_LIMIT_RETRIES,
) -> Api:
    """A pyairtable Api whose every request is paced by ``pacer`` (default: the
    process-wide Airtable pacer). pyairtable's own retries are off: the pacer
    handles 429."""
    api = Api(
        token,
        endpoint_url=endpoint_url or DEFAULT_ENDPOINT_URL,
        retry_strategy=None,
        timeout=AIRTABLE_TIMEOUT_S,
    )
    adapter = PacedAdapter(pacer or airtable_pacer(), max_rate_limit_retries)
    api.session.mount("https://", adapter)
    api.session.mount("http://", adapter)
    return api


@dataclass(frozen=True)
class AirtableFailure:
    """What Airtable said when it refused a request."""

    status: int | None  # None: no answer at all (network, timeout)
    kind: str  # Airtable's error type, e.g. UNKNOWN_FIELD_NAME
    message: str


def failure_of(exc: Exception) -> AirtableFailure:
    """Read Airtable's error type and message out of a failed request."""
    response = getattr(exc, "response", None)
    if response is None:
        return AirtableFailure(None, type(exc).__name__, str(exc))
    kind, message = "", ""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        error = payload.get("error")
        if error is None and isinstance(payload.get("errors"), list):
            error = (payload["errors"] or [None])[0]
        if isinstance(error, dict):
            kind = str(error.get("type") or error.get("error") or "")
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            kind = error
    return AirtableFailure(response.status_code, kind, message or kind)


def describe_failure(failure: AirtableFailure, doing: str) -> str:
    """A sentence saying what failed while ``doing`` and what to do about it."""
    status = failure.status
    if status is None:
        return (
            f"Could not reach Airtable to {doing} ({failure.kind}). Check the "
            "network connection; nothing was lost and the next sync tries again."
        )
    if status == 401:
        return (
            f"Airtable did not accept the access token while trying to {doing}. "
            "Enter a new personal access token on the Connect page."
        )
    if status == 403:
        return (
            f"The Airtable token may not {doing}. Give it the scopes "
            "data.records:read, data.records:write and schema.bases:read, and "
            "access to this base, at airtable.com/create/tokens."
        )
    if status == 404:
        return (
            f"Airtable could not find what Steward needed to {doing} "
            f"({failure.message or failure.kind}). Check the base and tables chosen "
            "on the Connect page."
        )
    if status == 429:
        return (
            f"Airtable is rate limiting this base (another program may be using it) "
            f"while trying to {doing}. Try again in a minute; nothing was lost: log "
            "entries not yet written stay queued and the next sync writes them."
        )
    if status == 422:
        return f"Airtable refused to {doing}: {failure.message or failure.kind}."
    return (
        f"Airtable answered {status} while trying to {doing}. Try again in a few "
        "minutes; nothing was lost."
    )


def crm_error(exc: Exception, doing: str) -> CrmError:
    """A CrmError for a failed request, carrying Airtable's answer as detail."""
    failure = failure_of(exc)
    return CrmError(describe_failure(failure, doing), detail=failure)


def status_of(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    return None if response is None else int(response.status_code)
