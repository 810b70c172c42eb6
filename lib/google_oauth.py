"""Connecting a staff member's Google account: the consent flow.

Why the handshake is kept in the database: Google's redirect back to the Connect
page starts a new Streamlit session, so anything kept in the browser tab's session
is gone. The ``state`` value and the PKCE code verifier of each "Connect Gmail"
click live in ``oauth_states``, expire after ten minutes and are used once; the
answer is exchanged by a new Flow object built from them. The redirect URI is one
fixed address shown on the Connect page (never a random-port local server).

Only the least Steward needs is asked for (gmail.send, gmail.readonly, and who you
are), with offline access and a forced consent prompt so a refresh token is always
issued. What happens to accounts and tokens afterwards (storage, refresh, revoke)
lives in lib.google_accounts; its public names are re-exported here so pages need
one import. Only ``AuthError`` (and ``ConfigError`` for bad settings) leave.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import requests
from google.auth import jwt
from google.auth.exceptions import GoogleAuthError
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from sqlalchemy import delete, select

from lib.db import as_utc, utcnow
from lib.errors import AuthError, ConfigError
from lib.google_accounts import (
    CONNECTED,
    DISCONNECTED,
    PERMISSIONS_PAGE,
    REFRESH_REFUSED_REASON,
    SCOPE_COMPOSE,
    SCOPE_EMAIL,
    SCOPE_FEATURES,
    SCOPE_OPENID,
    SCOPE_READONLY,
    SCOPE_SEND,
    TOKEN_NAME_PREFIX,
    ConnectedAccount,
    credentials_from_token,
    describe_age,
    disconnect,
    features_off,
    get_account,
    gmail_settings,
    list_accounts,
    load_credentials,
    mark_disconnected,
    mask_address,
    refresh_credentials,
    refresh_failed,
    save_credentials,
    upsert_account,
)
from lib.schema import oauth_states_table
from lib.send_limits import is_workspace_address
from lib.settings import GmailSettings

__all__ = [
    "CONNECTED",
    "DISCONNECTED",
    "PERMISSIONS_PAGE",
    "REFRESH_REFUSED_REASON",
    "SCOPE_COMPOSE",
    "SCOPE_EMAIL",
    "SCOPE_FEATURES",
    "SCOPE_OPENID",
    "SCOPE_PURPOSES",
    "SCOPE_READONLY",
    "SCOPE_SEND",
    "STATE_TTL",
    "TOKEN_NAME_PREFIX",
    "ConnectedAccount",
    "admin_block_message",
    "begin_connect",
    "describe_age",
    "disconnect",
    "features_off",
    "finish_connect",
    "get_account",
    "gmail_settings",
    "list_accounts",
    "load_credentials",
    "mark_disconnected",
    "mask_address",
    "refresh_credentials",
    "refresh_failed",
    "requested_scopes",
    "save_credentials",
    "scope_purposes",
]

log = logging.getLogger(__name__)

# What each permission is used for, in the words the Connect page shows.
SCOPE_PURPOSES = {
    SCOPE_SEND: "send the emails you approve",
    SCOPE_READONLY: "read your Sent folder to log every sent email on the CRM, "
    "including mail sent from Gmail directly",
    SCOPE_COMPOSE: "not needed (drafts stay in Steward); asked only because your "
    "administrator's allow-list names it",
    SCOPE_EMAIL: "learn which address you connected",
    SCOPE_OPENID: "sign you in (identity only)",
}
# Google's authorization codes are short-lived; a Connect click older than this
# is refused and the person clicks again.
STATE_TTL = timedelta(minutes=10)
TOKEN_EXCHANGE_TIMEOUT_S = 30.0


class _NoTokenDebugLines(logging.Filter):
    """requests-oauthlib logs token responses at DEBUG; drop those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_NoTokenDebugLines())


def requested_scopes(gmail: GmailSettings) -> list[str]:
    """The least Steward needs: send, read Sent, and who you are (plus compose
    only when the ``add_compose_scope`` setting asks for it)."""
    scopes = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND, SCOPE_READONLY]
    if gmail.add_compose_scope:
        scopes.append(SCOPE_COMPOSE)
    return scopes


def scope_purposes(gmail: GmailSettings) -> list[tuple[str, str]]:
    """(short scope name, what it is used for) for each scope asked for."""
    return [
        (scope.rsplit("/", 1)[-1], SCOPE_PURPOSES[scope])
        for scope in requested_scopes(gmail)
    ]


def admin_block_message(gmail: GmailSettings) -> str:
    """What a Workspace administrator must allow, and where."""
    names = ", ".join(
        scope.rsplit("/", 1)[-1]
        for scope in requested_scopes(gmail)
        if "gmail" in scope
    )
    return (
        "Your Google Workspace administrator blocks Steward from your Gmail. Ask "
        "the administrator to open the Admin console > Security > Access and data "
        "control > API controls > App access control (Manage third-party app "
        f"access), add the OAuth client ID {gmail.client_id} and mark it Trusted "
        f"(or allow it with the Gmail scopes {names}). Then click Connect Gmail "
        "again."
    )


