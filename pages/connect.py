"""Connect: which mode Steward is in, and the Gmail, CRM and model connections.

This page is also the OAuth redirect target (url path ``/connect``), so Google's
answer is handled here from the query parameters.
"""

from __future__ import annotations

import streamlit as st

from pages._common import require_services
from pages._connect_airtable import render as render_airtable
from pages._connect_gmail import render as render_gmail
from pages._connect_model import render as render_model

services = require_services()
st.title("Connect")

if services.settings.sandbox:
    st.info(
        "**Sandbox mode.** No Google account is configured, so Steward uses a local "
        "mailbox: 'sent' emails land in a Sent folder on this machine and nothing "
        "reaches anyone. The CRM is a local one filled from the donor files you "
        "import, and drafts come from a mail-merge template. Every page works.",
        icon=":material/science:",
    )
else:
    st.success(
        "Connected mode: sends go out from your real Gmail.",
        icon=":material/outgoing_mail:",
    )
st.text(f"Using: {services.mode_label}")

st.header("Gmail")
render_gmail(services)

st.header("CRM")
render_airtable(services)

st.header("Drafting assistant")
render_model(services)
