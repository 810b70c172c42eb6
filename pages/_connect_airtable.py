"""The CRM section of the Connect page: connect Airtable with a personal access
token, choose the base, the donors table and the email log table from lists read
with the metadata API, check the field mapping, and fix the email log table.

The token comes from secrets or is typed here once: it is stored encrypted and only
its last four characters are ever shown again. Bases and tables are fetched with a
short cache so reruns do not spend Airtable's 5 requests a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import streamlit as st

from lib.airtable_client import open_api
from lib.airtable_config import (
    airtable_token,
    endpoint_url,
    forget_token,
    save_choices,
    saved_choices,
    store_token,
)
from lib.airtable_schema import (
    DEFAULT_ACTIVITY_TABLE,
    BaseInfo,
    TableInfo,
    find_table,
    list_bases,
    list_tables,
    who_am_i,
)
from lib.errors import StewardError
from lib.services import Services
from lib.vault import redact
from pages._airtable_mapping import render_checks
from pages._common import plain, show_error

FETCH_TTL_S = 60


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@st.cache_data(ttl=FETCH_TTL_S, show_spinner=False)
def _bases(fingerprint: str, endpoint: str, _token: str) -> list[BaseInfo]:
    return list_bases(open_api(_token, endpoint))


@st.cache_data(ttl=FETCH_TTL_S, show_spinner=False)
def _tables(
    fingerprint: str, endpoint: str, base_id: str, _token: str
) -> list[TableInfo]:
    return list_tables(open_api(_token, endpoint), base_id)


def _token_form(services: Services) -> None:
    with st.form("airtable_token"):
        token = st.text_input(
            "Airtable personal access token",
            type="password",
            value="",
            placeholder="pat…",
            help="Create one at airtable.com/create/tokens with the scopes "
            "data.records:read, data.records:write and schema.bases:read (add "
            "schema.bases:write to let Steward create the email log table). Stored "
            "encrypted; never shown again.",
        )
        connect = st.form_submit_button("Connect Airtable", type="primary")
    if connect and token.strip():
        try:
            who_am_i(open_api(token.strip(), endpoint_url(services)))
        except StewardError as exc:
            show_error(exc)
            return
        store_token(services, token)
        st.toast("Airtable connected.")
        st.rerun()


def _pick(
    label: str,
    options: list[str],
    current: str,
    fixed: str = "",
    shown: Callable[[str], str] = str,
) -> str:
    """A choice fixed in secrets, or a selectbox starting at the saved one."""
    if fixed:
        st.text(f"{label}: {shown(fixed)} (set in secrets.toml)")
        return fixed
    index = options.index(current) if current in options else 0
    key = "airtable_" + label.lower().replace(" ", "_")
    return str(st.selectbox(label, options, index=index, key=key, format_func=shown))


def _choose(services: Services, token: str) -> None:
    endpoint, fixed = endpoint_url(services), services.settings.airtable
    choices = saved_choices(services)
    bases = _bases(_fingerprint(token), endpoint, token)
    names = {b.id: b.name for b in bases}
    if not bases and not (fixed and fixed.base_id):
        st.warning("This token can reach no base: give it access to your CRM base.")
        return
    base_id = _pick(
        "Base",
        list(names),
        choices.get("base_id", ""),
        fixed.base_id if fixed else "",
        lambda b: f"{names.get(b, b)} ({b})",
    )
    base = next((b for b in bases if b.id == base_id), BaseInfo(base_id, base_id))
    tables = _tables(_fingerprint(token), endpoint, base_id, token)
    existing = [t.name for t in tables]
    if not existing:
        st.warning("This base has no tables the token can read.")
        return
    donors_name = _pick(
        "Donors table",
        existing,
        choices.get("donors_table", ""),
        fixed.donors_table if fixed else "",
    )
    wanted = choices.get("activity_table") or DEFAULT_ACTIVITY_TABLE
    activity = _pick(
        "Email log table",
        list(dict.fromkeys([*existing, wanted])),
        wanted,
        fixed.activity_table if fixed else "",
        lambda t: t if t in existing else f"{t} (not in the base yet)",
    )
    update = {
        "base_id": base_id,
        "base_name": base.name,
        "donors_table": donors_name,
        "activity_table": activity,
    }
    if any(choices.get(k) != v for k, v in update.items()):
        choices = save_choices(services, **update)
    typecast = st.toggle(
        "Let Airtable add missing select options (typecast)",
        value=bool(choices.get("typecast")),
        help="Off: a value a single-select field lacks is reported, never added.",
    )
    if typecast != bool(choices.get("typecast")):
        save_choices(services, typecast=typecast)
    donors = find_table(tables, donors_name)
    if donors is None:
        st.error(plain(f'The base has no table "{donors_name}".'))
        return
    render_checks(services, token, base, tables, donors, on_change=_tables.clear)


def render(services: Services) -> None:
    """Show the Airtable connection, its choices and checks (or the token form)."""
    try:
        token, from_secrets = airtable_token(services)
    except StewardError as exc:
        show_error(exc)
        return
    if not token:
        st.caption(
            "No Airtable connected: donors come from imported files and sent email "
            "is logged in the local CRM. Connect Airtable to use a base as the CRM."
        )
        _token_form(services)
        return
    source = "from secrets.toml" if from_secrets else "stored encrypted"
    st.text(f"Airtable token: {redact(token)} ({source})")
    if not from_secrets and st.button("Disconnect Airtable", key="airtable_forget"):
        forget_token(services)
        st.toast("Airtable disconnected: the local CRM is used again.")
        st.rerun()
    try:
        _choose(services, token)
    except StewardError as exc:
        show_error(exc)
