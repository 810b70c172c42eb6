"""Cell values as a CRM export writes them -> numbers, ISO dates and yes/no flags.

Exports write money as "$1,234.50", "-$50.00" or (after a European Excel) "1.250,00";
dates as 11/28/23, 2024-01-15, 03.10.2024 09:15, Excel serials or UTC timestamps.
Whether a comma is a decimal mark is decided once per column (falling back to the
whole file), never per cell, or "1.250,00" and "1,250" would disagree.

Every parser works on a whole column: it parses each distinct text once and maps
the answers back, so a 100,000-row export with a few thousand distinct amounts or
dates costs a few thousand parses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

# Excel's 1900 date system counts days from 1899-12-30 (it keeps Lotus's 1900 leap
# day bug, so serials from March 1900 on line up with this epoch).
EXCEL_EPOCH = date(1899, 12, 30)
# Serials below 10000 (before 1927) are more likely years or counts than dates.
EXCEL_SERIAL_RANGE = (10_000, 99_999)

TRUE_WORDS = frozenset(
    {"y", "yes", "true", "t", "1", "x", "checked", "on", "✓", "✔", "ja", "oui", "sí"}
)
FALSE_WORDS = frozenset(
    {"n", "no", "false", "f", "0", "off", "none", "-", "nein", "non", "unchecked"}
)

_MONEY_RE = re.compile(
    r"(?P<neg1>[-(−])?\s*(?:[A-Za-z]{3}\s?)?[$€£¥₹]?\s*(?P<neg2>[-−])?\s*"
    r"(?P<num>\d[\d.,'\s\u00a0\u202f]*?)\s*(?:[$€£¥₹]|[A-Za-z]{3})?\s*(?P<neg3>[-)−])?"
)
_COMMA_DECIMAL_RE = re.compile(
    r"(?:\d+|\d{1,3}(?:\.\d{3})+),\d{1,2}|\d{1,3}(?:\.\d{3}){2,}"
)
_POINT_DECIMAL_RE = re.compile(
    r"(?:\d+|\d{1,3}(?:,\d{3})+)\.\d{1,2}|\d{1,3}(?:,\d{3}){2,}"
)
_PLAIN_NUMBER_RE = r"-?\d+(?:\.\d+)?"

_ISO_RE = (
    r"\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
    r"\s*(?:Z|UTC|[+-]00:?00)?"
)
# Limit: of explicit offsets only UTC ("Z", "+00:00") is read; a timestamp with
# another offset ("+02:00") is reported as not understood.
_UTC_SUFFIX_RE = re.compile(r"\s*(?:Z|UTC|[+-]00:?00)$")
_SLASH_RE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})"
    r"(?:,?\s+(\d{1,2}):(\d{2})(?::\d{2})?\s*([AaPp][Mm])?)?"
)
_DOT_RE = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})(?:,?\s+(\d{1,2}):(\d{2})(?::\d{2})?)?"
)
_SERIAL_RE = re.compile(r"\d{5}(?:\.\d+)?")


# -- money ---------------------------------------------------------------------------


def _money_number(text: str) -> tuple[str, bool] | None:
    """The digits-and-separators part of a money cell and whether it is negative."""
    match = _MONEY_RE.fullmatch(text.strip())
    if match is None:
        return None
    negative = bool(match["neg1"] or match["neg2"] or match["neg3"])
    number = re.sub(r"['\s\u00a0\u202f]", "", match["num"])
    return number, negative


def decimal_comma_votes(values: Iterable[str]) -> tuple[int, int]:
    """Count cells that only make sense with a decimal comma vs a decimal point.

    "25,00" and "1.250,00" vote comma; "1,234.50" and "12.5" vote point; "1,250"
    and "1.250" are ambiguous and do not vote.
    """
    comma = point = 0
    for text in values:
        parsed = _money_number(text)
        if parsed is None:
            continue
        if _COMMA_DECIMAL_RE.fullmatch(parsed[0]):
            comma += 1
        elif _POINT_DECIMAL_RE.fullmatch(parsed[0]):
            point += 1
    return comma, point


def choose_decimal_comma(columns: list[pd.Series]) -> list[bool]:
    """Per money column: True when its decimal mark is a comma.

    A column without deciding cells follows the votes of the file's other money
    columns; with none at all, the decimal mark is a point.
    """
    votes = [decimal_comma_votes(_distinct_texts(column)) for column in columns]
    file_comma = sum(v[0] for v in votes)
    file_point = sum(v[1] for v in votes)
    decisions = []
    for comma, point in votes:
        if comma != point:
            decisions.append(comma > point)
        else:
            decisions.append(file_comma > file_point)
    return decisions


def parse_money_text(text: str, decimal_comma: bool) -> float | None:
    """One money cell -> float, or None when it is blank or not an amount."""
    if not text or not text.strip():
        return None
    parsed = _money_number(text)
    if parsed is None:
        return None
    number, negative = parsed
    if decimal_comma:
        number = number.replace(".", "").replace(",", ".")
    else:
        number = number.replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return None
    return -value if negative else value


def parse_money(values: pd.Series, decimal_comma: bool) -> tuple[pd.Series, pd.Series]:
    """A column of money cells -> (float amounts with NaN for blanks, mask of cells
    that are filled but are not an amount)."""
    texts = _as_text(values)
    plain = texts.str.fullmatch(_PLAIN_NUMBER_RE)
    amounts = pd.Series(np.nan, index=texts.index, dtype="float64")
    if plain.any() and not decimal_comma:
        amounts[plain] = pd.to_numeric(texts[plain], errors="coerce")
    rest = ~plain | decimal_comma
    rest &= texts != ""
    if rest.any():
        amounts[rest] = _map_distinct(
            texts[rest], lambda t: parse_money_text(t, decimal_comma), float
        )
    bad = (texts != "") & amounts.isna()
    return amounts, bad


# -- dates ---------------------------------------------------------------------------


def full_year(two_digits: int, month: int, day: int, today: date) -> int:
    """A 2-digit year -> 4 digits, never in the future (61 -> 1961, 23 -> 2023)."""
    year = 2000 + two_digits
    try:
        if date(year, month, day) > today:
            year -= 100
    except ValueError:
        if year > today.year:
            year -= 100
    return year


def parse_date_text(
    text: str,
    *,
    day_first: bool = False,
    today: date | None = None,
) -> tuple[date, tuple[int, int] | None, bool] | None:
    """One date cell -> (date, (hour, minute) or None, explicitly UTC), or None.

    Reads ISO dates and timestamps, M/D/Y (or D/M/Y with ``day_first``) with 2- or
    4-digit years, D.M.Y with an optional time, Excel serial numbers and dates with
    month names. A 2-digit year is never in the future.
    """
    text = (text or "").strip()
    if not text:
        return None
    today = today or date.today()
    utc = bool(_UTC_SUFFIX_RE.search(text)) and text[:4].isdigit()
    if re.fullmatch(_ISO_RE, text):
        stamp = pd.to_datetime(_UTC_SUFFIX_RE.sub("", text), errors="coerce")
        if pd.isna(stamp):
            return None
        has_time = bool(re.search(r"\d[T ]\d", text))
        clock = (stamp.hour, stamp.minute) if has_time else None
        return stamp.date(), clock, utc
    match = _SLASH_RE.fullmatch(text) or _DOT_RE.fullmatch(text)
    if match:
        first, second, year_text, hour, minute = match.groups()[:5]
        ampm = match.group(6) if match.re is _SLASH_RE else None
        if match.re is _DOT_RE or day_first:
            day, month = int(first), int(second)
        else:
            month, day = int(first), int(second)
        year = int(year_text)
        if len(year_text) == 2:
            year = full_year(year, month, day, today)
        try:
            found = date(year, month, day)
        except ValueError:
            return None
        clock = None
        if hour is not None:
            h = int(hour) % 12 + (12 if ampm and ampm.lower() == "pm" else 0)
            clock = (h if ampm else int(hour), int(minute))
        return found, clock, False
    if _SERIAL_RE.fullmatch(text):
        serial = float(text)
        low, high = EXCEL_SERIAL_RANGE
        if not low <= serial <= high:
            return None
        moment = datetime.combine(EXCEL_EPOCH, datetime.min.time()) + timedelta(
            days=serial
        )
        clock = (moment.hour, moment.minute) if serial % 1 else None
        return moment.date(), clock, False
    if re.search(r"[A-Za-z]{3}", text):
        try:
            stamp = pd.to_datetime(text, format="mixed", dayfirst=day_first)
        except (ValueError, OverflowError):
            return None
        return stamp.date(), None, False
    return None


def slash_dates_are_day_first(values: Iterable[str]) -> bool:
    """True when the column's a/b/y dates are D/M/Y, not the US M/D/Y: some date
    is impossible month-first ("31/12/2024") and at least as many dates prove
    day-first order as prove month-first order ("12/31/2024"). Dates the chosen
    order cannot read are reported by the caller, never guessed."""
    day_first = month_first = 0
    for text in values:
        match = _SLASH_RE.fullmatch(text.strip())
        if match:
            first, second = int(match.group(1)), int(match.group(2))
            day_first += first > 12 >= second
            month_first += second > 12 >= first
    return day_first > 0 and day_first >= month_first


def parse_dates(
    values: pd.Series,
    *,
    utc_column: bool = False,
    local_timezone: str = "UTC",
    today: date | None = None,
) -> tuple[pd.Series, pd.Series]:
    """A column of date cells -> (ISO yyyy-mm-dd strings or NaN, mask of cells that
    are filled but are not a date).

    Timestamps in UTC (the column header says so, or the cell ends in Z) are moved
    to ``local_timezone`` before the date is taken, so a gift made at 20:15 in New
    York is not dated the next day.
    """
    texts = _as_text(values)
    result = pd.Series(np.nan, index=texts.index, dtype="str")
    filled = texts != ""
    if not filled.any():
        return result, filled
    today = today or date.today()
    zone = ZoneInfo(local_timezone)
    # Fast path: plain ISO timestamps/dates (one vectorised parse).
    iso = texts.str.fullmatch(r"\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?")
    if iso.any():
        stamps = pd.to_datetime(texts[iso], format="ISO8601", errors="coerce")
        if utc_column:
            # Limit: a time of exactly 00:00 is taken as a date entered without a
            # time (offline gifts), so it is not moved to the previous evening.
            midnight = (stamps.dt.hour == 0) & (stamps.dt.minute == 0)
            moved = (
                stamps.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
            )
            stamps = stamps.where(midnight, moved)
        result[iso] = stamps.dt.strftime("%Y-%m-%d")
    rest = filled & ~iso
    if rest.any():
        day_first = slash_dates_are_day_first(_distinct_texts(texts[rest]))

        def one(text: str) -> str | None:
            parsed = parse_date_text(text, day_first=day_first, today=today)
            if parsed is None:
                return None
            found, clock, utc = parsed
            if clock and (utc or utc_column) and clock != (0, 0):
                moment = datetime(found.year, found.month, found.day, *clock)
                moment = moment.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
                found = moment.date()
            return found.isoformat()

        result[rest] = _map_distinct(texts[rest], one, str)
    bad = filled & result.isna()
    return result, bad


# -- helpers -------------------------------------------------------------------------


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype("str").fillna("").str.strip()


def _distinct_texts(values: pd.Series) -> list[str]:
    texts = _as_text(values)
    return [t for t in texts.unique().tolist() if t]


def _map_distinct(
    texts: pd.Series, parse: Callable[[str], object], kind: type
) -> pd.Series:
    """Apply ``parse`` once per distinct text and spread the answers over the rows."""
    codes, uniques = pd.factorize(texts)
    answers = [parse(text) for text in uniques.tolist()]
    if kind is float:
        table = np.array([np.nan if a is None else a for a in answers], dtype="float64")
        return pd.Series(table[codes], index=texts.index)
    table_obj = np.array(answers + [None], dtype=object)
    return pd.Series(table_obj[codes], index=texts.index, dtype="str")
