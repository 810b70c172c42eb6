"""The donor list's "Load donors from Airtable" panel: pull every record of the
donors table (100 a page) and store them like an import, keyed by record ID, so the
donor list, drafting and sending work exactly as with a CSV file."""

from __future__ import annotations

import streamlit as st

from lib.airtable_config import load_airtable_config
from lib.crm.airtable import AirtableCrm
from lib.errors import StewardError
from lib.services import Services
from pages._common import plain, show_error


def _load(services: Services, crm: AirtableCrm) -> None:
    from lib.donors import store_import

    with st.status("Reading donors from Airtable…", expanded=True) as status:
        counter = st.empty()

        def progress(count: int) -> None:
            counter.text(f"{count} records read…")

        try:
            result = crm.pull_import(progress=progress)
            stored = store_import(services, result, result.filename)
        except StewardError as exc:
            status.update(label="Loading from Airtable failed", state="error")
            show_error(exc)
            return
        status.update(
            label=f"Loaded {result.imported} donors from Airtable", state="complete"
        )
        if result.doubtful:
            st.text(f"{len(result.doubtful)} record(s) to look at:")
            for issue in result.doubtful:
                st.text(f"record {issue.row}: {issue.reason}")
    st.toast(
        f"Loaded {result.imported} donors ({stored.created} new, "
        f"{stored.updated} updated)."
    )


def render(services: Services) -> None:
    """The panel, when Airtable is the CRM; nothing otherwise."""
    try:
        config = load_airtable_config(services)
    except StewardError as exc:
        show_error(exc)
        return
    if config is None:
        return
    crm = AirtableCrm(config)
    with st.expander("Load donors from Airtable", expanded=False):
        st.caption(
            plain(
                f"From the table {config.donors_table} of {crm.name}, with the field "
                "mapping chosen on the Connect page. Loading again updates the same "
                "donors (matched by record ID)."
            )
        )
        if st.button("Load donors from Airtable", type="primary", key="airtable_load"):
            _load(services, crm)
