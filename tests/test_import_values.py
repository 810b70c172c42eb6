"""Money, dates and yes/no cells as exports write them (lib.importing.values)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from lib.importing.values import (
    choose_decimal_comma,
    parse_dates,
    parse_money,
    parse_money_text,
)

TODAY = date(2026, 12, 4)


@pytest.mark.parametrize(
    ("text", "comma", "expected"),
    [
        ("$1,234.50", False, 1234.5),
        ("-$50.00", False, -50.0),
        ("$0.00", False, 0.0),
        ("5000", False, 5000.0),
        ("25,00", True, 25.0),
        ("1.250,00", True, 1250.0),
        ("1.355,00", True, 1355.0),
        ("1.250,00 €", True, 1250.0),
        ("EUR 12,5", True, 12.5),
        ("(12.00)", False, -12.0),
        ("1 234,50", True, 1234.5),
        ("", False, None),
        ("n/a", False, None),
        ("12 apples", False, None),
    ],
)
def test_money_cells(text: str, comma: bool, expected: float | None) -> None:
    assert parse_money_text(text, comma) == expected


def test_decimal_mark_is_decided_per_column_not_per_cell() -> None:
    european = pd.Series(["25,00", "1.250,00", "100,00", "1.250"])
    american = pd.Series(["$1,250.00", "$25.00", "1,250"])
    comma, point = choose_decimal_comma([european, american])
    assert comma is True and point is False
    amounts, bad = parse_money(european, comma)
    # "1.250" alone would be ambiguous; in this column it is one thousand two fifty.
    assert amounts.tolist() == [25.0, 1250.0, 100.0, 1250.0] and not bad.any()
    amounts, _ = parse_money(american, point)
    assert amounts.tolist() == [1250.0, 25.0, 1250.0]


def test_column_without_deciding_cells_follows_the_file() -> None:
    undecided = pd.Series(["1.250", "40"])
    european = pd.Series(["25,00", "3,50"])
    assert choose_decimal_comma([undecided, european]) == [True, True]
    assert choose_decimal_comma([undecided]) == [False]


def test_unreadable_amounts_are_flagged_not_guessed() -> None:
    amounts, bad = parse_money(pd.Series(["$10.00", "", "ten", "1.2.3"]), False)
    assert amounts.iloc[0] == 10.0 and pd.isna(amounts.iloc[1])
    assert bad.tolist() == [False, False, True, True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11/28/23", "2023-11-28"),
        ("4/5/24", "2024-04-05"),
        ("12/30/2013", "2013-12-30"),
        ("2024-01-15", "2024-01-15"),
        ("03.10.2024 09:15", "2024-10-03"),
        ("15.12.2024", "2024-12-15"),
        ("45500", "2024-07-27"),  # Excel serial
        ("2023-11-28 18:02:11", "2023-11-28"),
        ("2024-02-29T10:00:00", "2024-02-29"),
        ("Dec 5, 2024", "2024-12-05"),
        ("04/09/61", "1961-04-09"),
    ],
)
def test_date_cells(text: str, expected: str) -> None:
    dates, bad = parse_dates(pd.Series([text]), today=TODAY)
    assert dates.tolist() == [expected] and not bad.any()


def test_two_digit_year_is_never_in_the_future() -> None:
    dates, _ = parse_dates(pd.Series(["12/31/26", "12/03/26", "01/01/27"]), today=TODAY)
    assert dates.tolist() == ["1926-12-31", "2026-12-03", "1927-01-01"]


def test_day_first_column_is_recognised() -> None:
    dates, _ = parse_dates(pd.Series(["25/12/2024", "03/01/2025"]), today=TODAY)
    assert dates.tolist() == ["2024-12-25", "2025-01-03"]


def test_utc_timestamps_are_dated_in_the_local_zone() -> None:
    cells = pd.Series(
        ["2025-03-08 01:15:02", "2025-03-12 00:00:00", "2025-03-08T01:15Z"]
    )
    dates, _ = parse_dates(cells, utc_column=True, local_timezone="America/Chicago")
    # 01:15 UTC is the evening before in the US; midnight means "no time entered".
    assert dates.tolist() == ["2025-03-07", "2025-03-12", "2025-03-07"]
    dates, _ = parse_dates(
        cells[:1], utc_column=False, local_timezone="America/Chicago"
    )
    assert dates.tolist() == ["2025-03-08"]


def test_impossible_dates_are_flagged() -> None:
    dates, bad = parse_dates(pd.Series(["13/13/2024", "soon", "", "2024-02-30"]))
    assert bad.tolist() == [True, True, False, True]
    assert dates.isna().all()


def test_one_impossible_month_first_date_makes_the_column_day_first() -> None:
    """Tester case: '31/12/2024' (impossible month-first) was not read day-first
    because another cell looked month-first; the odd one is reported, not
    guessed."""
    dates, bad = parse_dates(
        pd.Series(["31/12/2024", "01/02/2024", "25/03/2024", "12/30/2024"]),
        today=TODAY,
    )
    assert dates.tolist()[:3] == ["2024-12-31", "2024-02-01", "2024-03-25"]
    assert bad.tolist() == [False, False, False, True]
