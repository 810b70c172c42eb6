"""Small helpers every page shares: services, the mode banner, the signed-in
account, and showing errors without rendering donor data as Markdown."""

from __future__ import annotations

import logging
import os
import re

import streamlit as st

from lib.errors import StewardError
from lib.services import Services, open_services

log = logging.getLogger(__name__)

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&])")


def plain(text: object) -> str:
    """Escape Markdown so text from donors or services shows literally in widgets
    that render Markdown (st.error, st.caption, labels)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(text)).replace("\n", "  \n")


def get_services() -> Services | None:
    """Services for this run; a configuration problem is shown, not raised."""
    try:
        return open_services()
    except StewardError as exc:
        st.error(f"Steward cannot start: {plain(exc)}")
        return None


def require_services() -> Services:
    """Services for a page, with the mode banner in the sidebar; stops the page
    when the configuration is broken (the error is shown)."""
    services = get_services()
    if services is None:
        st.stop()
    assert services is not None
    mode_banner(services)
    return services


def mode_banner(services: Services) -> None:
    """Say plainly, on every page, whether real mail can leave this machine."""
    with st.sidebar:
        if services.settings.sandbox:
            st.info(
                "**Sandbox mode**: emails go to a local Sent folder on this machine; "
                "nothing is sent to anyone.",
                icon=":material/science:",
            )
        else:
            st.warning(
                "**Connected**: sends go out from your real Gmail.",
                icon=":material/outgoing_mail:",
            )
        st.caption(f"Using: {plain(services.mode_label)}")


def current_account(services: Services) -> str | None:
    """The address this person sends from (the sandbox address in sandbox mode)."""
    if services.settings.sandbox:
        return services.sandbox_account
    from pages._connect_gmail import current_account as gmail_account

    return gmail_account(services)


def start_sync_thread(services: Services) -> None:
    """Keep syncing Sent with the CRM while the app is up (one thread a process)."""
    if os.environ.get("STEWARD_BACKGROUND_SYNC", "1") == "0":
        return
    from lib.background import start_background_sync

    try:
        start_background_sync(open_services, services.settings.sync_interval_s)
    except StewardError as exc:  # shown, and the pages still work
        st.sidebar.warning(f"Background sync is off: {plain(exc)}")


def show_error(exc: StewardError) -> None:
    st.error(plain(exc), icon=":material/warning:")
