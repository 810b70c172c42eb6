"""Addresses that must never be emailed, whichever donor's draft they are on.

Why by address and not only by donor: one inbox can sit on several CRM records (a
household, an un-merged duplicate, a later export with another ID), and a person
can type any address into a draft's To field. If any record holding an address is
marked deceased, opted out, do not email or bounced, no email goes to that address
from Steward. Checked when drafting, approving, planning a send and right before
each send.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, String, cast, or_, select

from lib.emails import canonical_address
from lib.importing.result import FLAGS
from lib.models import Donor
from lib.schema import donors_table


def _blocked_rows(conn: Connection, address: str | None = None):  # type: ignore[no-untyped-def]
    o = donors_table
    query = select(o.c.email, o.c.emails, *(o.c[f] for f in FLAGS)).where(
        or_(*(o.c[f].is_(True) for f in FLAGS))
    )
    if address is not None:
        # The JSON list may hold the address as typed or \u-escaped (non-ASCII).
        forms = {json.dumps(address), json.dumps(address, ensure_ascii=False)}
        query = query.where(
            or_(
                o.c.email == address,
                *(
                    cast(o.c.emails, String).like(f"%{_like(form)}%", escape="\\")
                    for form in forms
                ),
            )
        )
    return conn.execute(query)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _reason(row: object) -> str:
    m = row._mapping  # type: ignore[attr-defined]
    flags = Donor(
        name="",
        email="x",
        deceased=bool(m["deceased"]),
        opted_out=bool(m["opted_out"]),
        do_not_email=bool(m["do_not_email"]),
        bounced=bool(m["bounced"]),
    )
    return flags.blocked_reason or "may not be emailed"


def suppressed_addresses(conn: Connection) -> dict[str, str]:
    """Every address on a record that may not be emailed -> the reason."""
    found: dict[str, str] = {}
    for row in _blocked_rows(conn):
        reason = _reason(row)
        for address in [row.email, *(row.emails or [])]:
            if address:
                found.setdefault(canonical_address(str(address)), reason)
    return found


def suppression_reason(conn: Connection, address: str | None) -> str | None:
    """Why ``address`` may not be emailed (a record holding it is blocked), or
    None. Addresses are stored in lower case, so the lookup is exact."""
    key = canonical_address(address)
    if not key:
        return None
    for row in _blocked_rows(conn, key):
        return f"{_reason(row)} (a donor record with this address)"
    return None
