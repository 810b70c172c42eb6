"""The Gmail section of the Connect page (pages/_connect_gmail.py) driven by AppTest
through Google's redirect: a matching state, a forged one, each refusal, the
sandbox notice, disconnecting, and a reload after connecting (cases C07, C08,
C10)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from lib import google_oauth
from lib.google_oauth import SCOPE_EMAIL, SCOPE_OPENID, SCOPE_SEND
from lib.services import open_services
from tests.fakes.gmail_server import (
    FakeGoogle,
    authorize_redirect,
    connect_account,
    gmail_settings,
)

ANN = "ann@example.org"


def _gmail_section() -> None:
    import streamlit as st

    from lib.services import open_services
    from pages._connect_gmail import current_account, render

    services = open_services()
    render(services)
    st.text(f"account: {current_account(services)}")


@pytest.fixture
def google(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGoogle]:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http, tests only
    with FakeGoogle((ANN,)) as server:
        yield server
        assert server.violations == []
        assert server.drafts_calls() == []


def page(google: FakeGoogle | None = None, **query: str) -> AppTest:
    at = AppTest.from_function(_gmail_section, default_timeout=20)
    if google is not None:
        at.secrets["gmail"] = google.gmail_section()
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest, kind: str) -> str:
    """The text of every ``kind`` element, Markdown escapes removed."""
    return "\n".join(str(e.value) for e in at.get(kind)).replace("\\", "")


def alerts(at: AppTest) -> str:
    return "\n".join(
        texts(at, kind) for kind in ("error", "warning", "info", "success")
    )


def connect_url(at: AppTest) -> str:
    buttons = [b for b in at.get("link_button") if b.proto.label == "Connect Gmail"]
    assert len(buttons) == 1
    return str(buttons[0].proto.url)


def test_sandbox_mode_says_gmail_is_not_configured() -> None:
    at = page()
    assert not at.exception
    assert "Gmail is not configured" in alerts(at)
    assert "[gmail]" in texts(at, "code") and "client_id" in texts(at, "code")
    assert "account: fundraising@our-charity.example.org" in texts(at, "text")


def test_setup_notes_show_redirect_uri_scopes_and_admin_steps(
    google: FakeGoogle,
) -> None:
    at = page(google)
    assert not at.exception
    assert "http://localhost:8501/connect" in texts(at, "code")
    notes = texts(at, "markdown")
    scopes = {
        row["permission"]: row["what Steward uses it for"]
        for table in at.table
        for row in table.value.to_dict("records")
    }
    assert scopes["gmail.send"].startswith("send the emails you approve")
    assert scopes["gmail.readonly"].startswith("read your Sent folder")
    assert "gmail.compose" not in scopes and "gmail.compose" not in notes
    assert "App access control" in notes
    assert connect_url(at).startswith(f"{google.url}/o/oauth2/auth?")
    assert "account: None" in texts(at, "text")


def test_the_redirect_with_a_matching_state_connects(google: FakeGoogle) -> None:
    answer = authorize_redirect(connect_url(page(google)))
    at = page(google, **answer)
    assert not at.exception
    assert f"Gmail connected: {ANN}" in alerts(at)
    assert at.query_params == {}  # case C10: the answer is not kept in the URL
    assert "connected just now" in texts(at, "markdown")
    assert [b.label for b in at.button] == ["Disconnect"]
    assert f"account: {ANN}" in texts(at, "text")
    # a reload, or another tab, stays connected and shows no error
    again = page(google)
    assert not again.exception and not again.error
    assert "connected just now" in texts(again, "markdown")


def test_replaying_a_used_answer_keeps_the_connection(google: FakeGoogle) -> None:
    answer = authorize_redirect(connect_url(page(google)))
    page(google, **answer)
    at = page(google, **answer)
    assert not at.exception
    assert not at.error
    assert "already used" in alerts(at)


def test_a_state_that_does_not_match_is_refused(google: FakeGoogle) -> None:
    answer = authorize_redirect(connect_url(page(google)))
    answer["state"] = "forged"
    at = page(google, **answer)
    assert not at.exception
    assert "does not match a Connect Gmail click" in texts(at, "error")
    assert at.query_params == {}
    assert "account: None" in texts(at, "text")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("access_denied", "cancelled"),
        ("admin_policy_enforced", "App access control"),
        ("org_internal", "Internal"),
        ("invalid_scope", "invalid_scope"),
    ],
)
def test_each_refusal_from_google_is_explained(
    google: FakeGoogle, error: str, expected: str
) -> None:
    url = connect_url(page(google))
    google.authorize_error = error
    at = page(google, **authorize_redirect(url))
    assert not at.exception
    assert expected in texts(at, "error")
    assert at.query_params == {}


def test_no_refresh_token_is_an_error_not_a_connection(google: FakeGoogle) -> None:
    url = connect_url(page(google))
    google.issue_refresh_tokens = False
    at = page(google, **authorize_redirect(url))
    assert "short-lived access" in texts(at, "error")
    assert "No Gmail account is connected yet." in texts(at, "markdown")


def test_fewer_permissions_say_which_features_are_off(google: FakeGoogle) -> None:
    url = connect_url(page(google))
    google.grant_only = [SCOPE_OPENID, SCOPE_EMAIL, SCOPE_SEND]
    at = page(google, **authorize_redirect(url))
    assert not at.exception
    assert "Sent folder" in texts(at, "warning")


def test_disconnect_button_revokes_and_offers_reconnect(google: FakeGoogle) -> None:
    answer = authorize_redirect(connect_url(page(google)))
    at = page(google, **answer)
    at.button[0].click().run()
    assert not at.exception
    assert f"Disconnected {ANN}" in texts(at, "success")
    assert google.live_refresh_tokens(ANN) == 0
    labels = [b.proto.label for b in at.get("link_button")]
    assert "Reconnect Gmail" in labels


def test_a_withdrawn_permission_shows_the_reason_and_reconnect(
    google: FakeGoogle,
) -> None:
    """Case C07 on the page: the account is listed as disconnected, with why."""
    services = open_services(gmail_settings(google))
    connect_account(services)
    google_oauth.mark_disconnected(services, ANN, google_oauth.REFRESH_REFUSED_REASON)
    at = page(google)
    assert not at.exception
    assert "refused to renew access" in texts(at, "warning")
    labels: list[Any] = [b.proto.label for b in at.get("link_button")]
    assert labels == ["Reconnect Gmail", "Connect Gmail"]


def test_each_person_chooses_which_connected_account_they_are(
    google: FakeGoogle,
) -> None:
    google.mailboxes["bob@example.org"] = type(google.mailboxes[ANN])("bob@example.org")
    services = open_services(gmail_settings(google))
    connect_account(services)
    google.login_user = "bob@example.org"
    connect_account(services)
    at = page(google)
    assert "account: None" in texts(at, "text")  # two accounts: nobody guessed
    at.selectbox[0].select("bob@example.org").run()
    assert "account: bob@example.org" in texts(at, "text")
