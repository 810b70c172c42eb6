"""Donor list: import a CRM export (or load from Airtable), see every donor, pick
rows and write a first draft for each."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lib.donors import last_import_report, list_donors, store_import
from lib.errors import StewardError
from lib.importing import DONOR_FIELDS, read_donor_file
from pages._common import plain, require_services, show_error
from pages._draft_panel import render as render_draft_panel

IGNORE = "(ignore)"

services = require_services()
st.title("Donors & drafts")

# -- import ----------------------------------------------------------------------------

with st.expander("Import a donor file", expanded=list_donors(services.engine).empty):
    st.caption(
        "A CSV or Excel export from your CRM (Salesforce NPSP, Bloomerang, "
        "DonorPerfect, Little Green Light, Givebutter, Donorbox, Mailchimp, "
        "Airtable...). Steward detects the encoding, separator and columns; check "
        "the mapping before importing."
    )
    upload = st.file_uploader(
        "Donor file", type=["csv", "tsv", "txt", "xlsx"], key="donor_file"
    )
    if upload is not None:
        data = upload.getvalue()
        try:
            preview = read_donor_file(data, upload.name)
        except StewardError as exc:
            show_error(exc)
        else:
            st.text(
                f"Encoding: {preview.encoding}   Separator: {preview.separator!r}   "
                f"Records: {preview.record_count}   Donors found: "
                f"{len(preview.donors)}   Rejected rows: {len(preview.rejected)}"
            )
            for note in preview.notes:
                st.warning(plain(note))
            mapping_frame = pd.DataFrame(
                {
                    "Column in file": preview.columns,
                    "Steward field": [
                        preview.mapping.get(col, IGNORE) for col in preview.columns
                    ],
                }
            )
            edited = st.data_editor(
                mapping_frame,
                key=f"mapping_{upload.name}_{len(data)}",
                hide_index=True,
                disabled=["Column in file"],
                column_config={
                    "Steward field": st.column_config.SelectboxColumn(
                        options=[IGNORE, *DONOR_FIELDS], required=True
                    )
                },
                width="stretch",
            )
            if st.button("Import donors", type="primary"):
                mapping = {
                    row["Column in file"]: row["Steward field"]
                    for _, row in edited.iterrows()
                    if row["Steward field"] != IGNORE
                }
                try:
                    result = read_donor_file(data, upload.name, mapping=mapping)
                    stored = store_import(services, result, upload.name)
                except StewardError as exc:
                    show_error(exc)
                else:
                    st.toast(
                        f"Imported {len(result.donors)} donors "
                        f"({stored.created} new, {stored.updated} updated)."
                    )

report = last_import_report(services.engine)
if report:
    issues = [
        {"row": item["row"], "kind": kind, "reason": item["reason"]}
        for kind in ("rejected", "doubtful")
        for item in report.get(kind, [])
    ]
    with st.expander(f"Last import report: {len(issues)} row(s) to look at"):
        st.text(
            f"File: {report.get('source', '')}   Imported: {report.get('imported', 0)}"
        )
        if issues:
            st.dataframe(pd.DataFrame(issues), hide_index=True)

if not services.uses_local_crm:
    from pages._donors_airtable import render as render_airtable

    render_airtable(services)

# -- donor table -----------------------------------------------------------------------


def donor_table_and_drafting() -> None:
    """The donor table and the draft panel for the selected rows."""
    donors = list_donors(services.engine)
    if donors.empty:
        st.info("No donors yet: import a file above.")
        return

    left, right = st.columns([3, 1])
    query = left.text_input("Filter by name, email or note", key="donor_filter")
    only_emailable = right.toggle("Only donors we may email", value=True)
    shown = donors
    if query:
        needle = query.strip().lower()
        haystack = (
            shown["name"].fillna("")
            + " "
            + shown["email"].fillna("")
            + " "
            + shown.get("notes", pd.Series("", index=shown.index)).fillna("")
        ).str.lower()
        shown = shown[haystack.str.contains(needle, regex=False)]
    if only_emailable:
        shown = shown[shown["blocked_reason"].isna()]

    blocked = int(donors["blocked_reason"].notna().sum())
    st.text(
        f"{len(donors)} donors, {blocked} who may not be emailed "
        f"(opted out, deceased, bounced, do not email, or no address). Showing "
        f"{len(shown)}."
    )
    columns = [
        c
        for c in (
            "id",
            "name",
            "greeting",
            "email",
            "last_gift_amount",
            "last_gift_date",
            "lifetime_giving",
            "blocked_reason",
            "possible_duplicate",
            "record_id",
        )
        if c in shown.columns
    ]
    selection = st.dataframe(
        shown[columns],
        key="donor_table",
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        width="stretch",
        column_config={
            "id": None,
            "last_gift_amount": st.column_config.NumberColumn(
                "Last gift", format="%.2f"
            ),
            "lifetime_giving": st.column_config.NumberColumn("Lifetime", format="%.2f"),
            "blocked_reason": "May not email",
            "name": "Name",
            "greeting": "Greeting",
            "email": "Email",
            "last_gift_date": "Last gift date",
            "record_id": "CRM record",
            "possible_duplicate": "Possible duplicate",
        },
    )
    picked_rows = selection.selection.rows if selection else []
    all_shown = st.checkbox(f"Draft for all {len(shown)} shown", key="draft_all_shown")
    donor_ids = (
        [int(i) for i in shown["id"]]
        if all_shown
        else [int(shown.iloc[r]["id"]) for r in picked_rows]
    )
    st.subheader("Draft emails")
    if not donor_ids:
        st.caption("Select donors in the table (or tick 'Draft for all shown').")
    else:
        st.caption(plain(f"{len(donor_ids)} donor(s) selected."))
    render_draft_panel(services, donor_ids)


donor_table_and_drafting()
