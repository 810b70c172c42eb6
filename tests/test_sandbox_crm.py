"""The local CRM: records, case-insensitive lookups, idempotent log writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from lib.crm.sandbox import IN_LIST_BATCH, SandboxCrm
from lib.models import CrmRecord, LogEntry
from lib.schema import crm_log_table, crm_record_emails_table
from lib.services import Services
from lib.tracking import record_click, record_open

SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def entry(record_id: str, message: str = "<a@x.org>") -> LogEntry:
    return LogEntry(
        record_id=record_id,
        rfc_message_id=message,
        mailbox_message_id="m1",
        thread_id="t1",
        subject="Thank you",
        excerpt="Dear Ann",
        sender="office@our-charity.example.org",
        recipient="ann@example.org",
        sent_at=SENT,
    )


def log_rows(services: Services) -> int:
    with services.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(crm_log_table)).scalar()


def test_name_and_upsert_replaces_addresses(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    assert crm.name == "local CRM"
    written = crm.upsert_records(
        [
            CrmRecord("rec1", "Ann Lee", ("Ann@Example.org", "ann@example.org")),
            CrmRecord("rec2", "Bo Chan", ("bo@example.org",)),
        ]
    )
    assert written == 2
    assert crm.record("rec1") == CrmRecord("rec1", "Ann Lee", ("ann@example.org",))
    crm.upsert_records([CrmRecord("rec1", "Ann Lee-Park", ("ann.park@example.org",))])
    assert crm.record("rec1").name == "Ann Lee-Park"
    assert crm.records_for_emails(["ann@example.org"]) == {}
    assert [
        r.record_id
        for r in crm.records_for_emails(["ANN.park@example.org"])[
            "ann.park@example.org"
        ]
    ] == ["rec1"]
    assert crm.record("nope") is None


def test_records_for_emails_is_case_insensitive_and_batched(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    count = IN_LIST_BATCH * 2 + 37
    crm.upsert_records(
        CrmRecord(f"rec{i}", f"Donor {i}", (f"Donor{i}@Example.org",))
        for i in range(count)
    )
    crm.upsert_records([CrmRecord("shared", "Household", ("donor5@example.org",))])
    asked = [f"DONOR{i}@example.ORG" for i in range(count)] + ["nobody@example.org"]
    found = crm.records_for_emails(asked)
    assert len(found) == count
    assert "nobody@example.org" not in found
    assert sorted(r.record_id for r in found["donor5@example.org"]) == [
        "rec5",
        "shared",
    ]
    assert found[f"donor{count - 1}@example.org"][0].name == f"Donor {count - 1}"


def test_write_log_twice_leaves_one_entry(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("rec1", "Ann", ("ann@example.org",))])
    first = crm.write_log([entry("rec1"), entry("rec1")])
    second = crm.write_log([entry("rec1")])
    assert first[0].error is None and first[0].crm_entry_id
    assert second[0].crm_entry_id == first[0].crm_entry_id
    assert log_rows(services) == 1


def test_write_log_missing_record_fails_alone(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("rec1", "Ann", ("ann@example.org",))])
    results = crm.write_log([entry("gone"), entry("rec1")])
    assert results[0].error and "gone" in results[0].error
    assert results[0].crm_entry_id is None
    assert results[1].error is None
    assert [e.record_id for e in crm.read_log()] == ["rec1"]


def test_read_log_counts_people_not_machines(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("rec1", "Ann", ("ann@example.org",))])
    crm.write_log([entry("rec1")])
    later = SENT + timedelta(hours=3)
    firefox = "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0"
    record_open(services.engine, "<a@x.org>", firefox, later, SENT)
    record_open(
        services.engine,
        "<a@x.org>",
        "Mozilla/5.0 (via ggpht.com GoogleImageProxy)",
        SENT + timedelta(seconds=2),
        SENT,
    )
    record_click(
        services.engine, "<a@x.org>", "https://x.org/give", firefox, later, SENT
    )
    (logged,) = crm.read_log()
    assert (logged.opens, logged.clicks) == (1, 1)
    assert logged.sent_at == SENT
    assert logged.logged_at is not None and logged.logged_at.tzinfo is not None


def test_upsert_many_records_in_one_go(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    records = [
        CrmRecord(f"r{i}", f"D {i}", (f"d{i}@example.org", f"alt{i}@example.org"))
        for i in range(5000)
    ]
    assert crm.upsert_records(records) == 5000
    with services.engine.connect() as conn:
        emails = conn.execute(
            select(func.count()).select_from(crm_record_emails_table)
        ).scalar()
    assert emails == 10000
