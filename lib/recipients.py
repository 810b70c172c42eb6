"""Who a sent message is logged on: its recipients, matched to CRM records.

Why apart from lib.sync: the rules are the heart of "logged on the right record"
and deserve to be read on their own. Each recipient in To, Cc and Bcc becomes one
row per matched record. A message sent through Steward carries its donor's record
for the draft's To address (when that record still exists), so a household address
shared by several records logs a donor email only on the donor it was written for;
every other recipient is matched by address (case-insensitive), excluded by the
exclusion list, or left unmatched for review (Steward never creates CRM records).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from lib.crm.base import Crm
from lib.crm.sandbox import chunked
from lib.emails import InvalidAddress, address_key, addresses_in_header
from lib.emails import normalise_address as _normalise
from lib.exclusions import ExclusionRules
from lib.models import CrmRecord, SentMessage
from lib.schema import donors_table, drafts_table


@dataclass(frozen=True)
class DraftLink:
    """The draft a sent message came from, and its donor's record."""

    draft_id: int
    to_address: str | None
    record_id: str | None


def message_key(message: SentMessage) -> str:
    """The deduplication key: the RFC Message-ID, or ``mailbox:<id>`` without one."""
    rfc = (message.rfc_message_id or "").strip()
    return rfc or f"mailbox:{message.mailbox_message_id}"


def _normalised(address: str) -> str:
    try:
        return _normalise(address)
    except InvalidAddress:
        return address_key(address)


def recipients_of(message: SentMessage) -> list[tuple[str, str]]:
    """(normalised address, "to" | "cc" | "bcc") for each recipient, first kind wins."""
    seen: dict[str, str] = {}
    for kind, values in (("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
        for value in values:
            for address in addresses_in_header(value):
                seen.setdefault(_normalised(address), kind)
    return list(seen.items())


def draft_links(engine: Engine, keys: Sequence[str]) -> dict[str, DraftLink]:
    """The Steward draft behind each Message-ID in ``keys`` (absent for mail sent
    from the mailbox directly)."""
    d, o = drafts_table.c, donors_table.c
    links: dict[str, DraftLink] = {}
    with engine.connect() as conn:
        for part in chunked(keys):
            query = (
                select(d.rfc_message_id, d.id, d.to_address, o.record_id)
                .select_from(drafts_table.outerjoin(donors_table, d.donor_id == o.id))
                .where(d.rfc_message_id.in_(part))
            )
            result: Any = conn.execute(query)
            for rfc, draft_id, to_address, record_id in result:
                to_key = _normalised(to_address) if to_address else None
                links[rfc] = DraftLink(draft_id, to_key, record_id or None)
    return links


class RecordMatcher:
    """Decides the log-queue rows of new messages.

    ``matches`` is one ``Crm.records_for_emails`` answer for the whole page, so the
    CRM is asked once per page (plus one ``Crm.record`` per draft donor whose record
    no longer holds the address). Raises what the CRM raises (CrmError).
    """

    def __init__(
        self,
        crm: Crm,
        rules: ExclusionRules,
        matches: dict[str, list[CrmRecord]],
        links: dict[str, DraftLink],
    ) -> None:
        self._crm = crm
        self._rules = rules
        self._matches = {address_key(k): v for k, v in matches.items()}
        self._links = links
        self._exists: dict[str, bool] = {}

    def _record_exists(self, record_id: str, address: str) -> bool:
        if any(r.record_id == record_id for r in self._matches.get(address, ())):
            return True
        if record_id not in self._exists:
            self._exists[record_id] = self._crm.record(record_id) is not None
        return self._exists[record_id]

    def rows(self, key: str, message: SentMessage) -> list[dict[str, str]]:
        """One row (recipient, recipient_kind, record_id, status) per recipient and
        record; status is "pending", "excluded" or "unmatched"."""
        link = self._links.get(key)
        rows: list[dict[str, str]] = []
        for address, kind in recipients_of(message):
            base = {"recipient": address, "recipient_kind": kind}
            others = self._matches.get(address, [])
            carried = (
                link is not None
                and link.record_id
                and address == link.to_address
                # A To retyped to an address other records hold belongs to them.
                and not (others and all(r.record_id != link.record_id for r in others))
                and self._record_exists(link.record_id, address)
            )
            if carried:
                assert link is not None and link.record_id
                # The donor the draft was written for: a deliberate donor email, so
                # it is logged on that record even if the address is excluded.
                rows.append({**base, "record_id": link.record_id, "status": "pending"})
            elif self._rules.excludes(address):
                rows.append({**base, "record_id": "", "status": "excluded"})
            elif self._matches.get(address):
                for record in self._matches[address]:
                    rows.append(
                        {**base, "record_id": record.record_id, "status": "pending"}
                    )
            else:
                # Limit: an unmatched row is not matched again if the address is
                # later added to a record; it stays listed for review.
                rows.append({**base, "record_id": "", "status": "unmatched"})
        return rows
