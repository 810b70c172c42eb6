"""Airtable as the CRM, write side: the email log, in batches of 10, upserted so
nothing is duplicated, with 422 and 429 handled so nothing is lost (C11, C12)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from lib.airtable_client import open_api
from lib.crm.airtable import AirtableCrm
from lib.errors import CrmError
from tests.fakes.airtable_seed import (
    FAST_PENALTY_S,
    Seeded,
    config_for,
    crm_for,
    fast_fake,
    fast_pacer,
    log_entries,
    seed,
)
from tests.fakes.airtable_server import running


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    fake = fast_fake()
    with running(fake):
        yield seed(fake, count=30)
        assert fake.unexpected == []


def log_rows(seeded: Seeded) -> list[dict]:
    return [r["fields"] for r in seeded.fake.records(seeded.base_id, "Email log")]


def writes(seeded: Seeded) -> list[int]:
    return [r.records for r in seeded.fake.requests if r.method == "PATCH"]


def test_25_entries_go_in_3_batches_linked_to_their_records(seeded: Seeded) -> None:
    entries = log_entries(seeded.donor_ids[:25])
    results = crm_for(seeded).write_log(entries)
    assert writes(seeded) == [10, 10, 5]
    assert [(r.record_id, r.rfc_message_id) for r in results] == [
        (e.record_id, e.rfc_message_id) for e in entries
    ]
    assert all(r.error is None and r.crm_entry_id for r in results)
    rows = {r["Log Key"]: r for r in log_rows(seeded)}
    assert len(rows) == 25
    first = rows[f"{entries[0].rfc_message_id}|{entries[0].record_id}"]
    assert first["Donor"] == [entries[0].record_id]
    assert first["Sent At"] == "2026-11-30T15:04:05Z"
    assert first["Sender"] == "ann@our-charity.example.org"
    assert first["Recipient"] == "donor000@example.org"
    assert first["Message-ID"] == entries[0].rfc_message_id
    assert first["Gmail Message ID"] == "gmm0" and first["Gmail Thread ID"] == "thm0"
    ids = {r.crm_entry_id for r in results}
    assert ids == {r["id"] for r in seeded.fake.records(seeded.base_id, "Email log")}


def test_writing_twice_never_duplicates(seeded: Seeded) -> None:
    entries = log_entries(seeded.donor_ids[:25])
    first = crm_for(seeded).write_log(entries)
    second = crm_for(seeded).write_log(entries)  # a retry, or a second sync
    assert len(log_rows(seeded)) == 25
    assert [r.crm_entry_id for r in first] == [r.crm_entry_id for r in second]


def test_one_bad_record_in_a_batch_carries_the_error_alone(seeded: Seeded) -> None:
    entries = log_entries(seeded.donor_ids[:25])
    gone = "recGONE0000000000"  # a donor record deleted in Airtable
    entries[3] = log_entries([gone], tag="gone")[0]
    results = crm_for(seeded).write_log(entries)
    failed = [r for r in results if r.error]
    assert [(r.record_id, r.rfc_message_id) for r in failed] == [
        (gone, entries[3].rfc_message_id)
    ]
    assert gone in failed[0].error  # the service's own words name the record
    assert len(log_rows(seeded)) == 24
    # the refused batch was retried record by record; the other batches as usual
    assert writes(seeded) == [10, *([1] * 10), 10, 5]


def test_not_a_record_id_is_refused_without_a_request(seeded: Seeded) -> None:
    entries = log_entries(["recALSOGONE", seeded.donor_ids[0]])
    results = crm_for(seeded).write_log(entries)
    assert results[0].error and "not an Airtable record id" in results[0].error
    assert results[1].error is None
    assert writes(seeded) == [1]


def test_a_429_burst_pauses_then_writes_everything(seeded: Seeded) -> None:
    # Another program used the base's whole budget just before our sync.
    seeded.fake.penalise(seeded.base_id, FAST_PENALTY_S)
    pacer = fast_pacer()
    entries = log_entries(seeded.donor_ids[:25])
    results = crm_for(seeded, pacer=pacer).write_log(entries)
    assert all(r.error is None for r in results)
    assert len(log_rows(seeded)) == 25
    assert pacer.pauses >= 1
    assert seeded.fake.status_counts().get(429, 0) >= 1


def test_rate_limit_that_does_not_end_leaves_entries_queued(seeded: Seeded) -> None:
    entries = log_entries(seeded.donor_ids[:25])
    seen_writes = []

    def other_program_floods_the_base(method: str, path: str) -> None:
        if method == "PATCH":
            seen_writes.append(path)
            if len(seen_writes) == 2:  # after the first batch went through
                seeded.fake.penalise(seeded.base_id, 2.0)

    seeded.fake.hook = other_program_floods_the_base
    pacer = fast_pacer(pause_s=0.05)
    api = open_api(seeded.fake.token, seeded.fake.url, pacer, max_rate_limit_retries=1)
    crm = AirtableCrm(config_for(seeded), api=api)
    results = crm.write_log(entries)
    written = [r for r in results if r.error is None]
    queued = [r for r in results if r.error]
    assert len(results) == 25 and len(written) == 10 and len(queued) == 15
    assert "rate limiting" in queued[0].error and "queued" in queued[0].error
    assert len(log_rows(seeded)) == 10

    seeded.fake.hook = None
    seeded.fake.penalise(seeded.base_id, 0)
    retry = crm_for(seeded).write_log(entries)  # the next sync
    assert all(r.error is None for r in retry)
    assert len(log_rows(seeded)) == 25


def test_rate_limited_from_the_start_raises_and_writes_nothing(seeded: Seeded) -> None:
    pacer = fast_pacer(pause_s=0.05)
    api = open_api(seeded.fake.token, seeded.fake.url, pacer, max_rate_limit_retries=1)
    crm = AirtableCrm(config_for(seeded), api=api)
    crm.tables()  # (schema read before the flood)
    seeded.fake.penalise(seeded.base_id, 5.0)
    with pytest.raises(CrmError, match="rate limiting"):
        crm.write_log(log_entries(seeded.donor_ids[:3]))
    assert log_rows(seeded) == []


def test_read_log_shows_every_senders_entries(seeded: Seeded) -> None:
    crm = crm_for(seeded)
    ann = log_entries(seeded.donor_ids[:3], tag="ann")
    bo = [
        e.__class__(**{**e.__dict__, "sender": "bo@our-charity.example.org"})
        for e in log_entries(seeded.donor_ids[3:5], tag="bo")
    ]
    crm.write_log(ann)
    crm_for(seeded).write_log(bo)  # another staff member's Steward
    logged = crm_for(seeded).read_log()
    assert sorted((e.sender, e.rfc_message_id, e.record_id) for e in logged) == sorted(
        (e.sender, e.rfc_message_id, e.record_id) for e in ann + bo
    )
    one = next(e for e in logged if e.rfc_message_id == ann[0].rfc_message_id)
    assert one.sent_at == ann[0].sent_at and one.subject == ann[0].subject
    assert one.mailbox_message_id == ann[0].mailbox_message_id


def test_opens_and_clicks_are_written_later_and_kept(seeded: Seeded) -> None:
    crm = crm_for(seeded)
    entries = log_entries(seeded.donor_ids[:2])
    crm.write_log(entries)
    changed = crm.write_engagement({entries[0].rfc_message_id: (3, 1)})
    assert changed == 1
    crm.write_log(entries)  # a later sync writes the entry again: counts stay
    logged = {e.rfc_message_id: e for e in crm_for(seeded).read_log()}
    assert (
        logged[entries[0].rfc_message_id].opens,
        logged[entries[0].rfc_message_id].clicks,
    ) == (3, 1)
    assert logged[entries[1].rfc_message_id].opens == 0
    assert crm.write_engagement({entries[0].rfc_message_id: (3, 1)}) == 0


def test_c11_300_sends_while_another_program_uses_the_base(seeded: Seeded) -> None:
    """Another program floods the same base without pacing while 300 log entries
    are written: Airtable answers 429, Steward pauses and resumes; none is lost,
    none is written twice."""
    more = seeded.fake.add_records(
        seeded.base_id, "Donors", [{"Name": f"Extra {i}"} for i in range(270)]
    )
    record_ids = seeded.donor_ids + more
    entries = log_entries(record_ids[:300])
    headers = {"Authorization": f"Bearer {seeded.fake.token}"}
    url = f"{seeded.fake.url}/v0/{seeded.base_id}/Donors"
    started = threading.Event()

    def other_program() -> None:
        started.wait(timeout=5)
        for _ in range(12):
            requests.get(url, headers=headers, timeout=5)

    flood = threading.Thread(target=other_program)
    flood.start()

    def start_flood(method: str, path: str) -> None:
        if method == "PATCH":
            started.set()

    seeded.fake.hook = start_flood
    pacer = fast_pacer()
    results = crm_for(seeded, pacer=pacer).write_log(entries)
    flood.join(timeout=10)
    assert all(r.error is None for r in results)
    keys = [r["Log Key"] for r in log_rows(seeded)]
    assert len(keys) == len(set(keys)) == 300
    assert seeded.fake.status_counts().get(429, 0) >= 1
    assert max(writes(seeded)) <= 10


def test_same_email_to_two_addresses_of_one_record_is_one_row(seeded: Seeded) -> None:
    entry = log_entries(seeded.donor_ids[:1])[0]
    other_address = entry.__class__(
        **{**entry.__dict__, "recipient": "home@example.org"}
    )
    results = crm_for(seeded).write_log([entry, other_address])
    assert [r.error for r in results] == [None, None]
    assert results[0].crm_entry_id == results[1].crm_entry_id
    assert len(log_rows(seeded)) == 1 and writes(seeded) == [1]
