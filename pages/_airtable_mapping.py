"""The Connect page's Airtable checks: the field mapping editor (which field of the
donors table holds each donor fact, suggested from names and types, corrected by the
user and saved) and the email log table's problems with a "Create missing fields"
button when the token may change the base. The saved mapping, not the suggestion,
is what every pull and lookup uses."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from lib.airtable_client import open_api
from lib.airtable_config import load_airtable_config, save_choices
from lib.airtable_donors import (
    FIELD_LABELS,
    MAX_EMAIL_FIELDS,
    SUGGESTION_RULES,
    DonorMapping,
    check_donor_fields,
    suggest_donor_mapping,
)
from lib.airtable_schema import (
    BaseInfo,
    TableInfo,
    check_activity_table,
    create_missing,
    schema_write_allowed,
)
from lib.services import Services
from pages._common import plain

NONE = "(none)"


def _rows(mapping: DonorMapping) -> pd.DataFrame:
    rows = [
        (f"email_{i}", f"Email {i + 1}" if i else "Email", name)
        for i, name in enumerate(
            list(mapping.emails) + [""] * (MAX_EMAIL_FIELDS - len(mapping.emails))
        )
    ]
    rows += [
        (key, FIELD_LABELS[key], getattr(mapping, key)) for key, *_ in SUGGESTION_RULES
    ]
    return pd.DataFrame(
        {
            "key": [r[0] for r in rows],
            "Steward field": [r[1] for r in rows],
            "Airtable field": [r[2] or NONE for r in rows],
        }
    )


def _mapping_from(frame: pd.DataFrame, names: set[str]) -> DonorMapping:
    chosen = {
        str(row["key"]): str(row["Airtable field"])
        for _, row in frame.iterrows()
        if str(row["Airtable field"]) in names
    }
    emails = [
        chosen.pop(f"email_{i}")
        for i in range(MAX_EMAIL_FIELDS)
        if f"email_{i}" in chosen
    ]
    return DonorMapping.from_dict({**chosen, "emails": list(dict.fromkeys(emails))})


def render_mapping(
    services: Services, table: TableInfo, saved: DonorMapping | None
) -> DonorMapping:
    """Show the mapping (the saved one, else the suggestion) in an editor with a
    Save button; return the mapping in force."""
    mapping = saved or suggest_donor_mapping(table)
    st.caption(
        "Which field of the donors table holds each fact. "
        + (
            "Saved mapping."
            if saved
            else "Suggested from the field names: check it and save."
        )
    )
    edited = st.data_editor(
        _rows(mapping),
        key=f"airtable_mapping_{table.id}",
        hide_index=True,
        disabled=["Steward field"],
        column_config={
            "key": None,
            "Airtable field": st.column_config.SelectboxColumn(
                options=[NONE, *table.field_names], required=True
            ),
        },
        width="stretch",
    )
    if st.button("Save field mapping", key="airtable_mapping_save"):
        mapping = _mapping_from(edited, set(table.field_names))
        save_choices(services, donor_mapping=mapping.to_dict())
        st.toast("Field mapping saved.")
    return mapping


def render_checks(
    services: Services,
    token: str,
    base: BaseInfo,
    tables: list[TableInfo],
    donors: TableInfo,
    on_change: Callable[[], None],
) -> None:
    """The mapping editor, then every problem of the donors and email log tables
    with its fix; ``on_change`` runs after fields were created. Raises CrmError."""
    config = load_airtable_config(services)
    if config is None:
        return
    mapping = render_mapping(services, donors, config.donor_mapping)
    problems = check_donor_fields(donors, mapping) + check_activity_table(
        tables, config.activity_table, donors, config.activity_fields
    )
    if not problems:
        st.success(
            "The donors table and the email log table are ready.",
            icon=":material/check_circle:",
        )
        return
    for problem in problems:
        (st.error if problem.blocking else st.warning)(plain(problem.text))
    if not any(p.create for p in problems):
        return
    api = open_api(token, config.endpoint_url)
    if schema_write_allowed(api, base) is False:
        st.caption(
            "This token may not change the base: add the fields in Airtable, or give "
            "the token the schema.bases:write scope and creator access."
        )
    elif st.button("Create missing fields", key="airtable_create"):
        created = create_missing(api, base.id, tables, problems)
        on_change()
        st.toast(plain("Created " + ", ".join(created) + "."))
        st.rerun()
