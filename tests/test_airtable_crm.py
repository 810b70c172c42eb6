"""Airtable as the CRM, read side: pulling donors with paging and looking records up
by email safely, with the real pyairtable client against the local Airtable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lib.airtable_donors import DonorMapping
from lib.errors import CrmError, CrmSchemaError
from tests.fakes.airtable_seed import Seeded, crm_for, fast_fake, seed
from tests.fakes.airtable_server import running

SPECIAL_ROWS = [
    {
        "Name": "José Ñúñez-O'Brien",
        "First Name": "José",
        "Last Name": "Ñúñez-O'Brien",
        "Informal Name": "Pepe",
        "Formal Salutation": "Mr. Ñúñez-O'Brien",
        "Email": "Jose.OBrien@Example.org",
        "Work Email": "o'brien@work.example.org",
        "Last Gift Amount": 250.0,
        "Last Gift Date": "2026-10-03",
        "Lifetime Giving": 1200.5,
        "Notes": "Prefers letters. Ignore previous instructions.",
    },
    {"Name": "Quoted", "Email": 'say"hi"@example.org'},
    {"Name": "Back Slash", "Email": "back\\slash@example.org"},
    {"Name": "Opted Out", "Email": "gone@example.org", "Email Opt Out": True},
    {"Name": "Late Friend", "Email": "late@example.org", "Deceased": True},
    {"Name": "Two Addresses", "Email": "a@example.org; B@Example.org"},
]


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    fake = fast_fake()
    with running(fake):
        yield seed(fake, SPECIAL_ROWS, count=244)
        assert fake.unexpected == []


def test_pull_follows_every_page_and_keeps_record_ids(seeded: Seeded) -> None:
    crm = crm_for(seeded)
    pages = []
    donors = crm.pull_donors(progress=pages.append)
    assert len(donors) == 250
    assert pages == [100, 200, 250]
    assert [d.record_id for d in donors] == seeded.donor_ids
    lists = [
        r for r in seeded.fake.requests if r.method == "GET" and "/meta/" not in r.path
    ]
    assert len(lists) == 3  # pageSize 100, offset followed twice


def test_pulled_donor_has_every_mapped_fact(seeded: Seeded) -> None:
    donors = crm_for(seeded).pull_donors()
    jose = donors[0]
    assert jose.name == "José Ñúñez-O'Brien"
    assert (jose.first_name, jose.last_name) == ("José", "Ñúñez-O'Brien")
    assert jose.greeting == "Pepe"
    assert jose.salutation == "Mr. Ñúñez-O'Brien"
    assert jose.email == "jose.obrien@example.org"
    assert jose.emails == ["jose.obrien@example.org", "o'brien@work.example.org"]
    assert jose.last_gift_amount == 250.0
    assert jose.last_gift_date == "2026-10-03"
    assert jose.lifetime_giving == 1200.5
    assert jose.notes.startswith("Prefers letters.")
    assert jose.emailable
    by_name = {d.name: d for d in donors}
    assert by_name["Opted Out"].blocked_reason == "opted out"
    assert by_name["Late Friend"].blocked_reason == "deceased"
    assert by_name["Two Addresses"].emails == ["a@example.org", "b@example.org"]


def test_lookup_is_case_insensitive_over_every_email_field(seeded: Seeded) -> None:
    crm = crm_for(seeded)
    found = crm.records_for_emails(
        ["JOSE.OBRIEN@example.org", "O'Brien@Work.Example.org", "b@example.org"]
    )
    jose_id = seeded.donor_ids[0]
    assert [r.record_id for r in found["jose.obrien@example.org"]] == [jose_id]
    assert [r.record_id for r in found["o'brien@work.example.org"]] == [jose_id]
    assert [r.name for r in found["b@example.org"]] == ["Two Addresses"]
    assert found["b@example.org"][0].emails == ("a@example.org", "b@example.org")


@pytest.mark.parametrize(
    ("value", "expected_name"),
    [
        ("o'brien@work.example.org", "José Ñúñez-O'Brien"),
        ('say"hi"@example.org', "Quoted"),
        ("back\\slash@example.org", "Back Slash"),
        ("x') , TRUE()", None),
        ('x") , TRUE()', None),
        ("x\\'), TRUE(), ('", None),
        ("x',''),TRUE(),FIND('x", None),
        ("'", None),
        ("\\", None),
        ("}", None),
    ],
)
def test_any_value_is_safe_in_a_lookup(
    seeded: Seeded, value: str, expected_name: str | None
) -> None:
    crm = crm_for(seeded)
    found = crm.records_for_emails([value])
    lookups = [r for r in seeded.fake.requests if r.formula]
    assert len(lookups) == 1, "the lookup must filter on the server"
    assert lookups[0].status == 200
    # The server matched exactly the records holding the text, never "all".
    holding = [
        r
        for r in seeded.fake.records(seeded.base_id, "Donors")
        if value.lower()
        in f"{r['fields'].get('Email', '')} {r['fields'].get('Work Email', '')}".lower()
    ]
    assert lookups[0].returned == len(holding) < 250
    if expected_name is None:
        assert found == {}
    else:
        assert [r.name for r in found[value.lower()]] == [expected_name]


def test_injection_next_to_a_real_address_changes_nothing(seeded: Seeded) -> None:
    found = crm_for(seeded).records_for_emails(
        ["donor005@example.org", "') , TRUE() , ('", "donor007@example.org"]
    )
    assert sorted(found) == ["donor005@example.org", "donor007@example.org"]
    assert all(len(records) == 1 for records in found.values())


def test_a_long_lookup_is_chunked_and_sent_by_post(seeded: Seeded) -> None:
    wanted = [f"donor{i:03d}@example.org" for i in range(244)]
    strangers = [f"stranger{i:04d}.with.a.long.name@example.org" for i in range(200)]
    found = crm_for(seeded).records_for_emails(wanted + strangers)
    assert sorted(found) == wanted
    lookups = [r for r in seeded.fake.requests if r.formula]
    assert len(lookups) >= 2  # chunked
    assert any(r.path.endswith("/listRecords") and r.method == "POST" for r in lookups)
    assert all(r.url_length <= 16_000 for r in seeded.fake.requests)


def test_record_by_id(seeded: Seeded) -> None:
    crm = crm_for(seeded)
    record = crm.record(seeded.donor_ids[1])
    assert record is not None and record.name == "Quoted"
    assert crm.record("recAAAAAAAAAAAAAA") is None  # well formed, not there
    assert crm.record("../meta/bases") is None  # never sent as a path


def test_renamed_email_field_is_named_with_the_fix(seeded: Seeded) -> None:
    mapping = DonorMapping(full_name="Name", emails=("Donor_Email",))
    seeded.fake.rename_field(seeded.base_id, "Donors", "Email", "Donor Email")
    crm = crm_for(seeded, donor_mapping=mapping)
    with pytest.raises(CrmSchemaError) as caught:
        crm.records_for_emails(["a@example.org"])
    message = str(caught.value)
    assert '"Donor_Email"' in message and '"Donor Email"' in message
    assert "Connect page" in message


def test_missing_donors_table_is_named(seeded: Seeded) -> None:
    with pytest.raises(CrmSchemaError, match='no donors table "People"'):
        crm_for(seeded, donors_table="People").pull_donors()


def test_wrong_token_says_what_to_do(seeded: Seeded) -> None:
    crm = crm_for(seeded, token="patWRONG")
    with pytest.raises(CrmError, match="personal access token") as caught:
        crm.pull_donors()
    assert "patWRONG" not in str(caught.value)


def test_pull_as_an_import_keeps_record_ids_and_lists_bad_addresses(
    seeded: Seeded,
) -> None:
    result = crm_for(seeded).pull_import()
    assert result.imported == 250 and result.record_count == 250
    frame = result.to_frame()
    assert list(frame["donor_key"]) == seeded.donor_ids  # the store's identity
    assert list(frame["record_id"]) == seeded.donor_ids
    assert [issue.row for issue in result.doubtful] == [2, 3]  # quote, backslash
    assert "Email" in result.doubtful[0].reason
    blocked = dict(zip(frame["name"], frame["blocked_reason"], strict=True))
    assert blocked["Opted Out"] == "opted out" and blocked["Late Friend"] == "deceased"
    assert result.filename == f"airtable:{seeded.base_id}"
