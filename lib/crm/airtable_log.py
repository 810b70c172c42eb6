"""The email log table of an Airtable base: each sent email is a row linked to the
donor's record, written exactly once and never lost.

Why it is built this way:

- Exactly once: each row carries a key ``<Message-ID>|<record id>`` and is written
  with Airtable's upsert (``performUpsert`` on that key), so a retry after a crash or
  a second sync updates the same row instead of adding one.
- Nothing lost: rows go in batches of at most 10 (limits.md); a batch Airtable
  refuses with 422 is retried record by record so exactly the bad entry carries the
  error (case C12). A 429 is handled below us by the shared pacer (30 s pause, case
  C11); if Airtable keeps refusing, the unwritten entries come back with an error
  and sync keeps them queued for the next pass.
- Plain words for schema drift (case C13): a missing select option is caught
  before sending; a field renamed while we write is named with its fix. Opens and
  clicks are never written with the entry, so writing it again keeps the counts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from pyairtable import Api

from lib.airtable_client import crm_error, failure_of
from lib.airtable_config import AirtableConfig
from lib.airtable_schema import SchemaProblem, TableInfo, schema_error
from lib.errors import CrmError, CrmSchemaError
from lib.models import LogEntry, LoggedEmail, LogResult

log = logging.getLogger(__name__)

# limits.md, "Airtable Web API": at most 10 records per write, 100 per list page.
RECORDS_PER_WRITE = 10
PAGE_SIZE = 100
# The dashboard refreshes every few seconds; the log is read at most this often.
READ_LOG_TTL_S = 15.0
EXCERPT_CHARS = 500
RECORD_ID = re.compile(r"^rec[A-Za-z0-9]{14}$")  # Airtable's record id shape
# 422 types that mean the table changed under us, not that one record is bad.
SCHEMA_FAILURES = {"UNKNOWN_FIELD_NAME", "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND"}

_log_cache: dict[tuple[str, str, str], tuple[float, list[LoggedEmail]]] = {}
_log_cache_lock = threading.Lock()


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class _Stop(Exception):
    """Writing cannot go on in this call (rate limit, network, schema)."""

    def __init__(self, message: str, schema: bool = False) -> None:
        super().__init__(message)
        self.message, self.schema = message, schema


class EmailLog:
    """Write, read and update the email log table of one base.

    ``table`` returns the checked log table (raising CrmSchemaError when it is
    unfit); ``problems`` re-reads the schema and lists what is wrong.
    """

    def __init__(
        self,
        api: Api,
        config: AirtableConfig,
        table: Callable[[], TableInfo],
        problems: Callable[[], list[SchemaProblem]],
    ) -> None:
        self._api = api
        self._config = config
        self._table = table
        self._problems = problems
        self._cache_key = (config.endpoint_url, config.base_id, config.activity_table)

    def _forget(self) -> None:
        with _log_cache_lock:
            _log_cache.pop(self._cache_key, None)

    def _fields_for(self, entry: LogEntry, table: TableInfo) -> dict[str, Any]:
        names = self._config.activity_fields
        values = {
            "key": f"{entry.rfc_message_id}|{entry.record_id}",
            "donor": [entry.record_id],
            "subject": entry.subject,
            "excerpt": (entry.excerpt or "")[:EXCERPT_CHARS],
            "sent_at": _iso(entry.sent_at),
            "sender": entry.sender,
            "recipient": entry.recipient,
            "mailbox_message_id": entry.mailbox_message_id,
            "thread_id": entry.thread_id,
            "rfc_message_id": entry.rfc_message_id,
        }
        fields: dict[str, Any] = {}
        for key, value in values.items():
            found = table.field(names[key])
            if found is None:  # an optional field the table does not have
                continue
            if found.type == "singleLineText" and isinstance(value, str):
                value = " ".join(value.split())
            fields[found.name] = value
        return fields

    def _precheck(
        self, entry: LogEntry, fields: Mapping[str, Any], table: TableInfo
    ) -> str | None:
        """Why this entry cannot be written, found without asking Airtable."""
        if not RECORD_ID.match(entry.record_id or ""):
            return f"{entry.record_id!r} is not an Airtable record id."
        if self._config.typecast:
            return None
        for name, value in fields.items():
            found = table.field(name)
            if found is not None and found.type == "singleSelect" and value:
                if value not in found.choices:
                    return (
                        f'The Airtable field "{name}" is a single select without the '
                        f'option "{value}". Add that option in Airtable, or turn on '
                        '"Let Airtable add missing select options" on the Connect page.'
                    )
        return None

    def write(self, entries: Sequence[LogEntry]) -> list[LogResult]:
        """Log each entry as a row of the email log table, upserted on its key.

        Returns one result per entry, in order; refused entries carry ``error`` and
        are written by a later sync. Raises CrmSchemaError when the table or a
        field is missing or wrong, and CrmError when nothing could be written.
        """
        if not entries:
            return []
        table = self._table()
        key_field = self._config.activity_fields["key"]
        results: list[LogResult | None] = [None] * len(entries)
        todo: list[tuple[int, dict[str, Any]]] = []
        # One email to two addresses of the same record is one row: write it once.
        first_of: dict[str, int] = {}
        copies: list[tuple[int, int]] = []
        for index, entry in enumerate(entries):
            fields = self._fields_for(entry, table)
            problem = self._precheck(entry, fields, table)
            key = str(fields[key_field])
            if problem:
                results[index] = LogResult(
                    entry.record_id, entry.rfc_message_id, error=problem
                )
            elif key in first_of:
                copies.append((index, first_of[key]))
            else:
                first_of[key] = index
                todo.append((index, fields))
        writer = self._api.table(self._config.base_id, table.id)
        for start in range(0, len(todo), RECORDS_PER_WRITE):
            batch = todo[start : start + RECORDS_PER_WRITE]
            try:
                self._write_batch(writer, key_field, batch, entries, results)
            except _Stop as stop:
                written = sum(1 for r in results if r is not None and not r.error)
                if written == 0 and (stop.schema or not any(results)):
                    error = CrmSchemaError if stop.schema else CrmError
                    raise error(stop.message) from None
                for index, _fields in todo[start:]:
                    if results[index] is None:
                        e = entries[index]
                        results[index] = LogResult(
                            e.record_id, e.rfc_message_id, error=stop.message
                        )
                break
        for index, original in copies:
            results[index] = results[original]
        self._forget()
        done = [r for r in results if r is not None]
        log.info(
            "airtable write_log: %d entries, %d refused",
            len(entries),
            sum(1 for r in done if r.error),
        )
        return done

    def _write_batch(
        self,
        writer: Any,
        key_field: str,
        batch: Sequence[tuple[int, dict[str, Any]]],
        entries: Sequence[LogEntry],
        results: list[LogResult | None],
    ) -> int:
        """Upsert one batch; on a 422, record by record. Returns rows written."""
        try:
            answer = writer.batch_upsert(
                [{"fields": f} for _i, f in batch],
                key_fields=[key_field],
                typecast=self._config.typecast,
            )
        except requests.RequestException as exc:
            failure = failure_of(exc)
            if failure.status == 422 and failure.kind in SCHEMA_FAILURES:
                problems = self._problems()
                message = (
                    schema_error(problems).message
                    if any(p.blocking for p in problems)
                    else crm_error(exc, "write the email log").message
                )
                raise _Stop(message, schema=True) from exc
            if failure.status != 422:
                raise _Stop(crm_error(exc, "write the email log").message) from exc
            if len(batch) == 1:
                index = batch[0][0]
                e = entries[index]
                message = crm_error(
                    exc, f"log the email on record {e.record_id}"
                ).message
                results[index] = LogResult(e.record_id, e.rfc_message_id, error=message)
                return 0
            return sum(
                self._write_batch(writer, key_field, [item], entries, results)
                for item in batch
            )
        ids = {
            str((r.get("fields") or {}).get(key_field)): r["id"]
            for r in answer.get("records", [])
        }
        for index, fields in batch:
            e = entries[index]
            results[index] = LogResult(
                e.record_id, e.rfc_message_id, ids.get(str(fields[key_field]))
            )
        return len(batch)

    def _log_rows(self) -> tuple[TableInfo, list[Any]]:
        table = self._table()
        reader = self._api.table(self._config.base_id, table.id)
        try:
            rows = [r for page in reader.iterate(page_size=PAGE_SIZE) for r in page]
        except requests.RequestException as exc:
            raise crm_error(exc, "read the email log") from exc
        return table, rows

    def read(self) -> list[LoggedEmail]:
        """Every row of the email log (all senders), oldest first. Read at most
        every READ_LOG_TTL_S seconds. Raises CrmSchemaError or CrmError."""
        key = self._cache_key
        with _log_cache_lock:
            cached = _log_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < READ_LOG_TTL_S:
            return list(cached[1])
        _table, rows = self._log_rows()
        names = self._config.activity_fields
        logged: list[LoggedEmail] = []
        for row in rows:
            values = row.get("fields") or {}
            log_key = str(values.get(names["key"]) or "")
            rfc = str(values.get(names["rfc_message_id"]) or log_key.rpartition("|")[0])
            if not rfc:
                continue  # a row somebody added by hand, not an email Steward logged
            links = values.get(names["donor"]) or []
            created = _parse_time(row.get("createdTime"))
            logged.append(
                LoggedEmail(
                    record_id=str(links[0]) if links else log_key.rpartition("|")[2],
                    rfc_message_id=rfc,
                    mailbox_message_id=values.get(names["mailbox_message_id"]),
                    thread_id=values.get(names["thread_id"]),
                    subject=str(values.get(names["subject"]) or ""),
                    sender=str(values.get(names["sender"]) or ""),
                    recipient=str(values.get(names["recipient"]) or ""),
                    sent_at=_parse_time(values.get(names["sent_at"]))
                    or created
                    or datetime.now(UTC),
                    logged_at=created,
                    opens=int(values.get(names["opens"]) or 0),
                    clicks=int(values.get(names["clicks"]) or 0),
                )
            )
        logged.sort(key=lambda item: item.logged_at or item.sent_at)
        with _log_cache_lock:
            _log_cache[key] = (time.monotonic(), logged)
        return list(logged)

    def write_engagement(self, counts: Mapping[str, tuple[int, int]]) -> int:
        """Set Opens and Clicks on the log rows of each Message-ID in ``counts``
        (rfc_message_id -> (opens, clicks)); return how many rows changed.
        Raises CrmError."""
        table, rows = self._log_rows()
        names = self._config.activity_fields
        opens_f, clicks_f = table.field(names["opens"]), table.field(names["clicks"])
        if opens_f is None or clicks_f is None or not counts:
            return 0
        changes: list[Any] = []
        for row in rows:
            values = row.get("fields") or {}
            rfc = str(values.get(names["rfc_message_id"]) or "")
            if rfc in counts:
                opens, clicks = counts[rfc]
                if (values.get(opens_f.name) or 0, values.get(clicks_f.name) or 0) != (
                    opens,
                    clicks,
                ):
                    changes.append(
                        {
                            "id": row["id"],
                            "fields": {opens_f.name: opens, clicks_f.name: clicks},
                        }
                    )
        writer = self._api.table(self._config.base_id, table.id)
        try:
            for start in range(0, len(changes), RECORDS_PER_WRITE):
                writer.batch_update(changes[start : start + RECORDS_PER_WRITE])
        except requests.RequestException as exc:
            raise crm_error(exc, "write opens and clicks") from exc
        self._forget()
        return len(changes)
