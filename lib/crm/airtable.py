"""Placeholder until the Airtable adapter lands (issue 4)."""

from __future__ import annotations

from typing import Any


def open_airtable_crm(services: Any) -> None:
    """No Airtable support yet: always the local CRM."""
    return None
