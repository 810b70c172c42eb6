"""The Gmail section of the Connect page: connect, see and disconnect each staff
member's Google account, and take Google's redirect back.

Google sends the person back to this page with ``?code=…&state=…`` (or
``?error=…``) in a brand-new Streamlit session, so the answer is read from
st.query_params, checked against the server-side state (lib.google_oauth) and the
query parameters are cleared at once: a reload or a second tab never replays it.
"""

from __future__ import annotations

import time

import streamlit as st

from lib import google_oauth
from lib.errors import AuthError, StewardError
from lib.services import Services
from lib.settings import GmailSettings
from pages._common import plain, show_error

ACCOUNT_KEY = "account"  # which connected account this person is
_AUTH_URL_KEY = "gmail_auth_url"
_FLASH_KEY = "gmail_flash"
# Reuse a consent link for a while instead of storing a new state on every rerun;
# well inside google_oauth.STATE_TTL so a click never lands on an expired state.
_AUTH_URL_REUSE_S = 300
_ANSWER_KEYS = ("code", "state", "error", "error_subtype", "error_description")
_SANDBOX_HELP = """[gmail]
client_id = "1234-abc.apps.googleusercontent.com"
client_secret = "..."
redirect_uri = "http://localhost:8501/connect"
"""


def current_account(services: Services) -> str | None:
    """The address this person sends from: the sandbox address in sandbox mode;
    with Gmail, the connected account they chose, else the only connected one."""
    if services.settings.sandbox:
        return services.sandbox_account
    connected = [a.email for a in google_oauth.list_accounts(services) if a.connected]
    chosen = st.session_state.get(ACCOUNT_KEY)
    if chosen in connected:
        return str(chosen)
    return connected[0] if len(connected) == 1 else None


def _auth_url(services: Services) -> str:
    saved = st.session_state.get(_AUTH_URL_KEY)
    if saved and time.monotonic() - saved[1] < _AUTH_URL_REUSE_S:
        return str(saved[0])
    url = google_oauth.begin_connect(services)
    st.session_state[_AUTH_URL_KEY] = (url, time.monotonic())
    return url


def _handle_redirect(services: Services) -> None:
    answer = {k: st.query_params[k] for k in _ANSWER_KEYS if k in st.query_params}
    if not answer:
        return
    st.query_params.clear()  # case C10: the answer is used once, then forgotten
    st.session_state.pop(_AUTH_URL_KEY, None)
    try:
        account = google_oauth.finish_connect(services, answer)
    except AuthError as exc:
        reason = (
            (exc.detail or {}).get("reason") if isinstance(exc.detail, dict) else ""
        )
        if reason == "state_unknown" and current_account(services):
            st.info("This answer from Google was already used; Gmail stays connected.")
        else:
            show_error(exc)
        return
    except StewardError as exc:
        show_error(exc)
        return
    st.session_state[ACCOUNT_KEY] = account.email
    st.success(
        f"Gmail connected: {plain(account.email)}", icon=":material/check_circle:"
    )
    if account.features_off:
        st.warning(
            "Not every permission was granted, so these are off: "
            + "; ".join(account.features_off)
            + ". Click Reconnect Gmail and allow them to turn them on."
        )


def _disconnect(services: Services, email: str) -> None:
    try:
        revoked = google_oauth.disconnect(services, email)
    except StewardError as exc:
        st.session_state[_FLASH_KEY] = ("error", str(exc))
        return
    if revoked:
        st.session_state[_FLASH_KEY] = ("success", f"Disconnected {email}.")
    else:
        st.session_state[_FLASH_KEY] = (
            "warning",
            f"Disconnected {email} here, but Google could not be reached to withdraw "
            f"the permission: remove Steward at {google_oauth.PERMISSIONS_PAGE}.",
        )


def _render_accounts(services: Services) -> None:
    accounts = google_oauth.list_accounts(services)
    if not accounts:
        st.write("No Gmail account is connected yet.")
    for account in accounts:
        with st.container(border=True):
            age = google_oauth.describe_age(account.connected_at)
            if account.connected:
                st.markdown(f"**{plain(account.email)}** · connected {age}")
                if account.features_off:
                    st.warning("Off: " + "; ".join(account.features_off))
                st.button(
                    "Disconnect",
                    key=f"gmail-disconnect-{account.email}",
                    on_click=_disconnect,
                    args=(services, account.email),
                )
            else:
                reason = account.status_reason or "disconnected"
                st.markdown(f"**{plain(account.email)}** · disconnected")
                st.warning(
                    f"{plain(reason)}. Approved emails wait until you reconnect."
                )
                st.link_button("Reconnect Gmail", _auth_url(services))
    connected = [a.email for a in accounts if a.connected]
    if st.session_state.get(ACCOUNT_KEY) not in connected:
        st.session_state.pop(ACCOUNT_KEY, None)  # disconnected since it was chosen
    if len(connected) > 1:
        st.selectbox(  # no default: sending from a guessed account is wrong
            "Which account are you?",
            connected,
            index=None,
            placeholder="Choose the account you send from",
            key=ACCOUNT_KEY,
        )


def _render_permissions(gmail: GmailSettings) -> None:
    """Each scope Steward asks for, with what it is used for (shown before any
    sign-in, so a person or an administrator can decide first)."""
    st.markdown("**Permissions Steward asks Google for**")
    st.table(
        [
            {"permission": name, "what Steward uses it for": purpose}
            for name, purpose in google_oauth.scope_purposes(gmail)
        ]
    )


def _render_setup(services: Services) -> None:
    gmail = google_oauth.gmail_settings(services)
    with st.expander("What Steward asks Google for, and setup"):
        _render_permissions(gmail)
        st.markdown(
            "**Redirect URI** to register, exactly as shown, in Google Cloud "
            "(APIs & Services > Credentials > your OAuth client > Authorised "
            "redirect URIs):"
        )
        st.code(gmail.redirect_uri, language=None)
        st.markdown(
            "**Google Workspace administrators** must allow Steward: Admin console "
            "> Security > Access and data control > API controls > App access "
            f"control: add the OAuth client ID `{plain(gmail.client_id)}` and mark "
            "it Trusted (or allow the Gmail scopes above)."
        )
        st.caption(
            "An OAuth app left in 'Testing' publishing status gets tokens that "
            "expire after 7 days: publish it, or make it Internal to your Workspace."
        )


def render(services: Services) -> None:
    """The Gmail section: sandbox notice, or redirect handling, accounts, setup
    notes and the Connect Gmail link."""
    if services.settings.sandbox:
        st.info(
            "Gmail is not configured, so the sandbox mailbox is in use: sent emails "
            "stay on this machine. To send from Gmail, add these keys to "
            ".streamlit/secrets.toml (client from Google Cloud > APIs & Services > "
            "Credentials, type Web application) and restart Steward:"
        )
        st.code(_SANDBOX_HELP, language="toml")
        _render_permissions(GmailSettings(client_id="", client_secret=""))
        st.caption(
            "Google Workspace administrators may need to allow Steward's OAuth "
            "client (Admin console > Security > Access and data control > API "
            "controls > App access control) before staff can connect."
        )
        return
    _handle_redirect(services)
    flash = st.session_state.pop(_FLASH_KEY, None)
    if flash:
        getattr(st, flash[0])(plain(flash[1]))
    try:
        _render_accounts(services)
        st.link_button("Connect Gmail", _auth_url(services), type="primary")
    except StewardError as exc:
        show_error(exc)
    _render_setup(services)
