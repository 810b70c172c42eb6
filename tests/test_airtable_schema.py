"""Schema drift (C13): the donors field mapping is suggested from names and types;
a missing or wrong email log table or field is named with its fix before anything
is written; missing pieces are created only when the token may."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lib.airtable_client import open_api
from lib.airtable_donors import DonorMapping, suggest_donor_mapping
from lib.airtable_schema import (
    FieldInfo,
    TableInfo,
    create_missing,
    list_bases,
    list_tables,
    schema_write_allowed,
)
from lib.errors import CrmError, CrmSchemaError
from tests.fakes.airtable_seed import (
    DONOR_FIELDS,
    Seeded,
    activity_fields,
    crm_for,
    fast_fake,
    fast_pacer,
    log_entries,
    seed,
)
from tests.fakes.airtable_server import FakeAirtable, running


@pytest.fixture
def fake() -> Iterator[FakeAirtable]:
    server = fast_fake()
    with running(server):
        yield server
        assert server.unexpected == []


def table_of(fields: list[tuple[str, str]]) -> TableInfo:
    infos = tuple(FieldInfo(f"fld{i:014d}", n, t) for i, (n, t) in enumerate(fields))
    return TableInfo("tblDonors", "Donors", infos[0].id, infos)


def writes(seeded: Seeded) -> int:
    return sum(1 for r in seeded.fake.requests if r.method == "PATCH")


# -- the donors mapping ---------------------------------------------------------------


def test_mapping_suggested_for_the_usual_layout() -> None:
    mapping = suggest_donor_mapping(table_of([(f[0], f[1]) for f in DONOR_FIELDS]))
    assert mapping == DonorMapping(
        full_name="Name",
        first_name="First Name",
        last_name="Last Name",
        greeting="Informal Name",
        salutation="Formal Salutation",
        emails=("Email", "Work Email"),
        opted_out="Email Opt Out",
        deceased="Deceased",
        last_gift_amount="Last Gift Amount",
        last_gift_date="Last Gift Date",
        lifetime_giving="Lifetime Giving",
        notes="Notes",
    )


def test_mapping_suggested_for_another_teams_names() -> None:
    table = table_of(
        [
            ("Supporter", "singleLineText"),
            ("Preferred Name", "singleLineText"),
            ("Surname", "singleLineText"),
            ("Donor_Email", "singleLineText"),
            ("Secondary Address", "email"),
            ("Email Status Date", "date"),
            ("Unsubscribed", "singleSelect"),
            ("Do Not Email", "checkbox"),
            ("Total Giving", "rollup"),
            ("Last Donation Date", "rollup"),
            ("Last Donation", "currency"),
            ("Company", "singleLineText"),
            ("Comments", "multilineText"),
        ]
    )
    mapping = suggest_donor_mapping(table)
    assert mapping.emails == ("Donor_Email", "Secondary Address")
    assert mapping.opted_out == "Unsubscribed"
    assert mapping.do_not_email == "Do Not Email"
    assert mapping.lifetime_giving == "Total Giving"
    assert mapping.last_gift_date == "Last Donation Date"
    assert mapping.last_gift_amount == "Last Donation"
    assert mapping.greeting == "Preferred Name"
    assert mapping.last_name == "Surname"
    assert mapping.organization == "Company"
    assert mapping.notes == "Comments"
    assert mapping.full_name == "Supporter"  # the primary field
    assert DonorMapping.from_dict(mapping.to_dict()) == mapping


# -- the email log table ----------------------------------------------------------


def test_missing_log_table_is_named_and_nothing_is_written(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=3, with_log=False)
    with pytest.raises(CrmSchemaError) as caught:
        crm_for(seeded).write_log(log_entries(seeded.donor_ids))
    message = str(caught.value)
    assert 'no table "Email log"' in message
    assert "Create missing fields" in message and "Log Key" in message
    assert writes(seeded) == 0


def test_renamed_log_field_is_named_with_the_fix(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=3)
    fake.rename_field(seeded.base_id, "Email log", "Sent At", "Sent_At")
    with pytest.raises(CrmSchemaError) as caught:
        crm_for(seeded).write_log(log_entries(seeded.donor_ids))
    message = str(caught.value)
    assert 'no field "Sent At"' in message and '"Sent_At"' in message
    assert writes(seeded) == 0


def test_field_renamed_while_writing_is_named_too(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=3)
    crm = crm_for(seeded)
    crm.tables()  # schema read before somebody renames the field

    def rename_first(method: str, path: str) -> None:
        if method == "PATCH" and fake.hook is not None:
            fake.hook = None
            fake.rename_field(seeded.base_id, "Email log", "Subject", "Subject_")

    fake.hook = rename_first
    with pytest.raises(CrmSchemaError, match='no field "Subject"'):
        crm.write_log(log_entries(seeded.donor_ids))


def test_wrong_type_and_wrong_link_are_named(fake: FakeAirtable) -> None:
    base = fake.add_base()
    donors = fake.add_table(base, "Donors", DONOR_FIELDS)
    other = fake.add_table(base, "Volunteers", [("Name", "singleLineText")])
    fields = activity_fields(donors)
    fields = [
        ("Sent At", "singleLineText")
        if f[0] == "Sent At"
        else ("Donor", "multipleRecordLinks", {"linkedTableId": other})
        if f[0] == "Donor"
        else f
        for f in fields
    ]
    fake.add_table(base, "Email log", fields)
    seeded = Seeded(fake, base, donors, [])
    problems = crm_for(seeded).activity_problems()
    texts = " ".join(p.text for p in problems)
    assert '"Sent At" in "Email log" is a single line text field' in texts
    assert "date and time" in texts
    assert 'links to the table "Volunteers"' in texts
    assert all(p.create is None for p in problems)  # types are never changed


def test_missing_optional_field_does_not_stop_logging(fake: FakeAirtable) -> None:
    base = fake.add_base()
    donors = fake.add_table(base, "Donors", DONOR_FIELDS)
    fields = [f for f in activity_fields(donors) if f[0] not in ("Opens", "Excerpt")]
    fake.add_table(base, "Email log", fields)
    ids = fake.add_records(base, "Donors", [{"Name": "Ann", "Email": "a@example.org"}])
    seeded = Seeded(fake, base, donors, ids)
    crm = crm_for(seeded)
    assert [p.blocking for p in crm.activity_problems()] == [False, False]
    results = crm.write_log(log_entries(ids))
    assert results[0].error is None
    assert len(fake.records(base, "Email log")) == 1


def test_missing_select_option_is_named_unless_typecast_is_on(
    fake: FakeAirtable,
) -> None:
    base = fake.add_base()
    donors = fake.add_table(base, "Donors", DONOR_FIELDS)
    select = {"choices": [{"id": "selAnn", "name": "ann@our-charity.example.org"}]}
    fields = [
        ("Sender", "singleSelect", select) if f[0] == "Sender" else f
        for f in activity_fields(donors)
    ]
    fake.add_table(base, "Email log", fields)
    ids = fake.add_records(base, "Donors", [{"Name": "A"}, {"Name": "B"}])
    seeded = Seeded(fake, base, donors, ids)
    entries = log_entries(ids)
    bo = entries[1].__class__(**{**entries[1].__dict__, "sender": "bo@example.org"})
    results = crm_for(seeded).write_log([entries[0], bo])
    assert results[0].error is None
    assert results[1].error is not None
    assert '"Sender" is a single select without the option "bo@example.org"' in (
        results[1].error
    )
    assert len(fake.records(base, "Email log")) == 1

    results = crm_for(seeded, typecast=True).write_log([bo])
    assert results[0].error is None
    assert len(fake.records(base, "Email log")) == 2


# -- creating what is missing ---------------------------------------------------------


def test_create_missing_table_then_logging_works(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=2, with_log=False)
    crm = crm_for(seeded)
    bases = list_bases(crm.api)
    assert [b.id for b in bases] == [seeded.base_id]
    assert schema_write_allowed(crm.api, bases[0]) is True
    created = create_missing(
        crm.api, seeded.base_id, crm.tables(), crm.activity_problems()
    )
    assert created == ['table "Email log"']
    assert crm.activity_problems(force=True) == []
    assert all(r.error is None for r in crm.write_log(log_entries(seeded.donor_ids)))


def test_create_one_missing_field(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=1)
    fake.rename_field(seeded.base_id, "Email log", "Message-ID", "Old Message ID")
    crm = crm_for(seeded)
    created = create_missing(
        crm.api, seeded.base_id, crm.tables(), crm.activity_problems()
    )
    assert created == ['field "Message-ID" in "Email log"']
    assert crm.activity_problems(force=True) == []


def test_without_schema_access_creation_is_refused_kindly(fake: FakeAirtable) -> None:
    seeded = seed(fake, count=1, with_log=False)
    fake.scopes = ["data.records:read", "data.records:write", "schema.bases:read"]
    crm = crm_for(seeded)
    assert schema_write_allowed(crm.api) is False
    with pytest.raises(CrmError, match="schema.bases:read") as caught:
        create_missing(crm.api, seeded.base_id, crm.tables(), crm.activity_problems())
    assert "may not create" in str(caught.value)
    fake.scopes = None  # Airtable does not say
    assert schema_write_allowed(crm.api) is None
    read_only = fake.add_base("Shared with me", permission="edit")
    info = next(b for b in list_bases(crm.api) if b.id == read_only)
    assert schema_write_allowed(crm.api, info) is False


def test_tables_list_their_fields_and_types(fake: FakeAirtable) -> None:
    seeded = seed(fake)
    api = open_api(fake.token, fake.url, fast_pacer())
    tables = list_tables(api, seeded.base_id)
    assert [t.name for t in tables] == ["Donors", "Email log"]
    email = tables[0].field("Email")
    assert email is not None and email.type == "email"
    link = tables[1].field("Donor")
    assert link is not None and link.options["linkedTableId"] == tables[0].id
