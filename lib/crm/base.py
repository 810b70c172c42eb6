"""The interface every CRM offers to sync and to the dashboard."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from lib.models import CrmRecord, LogEntry, LoggedEmail, LogResult


class Crm(Protocol):
    """Where donor records live and where sent email is logged."""

    @property
    def name(self) -> str:
        """Shown on pages: "local CRM" or "Airtable (base …)"."""
        ...

    def records_for_emails(self, emails: Iterable[str]) -> dict[str, list[CrmRecord]]:
        """Map each normalised address to the records that hold it (case-insensitive).

        Addresses with no record are absent from the result.
        """
        ...

    def record(self, record_id: str) -> CrmRecord | None:
        """One record by id, or None when it does not exist (any more)."""
        ...

    def write_log(self, entries: Sequence[LogEntry]) -> list[LogResult]:
        """Log each entry on its record, as an upsert keyed on
        (rfc_message_id, record_id): writing the same entry twice leaves one entry.

        Returns one result per entry, in order; a failed entry carries ``error`` and
        does not stop the others. Raises CrmError only when nothing could be tried.
        """
        ...

    def read_log(self) -> list[LoggedEmail]:
        """Every log entry the CRM holds (for the sync dashboard)."""
        ...
