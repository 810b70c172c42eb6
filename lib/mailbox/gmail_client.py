"""The Gmail API client of one connected account: quota, retries, token upkeep and
error translation for every call the Gmail mailbox makes.

Why a layer of its own: each call must take its units from the account's shared
quota budget (lib.quota), renew and store the access token when it expires, be
retried with exponential backoff on 429, 403 rate-limit reasons, 5xx and network
errors (a bounded number of times), log one line, and leave only as a StewardError
a person can act on. lib.mailbox.gmail then only says *what* to ask Gmail.

The client is google-api-python-client built from the discovery document it ships
(``static_discovery``), pointed at ``GmailSettings.api_endpoint`` when one is set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from lib import google_oauth, quota
from lib.errors import AuthError, MailboxError, SendError, SendLimitReached
from lib.google_oauth import ConnectedAccount, mask_address
from lib.settings import GmailSettings

log = logging.getLogger(__name__)

GMAIL_API_ENDPOINT = "https://gmail.googleapis.com/"
BATCH_PATH = "batch/gmail/v1"  # Gmail's own batch endpoint
# A Retry-After longer than this is a lock-out, not a blip: stop instead of waiting.
MAX_RETRY_AFTER_S = 120.0
# limits.md, "Gmail API": rate-limit answers (retried) and sending-limit answers.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
SENDING_LIMIT_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded"})

Failure = type[SendError] | type[MailboxError]


class Retryable(Exception):
    """A failure worth another try; ``ambiguous`` when a send may have gone out."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, ambiguous: bool
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.ambiguous = ambiguous


class NotFound(Exception):
    """Gmail answered 404 (an expired history id, or a deleted message)."""


def _error_reason(exc: HttpError) -> tuple[str, str]:
    """(first error reason, message) from a Gmail error answer."""
    details = exc.error_details if isinstance(exc.error_details, list) else []
    for item in details:
        if isinstance(item, dict) and item.get("reason"):
            return str(item["reason"]), str(item.get("message") or exc.reason or "")
    return "", str(exc.reason or "")


def _retry_after(exc: HttpError) -> float | None:
    value = exc.resp.get("retry-after") if exc.resp is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def build_service(creds: Credentials, gmail: GmailSettings) -> Any:
    """The Gmail v1 client for ``creds`` (always given, so it never falls back to
    machine credentials), from the shipped discovery document."""
    options = {"api_endpoint": gmail.api_endpoint} if gmail.api_endpoint else None
    return build(
        "gmail",
        "v1",
        credentials=creds,
        client_options=options,
        static_discovery=True,
        cache_discovery=False,
    )


def fetch_profile(creds: Credentials, gmail: GmailSettings) -> dict[str, Any]:
    """users.getProfile for freshly granted credentials (address and historyId).

    Returns {} when the granted scopes do not allow it; raises AuthError when a
    Workspace administrator blocks the app, MailboxError for other failures.
    """
    service = build_service(creds, gmail)
    started = time.monotonic()
    status: object = 200
    try:
        return dict(service.users().getProfile(userId="me").execute(num_retries=0))
    except HttpError as exc:
        status = exc.status_code
        reason, message = _error_reason(exc)
        if reason == "domainPolicy":
            raise AuthError(google_oauth.admin_block_message(gmail)) from exc
        if exc.status_code == 403:
            return {}
        raise MailboxError(f"Gmail did not answer who you are: {message}") from exc
    except (TransportError, httplib2.HttpLib2Error, OSError) as exc:
        status = type(exc).__name__
        raise MailboxError("Could not reach Gmail; try again in a minute.") from exc
    finally:
        log.info(
            "gmail users.getProfile status=%s ms=%d",
            status,
            (time.monotonic() - started) * 1000,
        )


