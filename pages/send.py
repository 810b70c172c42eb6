"""Review and send: every draft with its status, edit one at a time with a preview,
approve, then send the approved ones after a confirmation that lists recipients."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.approval import approve, set_review_override, unapprove
from lib.drafts import get_draft, list_drafts, update_draft
from lib.errors import StewardError
from lib.models import DraftStatus
from lib.sending import SendPlan, plan_send, send_approved
from lib.services import Services
from lib.sync import sync_all
from pages._common import current_account, plain, require_services, show_error

SHOWN_BY_DEFAULT = ["draft", "needs_review", "approved", "sending", "failed", "blocked"]
TABLE_COLUMNS = ["id", "donor_name", "to_address", "subject", "status"]
TABLE_COLUMNS += ["review_issues", "error", "sent_at"]


def draft_table(services: Services, drafts: pd.DataFrame, account: str) -> list[int]:
    """Counts per status, the table, and approve / back-to-draft for the rows;
    returns the selected draft ids."""
    counts = drafts["status"].value_counts()
    for col, status in zip(st.columns(len(DraftStatus)), DraftStatus, strict=True):
        col.metric(status.value.replace("_", " "), int(counts.get(status.value, 0)))
    wanted = st.multiselect(
        "Show", [s.value for s in DraftStatus], SHOWN_BY_DEFAULT, key="status_filter"
    )
    shown = drafts[drafts["status"].isin(wanted)] if wanted else drafts
    selection = st.dataframe(
        shown[[c for c in TABLE_COLUMNS if c in shown.columns]],
        key="draft_table",
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        width="stretch",
        column_config={
            "id": st.column_config.NumberColumn("Draft", format="%d"),
            "donor_name": "Donor",
            "to_address": "To",
            "subject": "Subject",
            "status": "Status",
            "review_issues": "Needs review because",
            "error": "Error",
            "sent_at": "Sent",
        },
    )
    every = st.checkbox(f"Select all {len(shown)} shown", key="select_all_drafts")
    rows = [] if every else selection.selection.rows
    ids = (
        [int(i) for i in shown["id"]]
        if every
        else [int(shown.iloc[r]["id"]) for r in rows]
    )
    left, right = st.columns(2)
    if left.button(f"Approve {len(ids)} selected", disabled=not ids, type="primary"):
        outcome = approve(services.engine, ids, account)
        refused = [{"draft": i, "reason": why} for i, why in outcome.items() if why]
        st.session_state["approval_refusals"] = refused
        st.toast(f"Approved {len(outcome) - len(refused)} draft(s).")
        st.rerun()  # so the counts and the table show the new statuses
    refused = st.session_state.pop("approval_refusals", None)
    if refused:
        st.warning("Some drafts were not approved:")
        st.dataframe(pd.DataFrame(refused), hide_index=True)
    if right.button("Back to draft", disabled=not ids):
        unapprove(services.engine, ids)
        st.rerun()
    return ids


def edit_section(services: Services, drafts: pd.DataFrame, selected: list[int]) -> None:
    """Edit one unsent draft (subject, body, address) and preview it as plain text."""
    st.subheader("Edit a draft")
    editable = drafts[~drafts["status"].isin(["sent", "sending"])]
    if editable.empty:
        st.caption("Every draft has been sent.")
        return
    labels = {
        int(r.id): f"#{int(r.id)} {r.donor_name} <{r.to_address or 'no address'}>"
        for r in editable.itertuples()
    }
    first = selected[0] if len(selected) == 1 and selected[0] in labels else None
    draft_id = st.selectbox(
        "Draft",
        list(labels),
        index=list(labels).index(first) if first else 0,
        format_func=lambda i: labels[i],
        key="edit_draft_id",
    )
    draft = get_draft(services.engine, draft_id)
    assert draft.id is not None
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
        st.text(f"To: {draft.to_address or '(no address)'}")
        st.text(f"Subject: {draft.subject}")
        st.text(draft.body)


def confirm_and_send(services: Services, account: str, plan: SendPlan) -> None:
    """The confirmation step: count, recipients, what will not go; then send."""
    ready_ids = {item.draft_id for item in plan.ready}
    asked = st.session_state["confirm_send"]
    pending = [i for i in asked if i in ready_ids]
    if len(pending) < len(asked):
        st.info(
            f"{len(asked) - len(pending)} draft(s) changed since you pressed Send "
            "(edited, sent or un-approved elsewhere) and are left out."
        )
    if not pending:
        st.session_state.pop("confirm_send", None)
        st.caption("Nothing left to send from that request.")
        return
    where = (
        " (Sandbox: nothing leaves this machine.)" if services.settings.sandbox else ""
    )
    st.warning(
        f"You are about to send {len(pending)} email(s) from {plain(account)}.{where}"
    )
    rows = [
        {"draft": i.draft_id, "to": ", ".join(i.recipients), "subject": i.subject}
        for i in plan.ready
        if i.draft_id in pending
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if plan.blocked:
        st.text("Will not be sent:")
        st.text("\n".join(f"draft {i}: {why}" for i, why in plan.blocked.items()))
    go, cancel = st.columns(2)
    if cancel.button("Cancel"):
        st.session_state.pop("confirm_send", None)
        st.rerun()
    if not go.button(f"Confirm: send {len(pending)} email(s)", type="primary"):
        return
    st.session_state.pop("confirm_send", None)
    bar = st.progress(0.0, text="Sending…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Sent {done} of {total}")

    try:
        report = send_approved(services, account, pending, progress=progress)
    except StewardError as exc:
        show_error(exc)
        return
    st.session_state["last_send_report"] = {
        "sent": len(report.sent),
        "problems": {**report.failed, **report.blocked},
        "stopped": report.stopped_reason,
    }
    sync_all(services)  # log at once; the background sync would within a minute
    st.rerun()


def send_section(services: Services, account: str) -> None:
    st.subheader("Send")
    try:
        plan = plan_send(services, account)
    except StewardError as exc:
        show_error(exc)
        return
    if not plan.ready:
        st.caption("No approved drafts to send from this account.")
    elif st.session_state.get("confirm_send"):
        confirm_and_send(services, account, plan)
    elif st.button(f"Send {len(plan.ready)} approved", type="primary"):
        st.session_state["confirm_send"] = [item.draft_id for item in plan.ready]
        st.rerun()
    last = st.session_state.get("last_send_report")
    if last:
        st.success(f"Sent {last['sent']} email(s); sync logs them on the CRM.")
        if last["stopped"]:
            st.warning(plain(last["stopped"]))
        if last["problems"]:
            problems = [
                {"draft": i, "problem": why} for i, why in last["problems"].items()
            ]
            st.dataframe(pd.DataFrame(problems), hide_index=True)


def main() -> None:
    services = require_services()
    st.title("Review & send")
    account = current_account(services)
    if account is None:
        st.warning("Connect your Gmail on the Connect page before sending.")
        st.page_link("pages/connect.py", label="Go to Connect", icon=":material/link:")
        return
    st.text(f"Sending as: {account}")
    drafts = list_drafts(services.engine)
    if drafts.empty:
        st.info("No drafts yet: select donors on the Donors page and draft emails.")
        return
    selected = draft_table(services, drafts, account)
    edit_section(services, drafts, selected)
    send_section(services, account)


main()
