"""Sync dashboard: the Sent folder and the CRM log side by side, message by message,
with the lag between sending and logging, and every sent email to a known record
that is not logged yet."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from lib.crm.base import Crm
from lib.dashboard import lag_series, sync_counts, sync_table
from lib.errors import StewardError
from lib.exclusions import ExclusionList, load_exclusions, save_exclusions
from lib.models import LoggedEmail, OutgoingEmail
from lib.sync import sync_all, sync_status, unmatched_recipients
from pages._common import plain, require_services, show_error

REFRESH_EVERY = timedelta(seconds=10)
# The CRM log is read at most this often: Airtable allows 5 requests a second per
# base, shared with logging itself (see limits.md).
CRM_LOG_TTL_S = 30


@st.cache_data(ttl=CRM_LOG_TTL_S, show_spinner=False)
def crm_log(
    database: str, crm_name: str, generation: int, _crm: Crm
) -> list[LoggedEmail]:
    """The CRM's log entries, cached briefly per database, CRM and manual sync."""
    return _crm.read_log()


services = require_services()
st.title("Sync dashboard")
st.caption(
    "One row per sent email and recipient: when it was in the Sent folder, when "
    "the CRM logged it, and the lag. Every email to an address on a CRM record "
    "should be logged once, within a minute."
)

top = st.columns([1, 1, 2])
if top[0].button("Sync now", type="primary"):
    reports = sync_all(services)
    st.session_state["crm_log_generation"] = (
        st.session_state.get("crm_log_generation", 0) + 1
    )
    for report in reports:
        if report.ok:
            st.toast(plain(report.summary()))
        else:
            st.error(plain(report.summary()))
auto = top[1].toggle("Auto refresh", value=True, key="dash_auto")


@st.fragment(run_every=REFRESH_EVERY if auto else None)
def live_panel() -> None:
    """Refreshes on its own without reloading the whole page."""
    try:
        crm = services.crm()
        generation = st.session_state.get("crm_log_generation", 0)
        table = sync_table(
            services.engine,
            crm_log(services.settings.database_url, crm.name, generation, crm),
        )
    except StewardError as exc:
        show_error(exc)
        return
    st.text(f"CRM: {crm.name}")
    status = sync_status(services.engine)
    if status.empty:
        st.text("Last sync: never")
    else:
        st.dataframe(
            status,
            hide_index=True,
            key="sync_status",
            column_config={
                "mailbox": "Mailbox",
                "last_sync_at": "Last sync",
                "last_full_sync_at": "Last full resync",
                "last_error": "Last error",
            },
        )
    counts = sync_counts(table)
    cols = st.columns(6)
    cols[0].metric("Emails in Sent", counts.get("sent_emails", 0))
    cols[1].metric(
        "Log entries on records",
        counts.get("logged", 0),
        help="One per email and matched record: an email to two records is two.",
    )
    cols[2].metric(
        "Not yet logged",
        counts.get("not_yet_logged", 0),
        help="Sent to an address on a CRM record, but not in the CRM log yet.",
    )
    cols[3].metric("No matching record", counts.get("unmatched", 0))
    cols[4].metric("Excluded", counts.get("excluded", 0))
    median = counts.get("median_lag_s")
    cols[5].metric("Median lag", "–" if median is None else f"{median:.0f} s")

    if table.empty:
        st.info("Nothing in the Sent folder yet.")
        return

    f1, f2, f3 = st.columns(3)
    senders = sorted(x for x in table["sender"].dropna().unique() if x)
    pick_sender = f1.multiselect("Sender", senders, key="dash_sender")
    statuses = sorted(table["status"].dropna().unique())
    pick_status = f2.multiselect("Status", statuses, key="dash_status")
    since = f3.date_input("Sent since", value=None, key="dash_since")
    view = table
    if pick_sender:
        view = view[view["sender"].isin(pick_sender)]
    if pick_status:
        view = view[view["status"].isin(pick_status)]
    if since:
        view = view[view["sent_at"] >= pd.Timestamp(since, tz="UTC")]

    st.dataframe(
        view,
        hide_index=True,
        width="stretch",
        key="sync_table",
        column_config={
            "sent_at": "In Sent",
            "logged_at": "Logged in CRM",
            "lag_s": st.column_config.NumberColumn("Lag (s)", format="%.1f"),
            "record": "CRM record",
            "message_id": "Message-ID",
        },
    )
    lags = lag_series(view)
    if len(lags):
        st.caption("Lag between sending and logging (seconds)")
        st.bar_chart(lags)


live_panel()

with st.expander("Recipients with no matching CRM record"):
    unmatched = unmatched_recipients(services.engine)
    if unmatched.empty:
        st.caption("None.")
    else:
        st.caption("Listed for review: Steward never creates CRM records on its own.")
        st.dataframe(unmatched, hide_index=True)

with st.expander("Never log these addresses or domains"):
    current = load_exclusions(services.engine)
    text = st.text_area(
        "One address or domain per line (*.example.org covers its subdomains)",
        value="\n".join([*current.addresses, *current.domains]),
        key="exclusions_text",
    )
    own = st.checkbox(
        "Also exclude my own domain (never for gmail.com and similar)",
        value=current.exclude_own_domain,
        key="exclude_own_domain",
    )
    if st.button("Save exclusions"):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        try:
            saved = save_exclusions(
                services.engine,
                ExclusionList(
                    addresses=tuple(x for x in lines if "@" in x.lstrip("@")),
                    domains=tuple(x for x in lines if "@" not in x.lstrip("@")),
                    exclude_own_domain=own,
                ),
            )
        except StewardError as exc:
            show_error(exc)
        else:
            st.toast(
                f"Saved {len(saved.addresses)} address(es), "
                f"{len(saved.domains)} domain(s)."
            )

if services.settings.sandbox:
    with st.expander("Sandbox: put an email 'sent from Gmail directly' into Sent"):
        st.caption(
            "Shows that mail sent outside Steward is logged too. It only goes into "
            "the local Sent folder."
        )
        with st.form("external_mail"):
            to = st.text_input("To")
            subject = st.text_input("Subject", value="Quick note")
            body = st.text_area("Body", value="Thanks again for your support.")
            if st.form_submit_button("Add to Sent"):
                try:
                    mailbox = services.mailbox()
                    mailbox.add_external_sent(  # type: ignore[attr-defined]
                        OutgoingEmail(
                            sender=services.settings.sandbox_sender,
                            to=(to,),
                            subject=subject,
                            body_text=body,
                        )
                    )
                except StewardError as exc:
                    show_error(exc)
                else:
                    st.toast(plain(f"Added to Sent: {subject}"))