class GmailClient:
    """Calls to the Gmail API on behalf of one connected account."""

    def __init__(
        self,
        services: Any,
        account: ConnectedAccount,
        credentials: Credentials,
        *,
        budget: quota.QuotaBudget | None = None,
        backoff: quota.Backoff | None = None,
    ) -> None:
        self._services = services
        self.gmail = google_oauth.gmail_settings(services)
        self.account = account.email
        self._creds = credentials
        self._saved_token = credentials.token
        self._budget = budget or quota.shared_budget(
            account.email, self.gmail.quota_units_per_minute
        )
        self.backoff = backoff or quota.Backoff()
        self.service = build_service(credentials, self.gmail)
        endpoint = self.gmail.api_endpoint or GMAIL_API_ENDPOINT
        self._batch_uri = endpoint.rstrip("/") + "/" + BATCH_PATH
        self.http_requests = 0  # HTTP requests made (a batch counts once)

    # -- tokens ----------------------------------------------------------------------

    def _keep_token_fresh(self) -> None:
        if not self._creds.valid:
            google_oauth.refresh_credentials(self._services, self.account, self._creds)
            self._saved_token = self._creds.token

    def _save_if_refreshed(self) -> None:
        # google-auth renews the token by itself after a 401; store the new one.
        if self._creds.token != self._saved_token:
            google_oauth.save_credentials(self._services, self.account, self._creds)
            self._saved_token = self._creds.token

    # -- errors ----------------------------------------------------------------------

    def translate(self, exc: HttpError, operation: str, fail: Failure) -> Exception:
        """The exception to raise for a Gmail error answer: Retryable, NotFound,
        SendLimitReached, AuthError, or ``fail`` with Gmail's message."""
        status = exc.status_code
        reason, message = _error_reason(exc)
        if status == 404:
            return NotFound(message)
        sending_limit = reason in SENDING_LIMIT_REASONS or "sending limit" in (
            message.lower()
        )
        if fail is SendError and sending_limit:
            return SendLimitReached(
                "Gmail says this account's sending limit is reached. The remaining "
                "drafts stay approved; send them tomorrow.",
                detail={"reason": reason, "message": message},
            )
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            retry_after = _retry_after(exc)
            if retry_after is not None and retry_after > MAX_RETRY_AFTER_S:
                return fail(
                    f"Gmail asks Steward to pause for {retry_after / 60:.0f} minutes; "
                    "try again later.",
                    detail={"reason": reason},
                )
            return Retryable(message, retry_after=retry_after, ambiguous=False)
        if status >= 500:
            return Retryable(message, ambiguous=True)
        if status == 403 and reason == "domainPolicy":
            return AuthError(
                google_oauth.admin_block_message(self.gmail), detail={"reason": reason}
            )
        if status == 403 and (
            reason == "insufficientPermissions" or "scope" in message.lower()
        ):
            return AuthError(
                f"This Gmail account did not give Steward permission for "
                f"{operation}. Click Reconnect Gmail on the Connect page and allow "
                "every permission listed there.",
                detail={"reason": reason},
            )
        if status == 401:
            return AuthError(
                "Gmail no longer accepts Steward's access for this account. Click "
                "Reconnect Gmail on the Connect page.",
                detail={"reason": reason or "unauthenticated"},
            )
        return fail(
            f"Gmail refused {operation}: {message or status}.",
            detail={"status": status, "reason": reason},
        )

    # -- one request -----------------------------------------------------------------

    def _prepare(self, cost: int, purpose: str, fail: Failure) -> None:
        try:
            self._budget.acquire(cost, purpose)
        except quota.QuotaWaitTooLong as exc:
            raise fail(
                "Gmail's per-minute quota for this account is used up; try again "
                "in a few minutes."
            ) from exc
        try:
            self._keep_token_fresh()
        except TransportError as exc:
            raise Retryable("Could not reach Google", ambiguous=False) from exc

    def _run(self, operation: str, run: Callable[[], Any], fail: Failure) -> Any:
        """Make one HTTP request: one log line, errors translated."""
        started = time.monotonic()
        status: object = 200
        self.http_requests += 1
        try:
            return run()
        except HttpError as exc:
            status = exc.status_code
            raise self.translate(exc, operation, fail) from exc
        except RefreshError as exc:
            status = "refresh refused"
            raise google_oauth.refresh_failed(
                self._services, self.account, exc
            ) from exc
        except (TransportError, httplib2.HttpLib2Error, OSError) as exc:
            status = type(exc).__name__
            raise Retryable("Could not reach Gmail", ambiguous=True) from exc
        finally:
            log.info(
                "gmail %s status=%s ms=%d account=%s",
                operation,
                status,
                (time.monotonic() - started) * 1000,
                mask_address(self.account),
            )
            self._save_if_refreshed()

    def call(
        self,
        operation: str,
        make_request: Callable[[], Any],
        *,
        cost: int,
        purpose: str,
        fail: Failure,
        before_retry: Callable[[], Any] | None = None,
        not_found_raises: bool = False,
    ) -> Any:
        """One API call under the quota budget, retried with backoff (bounded).

        ``before_retry`` runs before retrying an ambiguous failure; a result other
        than None is returned instead of retrying (a send that did go out).
        ``not_found_raises`` lets a 404 out as NotFound instead of ``fail``.
        """
        for attempt in range(self.backoff.max_retries + 1):
            try:
                self._prepare(cost, purpose, fail)
                return self._run(operation, make_request().execute, fail)
            except Retryable as exc:
                if attempt == self.backoff.max_retries:
                    raise fail(
                        f"Gmail did not answer {operation} after {attempt + 1} "
                        f"tries ({exc}); try again in a few minutes."
                    ) from exc
                self.backoff.wait(attempt, exc.retry_after)
                if exc.ambiguous and before_retry is not None:
                    found = before_retry()
                    if found is not None:
                        return found
            except NotFound as exc:
                if not_found_raises:
                    raise
                raise fail(f"Gmail found nothing for {operation} ({exc}).") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def batch(
        self,
        operation: str,
        requests: dict[str, Any],
        *,
        cost: int,
        on_answer: Callable[[str, Any], None],
    ) -> list[str]:
        """Send ``requests`` (id -> request, at most 100) as one batch request.

        ``on_answer`` gets each successful (id, answer). Returns the ids answered
        429 or 5xx, to be tried again; items answered 404 are dropped. Raises
        Retryable when the batch request as a whole failed, AuthError or
        MailboxError for other refusals.
        """
        retry: list[str] = []
        failures: list[Exception] = []

        def collect(request_id: str, response: Any, exc: HttpError | None) -> None:
            if exc is None:
                on_answer(request_id, response)
                return
            outcome = self.translate(exc, operation, MailboxError)
            if isinstance(outcome, Retryable):
                retry.append(request_id)
            elif not isinstance(outcome, NotFound):  # deleted meanwhile: skip
                failures.append(outcome)

        self._prepare(cost, quota.SYNC, MailboxError)
        batch = BatchHttpRequest(callback=collect, batch_uri=self._batch_uri)
        for request_id, request in requests.items():
            batch.add(request, request_id=request_id)
        name = f"batch {operation} n={len(requests)}"
        try:
            self._run(name, batch.execute, MailboxError)
        except NotFound as exc:
            raise MailboxError(f"Gmail refused a batch request ({exc}).") from exc
        if failures:
            raise failures[0]
        return retry
