"""Transaction rows -> one donor each: keys, completed gifts, totals that must not
be summed, and the rows that are not gifts (lib.importing.rollup)."""

from __future__ import annotations

from lib.importing import read_donor_file


def _read(text: str):  # noqa: ANN202 - ImportResult
    return read_donor_file(text.encode(), "gifts.csv")


def test_per_donor_total_repeated_on_every_row_is_not_summed() -> None:
    result = _read(
        "Donor ID,Email,Amount,Gift Date,Lifetime Giving\n"
        "7,ann@example.org,$100.00,1/5/2024,$600.00\n"
        "7,ann@example.org,$200.00,2/5/2024,$600.00\n"
        "7,ann@example.org,$300.00,3/5/2024,$600.00\n"
    )
    (ann,) = result.donors
    assert ann.lifetime_giving == 600.0  # the CRM's total, not 1800
    assert ann.gift_count == 3 and ann.last_gift_amount == 300.0


def test_lifetime_is_sum_of_completed_gifts_and_last_is_latest_by_date() -> None:
    result = _read(
        "Email,Amount,Date,Status,Subtype\n"
        "ann@example.org,50,2024-03-01,succeeded,donation\n"
        "ann@example.org,75,2024-01-01,succeeded,donation\n"
        "ann@example.org,500,2024-05-01,failed,donation\n"
        "ann@example.org,125,2024-06-01,succeeded,ticket\n"
        "ann@example.org,40,2024-07-01,Pledged,donation\n"
    )
    (ann,) = result.donors
    assert ann.lifetime_giving == 125.0 and ann.gift_count == 2
    assert (ann.last_gift_amount, ann.last_gift_date) == (50.0, "2024-03-01")
    assert ann.rows == [1, 2, 3, 4, 5]
    skipped = {i.row: i.reason for i in result.doubtful}
    assert "failed payment" in skipped[3]
    assert "not a donation" in skipped[4]
    assert "pledged" in skipped[5]


def test_unmatched_negative_amount_is_not_subtracted() -> None:
    result = _read(
        "Email,Amount,Date\nann@example.org,$80.00,1/1/2024\nann@example.org,-$30.00,2/1/2024\n"
    )
    (ann,) = result.donors
    assert ann.lifetime_giving == 80.0 and ann.last_gift_amount == 80.0
    assert [i.row for i in result.doubtful] == [2]


def test_rows_without_record_id_join_the_record_holding_their_address() -> None:
    result = _read(
        "Record ID,Email,Amount\n"
        "rec1,ann@example.org,10\n"
        ",ANN@example.org,20\n"
        ",bo@example.org,5\n"
    )
    ann, bo = result.donors
    assert ann.record_id == "rec1" and ann.rows == [1, 2] and ann.lifetime_giving == 30
    assert bo.record_id is None and bo.rows == [3]
    assert result.to_frame()["donor_key"].tolist() == ["rec1", "email:bo@example.org"]


def test_donors_without_id_or_address_are_keyed_by_name() -> None:
    result = _read("Name,Amount\nRuthie Bell,20\nruthie  bell,5\nAnn Lee,1\n")
    ruthie, ann = result.donors
    assert ruthie.rows == [1, 2] and ruthie.lifetime_giving == 25
    assert result.to_frame()["donor_key"].tolist() == [
        "name:ruthie bell",
        "name:ann lee",
    ]


def test_duplicate_rows_in_a_donor_list_are_merged_and_reported() -> None:
    result = _read(
        "Name,Email,Total Given\n"
        "Ann Lee,ann@example.org,$10.00\n"
        "Ann Lee,ANN@EXAMPLE.ORG,$10.00\n"
        "Annie Leigh,ann@example.org,$10.00\n"
    )
    (ann,) = result.donors
    assert ann.lifetime_giving == 10.0 and ann.rows == [1, 2, 3]
    reasons = {i.row: i.reason for i in result.doubtful}
    assert reasons[2] == "same donor as row 1 (same address): merged"
    assert "name differs" in reasons[3] and "'Annie Leigh'" in reasons[3]


def test_flags_from_any_row_stick_to_the_donor() -> None:
    result = _read(
        "Donor ID,Email,Amount,NO_EMAIL,Deceased Date,Status\n"
        "1,a@example.org,5,N,,Active\n"
        "1,a@example.org,5,Y,,Active\n"
        "2,b@example.org,5,N,2021-01-01,\n"
        "3,c@example.org,5,,,Unsubscribed\n"
        "4,d@example.org,5,,,Email bounced\n"
    )
    a, b, c, d = result.donors
    assert a.do_not_email and a.blocked_reason == "do not email"
    assert b.deceased and c.opted_out and d.bounced
    assert not any(x.emailable for x in result.donors)


def test_mixed_currencies_are_reported() -> None:
    result = _read(
        'Email,Amount,Currency\na@example.org,"10,00",EUR\na@example.org,"5,00",usd\n'
    )
    (donor,) = result.donors
    assert donor.lifetime_giving == 15.0 and donor.currency == "USD"
    assert any("several currencies" in i.reason for i in result.doubtful)


def test_campaign_comes_from_completed_gifts_only() -> None:
    """Tester case: a donor's campaign was taken from a refunded/failed/ticket row
    although they had completed gifts."""
    result = _read(
        "Email,Amount,Date,Campaign,Status,Subtype\n"
        "ann@example.org,50,2024-01-01,Spring Appeal,succeeded,donation\n"
        "ann@example.org,900,2024-06-01,Gala,refunded,donation\n"
        "ann@example.org,20,2024-07-01,,succeeded,donation\n"
        "ann@example.org,40,2024-08-01,Raffle,succeeded,ticket\n"
        "ann@example.org,70,2024-09-01,Year End,failed,donation\n"
        "bo@example.org,30,2024-07-01,Gala,refunded,donation\n"
    )
    ann, bo = result.donors
    assert ann.campaign == "Spring Appeal"
    assert bo.campaign == "Gala"  # no completed gift: the row's own campaign
