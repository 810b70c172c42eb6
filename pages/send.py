"""Review and send: every draft with its status, edit one at a time with a preview,
approve, then send the approved ones after a confirmation that lists recipients."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.drafts import (
    approve,
    get_draft,
    list_drafts,
    set_review_override,
    unapprove,
    update_draft,
)
from lib.errors import StewardError
from lib.models import DraftStatus
from lib.sending import plan_send, send_approved
from lib.sync import sync_all
from pages._common import current_account, plain, require_services, show_error

services = require_services()
st.title("Review & send")

account = current_account(services)
if account is None:
    st.warning("Connect your Gmail on the Connect page before sending.")
    st.page_link("pages/connect.py", label="Go to Connect", icon="🔌")
    st.stop()
st.text(f"Sending as: {account}")

drafts = list_drafts(services.engine)
if drafts.empty:
    st.info("No drafts yet: select donors on the Donors page and draft emails.")
    st.stop()

# -- table -----------------------------------------------------------------------------

counts = drafts["status"].value_counts()
metric_cols = st.columns(len(DraftStatus))
for col, status in zip(metric_cols, DraftStatus, strict=True):
    col.metric(status.value.replace("_", " "), int(counts.get(status.value, 0)))

status_filter = st.multiselect(
    "Show",
    [s.value for s in DraftStatus],
    default=[
        s.value
        for s in (
            DraftStatus.DRAFT,
            DraftStatus.NEEDS_REVIEW,
            DraftStatus.APPROVED,
            DraftStatus.FAILED,
            DraftStatus.BLOCKED,
        )
    ],
    key="status_filter",
)
shown = drafts[drafts["status"].isin(status_filter)] if status_filter else drafts
table_cols = [
    c
    for c in (
        "id",
        "donor_name",
        "to_address",
        "subject",
        "status",
        "review_issues",
        "error",
        "sent_at",
    )
    if c in shown.columns
]
selection = st.dataframe(
    shown[table_cols],
    key="draft_table",
    hide_index=True,
    on_select="rerun",
    selection_mode="multi-row",
    use_container_width=True,
    column_config={"id": st.column_config.NumberColumn("Draft", format="%d")},
)
selected_ids = [int(shown.iloc[r]["id"]) for r in selection.selection.rows]

b1, b2, b3 = st.columns(3)
if b1.button(
    f"Approve {len(selected_ids)} selected", disabled=not selected_ids, type="primary"
):
    outcome = approve(services.engine, selected_ids, account)
    refused = {i: why for i, why in outcome.items() if why}
    st.toast(f"Approved {len(outcome) - len(refused)} draft(s).")
    if refused:
        st.warning("Some drafts were not approved:")
        st.dataframe(
            pd.DataFrame([{"draft": i, "reason": why} for i, why in refused.items()]),
            hide_index=True,
        )
if b2.button("Back to draft", disabled=not selected_ids):
    unapprove(services.engine, selected_ids)
    st.rerun()

# -- edit one draft --------------------------------------------------------------------

st.subheader("Edit a draft")
editable = drafts[~drafts["status"].isin(["sent", "sending"])]
if editable.empty:
    st.caption("Every draft has been sent.")
else:
    labels = {
        int(
            row.id
        ): f"#{int(row.id)} {row.donor_name} <{row.to_address or 'no address'}>"
        for row in editable.itertuples()
    }
    default_id = selected_ids[0] if len(selected_ids) == 1 else next(iter(labels))
    draft_id = st.selectbox(
        "Draft",
        list(labels),
        index=list(labels).index(default_id) if default_id in labels else 0,
        format_func=lambda i: labels[i],
        key="edit_draft_id",
    )
    draft = get_draft(services.engine, draft_id)
    if draft.review_issues:
        st.warning(
            "Needs review: the draft states something not found in the donor's "
            "record or the campaign brief:"
        )
        st.text("\n".join(f"• {issue}" for issue in draft.review_issues))
        override = st.checkbox(
            "I checked these facts; allow approval anyway",
            value=draft.review_override,
            key=f"override_{draft.id}",
        )
        if override != draft.review_override:
            set_review_override(services.engine, draft.id, override)
            st.rerun()
    if draft.error:
        st.error(plain(draft.error))
    with st.form(key=f"edit_{draft.id}_{draft.version}"):
        to_address = st.text_input("To", value=draft.to_address or "")
        subject = st.text_input("Subject", value=draft.subject)
        body = st.text_area("Body", value=draft.body, height=280)
        saved = st.form_submit_button("Save changes")
    if saved:
        try:
            update_draft(
                services.engine,
                draft.id,
                subject=subject,
                body=body,
                to_address=to_address,
                expected_version=draft.version,
            )
        except StewardError as exc:
            show_error(exc)
        else:
            st.toast("Saved.")
            st.rerun()
    with st.expander("Preview as the donor will read it", expanded=True):
        st.text(f"To: {draft.to_address or '(no address)'}\nSubject: {draft.subject}")
        st.text(draft.body)

# -- send ------------------------------------------------------------------------------

st.subheader("Send")
try:
    plan = plan_send(services, account)
except StewardError as exc:
    show_error(exc)
    st.stop()

if not plan.ready:
    st.caption("No approved drafts to send from this account.")
else:
    if st.button(f"Send {len(plan.ready)} approved", type="primary", key="send_start"):
        st.session_state["confirm_send"] = [item.draft_id for item in plan.ready]
    pending = st.session_state.get("confirm_send")
    if pending:
        st.warning(
            f"You are about to send {len(pending)} email(s) from {plain(account)}."
            + (
                " (Sandbox: nothing leaves this machine.)"
                if services.settings.sandbox
                else ""
            )
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "draft": i.draft_id,
                        "to": ", ".join(i.recipients),
                        "subject": i.subject,
                    }
                    for i in plan.ready
                    if i.draft_id in pending
                ]
            ),
            hide_index=True,
        )
        if plan.blocked:
            st.text(
                "Will not be sent:\n"
                + "\n".join(f"  draft {i}: {why}" for i, why in plan.blocked.items())
            )
        c1, c2 = st.columns(2)
        if c1.button(f"Confirm: send {len(pending)} email(s)", type="primary"):
            st.session_state.pop("confirm_send", None)
            bar = st.progress(0.0, text="Sending…")

            def _progress(done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"Sent {done} of {total}")

            try:
                report = send_approved(services, account, pending, progress=_progress)
            except StewardError as exc:
                show_error(exc)
            else:
                st.session_state["last_send_report"] = {
                    "sent": len(report.sent),
                    "failed": dict(report.failed),
                    "blocked": dict(report.blocked),
                    "stopped": report.stopped_reason,
                }
                try:
                    sync_all(services)
                except StewardError as exc:
                    show_error(exc)
                st.rerun()
        if c2.button("Cancel"):
            st.session_state.pop("confirm_send", None)
            st.rerun()

last = st.session_state.get("last_send_report")
if last:
    st.success(f"Sent {last['sent']} email(s); logged on the CRM by sync.")
    if last["stopped"]:
        st.warning(plain(last["stopped"]))
    problems = [
        {"draft": i, "problem": why}
        for i, why in {**last["failed"], **last["blocked"]}.items()
    ]
    if problems:
        st.dataframe(pd.DataFrame(problems), hide_index=True)
