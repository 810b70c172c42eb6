"""The donor store (lib.donors): upserts keyed by donor_key, the import report, the
local-CRM mirror in sandbox mode, and the read functions the pages use."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func, select

from lib.crm.sandbox import SandboxCrm
from lib.donors import (
    get_donor,
    get_donors,
    last_import_report,
    list_donors,
    local_record_id,
    store_donors,
    store_import,
)
from lib.importing import DONOR_COLUMNS, ImportResult, read_donor_file
from lib.models import Donor
from lib.schema import donors_table, imports_table
from lib.services import Services
from tests.conftest import DONOR_FORMATS


def _import(services: Services, name: str) -> tuple:  # noqa: ANN401
    path = DONOR_FORMATS / name
    result = read_donor_file(path.read_bytes(), path.name)
    return result, store_import(services, result, path.name)


def _count(services: Services, table) -> int:  # noqa: ANN001
    with services.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar())


def test_importing_the_same_file_twice_creates_no_donor_twice(
    services: Services,
) -> None:
    result, first = _import(services, "npsp_data_import.csv")
    _, second = _import(services, "npsp_data_import.csv")
    assert (first.created, first.updated) == (15, 0)
    assert (second.created, second.updated) == (0, 15)
    assert second.import_id == first.import_id + 1
    assert _count(services, donors_table) == 15 == len(list_donors(services.engine))
    assert _count(services, imports_table) == 2
    harriet = next(
        d for d in get_donors(services.engine, range(1, 16)) if d.rows == [1, 12]
    )
    assert (
        harriet.lifetime_giving == 500.0 and harriet.record_id == "0035e00000QxT7aAAF"
    )


def test_every_sample_file_stores_and_reimports_idempotently(
    services: Services,
) -> None:
    results = {
        path.name: read_donor_file(path.read_bytes(), path.name)
        for path in sorted(DONOR_FORMATS.glob("*.csv"))
    }
    for name, result in results.items():
        store_import(services, result, name)
    count = _count(services, donors_table)
    crm = SandboxCrm(services.engine)
    before = crm.records_for_emails(["ngozi+gala@example.org"])
    for name, result in results.items():
        assert store_import(services, result, name).created == 0, name
    assert _count(services, donors_table) == count
    assert crm.records_for_emails(["ngozi+gala@example.org"]) == before != {}


def test_sandbox_mirror_gives_stable_local_record_ids(services: Services) -> None:
    assert services.uses_local_crm
    _import(services, "mailchimp_subscribed_members.csv")
    frame = list_donors(services.engine)
    wen = frame[frame["email"] == "wen.zhao@example.com"].iloc[0]
    assert wen["record_id"] == local_record_id("email:wen.zhao@example.com")
    assert wen["record_id"].startswith("loc_")
    records = SandboxCrm(services.engine).records_for_emails(["WEN.ZHAO@example.com"])
    assert [r.record_id for r in records["wen.zhao@example.com"]] == [wen["record_id"]]
    _import(services, "mailchimp_subscribed_members.csv")
    assert (
        list_donors(services.engine)["record_id"].tolist()
        == frame["record_id"].tolist()
    )


def test_file_record_ids_are_used_for_the_local_crm(services: Services) -> None:
    _import(services, "donorperfect_gifts.csv")
    record = SandboxCrm(services.engine).record("10482")
    assert record is not None and record.name == "Margaret Whitcombe"
    assert record.emails == ("peggy.whitcombe@example.com",)


def test_reimport_never_clears_flags_and_keeps_known_addresses(
    services: Services,
) -> None:
    flagged = read_donor_file(
        b"Donor ID,Email,NO_EMAIL,Deceased\n7,ann@example.org,Y,N\n", "crm.csv"
    )
    store_import(services, flagged, "crm.csv")
    plain = read_donor_file(
        b"Donor ID,Email,Name\n7,ann.new@example.org,Ann Lee\n", "b.csv"
    )
    stored = store_import(services, plain, "b.csv")
    assert (stored.created, stored.updated) == (0, 1)
    (ann,) = get_donors(services.engine, [1])
    assert ann.do_not_email and ann.blocked_reason == "do not email"
    assert ann.email == "ann.new@example.org" and ann.name == "Ann Lee"
    assert ann.emails == ["ann.new@example.org", "ann@example.org"]


def test_donor_first_known_by_address_keeps_its_row_when_an_id_arrives(
    services: Services,
) -> None:
    store_import(services, read_donor_file(b"Email\nbo@example.org\n", "list.csv"), "l")
    with_id = read_donor_file(
        b"Record ID,Email,Name\nrec9,bo@example.org,Bo Chen\n", "crm"
    )
    stored = store_import(services, with_id, "crm.csv")
    assert (stored.created, stored.updated) == (0, 1)
    (bo,) = get_donors(services.engine, [1])
    assert bo.record_id == "rec9" and bo.name == "Bo Chen"


def test_list_donors_columns_and_blocked_reason(services: Services) -> None:
    empty = list_donors(services.engine)
    assert empty.empty and {"id", "blocked_reason", "record_id"} <= set(empty.columns)
    _import(services, "donorperfect_gifts.csv")
    frame = list_donors(services.engine)
    assert frame["id"].tolist() == sorted(frame["id"].tolist())
    reasons = dict(zip(frame["name"], frame["blocked_reason"], strict=True))
    assert reasons["Estelle Fournier"] == "deceased"
    assert reasons["Siobhan O'Brien-Walsh"] == "do not email"
    assert reasons["Winston Achebe-Park"] == "no address"
    assert not isinstance(reasons["Margaret Whitcombe"], str)  # may be emailed
    peggy = frame[frame["name"] == "Margaret Whitcombe"].iloc[0]
    assert peggy["greeting"] == "Peggy" and peggy["lifetime_giving"] == 425.0
    assert peggy["last_gift_date"] == "2024-09-09"


def test_get_donors_keeps_the_order_asked_and_skips_unknown(services: Services) -> None:
    _import(services, "bloomerang_report_export.csv")
    donors = get_donors(services.engine, [3, 1, 999, 3])
    assert [d.id for d in donors] == [3, 1]
    assert donors[1].name == "Walter Pemberton" and donors[1].rows == [2]
    assert get_donor(services.engine, 999) is None
    one = get_donor(services.engine, 1)
    assert one is not None and one.greeting == "Walt"


def test_last_import_report(services: Services) -> None:
    assert last_import_report(services.engine) is None
    _import(services, "bloomerang_report_export.csv")
    _import(services, "littlegreenlight_constituents.csv")
    report = last_import_report(services.engine)
    assert report is not None
    assert report["source"] == "littlegreenlight_constituents.csv"
    assert report["imported"] == 15 and report["encoding"] == "utf-8"
    assert any("tad.greer.example.com" in i["reason"] for i in report["doubtful"])
    assert report["rejected"] == [] and report["mapping"]["Salutation"] == "greeting"


def test_store_donors_from_another_source(services: Services) -> None:
    donors = [
        Donor(name="Ann Lee", email="ann@example.org", record_id="recA"),
        Donor(name="Bo Chen", email=None, deceased=True),
    ]
    stored = store_donors(services, donors, "airtable:appX")
    assert (stored.created, stored.updated) == (2, 0)
    again = store_donors(services, donors, "airtable:appX")
    assert (again.created, again.updated) == (0, 2)
    ann, bo = get_donors(services.engine, [1, 2])
    assert ann.emails == ["ann@example.org"] and bo.deceased
    assert last_import_report(services.engine)["source"] == "airtable:appX"


def test_store_accepts_a_result_built_from_plain_rows(services: Services) -> None:
    """Adapters (Airtable) build an ImportResult from plain Python rows."""
    frame = pd.DataFrame(
        [
            {
                **dict.fromkeys(DONOR_COLUMNS),
                "donor_key": "recZ",
                "record_id": "recZ",
                "name": "Zed Ray",
                "email": "zed@example.org",
                "emails": ["zed@example.org"],
                "gift_count": 0,
                "opted_out": True,
                "rows": [1],
            }
        ],
        columns=list(DONOR_COLUMNS),
    )
    result = ImportResult(
        frame=frame,
        rejected=[],
        doubtful=[],
        encoding="",
        separator="",
        columns=[],
        mapping={},
        suggested_mapping={},
        record_count=1,
        filename="airtable:appX",
    )
    assert store_import(services, result, "airtable:appX").created == 1
    (zed,) = get_donors(services.engine, [1])
    assert (zed.name, zed.greeting, zed.notes, zed.opted_out) == (
        "Zed Ray",
        "",
        "",
        True,
    )
    assert zed.blocked_reason == "opted out"


def test_same_name_on_two_records_is_pointed_out(services: Services) -> None:
    """Tester: Harriet came from Mailchimp and NPSP with two addresses; Odalys
    from two Givebutter exports with two IDs. One letter each would be two."""
    from lib.donors import list_donors, possible_duplicates

    frame = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "name": ["Harriet Lindqvist", "harriet  lindqvist", "Ann Lee", ""],
        }
    )
    marks = list(possible_duplicates(frame))
    assert marks == ["same name as #2", "same name as #1", None, None]
    assert "possible_duplicate" in list_donors(services.engine).columns


def test_an_email_only_file_does_not_rename_known_donors(services: Services) -> None:
    """Second tester: a Mailchimp unsubscribe export renamed 'Jo Person' to
    'jo@example.org' (and must still flag her)."""
    from lib.donors import list_donors, store_import

    first = read_donor_file(b"Name,Email\nJo Person,jo@example.org\n", "crm.csv")
    store_import(services, first, "crm.csv")
    unsub = read_donor_file(
        b"Email Address,UNSUB_TIME\njo@example.org,2024-05-01 10:00:00\n", "unsub.csv"
    )
    store_import(services, unsub, "unsub.csv")
    donors = list_donors(services.engine)
    assert list(donors["name"]) == ["Jo Person"]
    assert list(donors["blocked_reason"]) == ["opted out"]
