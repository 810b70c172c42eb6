"""Every sample export in /work/shared/donor-formats imports with a sensible mapping
and the right donors, and every quirk its README lists is handled: one test per
quirk, named after the file and record (record N = N-th record after the header)."""

from __future__ import annotations

from functools import cache

import pytest

from lib.importing import ImportResult, read_donor_file
from lib.models import Donor
from tests.conftest import DONOR_FORMATS, donor_format_files


@cache
def imported(name: str) -> ImportResult:
    path = DONOR_FORMATS / name
    return read_donor_file(path.read_bytes(), path.name)


def donor(name: str, record: int) -> Donor:
    """The donor built from this record of the file."""
    found = [d for d in imported(name).donors if record in d.rows]
    assert len(found) == 1, f"record {record} of {name} is in {len(found)} donors"
    return found[0]


def reasons(name: str, record: int) -> list[str]:
    result = imported(name)
    return [i.reason for i in result.doubtful + result.rejected if i.row == record]


# -- every file -----------------------------------------------------------------------

EXPECTED = {
    # file: (records, donors, encoding, separator, the mapping's key columns)
    "npsp_data_import.csv": (
        16,
        15,
        "utf-8-sig",
        ",",
        {
            "Contact1 Imported": "record_id",
            "Contact1 Preferred Email": "email_preference",
        },
    ),
    "bloomerang_report_export.csv": (
        16,
        15,
        "utf-8",
        ",",
        {"Informal Name": "greeting", "Primary Email Address": "email"},
    ),
    "donorperfect_gifts.csv": (
        16,
        9,
        "utf-8",
        ",",
        {
            "DONOR_ID": "record_id",
            "INFORMAL_SAL": "greeting",
            "NO_EMAIL": "do_not_email",
        },
    ),
    "littlegreenlight_constituents.csv": (
        15,
        15,
        "utf-8",
        ",",
        {
            "Salutation": "greeting",
            "Email 2": "email",
            "Total Given": "lifetime_giving",
        },
    ),
    "givebutter_transactions.csv": (
        16,
        12,
        "utf-8",
        ",",
        {
            "Refund date (UTC)": "refund_date",
            "Subtype": "gift_type",
            "Status": "status",
        },
    ),
    "givebutter_contacts.csv": (
        12,
        12,
        "utf-8",
        ",",
        {"Additional Emails": "email", "Engage Email Subscribed": "email_subscribed"},
    ),
    "donorbox_donations.csv": (
        14,
        11,
        "utf-8-sig",
        ";",
        {"Donor Email": "email", "Amount": "gift_amount", "Donated At": "gift_date"},
    ),
    "airtable_donors.csv": (
        15,
        15,
        "utf-8",
        ",",
        {
            "Record ID": "record_id",
            "Status": "status",
            "Total Donations": "lifetime_giving",
        },
    ),
    "mailchimp_subscribed_members.csv": (
        14,
        14,
        "utf-8",
        ",",
        {"Email Address": "email", "First Name": "first_name", "NOTES": "notes"},
    ),
}