# -- the consent flow ----------------------------------------------------------------


def _client_config(gmail: GmailSettings) -> dict[str, Any]:
    return {
        "web": {
            "client_id": gmail.client_id,
            "client_secret": gmail.client_secret,
            "auth_uri": gmail.auth_uri,
            "token_uri": gmail.token_uri,
            "redirect_uris": [gmail.redirect_uri],
        }
    }


def _flow(
    gmail: GmailSettings, scopes: Sequence[str], state: str, verifier: str
) -> Flow:
    return Flow.from_client_config(
        _client_config(gmail),
        scopes=list(scopes),
        redirect_uri=gmail.redirect_uri,
        state=state,
        code_verifier=verifier,
        autogenerate_code_verifier=False,
    )


def begin_connect(services: Any, *, now: datetime | None = None) -> str:
    """Start connecting a Google account; return the URL to send the person to.

    Asks for offline access with a forced consent prompt (so a refresh token is
    issued even on a reconnect), keeps earlier grants, and uses PKCE (S256). The
    state and code verifier are stored server-side for ten minutes.
    Raises ConfigError in sandbox mode.
    """
    gmail = gmail_settings(services)
    now = now or utcnow()
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters, inside RFC 7636's 43-128
    scopes = requested_scopes(gmail)
    url, _state = _flow(gmail, scopes, state, verifier).authorization_url(
        access_type="offline",
        prompt="consent",
        include_granted_scopes="true",
        state=state,
    )
    with services.engine.begin() as conn:
        conn.execute(
            delete(oauth_states_table).where(oauth_states_table.c.expires_at < now)
        )
        conn.execute(
            oauth_states_table.insert().values(
                state=state,
                code_verifier=verifier,
                scopes=scopes,
                created_at=now,
                expires_at=now + STATE_TTL,
            )
        )
    return url


def _take_state(services: Any, state: str) -> Any:
    """The stored Connect click for ``state``, removed so it is used only once."""
    with services.engine.begin() as conn:
        row = conn.execute(
            select(oauth_states_table).where(oauth_states_table.c.state == state)
        ).first()
        if row is not None:
            conn.execute(
                delete(oauth_states_table).where(oauth_states_table.c.state == state)
            )
    return row


def _authorize_error(gmail: GmailSettings, error: str, description: str) -> AuthError:
    if error == "access_denied":
        message = (
            "Gmail is not connected: the Google sign-in was cancelled or access "
            "was not allowed. Click Connect Gmail to try again and allow sending "
            "and reading your Sent folder."
        )
    elif error == "admin_policy_enforced" or "admin" in description.lower():
        message = admin_block_message(gmail)
    elif error == "org_internal":
        message = (
            "This Google Cloud OAuth app is set to Internal, so only accounts of "
            "its own Workspace organisation can connect. Use an account of that "
            "organisation, or set the app's user type to External."
        )
    elif error == "redirect_uri_mismatch":
        message = (
            f"Google refused the redirect address. Register exactly "
            f"{gmail.redirect_uri} as an authorised redirect URI of the OAuth "
            "client in Google Cloud (APIs & Services > Credentials)."
        )
    else:
        message = (
            f"Google refused the sign-in ({error}). Click Connect Gmail to try "
            "again; if it keeps failing, check the OAuth client settings."
        )
    return AuthError(message, detail={"reason": error, "description": description})


def _token_error(gmail: GmailSettings, exc: OAuth2Error) -> AuthError | ConfigError:
    error = getattr(exc, "error", "") or ""
    if error == "insecure_transport":
        return ConfigError("gmail.token_uri must be an https:// address.")
    if error == "invalid_client":
        return ConfigError(
            "Google does not accept the OAuth client: check client_id and "
            "client_secret in the [gmail] settings."
        )
    if error == "redirect_uri_mismatch":
        return _authorize_error(gmail, error, "")
    if error == "invalid_grant":
        return AuthError(
            "Google's sign-in answer expired or was already used. Click Connect "
            "Gmail again.",
            detail={"reason": error},
        )
    return AuthError(
        f"Google refused to finish connecting Gmail ({error or 'unknown error'}). "
        "Click Connect Gmail to try again.",
        detail={"reason": error},
    )


