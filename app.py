"""Steward's entry point: only routing and starting the background sync (each page
shows the mode banner itself)."""

from __future__ import annotations

import logging

import streamlit as st

from pages._common import get_services, start_sync_thread

logging.basicConfig(
    level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
)

st.set_page_config(page_title="Steward", page_icon=":material/mail:", layout="wide")

services = get_services()
if services is not None:
    start_sync_thread(services)

navigation = st.navigation(
    [
        st.Page(
            "pages/donors.py",
            title="Donors & drafts",
            icon=":material/groups:",
            default=True,
        ),
        st.Page(
            "pages/send.py",
            title="Review & send",
            icon=":material/send:",
            url_path="send",
        ),
        st.Page(
            "pages/dashboard.py",
            title="Sync dashboard",
            icon=":material/sync:",
            url_path="sync",
        ),
        st.Page(
            "pages/connect.py",
            title="Connect",
            icon=":material/link:",
            url_path="connect",
        ),
    ]
)
navigation.run()
