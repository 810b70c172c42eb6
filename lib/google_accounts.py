"""Google accounts connected to Steward: who is connected, with which
permissions, and their tokens.

Each staff member connects their own account; a send goes out only from the account
that approved it. Tokens are encrypted with lib.vault (one entry per account) and
never logged or shown. When Google refuses to renew a token (``invalid_grant``:
revoked, password changed, or the 7-day limit of an OAuth app left in "Testing")
the account is marked disconnected with the reason, and approved drafts simply wait
for a reconnect. The consent flow that creates accounts is in lib.google_oauth.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.transport.requests
import requests
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials
from sqlalchemy import select, update

from lib.db import as_utc, utcnow
from lib.errors import AuthError, ConfigError
from lib.schema import accounts_table
from lib.settings import GmailSettings

log = logging.getLogger(__name__)

SCOPE_SEND = "https://www.googleapis.com/auth/gmail.send"
SCOPE_READONLY = "https://www.googleapis.com/auth/gmail.readonly"
SCOPE_COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
SCOPE_EMAIL = "https://www.googleapis.com/auth/userinfo.email"
SCOPE_OPENID = "openid"

TOKEN_NAME_PREFIX = "gmail-token:"
PERMISSIONS_PAGE = "https://myaccount.google.com/permissions"
REVOKE_TIMEOUT_S = 15.0
CONNECTED = "connected"
DISCONNECTED = "disconnected"
REFRESH_REFUSED_REASON = "Google refused to renew access (revoked or expired)"

# The feature each Gmail permission carries, for "fewer scopes granted" messages.
SCOPE_FEATURES = {
    SCOPE_SEND: "sending approved emails from Steward",
    SCOPE_READONLY: "reading your Sent folder, so sent email is not logged on the "
    "CRM and a send interrupted by a crash cannot be checked",
}


@dataclass(frozen=True)
class ConnectedAccount:
    """A Google account as Steward knows it (never carries a token)."""

    email: str
    scopes: tuple[str, ...]
    status: str
    connected_at: datetime | None
    status_reason: str | None = None
    workspace: bool = False

    @property
    def connected(self) -> bool:
        return self.status == CONNECTED

    @property
    def can_send(self) -> bool:
        return SCOPE_SEND in self.scopes or SCOPE_COMPOSE in self.scopes

    @property
    def can_read_sent(self) -> bool:
        return SCOPE_READONLY in self.scopes

    @property
    def features_off(self) -> list[str]:
        """What does not work because a permission was not granted."""
        return features_off(self.scopes)


def features_off(granted: Sequence[str]) -> list[str]:
    """One phrase per Steward feature that the ``granted`` scopes leave off."""
    off = []
    if SCOPE_SEND not in granted and SCOPE_COMPOSE not in granted:
        off.append(SCOPE_FEATURES[SCOPE_SEND])
    if SCOPE_READONLY not in granted:
        off.append(SCOPE_FEATURES[SCOPE_READONLY])
    return off


def gmail_settings(services: Any) -> GmailSettings:
    """The [gmail] settings; raises ConfigError in sandbox mode."""
    gmail = services.settings.gmail
    if gmail is None:
        raise ConfigError(
            "Gmail is not configured: add a [gmail] section with client_id and "
            "client_secret to .streamlit/secrets.toml."
        )
    return gmail


def mask_address(address: str) -> str:
    """An address shortened for log lines: never logged in full."""
    local, _, domain = address.partition("@")
    return f"{local[:2]}…@{domain}" if domain else "…"


def describe_age(connected_at: datetime | None, now: datetime | None = None) -> str:
    """How long ago an account was connected, in plain words."""
    if connected_at is None:
        return "never connected"
    age = (now or utcnow()) - (as_utc(connected_at) or connected_at)
    seconds = max(int(age.total_seconds()), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


# -- accounts ------------------------------------------------------------------------


def upsert_account(services: Any, account: ConnectedAccount, now: datetime) -> None:
    """Store ``account`` (insert or update by address)."""
    values = {
        "scopes": list(account.scopes),
        "status": account.status,
        "connected_at": account.connected_at,
        "status_reason": account.status_reason,
        "workspace": account.workspace,
        "updated_at": now,
    }
    with services.engine.begin() as conn:
        result = conn.execute(
            update(accounts_table)
            .where(accounts_table.c.email == account.email)
            .values(**values)
        )
        if result.rowcount == 0:
            conn.execute(accounts_table.insert().values(email=account.email, **values))


def _account_from_row(row: Any) -> ConnectedAccount:
    return ConnectedAccount(
        email=row.email,
        scopes=tuple(row.scopes or ()),
        status=row.status,
        connected_at=as_utc(row.connected_at),
        status_reason=row.status_reason,
        workspace=bool(row.workspace),
    )


def list_accounts(services: Any) -> list[ConnectedAccount]:
    """Every Google account ever connected here, connected ones first."""
    with services.engine.connect() as conn:
        rows = conn.execute(select(accounts_table).order_by(accounts_table.c.email))
        accounts = [_account_from_row(row) for row in rows]
    return sorted(accounts, key=lambda a: (not a.connected, a.email))


def get_account(services: Any, email: str) -> ConnectedAccount | None:
    with services.engine.connect() as conn:
        row = conn.execute(
            select(accounts_table).where(accounts_table.c.email == email.lower())
        ).first()
    return None if row is None else _account_from_row(row)


def mark_disconnected(services: Any, email: str, reason: str) -> None:
    """Mark ``email`` disconnected with ``reason`` and forget its token."""
    services.vault.delete(TOKEN_NAME_PREFIX + email.lower())
    with services.engine.begin() as conn:
        conn.execute(
            update(accounts_table)
            .where(accounts_table.c.email == email.lower())
            .values(status=DISCONNECTED, status_reason=reason, updated_at=utcnow())
        )


# -- tokens --------------------------------------------------------------------------


def _naive_utc(value: datetime | None) -> datetime | None:
    # google-auth compares expiry with a naive UTC now.
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def credentials_from_token(
    gmail: GmailSettings, token: Mapping[str, Any], scopes: Sequence[str]
) -> Credentials:
    """Credentials from a token-endpoint answer, holding the ``scopes`` granted."""
    expiry = None
    if token.get("expires_at"):
        expiry = datetime.fromtimestamp(float(token["expires_at"]), UTC)
    elif token.get("expires_in"):
        expiry = utcnow() + timedelta(seconds=float(token["expires_in"]))
    return Credentials(
        token=token.get("access_token"),
        refresh_token=token.get("refresh_token"),
        id_token=token.get("id_token"),
        token_uri=gmail.token_uri,
        client_id=gmail.client_id,
        client_secret=gmail.client_secret,
        scopes=list(scopes),
        expiry=_naive_utc(expiry),
    )


def save_credentials(services: Any, email: str, creds: Credentials) -> None:
    """Store ``creds`` (encrypted) for ``email``; the client secret is not stored."""
    expiry = creds.expiry.replace(tzinfo=UTC).isoformat() if creds.expiry else None
    payload = {
        "token": creds.token,
        "refresh_token": creds.refresh_token,
        "expiry": expiry,
        "scopes": list(creds.scopes or []),
    }
    services.vault.put(TOKEN_NAME_PREFIX + email.lower(), json.dumps(payload))


def load_credentials(services: Any, email: str) -> Credentials:
    """The stored credentials of a connected account (refreshed on use).

    Raises AuthError when the account is not connected or has no stored token.
    """
    gmail = gmail_settings(services)
    account = get_account(services, email)
    if account is None or not account.connected:
        reason = account.status_reason if account else None
        raise AuthError(
            f"Gmail is not connected for this account{f' ({reason})' if reason else ''}"
            ". Click Reconnect Gmail on the Connect page.",
            detail={"reason": "not_connected"},
        )
    raw = services.vault.get(TOKEN_NAME_PREFIX + account.email)
    if not raw:
        mark_disconnected(services, account.email, "no stored permission")
        raise AuthError(
            "Steward holds no permission for this Gmail account any more. Click "
            "Reconnect Gmail on the Connect page.",
            detail={"reason": "no_token"},
        )
    data = json.loads(raw)
    expiry = datetime.fromisoformat(data["expiry"]) if data.get("expiry") else None
    return Credentials(
        token=data.get("token"),
        refresh_token=data.get("refresh_token"),
        token_uri=gmail.token_uri,
        client_id=gmail.client_id,
        client_secret=gmail.client_secret,
        scopes=data.get("scopes") or list(account.scopes),
        expiry=_naive_utc(expiry),
    )


def refresh_failed(services: Any, email: str, exc: RefreshError) -> AuthError:
    """Translate a refused token refresh (case C07).

    ``invalid_grant`` (revoked, expired, password changed, 7-day testing token)
    marks the account disconnected; the returned AuthError says how to reconnect.
    """
    data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    error = str(data.get("error") or str(exc.args[0] if exc.args else "")).split(":")[0]
    if error != "invalid_grant":
        return AuthError(
            f"Google did not renew access for this Gmail account ({error or 'error'})"
            ". Try again in a minute; approved emails stay approved.",
            detail={"reason": error},
        )
    mark_disconnected(services, email, REFRESH_REFUSED_REASON)
    log.info("gmail account disconnected after invalid_grant: %s", mask_address(email))
    return AuthError(
        "Google no longer accepts Steward's permission for this Gmail account (it "
        "was revoked or has expired). Click Reconnect Gmail on the Connect page; "
        "approved emails stay approved and can be sent after reconnecting. If this "
        "happens every 7 days, the Google Cloud OAuth app is still in 'Testing' "
        "publishing status, whose tokens expire after 7 days: set it to 'In "
        "production' (OAuth consent screen > Publishing status) or make it Internal "
        "to your Workspace.",
        detail={"reason": "invalid_grant"},
    )


def refresh_credentials(services: Any, email: str, creds: Credentials) -> None:
    """Renew the access token of ``creds`` now and store it (encrypted).

    Raises AuthError when Google refuses (see :func:`refresh_failed`); lets
    ``google.auth.exceptions.TransportError`` through when Google is unreachable.
    """
    started = time.monotonic()
    status = "ok"
    try:
        creds.refresh(google.auth.transport.requests.Request())
    except RefreshError as exc:
        status = "refused"
        raise refresh_failed(services, email, exc) from exc
    finally:
        log.info(
            "google oauth token refresh status=%s ms=%d",
            status,
            (time.monotonic() - started) * 1000,
        )
    save_credentials(services, email, creds)


def disconnect(services: Any, account: str) -> bool:
    """Withdraw Steward's permission for ``account`` at Google and forget it here.

    Returns True when Google confirmed the revocation (or already had none), False
    when Google could not be reached: the token is deleted here anyway, and the
    person should remove Steward at myaccount.google.com/permissions.
    """
    gmail = gmail_settings(services)
    email = account.lower()
    raw = services.vault.get(TOKEN_NAME_PREFIX + email)
    revoked = True
    if raw:
        data = json.loads(raw)
        token = data.get("refresh_token") or data.get("token")
        revoked = _revoke(gmail, token) if token else True
    reason = (
        "disconnected on the Connect page"
        if revoked
        else f"disconnected here; remove Steward at {PERMISSIONS_PAGE} as well"
    )
    mark_disconnected(services, email, reason)
    return revoked


def _revoke(gmail: GmailSettings, token: str) -> bool:
    started = time.monotonic()
    try:
        response = requests.post(
            gmail.revoke_uri,
            data={"token": token},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=REVOKE_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        log.info("google oauth revoke status=%s", type(exc).__name__)
        return False
    log.info(
        "google oauth revoke status=%d ms=%d",
        response.status_code,
        (time.monotonic() - started) * 1000,
    )
    if response.status_code == 200:
        return True
    # 400 invalid_token: Google holds no such grant any more, which is the goal.
    try:
        error = response.json().get("error")
    except ValueError:
        error = None
    return response.status_code == 400 and error == "invalid_token"
