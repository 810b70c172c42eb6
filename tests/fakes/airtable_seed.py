"""A donor base for the local Airtable, and the clients tests point at it.

Tests run Airtable's rule (5 requests per window per base) on a short window so they
stay fast; the pacer is given the same window, so the rule is really exercised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from lib.airtable_config import AirtableConfig
from lib.airtable_schema import ACTIVITY_FIELDS
from lib.crm.airtable import AirtableCrm
from lib.models import LogEntry
from lib.pacer import Pacer
from tests.fakes.airtable_server import FakeAirtable

FAST_WINDOW_S = 0.1
FAST_PENALTY_S = 0.15

DONOR_FIELDS: list[tuple[str, str] | tuple[str, str, dict[str, Any]]] = [
    ("Name", "singleLineText"),
    ("First Name", "singleLineText"),
    ("Last Name", "singleLineText"),
    ("Informal Name", "singleLineText"),
    ("Formal Salutation", "singleLineText"),
    ("Email", "email"),
    ("Work Email", "email"),
    ("Email Opt Out", "checkbox"),
    ("Deceased", "checkbox"),
    ("Last Gift Amount", "currency"),
    ("Last Gift Date", "date"),
    ("Lifetime Giving", "currency"),
    ("Notes", "multilineText"),
]


def activity_fields(donors_table_id: str) -> list[Any]:
    """The email log table exactly as Steward would create it."""
    out: list[Any] = []
    for spec in ACTIVITY_FIELDS:
        if spec.key == "donor":
            out.append(
                (
                    spec.default_name,
                    "multipleRecordLinks",
                    {"linkedTableId": donors_table_id},
                )
            )
        else:
            out.append((spec.default_name, spec.create_type))
    return out


@dataclass
class Seeded:
    fake: FakeAirtable
    base_id: str
    donors_table_id: str
    donor_ids: list[str]


def fast_fake(**overrides: Any) -> FakeAirtable:
    options: dict[str, Any] = {"window_s": FAST_WINDOW_S, "penalty_s": FAST_PENALTY_S}
    options.update(overrides)
    return FakeAirtable(**options)


def fast_pacer(**overrides: Any) -> Pacer:
    options: dict[str, Any] = {
        "window_s": FAST_WINDOW_S,
        "pause_s": FAST_PENALTY_S + 0.05,
    }
    options.update(overrides)
    return Pacer(**options)


def donor_row(i: int) -> dict[str, Any]:
    return {
        "Name": f"Donor {i:03d}",
        "First Name": "Donor",
        "Last Name": f"{i:03d}",
        "Email": f"donor{i:03d}@example.org",
        "Lifetime Giving": 100.0 + i,
    }


def seed(
    fake: FakeAirtable,
    rows: Sequence[Mapping[str, Any]] = (),
    *,
    with_log: bool = True,
    count: int = 0,
) -> Seeded:
    """A base with a Donors table holding ``rows`` (plus ``count`` plain donors)
    and, unless ``with_log`` is False, a ready "Email log" table."""
    base_id = fake.add_base("Development")
    donors_id = fake.add_table(base_id, "Donors", DONOR_FIELDS)
    ids = fake.add_records(
        base_id, "Donors", [*rows, *(donor_row(i) for i in range(count))]
    )
    if with_log:
        fake.add_table(base_id, "Email log", activity_fields(donors_id))
    return Seeded(fake, base_id, donors_id, ids)


def config_for(seeded: Seeded, **overrides: Any) -> AirtableConfig:
    config = AirtableConfig(
        token=seeded.fake.token,
        base_id=seeded.base_id,
        donors_table="Donors",
        activity_table="Email log",
        endpoint_url=seeded.fake.url,
    )
    return replace(config, **overrides)


def crm_for(
    seeded: Seeded, pacer: Pacer | None = None, **overrides: Any
) -> AirtableCrm:
    return AirtableCrm(config_for(seeded, **overrides), pacer=pacer or fast_pacer())


SENT_AT = datetime(2026, 11, 30, 15, 4, 5, tzinfo=UTC)


def log_entries(record_ids: Sequence[str], tag: str = "m") -> list[LogEntry]:
    """One sent email per record id."""
    return [
        LogEntry(
            record_id=record_id,
            rfc_message_id=f"<{tag}{i}.steward@our-charity.example.org>",
            mailbox_message_id=f"gm{tag}{i}",
            thread_id=f"th{tag}{i}",
            subject=f"Thank you, friend {i}",
            excerpt="Your gift to the autumn appeal means a great deal.",
            sender="ann@our-charity.example.org",
            recipient=f"donor{i:03d}@example.org",
            sent_at=SENT_AT + timedelta(minutes=i),
        )
        for i, record_id in enumerate(record_ids)
    ]
