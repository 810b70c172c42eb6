"""Airtable as the CRM: donor records are rows of a donors table, and every sent
email is a row of an email log table linked to the donor's record
(:mod:`lib.crm.airtable_log` writes it).

Why it is built this way: the donors table belongs to the team and is laid out
their way, so everything Steward reads goes through the saved field mapping, checked
against the table schema first (a renamed field is named with its fix, case C13).
Lookups by email are formulas built only by :mod:`lib.airtable_formulas`, so no
address can change what a formula selects; the formula finds candidates and the
exact address is then compared here. Every request goes through the shared pacer
(5 per second per base, case C11). Creating the adapter makes no request, so
:func:`open_airtable_crm` is cheap on every page run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from pyairtable import Api

from lib.airtable_client import crm_error, open_api, status_of
from lib.airtable_config import AirtableConfig, load_airtable_config
from lib.airtable_donors import (
    DonorMapping,
    check_donor_fields,
    import_result,
    record_to_donor,
    records_to_donors,
    suggest_donor_mapping,
)
from lib.airtable_formulas import lookup_formulas
from lib.airtable_schema import (
    SchemaProblem,
    TableInfo,
    check_activity_table,
    find_table,
    list_tables,
    schema_error,
)
from lib.crm.airtable_log import PAGE_SIZE, RECORD_ID, EmailLog
from lib.emails import address_key
from lib.errors import CrmSchemaError
from lib.models import CrmRecord, Donor, LogEntry, LoggedEmail, LogResult
from lib.pacer import Pacer

if TYPE_CHECKING:
    from lib.importing import ImportResult
    from lib.services import Services

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[\s,;]+")


class AirtableCrm:
    """The :class:`lib.crm.base.Crm` protocol over one Airtable base."""

    def __init__(
        self,
        config: AirtableConfig,
        *,
        pacer: Pacer | None = None,
        api: Api | None = None,
    ) -> None:
        self.config = config
        self.api = api or open_api(config.token, config.endpoint_url, pacer)
        self._tables: list[TableInfo] | None = None
        self.email_log = EmailLog(
            self.api,
            config,
            self._activity_table,
            lambda: self.activity_problems(force=True),
        )

    @property
    def name(self) -> str:
        return f"Airtable (base {self.config.base_name or self.config.base_id})"

    # -- schema ----------------------------------------------------------------------

    def tables(self, *, force: bool = False) -> list[TableInfo]:
        """The base's tables and fields (read once per instance unless forced)."""
        if self._tables is None or force:
            self._tables = list_tables(self.api, self.config.base_id)
        return self._tables

    def donors_table(self) -> TableInfo:
        """Raises CrmSchemaError when the donors table is not in the base."""
        table = find_table(self.tables(), self.config.donors_table)
        if table is None:
            raise CrmSchemaError(
                f'The Airtable base has no donors table "{self.config.donors_table}". '
                "Choose the donors table again on the Connect page."
            )
        return table

    def donor_mapping(self) -> DonorMapping:
        """The saved field mapping (or the suggested one), checked against the
        donors table. Raises CrmSchemaError naming each missing field."""
        table = self.donors_table()
        mapping = self.config.donor_mapping or suggest_donor_mapping(table)
        problems = check_donor_fields(table, mapping)
        if problems:
            raise schema_error(problems)
        return mapping

    def activity_problems(self, *, force: bool = False) -> list[SchemaProblem]:
        """Everything wrong with the email log table (empty when it is fine)."""
        return check_activity_table(
            self.tables(force=force),
            self.config.activity_table,
            self.donors_table(),
            self.config.activity_fields,
        )

    def _activity_table(self) -> TableInfo:
        problems = self.activity_problems()
        if any(p.blocking for p in problems):
            raise schema_error(problems)
        table = find_table(self.tables(), self.config.activity_table)
        assert table is not None  # no blocking problem means the table exists
        return table

    # -- donors and records ----------------------------------------------------------

    def _donor_records(
        self, progress: Callable[[int], None] | None
    ) -> tuple[list[Any], DonorMapping]:
        mapping = self.donor_mapping()
        table = self.api.table(self.config.base_id, self.donors_table().id)
        records: list[Any] = []
        try:
            for page in table.iterate(
                page_size=PAGE_SIZE, fields=mapping.field_names()
            ):
                records.extend(page)
                if progress is not None:
                    progress(len(records))
        except requests.RequestException as exc:
            raise crm_error(exc, "read the donors table") from exc
        return records, mapping

    def pull_donors(self, progress: Callable[[int], None] | None = None) -> list[Donor]:
        """Every donor of the donors table with its record ID, read 100 records a
        page (following Airtable's offset); ``progress`` gets the count so far.
        Raises CrmSchemaError or CrmError."""
        records, mapping = self._donor_records(progress)
        return records_to_donors(records, mapping)

    def pull_import(
        self, progress: Callable[[int], None] | None = None
    ) -> ImportResult:
        """The same pull as an import result, for the donor store and list (one
        donor per record; records with a bad address listed as doubtful)."""
        records, mapping = self._donor_records(progress)
        return import_result(records, mapping, f"airtable:{self.config.base_id}")

    def _crm_record(
        self, record: Mapping[str, Any], mapping: DonorMapping
    ) -> CrmRecord:
        values = record.get("fields") or {}
        emails: list[str] = []
        for name in mapping.emails:
            value = values.get(name)
            parts = value if isinstance(value, list) else [value]
            for part in parts:
                for token in _SPLIT.split(str(part or "")):
                    key = address_key(token)
                    if key and key not in emails:
                        emails.append(key)
        name = record_to_donor(record, mapping).name
        return CrmRecord(str(record["id"]), name, tuple(emails))

    def records_for_emails(self, emails: Iterable[str]) -> dict[str, list[CrmRecord]]:
        """Map each address (lower case) to the records holding it in any mapped
        email field. Any text is safe as input. Raises CrmError."""
        wanted = sorted({address_key(e) for e in emails if e and e.strip()})
        found: dict[str, list[CrmRecord]] = {}
        if not wanted:
            return found
        mapping = self.donor_mapping()
        table = self.api.table(self.config.base_id, self.donors_table().id)
        wanted_set = set(wanted)
        seen: set[str] = set()
        try:
            for formula in lookup_formulas(wanted, mapping.emails):
                for page in table.iterate(
                    page_size=PAGE_SIZE, formula=formula, fields=mapping.field_names()
                ):
                    for raw in page:
                        if raw["id"] in seen:
                            continue
                        seen.add(raw["id"])
                        record = self._crm_record(raw, mapping)
                        for address in record.emails:
                            if address in wanted_set:
                                found.setdefault(address, []).append(record)
        except requests.RequestException as exc:
            raise crm_error(exc, "look up donors by email") from exc
        return found

    def record(self, record_id: str) -> CrmRecord | None:
        """One donor record, or None when it does not exist. Raises CrmError."""
        if not RECORD_ID.match(record_id or ""):
            return None
        table = self.api.table(self.config.base_id, self.donors_table().id)
        try:
            raw = table.get(record_id)
        except requests.RequestException as exc:
            if status_of(exc) == 404:
                return None
            raise crm_error(exc, "read a donor record") from exc
        return self._crm_record(raw, self.donor_mapping())

    # -- the email log ---------------------------------------------------------------

    def write_log(self, entries: Sequence[LogEntry]) -> list[LogResult]:
        """Log each entry as a row of the email log table, upserted on
        ``<Message-ID>|<record id>``, in batches of 10.

        Returns one result per entry, in order; refused entries carry ``error`` and
        are written by a later sync. Raises CrmSchemaError when the table or a
        field is missing or wrong, and CrmError when nothing could be written.
        """
        return self.email_log.write(entries)

    def read_log(self) -> list[LoggedEmail]:
        """Every row of the email log (all staff, with sender), oldest first.
        Raises CrmSchemaError or CrmError."""
        return self.email_log.read()

    def write_engagement(self, counts: Mapping[str, tuple[int, int]]) -> int:
        """Set Opens and Clicks on the log rows of each Message-ID in ``counts``
        (rfc_message_id -> (opens, clicks)); return how many rows changed."""
        return self.email_log.write_engagement(counts)


def open_airtable_crm(
    services: Services, pacer: Pacer | None = None
) -> AirtableCrm | None:
    """The Airtable CRM when a token, base and donors table are configured (in
    secrets or on the Connect page), else None. No request is made here."""
    config = load_airtable_config(services)
    if config is None:
        return None
    return AirtableCrm(config, pacer=pacer)


def push_engagement(services: Services, crm: AirtableCrm) -> int:
    """Copy the opens and clicks by people that Steward tracked (lib.tracking;
    machine opens and scanner clicks left out) onto the Airtable log rows; return
    how many rows changed. Raises CrmError."""
    from lib.tracking import tracking_counts

    frame = tracking_counts(services.engine)
    counts = {
        str(row.rfc_message_id): (int(row.human_opens), int(row.human_clicks))
        for row in frame.itertuples()
    }
    return crm.write_engagement(counts) if counts else 0
