"""Connecting a Google account (lib.google_oauth) with the real google-auth-oauthlib
against the local fake Google: consent, PKCE across two Flow objects, state checks,
each refusal, refresh, revoke (cases C06-C09)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, update

from lib import google_oauth
from lib.db import utcnow
from lib.errors import AuthError, ConfigError
from lib.google_oauth import (
    SCOPE_COMPOSE,
    SCOPE_EMAIL,
    SCOPE_OPENID,
    SCOPE_READONLY,
    SCOPE_SEND,
)
from lib.schema import accounts_table, oauth_states_table, secrets_table
from lib.services import Services, open_services
from lib.settings import GmailSettings
from tests.fakes.gmail_server import (
    FakeGoogle,
    authorize_redirect,
    connect_account,
    gmail_settings,
)

ANN = "ann@example.org"
TOKEN_NAME = google_oauth.TOKEN_NAME_PREFIX + ANN


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http, tests only
    with FakeGoogle((ANN, "bob@gmail.com")) as server:
        yield server
        assert server.violations == []
        assert server.drafts_calls() == []


@pytest.fixture
def gsvc(google: FakeGoogle) -> Services:
    return open_services(gmail_settings(google))


def stored_token(services: Services) -> dict[str, str]:
    raw = services.vault.get(TOKEN_NAME)
    assert raw is not None
    return json.loads(raw)


def auth_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_default_redirect_uri_is_the_connect_page() -> None:
    assert GmailSettings("id", "secret").redirect_uri == "http://localhost:8501/connect"


def test_consent_link_asks_for_offline_access_with_pkce(gsvc: Services) -> None:
    params = auth_params(google_oauth.begin_connect(gsvc))
    assert params["access_type"] == "offline"
    assert params["prompt"] == "consent"
    assert params["include_granted_scopes"] == "true"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["redirect_uri"] == "http://localhost:8501/connect"
    scopes = params["scope"].split()
    assert set(scopes) == {SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND, SCOPE_READONLY}
    with gsvc.engine.connect() as conn:
        row = conn.execute(select(oauth_states_table)).one()
    assert row.state == params["state"]
    assert row.code_verifier not in google_oauth.begin_connect(gsvc)


def test_compose_scope_only_when_the_setting_asks(google: FakeGoogle) -> None:
    services = open_services(gmail_settings(google, add_compose_scope=True))
    scopes = auth_params(google_oauth.begin_connect(services))["scope"].split()
    assert SCOPE_COMPOSE in scopes


def test_connect_round_trip_stores_the_token_encrypted(
    gsvc: Services, google: FakeGoogle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    account = connect_account(gsvc)
    assert account.email == ANN
    assert account.connected and account.workspace
    assert account.can_send and account.can_read_sent
    assert account.features_off == []
    token = stored_token(gsvc)
    assert token["refresh_token"].startswith("1//")
    with gsvc.engine.connect() as conn:
        cipher = conn.execute(select(secrets_table.c.ciphertext)).scalar_one()
        states = conn.execute(select(oauth_states_table)).all()
        row = conn.execute(select(accounts_table)).one()
    assert token["refresh_token"].encode() not in cipher
    assert states == []  # the state was used once and removed
    assert row.status == "connected" and SCOPE_SEND in row.scopes
    assert len(google.calls("gmail.users.getProfile")) == 1
    creds = google_oauth.load_credentials(gsvc, ANN)
    creds.expiry = creds.expiry - timedelta(hours=2)
    google_oauth.refresh_credentials(gsvc, ANN, creds)  # a renewal is logged too
    google_oauth.disconnect(gsvc, ANN)  # and so is the revocation
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (token["refresh_token"], token["token"], creds.token):
        assert secret not in logged
    assert "google oauth token refresh status=ok" in logged
    assert ANN not in logged  # addresses are masked in log lines


def test_a_new_flow_with_the_stored_verifier_finishes(
    gsvc: Services, google: FakeGoogle
) -> None:
    first = google_oauth.begin_connect(gsvc)
    google_oauth.begin_connect(gsvc)  # another click meanwhile: its own state
    answer = authorize_redirect(first)
    assert google_oauth.finish_connect(gsvc, answer).email == ANN


def test_a_different_verifier_is_refused_by_google(
    gsvc: Services, google: FakeGoogle
) -> None:
    answer = authorize_redirect(google_oauth.begin_connect(gsvc))
    with gsvc.engine.begin() as conn:
        conn.execute(update(oauth_states_table).values(code_verifier="x" * 86))
    with pytest.raises(AuthError) as caught:
        google_oauth.finish_connect(gsvc, answer)
    assert caught.value.detail["reason"] == "invalid_grant"
    google.violations.clear()  # the fake noted the bad verifier, as it should


def test_a_state_that_does_not_match_is_refused(
    gsvc: Services, google: FakeGoogle
) -> None:
    answer = authorize_redirect(google_oauth.begin_connect(gsvc))
    answer["state"] = "forged-state"
    with pytest.raises(AuthError) as caught:
        google_oauth.finish_connect(gsvc, answer)
    assert caught.value.detail["reason"] == "state_unknown"
    assert [r for r in google.requests if r.path == "/token"] == []
    assert google_oauth.list_accounts(gsvc) == []


def test_a_state_is_used_only_once(gsvc: Services) -> None:
    answer = authorize_redirect(google_oauth.begin_connect(gsvc))
    google_oauth.finish_connect(gsvc, answer)
    with pytest.raises(AuthError) as caught:
        google_oauth.finish_connect(gsvc, answer)
    assert caught.value.detail["reason"] == "state_unknown"


def test_an_expired_state_is_refused(gsvc: Services) -> None:
    url = google_oauth.begin_connect(gsvc, now=utcnow() - timedelta(minutes=11))
    with pytest.raises(AuthError) as caught:
        google_oauth.finish_connect(gsvc, authorize_redirect(url))
    assert caught.value.detail["reason"] == "state_expired"
    assert "ten minutes" in str(caught.value)


def test_access_denied_says_the_sign_in_was_cancelled(
    gsvc: Services, google: FakeGoogle
) -> None:
    google.authorize_error = "access_denied"
    with pytest.raises(AuthError) as caught:
        connect_account(gsvc)
    assert "cancelled" in str(caught.value)
    with gsvc.engine.connect() as conn:
        assert conn.execute(select(oauth_states_table)).all() == []


def test_admin_block_says_what_to_allow_and_where(
    gsvc: Services, google: FakeGoogle
) -> None:
    google.authorize_error = "admin_policy_enforced"
    with pytest.raises(AuthError) as caught:
        connect_account(gsvc)
    message = str(caught.value)
    assert "Admin console > Security > Access and data control > API controls" in (
        message
    )
    assert google.client_id in message
    assert "gmail.send" in message and "gmail.readonly" in message


def test_no_refresh_token_is_never_stored_as_connected(
    gsvc: Services, google: FakeGoogle
) -> None:
    google.issue_refresh_tokens = False
    with pytest.raises(AuthError) as caught:
        connect_account(gsvc)
    assert caught.value.detail["reason"] == "no_refresh_token"
    assert "myaccount.google.com/permissions" in str(caught.value)
    assert google_oauth.list_accounts(gsvc) == []
    assert gsvc.vault.get(TOKEN_NAME) is None


def test_reconnecting_gets_a_refresh_token_again(
    gsvc: Services, google: FakeGoogle
) -> None:
    """Case C06: the forced consent prompt makes Google issue a refresh token on a
    reconnect too (the fake, like Google, skips it without prompt=consent)."""
    connect_account(gsvc)
    google_oauth.disconnect(gsvc, ANN)
    assert connect_account(gsvc).connected
    assert stored_token(gsvc)["refresh_token"]


def test_extra_earlier_grants_do_not_break_the_exchange(
    gsvc: Services, google: FakeGoogle
) -> None:
    calendar = "https://www.googleapis.com/auth/calendar.readonly"
    google.earlier_grants[ANN] = {calendar}
    assert "OAUTHLIB_RELAX_TOKEN_SCOPE" not in os.environ
    account = connect_account(gsvc)
    assert calendar in account.scopes and account.features_off == []


def test_fewer_scopes_granted_names_the_features_that_are_off(
    gsvc: Services, google: FakeGoogle
) -> None:
    google.grant_only = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND]
    account = connect_account(gsvc)
    assert account.email == ANN  # from the ID token: getProfile is not allowed
    assert google.calls("gmail.users.getProfile") == []
    assert account.can_send and not account.can_read_sent
    assert len(account.features_off) == 1
    assert "Sent folder" in account.features_off[0]


def test_refresh_stores_the_new_access_token(gsvc: Services) -> None:
    connect_account(gsvc)
    creds = google_oauth.load_credentials(gsvc, ANN)
    old = creds.token
    creds.expiry = creds.expiry - timedelta(hours=2)
    assert not creds.valid
    google_oauth.refresh_credentials(gsvc, ANN, creds)
    assert creds.valid and creds.token != old
    assert google_oauth.load_credentials(gsvc, ANN).token == creds.token


def test_invalid_grant_marks_the_account_disconnected(
    gsvc: Services, google: FakeGoogle
) -> None:
    """Case C07: day 8 of an app in testing status."""
    connect_account(gsvc)
    google.revoke_everything()
    creds = google_oauth.load_credentials(gsvc, ANN)
    creds.expiry = creds.expiry - timedelta(hours=2)
    with pytest.raises(AuthError) as caught:
        google_oauth.refresh_credentials(gsvc, ANN, creds)
    message = str(caught.value)
    assert "Reconnect Gmail" in message and "Testing" in message
    assert "7 days" in message and "stay approved" in message
    account = google_oauth.get_account(gsvc, ANN)
    assert account is not None and not account.connected
    assert account.status_reason == google_oauth.REFRESH_REFUSED_REASON
    assert gsvc.vault.get(TOKEN_NAME) is None
    with pytest.raises(AuthError):
        google_oauth.load_credentials(gsvc, ANN)


def test_disconnect_revokes_at_google_and_forgets_the_token(
    gsvc: Services, google: FakeGoogle
) -> None:
    connect_account(gsvc)
    assert google.live_refresh_tokens(ANN) == 1
    assert google_oauth.disconnect(gsvc, ANN) is True
    assert google.live_refresh_tokens(ANN) == 0
    assert [r.status for r in google.requests if r.path == "/revoke"] == [200]
    assert gsvc.vault.get(TOKEN_NAME) is None
    account = google_oauth.get_account(gsvc, ANN)
    assert account is not None and account.status == "disconnected"


def test_disconnect_without_google_still_forgets_the_token(
    google: FakeGoogle,
) -> None:
    services = open_services(
        gmail_settings(google, revoke_uri="http://127.0.0.1:9/revoke")
    )
    connect_account(services)
    assert google_oauth.disconnect(services, ANN) is False
    assert services.vault.get(TOKEN_NAME) is None
    account = google_oauth.get_account(services, ANN)
    assert account is not None and "permissions" in (account.status_reason or "")


def test_a_wrong_client_secret_is_a_configuration_error(google: FakeGoogle) -> None:
    services = open_services(gmail_settings(google, client_secret="wrong"))
    with pytest.raises(ConfigError, match="client_secret"):
        connect_account(services)


def test_a_redirect_uri_that_differs_from_the_registered_one_fails(
    google: FakeGoogle,
) -> None:
    """Case C08: Google compares the redirect URI exactly (here: a trailing slash)."""
    services = open_services(
        gmail_settings(google, redirect_uri="http://localhost:8501/connect/")
    )
    with pytest.raises(AssertionError, match="400"):
        authorize_redirect(google_oauth.begin_connect(services))
    assert google.violations == ["authorize: redirect_uri_mismatch"]
    google.violations.clear()


def test_sandbox_mode_cannot_connect(services: Services) -> None:
    with pytest.raises(ConfigError, match=r"\[gmail\]"):
        google_oauth.begin_connect(services)


def test_connection_age_in_plain_words() -> None:
    now = utcnow()
    assert google_oauth.describe_age(now, now) == "just now"
    assert google_oauth.describe_age(now - timedelta(hours=3), now) == "3 hours ago"
    assert google_oauth.describe_age(now - timedelta(days=8), now) == "8 days ago"
    assert google_oauth.describe_age(None, now) == "never connected"


def test_an_admin_block_reported_as_a_subtype_is_explained(gsvc: Services) -> None:
    state = auth_params(google_oauth.begin_connect(gsvc))["state"]
    answer = {
        "error": "access_denied",
        "error_subtype": "admin_policy_enforced",
        "state": state,
    }
    with pytest.raises(AuthError, match="App access control"):
        google_oauth.finish_connect(gsvc, answer)