def _exchange_code(
    gmail: GmailSettings, scopes: Sequence[str], state: str, verifier: str, code: str
) -> dict[str, Any]:
    """Trade the authorization code for tokens on a new Flow (case C09)."""
    flow = _flow(gmail, scopes, state, verifier)
    started = time.monotonic()
    status = "ok"
    try:
        try:
            return dict(flow.fetch_token(code=code, timeout=TOKEN_EXCHANGE_TIMEOUT_S))
        except Warning as change:
            # oauthlib refuses an answer whose scopes differ from those asked for;
            # Google adds earlier grants (include_granted_scopes) or drops ones the
            # person unticked. The token is fine: we compare scopes ourselves.
            token = getattr(change, "token", None)
            if not token:
                raise
            flow.oauth2session.token = token
            return dict(token)
    except OAuth2Error as exc:
        status = getattr(exc, "error", "error")
        raise _token_error(gmail, exc) from exc
    except requests.RequestException as exc:
        status = type(exc).__name__
        raise AuthError(
            "Could not reach Google to finish connecting Gmail. Check the network "
            "and click Connect Gmail again."
        ) from exc
    finally:
        log.info(
            "google oauth token exchange status=%s ms=%d",
            status,
            (time.monotonic() - started) * 1000,
        )


def _granted_scopes(token: Mapping[str, Any], asked: Sequence[str]) -> list[str]:
    scope = token.get("scope")
    if not scope:  # RFC 6749 5.1: no scope in the answer means "as asked"
        return list(asked)
    if isinstance(scope, str):
        scope = scope.split()
    return [str(s) for s in scope]


def _email_from_id_token(id_token: str | None) -> str | None:
    """The address in an ID token received straight from the token endpoint over
    TLS (OpenID Connect Core 3.1.3.7 lets a client skip the signature then)."""
    if not id_token:
        return None
    try:
        claims = jwt.decode(id_token, verify=False)
    except (ValueError, GoogleAuthError):
        return None
    email = claims.get("email")
    return str(email) if email else None


def _account_address(
    gmail: GmailSettings, creds: Credentials, token: Mapping[str, Any]
) -> str:
    address: str | None = None
    if SCOPE_READONLY in (creds.scopes or []) or SCOPE_COMPOSE in (creds.scopes or []):
        from lib.mailbox.gmail_client import fetch_profile  # it imports us

        address = fetch_profile(creds, gmail).get("emailAddress")
    address = address or _email_from_id_token(token.get("id_token"))
    if not address:
        raise AuthError(
            "Google did not say which address was connected. Click Connect Gmail "
            "again and allow Steward to see your email address."
        )
    return address.strip().lower()


def finish_connect(
    services: Any, query_params: Mapping[str, str], *, now: datetime | None = None
) -> ConnectedAccount:
    """Complete a connection from the query parameters Google redirected with.

    The state must match a stored, unexpired Connect click (used once). The code is
    exchanged with the stored PKCE verifier; an answer without a refresh token is
    refused (case C06). The token is stored encrypted and the account marked
    connected with the scopes actually granted.

    Raises AuthError for a cancelled or blocked sign-in, an unknown or expired
    state, or a refused exchange (``detail["reason"]`` names which); ConfigError
    for a bad OAuth client.
    """
    gmail = gmail_settings(services)
    now = now or utcnow()
    params = {str(k): str(v) for k, v in query_params.items()}
    state = params.get("state", "")
    stored = _take_state(services, state) if state else None
    if params.get("error"):
        error = params["error"]
        if params.get("error_subtype") == "admin_policy_enforced":
            error = "admin_policy_enforced"
        raise _authorize_error(gmail, error, params.get("error_description", ""))
    if stored is None:
        raise AuthError(
            "This answer from Google does not match a Connect Gmail click made here "
            "(it was already used, or came from another browser). Click Connect "
            "Gmail again.",
            detail={"reason": "state_unknown"},
        )
    if (as_utc(stored.expires_at) or now) <= now:
        raise AuthError(
            "The Google sign-in took longer than ten minutes, so Steward refused it "
            "to be safe. Click Connect Gmail again.",
            detail={"reason": "state_expired"},
        )
    code = params.get("code")
    if not code:
        raise AuthError(
            "Google's answer carried no sign-in code. Click Connect Gmail again.",
            detail={"reason": "no_code"},
        )
    asked = list(stored.scopes or requested_scopes(gmail))
    token = _exchange_code(gmail, asked, state, stored.code_verifier, code)
    if not token.get("refresh_token"):
        raise AuthError(
            "Google gave Steward only short-lived access (no refresh token), so "
            f"Gmail is not connected. Remove Steward at {PERMISSIONS_PAGE}, then "
            "click Connect Gmail again and allow access.",
            detail={"reason": "no_refresh_token"},
        )
    granted = _granted_scopes(token, asked)
    creds = credentials_from_token(gmail, token, granted)
    address = _account_address(gmail, creds, token)
    save_credentials(services, address, creds)
    account = ConnectedAccount(
        email=address,
        scopes=tuple(granted),
        status=CONNECTED,
        connected_at=now,
        workspace=is_workspace_address(address),
    )
    upsert_account(services, account, now)
    log.info(
        "gmail account connected: %s (%d scopes)", mask_address(address), len(granted)
    )
    return account