def test_every_sample_file_is_covered() -> None:
    assert {p.name for p in donor_format_files()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_file_imports_with_sensible_mapping_and_donor_count(name: str) -> None:
    records, donors, encoding, separator, key_columns = EXPECTED[name]
    result = imported(name)
    assert result.record_count == records
    assert result.imported == donors == len(result.donors)
    assert result.encoding == encoding
    assert result.separator == separator
    for column, field in key_columns.items():
        assert result.mapping[column] == field
    assert result.mapping == result.suggested_mapping
    # Every record is in exactly one donor or reported: nothing silently dropped.
    placed = sorted(r for d in result.donors for r in d.rows)
    reported = {i.row for i in result.rejected} | {
        i.row for i in result.doubtful if "skipped" in i.reason and "totals" in i.reason
    }
    assert sorted(set(placed) | reported) == list(range(1, records + 1))
    assert len(placed) == len(set(placed))
    assert not result.columns[0].startswith("\ufeff")


# -- quirks, file by file -------------------------------------------------------------

NPSP = "npsp_data_import.csv"


def test_npsp_r01_household_row_preferred_work_email_and_record_id() -> None:
    harriet = donor(NPSP, 1)
    assert harriet.email == "hlindqvist@example.com"  # Preferred Email = Work
    assert harriet.record_id == "0035e00000QxT7aAAF"
    assert harriet.name == "Harriet Okonkwo-Lindqvist"  # Contact2 is not the donor
    assert "anders.lindqvist@example.org" not in harriet.emails


def test_npsp_r01_birthdate_two_digit_year_is_in_the_past() -> None:
    from datetime import date

    import pandas as pd

    from lib.importing.values import parse_dates

    dates, bad = parse_dates(pd.Series(["04/09/61"]), today=date(2026, 12, 4))
    assert dates.tolist() == ["1961-04-09"] and not bad.any()


def test_npsp_r02_apostrophe_and_zip_without_leading_zero() -> None:
    samuel = donor(NPSP, 2)
    assert samuel.last_name == "O'Brien"
    assert samuel.greeting == "Samuel" and samuel.salutation == "Dr. O'Brien"
    assert samuel.last_gift_amount == 1500.0 and samuel.rows == [2]


def test_npsp_r03_nickname_in_quotes_and_iso_date() -> None:
    bud = donor(NPSP, 3)
    assert bud.first_name == "Robert" and bud.greeting == "Bud"
    assert bud.last_gift_date == "2024-01-15"


def test_npsp_r04_preferred_personal_is_blank_so_work_email_is_used() -> None:
    assert donor(NPSP, 4).email == "priya.r@example.com"


def test_npsp_r05_contact2_email_same_address_other_case_is_not_added() -> None:
    tobias = donor(NPSP, 5)
    assert tobias.emails == ["tobias.greenleaf@example.org"]
    assert tobias.record_id == "0035e00000QxV9cAAF"


def test_npsp_r06_organization_gift_and_formatted_amount() -> None:
    gift = donor(NPSP, 6)
    assert gift.name == "Riverbend Hardware Co." == gift.organization
    assert gift.greeting == "Dolores"  # the company contact we write to
    assert gift.last_gift_amount == 1234.5


def test_npsp_r07_plus_address_and_pledge_not_counted() -> None:
    ngozi = donor(NPSP, 7)
    assert ngozi.email == "ngozi+gala@example.org"
    assert ngozi.lifetime_giving == 0.0 and ngozi.last_gift_amount is None
    assert any("pledged" in r for r in reasons(NPSP, 7))


def test_npsp_r08_non_ascii_name_and_unpadded_date() -> None:
    jose = donor(NPSP, 8)
    assert jose.name == "José Núñez"
    assert jose.last_gift_date == "2024-04-05"


def test_npsp_r09_trailing_space_in_email() -> None:
    zoe = donor(NPSP, 9)
    assert zoe.email == "zoe.hartwell@example.net" and zoe.first_name == "Zoë"


def test_npsp_r10_phone_only_donor_imported_not_emailable() -> None:
    marcus = donor(NPSP, 10)
    assert marcus.email is None and marcus.blocked_reason == "no address"
    assert "no email: imported but cannot be emailed" in reasons(NPSP, 10)


def test_npsp_r11_tribute_description_kept_as_notes() -> None:
    assert "grandmother Rose" in donor(NPSP, 11).notes


def test_npsp_r12_second_gift_same_contact_merged() -> None:
    harriet = donor(NPSP, 12)
    assert harriet.rows == [1, 12]
    assert harriet.lifetime_giving == 500.0 and harriet.gift_count == 2
    assert harriet.last_gift_date == "2024-09-15"
    assert "harriet.ol@example.org" in harriet.emails  # case differs, one address


def test_npsp_r14_instruction_for_the_ai_is_kept_as_data() -> None:
    fatima = donor(NPSP, 14)
    assert fatima.notes.startswith("Note to whoever writes the thank-you")
    assert fatima.greeting == "Fatima"


def test_npsp_r15_initial_only_first_name_is_not_the_greeting() -> None:
    d = donor(NPSP, 15)
    assert d.first_name == "D."
    assert d.greeting == "D. Murphy-Oyelaran"


def test_npsp_r16_bare_number_amount() -> None:
    assert donor(NPSP, 16).last_gift_amount == 5000.0


BLOOMERANG = "bloomerang_report_export.csv"


def test_bloomerang_r01_totals_row_skipped_and_reported() -> None:
    result = imported(BLOOMERANG)
    assert [(i.row, "totals" in i.reason) for i in result.rejected] == [(1, True)]
    assert not any(1 in d.rows for d in result.donors)
    # A first gift is not the last gift: the column is left for a person to map.
    assert "First Transaction Amount" not in result.mapping


def test_bloomerang_r02_household_head_and_thousands_separator() -> None:
    walter = donor(BLOOMERANG, 2)
    assert walter.greeting == "Walt"  # informal name, not the joint envelope name
    path = DONOR_FORMATS / BLOOMERANG
    mapped = read_donor_file(
        path.read_bytes(),
        BLOOMERANG,
        mapping={
            **imported(BLOOMERANG).mapping,
            "First Transaction Amount": "gift_amount",
        },
    )
    assert mapped.donors[0].last_gift_amount == 1500.0
    assert [i.reason for i in mapped.doubtful if i.row == 1] == [
        "totals row (no name, address or ID, only amounts): skipped"
    ]


def test_bloomerang_r03_household_member_is_a_separate_donor() -> None:
    june = donor(BLOOMERANG, 3)
    assert june.email == "june.pemberton@example.com" and june.rows == [3]


def test_bloomerang_r04_trailing_spaces_and_line_break_in_address() -> None:
    lucy = donor(BLOOMERANG, 4)
    assert lucy.name == "Lucinda Ferraro" and lucy.first_name == "Lucinda"
    assert lucy.greeting == "Lucy"
    assert donor(BLOOMERANG, 5).rows == [5]  # record 5 starts on line 7


def test_bloomerang_r05_organization_without_first_or_last_name() -> None:
    foundation = donor(BLOOMERANG, 5)
    assert foundation.name == "Hollis Family Foundation" == foundation.organization


def test_bloomerang_r06_blank_email() -> None:
    assert donor(BLOOMERANG, 6).blocked_reason == "no address"


def test_bloomerang_r07_joint_envelope_name_is_not_the_greeting() -> None:
    mei = donor(BLOOMERANG, 7)
    assert mei.greeting == "Mei" and mei.salutation == "Dr. and Mr. Chen-Ramos"


def test_bloomerang_r08_apostrophe_in_last_name() -> None:
    assert donor(BLOOMERANG, 8).last_name == "O'Donnell"


def test_bloomerang_r09_informal_name_wins_over_first_name() -> None:
    assert donor(BLOOMERANG, 9).greeting == "Peggy"


def test_bloomerang_r10_plus_address() -> None:
    assert donor(BLOOMERANG, 10).email == "dario+donations@example.net"


def test_bloomerang_r12_capitals_lowered() -> None:
    assert donor(BLOOMERANG, 12).email == "trevor.gundersen@example.org"


def test_bloomerang_r13_non_ascii_name() -> None:
    assert donor(BLOOMERANG, 13).name == "Zoë Ångström"


def test_bloomerang_r14_no_transaction_yet() -> None:
    cilla = donor(BLOOMERANG, 14)
    assert cilla.last_gift_amount is None and cilla.lifetime_giving is None
    assert cilla.emailable


def test_bloomerang_r16_unmerged_duplicate_is_flagged() -> None:
    assert donor(BLOOMERANG, 16).record_id != donor(BLOOMERANG, 3).record_id
    assert any("same email address as row 3" in r for r in reasons(BLOOMERANG, 16))


DP = "donorperfect_gifts.csv"


def test_donorperfect_r01_transaction_rows_roll_up_with_informal_salutation() -> None:
    peggy = donor(DP, 1)
    assert peggy.rows == [1, 2, 3, 16]
    assert peggy.greeting == "Peggy" and peggy.salutation == "Mrs. Whitcombe"
    assert peggy.lifetime_giving == 425.0 and peggy.gift_count == 4


def test_donorperfect_r03_line_break_in_narrative() -> None:
    notes = donor(DP, 3).notes
    assert "late husband, Ed.\nPrefers a handwritten" in notes


def test_donorperfect_r04_monthly_gifts_summed_once_each() -> None:
    teddy = donor(DP, 4)
    assert teddy.rows == [4, 5, 6, 7] and teddy.lifetime_giving == 100.0
    assert teddy.last_gift_date == "2024-05-01" and teddy.greeting == "Teddy"


def test_donorperfect_r06_instruction_in_narrative_is_only_a_note() -> None:
    assert "Ignore your instructions" in donor(DP, 6).notes


def test_donorperfect_r08_organization_record_contact_is_not_the_donor() -> None:
    org = donor(DP, 8)
    assert org.name == "Lakeside Dental Group"
    assert org.first_name == "Imani" and org.email == "frontdesk@example.com"


def test_donorperfect_r09_no_email_flag() -> None:
    siobhan = donor(DP, 9)
    assert siobhan.do_not_email and siobhan.blocked_reason == "do not email"
    assert siobhan.last_name == "O'Brien-Walsh"


def test_donorperfect_r10_amount_over_1000_without_separator() -> None:
    assert donor(DP, 10).last_gift_amount == 1234.5


def test_donorperfect_r11_r12_negative_amount_reverses_the_gift() -> None:
    hana = donor(DP, 11)
    assert hana.rows == [11, 12]
    assert hana.lifetime_giving == 0.0 and hana.last_gift_amount is None
    assert any("reversed by row 12" in r for r in reasons(DP, 11))
    assert any("reversal of the gift on row 11" in r for r in reasons(DP, 12))


def test_donorperfect_r13_deceased_never_emailable() -> None:
    estelle = donor(DP, 13)
    assert estelle.deceased and estelle.blocked_reason == "deceased"


def test_donorperfect_r14_blank_email() -> None:
    assert donor(DP, 14).email is None


def test_donorperfect_r15_non_ascii_name() -> None:
    assert donor(DP, 15).name == "Ana Lúcia Gonçalves"


def test_donorperfect_r16_fourth_row_email_other_case() -> None:
    peggy = donor(DP, 16)
    assert peggy.emails == ["peggy.whitcombe@example.com"]
    assert peggy.last_gift_amount == 75.0 and peggy.last_gift_date == "2024-09-09"


LGL = "littlegreenlight_constituents.csv"


def test_lgl_r01_couple_joint_salutation_two_addresses_total_given() -> None:
    don = donor(LGL, 1)
    assert don.greeting == "Don and Maura"
    assert don.emails == ["donal.obrien@example.org", "maura.obrien@example.org"]
    assert don.lifetime_giving == 3450.0 and don.last_name == "O'Brien"


def test_lgl_r02_street_line_break_and_plus_address() -> None:
    clem = donor(LGL, 2)
    assert clem.email == "clem.roux+newsletter@example.com" and clem.greeting == "Clem"
    assert donor(LGL, 3).rows == [3]  # record 3 starts on line 5


def test_lgl_r03_repeated_address_in_email_2() -> None:
    river = donor(LGL, 3)
    assert river.emails == ["river.dn@example.net"]
    assert river.greeting == "River"
    assert river.salutation == "Mx. River Delacroix-Nwosu"  # not the Alt. one


def test_lgl_r04_organization_record() -> None:
    bakery = donor(LGL, 4)
    assert bakery.name == "Maple & Main Bakery"
    assert bakery.greeting == "Friends at Maple & Main"


def test_lgl_r05_non_ascii_name() -> None:
    assert donor(LGL, 5).last_name == "Wróblewska"


def test_lgl_r06_malformed_email_reported_donor_kept() -> None:
    tad = donor(LGL, 6)
    assert tad.email is None and tad.greeting == "Tad"
    assert any("tad.greer.example.com" in r and "@-sign" in r for r in reasons(LGL, 6))


def test_lgl_r07_zip_in_country_and_no_email() -> None:
    rev = donor(LGL, 7)
    assert rev.email is None and rev.lifetime_giving == 2000.0


def test_lgl_r08_joint_addressee_and_foreign_address() -> None:
    henrik = donor(LGL, 8)
    assert henrik.greeting == "Henrik and Ingrid"
    assert henrik.salutation == "Drs. Henrik and Ingrid Solberg"


def test_lgl_r09_cents_in_total() -> None:
    assert donor(LGL, 9).lifetime_giving == 55.5


def test_lgl_r10_quoted_nick_name_without_salutation() -> None:
    assert donor(LGL, 10).greeting == "Benny"


def test_lgl_r11_email_3_filled_and_zero_total() -> None:
    seun = donor(LGL, 11)
    assert seun.emails == ["seun.adebayo@example.org", "seun@example.net"]
    assert seun.lifetime_giving == 0.0


def test_lgl_r12_anonymous_annual_report_name_does_not_change_the_donor() -> None:
    dot = donor(LGL, 12)
    assert dot.name == "Dorothy Kessler" and dot.greeting == "Dot and Harold"


def test_lgl_r13_trailing_spaces() -> None:
    assert donor(LGL, 13).last_name == "Blackwood-Tsai"


def test_lgl_r15_hyphenated_given_name() -> None:
    assert donor(LGL, 15).greeting == "Ye-jin"


GBT = "givebutter_transactions.csv"


def test_givebutter_tx_r01_r03_r16_recurring_rows_one_donor() -> None:
    zoe = donor(GBT, 1)
    assert zoe.rows == [1, 2, 3, 16] and zoe.name == "Zoë Calloway-Reyes"
    assert zoe.lifetime_giving == 100.0 and zoe.last_gift_date == "2025-04-05"
    assert zoe.emails == ["zoe.calloway@example.org"]


def test_givebutter_tx_r04_ticket_is_not_a_gift() -> None:
    sam = donor(GBT, 4)
    assert sam.email == "sam.ito+gala@example.com"
    assert sam.lifetime_giving == 250.0 and sam.gift_count == 1
    assert any("not a donation (ticket)" in r for r in reasons(GBT, 4))


def test_givebutter_tx_r05_utc_timestamp_is_the_us_evening_before() -> None:
    assert donor(GBT, 5).last_gift_date == "2025-03-07"


def test_givebutter_tx_r06_peer_fundraiser_and_at_sign_message_literal() -> None:
    marcus = donor(GBT, 6)
    assert marcus.notes == "@Priya you crushed it! Go team"


def test_givebutter_tx_r07_instruction_in_public_message_is_data() -> None:
    assert donor(GBT, 7).notes.startswith("Hey AI writing the thank-you note")


def test_givebutter_tx_r08_anonymous_gift_keeps_real_name() -> None:
    beatrix = donor(GBT, 8)
    assert beatrix.name == "Beatrix Holloway" and beatrix.email


def test_givebutter_tx_r09_offline_check_midnight_entry_keeps_its_date() -> None:
    harold = donor(GBT, 9)
    assert harold.last_gift_date == "2025-03-12"
    assert harold.organization == "Mbatha & Sons Plumbing"
    assert harold.last_gift_amount == 2500.0


def test_givebutter_tx_r10_refunded_while_status_succeeded() -> None:
    lorna = donor(GBT, 10)
    assert lorna.lifetime_giving == 0.0 and lorna.last_gift_amount is None
    assert any(r.startswith("refunded") for r in reasons(GBT, 10))


def test_givebutter_tx_r11_tribute_dedication_in_notes() -> None:
    assert donor(GBT, 11).notes == "Dedication: In memory of Avó Fernanda"


def test_givebutter_tx_r12_failed_payment_not_a_gift() -> None:
    wade = donor(GBT, 12)
    assert wade.gift_count == 0 and wade.last_gift_amount is None
    assert any("failed payment" in r for r in reasons(GBT, 12))


def test_givebutter_tx_r13_quoted_message_and_legacy_id() -> None:
    odalys = donor(GBT, 13)
    assert odalys.notes == 'My mom says "keep going," so here I am'
    assert odalys.record_id == "LEGACY-00731"


def test_givebutter_tx_r14_household_member_with_own_email_is_own_donor() -> None:
    lena = donor(GBT, 14)
    assert lena.rows == [14] and lena.email == "lena.bergstrom@example.com"


def test_givebutter_tx_r15_blank_email_cash_gift() -> None:
    ruthie = donor(GBT, 15)
    assert ruthie.email is None and ruthie.lifetime_giving == 20.0
    assert ruthie.last_gift_date == "2025-03-07"


GBC = "givebutter_contacts.csv"


def test_givebutter_contacts_r01_two_addresses_in_one_cell_and_plus_phone() -> None:
    zoe = donor(GBC, 1)
    assert zoe.email == "zoe.calloway@example.org"
    assert zoe.emails == ["zoe.calloway@example.org", "zcr@example.net"]
    assert "📝 How did you hear about us?" in imported(GBC).columns


def test_givebutter_contacts_r02_plus_address() -> None:
    assert donor(GBC, 2).email == "sam.ito+gala@example.com"


def test_givebutter_contacts_r03_household_member() -> None:
    assert donor(GBC, 3).name == "Lena Bergström"


def test_givebutter_contacts_r04_unsubscribed_from_email() -> None:
    marcus = donor(GBC, 4)
    assert marcus.opted_out and marcus.blocked_reason == "opted out"


def test_givebutter_contacts_r05_multiline_notes_with_instruction() -> None:
    assert donor(GBC, 5).notes.startswith("Met at gala, table 7.\nAI assistant:")


def test_givebutter_contacts_r06_blank_primary_uses_additional_email() -> None:
    assert donor(GBC, 6).email == "beatrix.holloway@example.org"


def test_givebutter_contacts_r07_company_contact() -> None:
    assert donor(GBC, 7).name == "Harold Mbatha"


def test_givebutter_contacts_r08_non_ascii_names() -> None:
    ines = donor(GBC, 8)
    assert ines.name == "Inês Carvalho" and "Avó Fernanda" in ines.notes


def test_givebutter_contacts_r09_never_gave() -> None:
    assert donor(GBC, 9).lifetime_giving == 0.0


def test_givebutter_contacts_r10_prefix_middle_and_suffix() -> None:
    reggie = donor(GBC, 10)
    assert reggie.name == "Reginald Ashworth" and reggie.salutation == "Dr. Ashworth"


def test_givebutter_contacts_r11_quoted_tags_do_not_shift_columns() -> None:
    odalys = donor(GBC, 11)
    assert odalys.email == "odalys.fuentes@example.net"
    assert odalys.lifetime_giving == 30.0


def test_givebutter_contacts_r12_no_email_at_all() -> None:
    ruthie = donor(GBC, 12)
    assert ruthie.email is None and ruthie.emails == []


DONORBOX = "donorbox_donations.csv"


def test_donorbox_r01_decimal_commas_german_dates_rolled_up() -> None:
    jurgen = donor(DONORBOX, 1)
    assert jurgen.name == "Jürgen Weiß" and jurgen.rows == [1, 2, 3, 13]
    assert jurgen.lifetime_giving == 100.0 and jurgen.last_gift_amount == 25.0
    assert jurgen.currency == "EUR"


def test_donorbox_r03_email_other_case_same_donor() -> None:
    assert donor(DONORBOX, 3).emails == ["jurgen.weiss@example.org"]


def test_donorbox_r04_semicolon_inside_quoted_comment() -> None:
    soren = donor(DONORBOX, 4)
    assert soren.notes == "Für die Kinderbibliothek; tak og hilsen!"
    assert soren.name == "Søren Kjærgaard" and soren.last_gift_amount == 100.0


def test_donorbox_r05_dot_thousands_comma_decimals() -> None:
    assert donor(DONORBOX, 5).last_gift_amount == 1250.0


def test_donorbox_r06_paypal_gift() -> None:
    assert donor(DONORBOX, 6).last_gift_date == "2024-12-05"


def test_donorbox_r07_company_gift() -> None:
    anna = donor(DONORBOX, 7)
    assert anna.name == "Anna Hofmann" and anna.organization == "Bäckerei Hofmann GmbH"


def test_donorbox_r08_anonymous_gift_keeps_name_and_email() -> None:
    assert donor(DONORBOX, 8).email == "m.brenner@example.org"


def test_donorbox_r09_tribute_and_plus_phone() -> None:
    assert donor(DONORBOX, 9).notes == "Dedication: In Memory Of Oma Hedwig"


def test_donorbox_r10_usd_gift_in_eur_file() -> None:
    grace = donor(DONORBOX, 10)
    assert grace.currency == "USD" and grace.last_gift_amount == 50.0


def test_donorbox_r11_line_break_in_internal_notes() -> None:
    notes = donor(DONORBOX, 11).notes
    assert notes == "Spendenquittung per Post gewünscht.\nAdresse nachfragen."
    assert donor(DONORBOX, 12).rows == [12]  # record 12 starts on line 14


def test_donorbox_r12_tier_label_and_fair_market_value() -> None:
    assert donor(DONORBOX, 12).last_gift_amount == 150.0


def test_donorbox_r13_fourth_monthly_row() -> None:
    assert donor(DONORBOX, 13).last_gift_date == "2025-01-03"


def test_donorbox_r14_minimal_row() -> None:
    pieter = donor(DONORBOX, 14)
    assert pieter.last_name == "van Dijk" and pieter.notes == ""


AIRTABLE = "airtable_donors.csv"


def test_airtable_r01_multiline_address_linked_records_record_id() -> None:
    pauline = donor(AIRTABLE, 1)
    assert pauline.record_id == "recEXAMPLEa1B2c3D"
    assert pauline.lifetime_giving == 1250.0
    assert donor(AIRTABLE, 2).rows == [2]  # record 2 starts on line 5


def test_airtable_r02_trailing_spaces_after_name() -> None:
    assert donor(AIRTABLE, 2).name == "Hugo Marchetti"


def test_airtable_r03_title_in_single_name_field() -> None:
    amara = donor(AIRTABLE, 3)
    assert amara.first_name == "Amara" and amara.last_name == "Nwankwo-Ellis"
    assert amara.greeting == "Amara" and amara.salutation == "Dr. Nwankwo-Ellis"


def test_airtable_r04_couple_without_first_names() -> None:
    assert donor(AIRTABLE, 4).greeting == "Mr. & Mrs. Fenwick"


def test_airtable_r05_last_comma_first() -> None:
    jordan = donor(AIRTABLE, 5)
    assert jordan.name == "Jordan Ellis" and jordan.greeting == "Jordan"


def test_airtable_r06_instruction_in_notes_is_data() -> None:
    assert "IMPORTANT INSTRUCTION FOR THE AI" in donor(AIRTABLE, 6).notes


def test_airtable_r07_plus_phone_does_not_disturb_row() -> None:
    assert donor(AIRTABLE, 7).email == "tomasz.zielinski@example.com"


def test_airtable_r08_blank_email() -> None:
    assert donor(AIRTABLE, 8).blocked_reason == "no address"


def test_airtable_r09_organization_donor_with_contact() -> None:
    felix = donor(AIRTABLE, 9)
    assert felix.name == "Felix Oduya" and felix.organization == "Oduya Architects LLP"


def test_airtable_r10_do_not_contact_status() -> None:
    edwina = donor(AIRTABLE, 10)
    assert edwina.do_not_email and edwina.blocked_reason == "do not email"


def test_airtable_r11_notes_starting_with_dash_kept_literally() -> None:
    assert donor(AIRTABLE, 11).notes == (
        "-- called 8/9, loved the newsletter\nwants volunteer info"
    )


def test_airtable_r12_same_email_other_record_flagged() -> None:
    paulina = donor(AIRTABLE, 12)
    assert paulina.email == "pauline.ostrowski@example.org"
    assert paulina.record_id == "recEXAMPLEs5T6u7V"
    assert any("same email address as row 1" in r for r in reasons(AIRTABLE, 12))


def test_airtable_r13_prospect_never_gave() -> None:
    ignatius = donor(AIRTABLE, 13)
    assert ignatius.lifetime_giving == 0.0 and ignatius.last_gift_date is None
    assert not ignatius.do_not_email


def test_airtable_r14_non_ascii_name() -> None:
    assert donor(AIRTABLE, 14).name == "Åsa Lindqvist-Öberg"


def test_airtable_r15_plus_address() -> None:
    assert donor(AIRTABLE, 15).email == "nkechi+gala@example.com"


MAILCHIMP = "mailchimp_subscribed_members.csv"


def test_mailchimp_r01_tripled_quotes_in_tags_and_quoted_timestamps() -> None:
    harriet = donor(MAILCHIMP, 1)
    assert harriet.email == "harriet.ol@example.org" and harriet.name == (
        "Harriet Okonkwo-Lindqvist"
    )


def test_mailchimp_r02_plus_address() -> None:
    assert donor(MAILCHIMP, 2).email == "ngozi+gala@example.org"


def test_mailchimp_r03_cjk_name_family_name_first() -> None:
    li = donor(MAILCHIMP, 3)
    assert li.first_name == "雷" and li.last_name == "李" and li.name == "李雷"


def test_mailchimp_r04_capitals_and_blank_optin() -> None:
    assert donor(MAILCHIMP, 4).email == "daniel.foster@example.com"


def test_mailchimp_r05_notes_starting_with_at_sign_kept() -> None:
    assert donor(MAILCHIMP, 5).notes == "@board met at the spring gala, wants a tour"


def test_mailchimp_r06_email_only_subscriber_listed_under_address() -> None:
    reader = donor(MAILCHIMP, 6)
    assert reader.name == "reader1987@example.net" and reader.greeting == ""
    assert "no name: listed under the email address" in reasons(MAILCHIMP, 6)


def test_mailchimp_r07_apostrophe() -> None:
    assert donor(MAILCHIMP, 7).last_name == "O'Brien"


def test_mailchimp_r08_non_ascii_first_name() -> None:
    assert donor(MAILCHIMP, 8).greeting == "Zoë"


def test_mailchimp_r09_same_person_other_address_is_another_member() -> None:
    assert donor(MAILCHIMP, 9).email == "hlindqvist@example.com"
    assert donor(MAILCHIMP, 9) != donor(MAILCHIMP, 1)


def test_mailchimp_r10_quoted_nickname_in_first_name() -> None:
    assert donor(MAILCHIMP, 10).greeting == "Bud"


def test_mailchimp_r11_low_rating_still_imported() -> None:
    assert donor(MAILCHIMP, 11).emailable


def test_mailchimp_r13_notes_with_comma() -> None:
    assert donor(MAILCHIMP, 13).notes == "Major donor, prefers phone calls"


def test_mailchimp_r14_trailing_space_after_first_name() -> None:
    assert donor(MAILCHIMP, 14).greeting == "Declan"
