"""Amounts and dates as people write them in letters: "$1,000,000", "$1M",
"10,000 dollars", "1.250,00 €", "October 10, 2024", "10/10/24", "Friday".

Why a module of its own: the grounding check needs every amount and date a draft
states, with its value, to compare with the donor's record and the team's brief,
and the same reading must apply to both sides ("$1,250" in a draft is the 1250.0
of the record). Money needs a currency mark (a symbol, code or word) so counts and
years are not taken for amounts; a numeric date like 10/11/24 is read both the US
and the European way.
"""

from __future__ import annotations

import re
from datetime import date

Reading = tuple[int | None, int | None, int | None]  # (year, month, day), parts known

# -- amounts -------------------------------------------------------------------------

_NUMBER = r"\d{1,3}(?:[,.\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d+)?"
_MULTIPLIER = (
    r"(?:\s?(?P<abbr>[kKmM]|mm|MM|bn|BN)\b|\s(?P<word>thousand|million|billion)\b)"
)
_PREFIXED = re.compile(
    r"(?:[A-Z]{1,2}\$|\$|€|£|\b(?:USD|EUR|GBP|CAD|AUD|CHF)\s?)\s?"
    rf"(?P<num>{_NUMBER}){_MULTIPLIER}?"
)
_SUFFIXED = re.compile(
    rf"(?<![\d.,])(?P<num>{_NUMBER}){_MULTIPLIER}?"
    r"(?:\s?[€£]|\s(?:dollars?|euros?|pounds?|USD|EUR|GBP|CAD|AUD|CHF)\b)"
)
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "twenty": 20, "fifty": 50} | {
    word: number
    for number, word in enumerate(
        "two three four five six seven eight nine ten".split(), start=2
    )
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "k": 1_000}
_SCALES |= {"m": 1_000_000, "mm": 1_000_000, "billion": 10**9, "bn": 10**9}
_WORDED = re.compile(
    r"\b(?:(?P<count>[A-Za-z]+)\s)?(?P<scale>hundred|thousand|million|billion)\s"
    r"(?:dollars|euros|pounds)\b",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(rf"(?<![\d.,])(?P<num>{_NUMBER}){_MULTIPLIER}?")

# -- dates ---------------------------------------------------------------------------

MONTHS = {
    name: number
    for number, name in enumerate(
        "january february march april may june july august september october "
        "november december".split(),
        start=1,
    )
}
MONTH_ABBR = {name[:3]: number for name, number in MONTHS.items()} | {"sept": 9}
_MONTH_WORD = (
    r"(?P<month>January|February|March|April|May|June|July|August|September|October"
    r"|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_DATE_PATTERNS = [
    re.compile(r"\b(?P<year>\d{4})-(?P<mon>\d{1,2})-(?P<day>\d{1,2})\b"),
    re.compile(r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})[/.](?P<year>\d{4}|\d{2})\b"),
    re.compile(
        rf"\b{_MONTH_WORD}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b"
        r"(?:,?\s+(?P<year>\d{4})\b)?"
    ),
    re.compile(
        rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH_WORD}"
        r"(?:,?\s+(?P<year>\d{4})\b)?"
    ),
    re.compile(rf"\b{_MONTH_WORD}(?:\s+of)?,?\s+(?P<year>\d{{4}})\b"),
    # A month on its own ("in October"); "May" alone is too often the verb.
    re.compile(
        r"\b(?P<month>January|February|March|April|June|July|August|September"
        r"|October|November|December)\b"
    ),
    re.compile(r"\b(?P<weekday>" + "|".join(WEEKDAYS) + r")\b", re.IGNORECASE),
    re.compile(r"\b(?P<year>(?:19|20)\d{2})\b"),
]


def valid_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _to_number(text: str, scaled: bool) -> float | None:
    raw = text.replace("\u00a0", "").replace("\u202f", "")
    if "," in raw and "." in raw:
        if raw.rfind(",") > raw.rfind("."):
            raw = raw.replace(".", "").replace(",", ".")
        else:
            raw = raw.replace(",", "")
    elif "," in raw:
        parts = raw.split(",")
        raw = raw.replace(",", "" if len(parts) > 2 or len(parts[-1]) == 3 else ".")
    elif "." in raw:
        parts = raw.split(".")
        if len(parts) > 2 or (len(parts[-1]) == 3 and not scaled):
            raw = raw.replace(".", "")
    try:
        return float(raw)
    except ValueError:
        return None


def _scaled(match: re.Match[str]) -> float | None:
    scale_word = match.group("abbr") or match.group("word") or ""
    value = _to_number(match.group("num"), bool(scale_word))
    if value is None:
        return None
    return value * _SCALES.get(scale_word.lower(), 1)


def amounts_in(
    text: str, *, bare: bool = False
) -> list[tuple[int, int, str, float | None]]:
    """(start, end, phrase, value) for each money amount in ``text``; with ``bare``,
    every number counts (for the team's brief, where "ask for 250" means 250)."""
    found: list[tuple[int, int, str, float | None]] = []

    def add(match: re.Match[str], value: float | None) -> None:
        start, end = match.span()
        if any(s < end and start < e for s, e, _, _ in found):
            return
        found.append((start, end, match.group(0).strip(), value))

    for pattern in (_PREFIXED, _SUFFIXED):
        for match in pattern.finditer(text or ""):
            add(match, _scaled(match))
    for match in _WORDED.finditer(text or ""):
        count_word = (match.group("count") or "").lower()
        count = _WORD_NUMBERS.get(count_word, 1 if not count_word else None)
        scale = _SCALES[match.group("scale").lower()]
        add(match, None if count is None else float(count * scale))
    if bare:
        for match in _BARE_NUMBER.finditer(text or ""):
            add(match, _scaled(match))
    return sorted(found)


def _full_year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year <= (date.today().year % 100) + 5 else 1900
    return year


def dates_in(
    text: str,
) -> list[tuple[str, list[Reading], str | None]]:
    """(phrase, possible readings as (year, month, day), weekday) per date found.

    Numbers that are part of a money amount ("$2025") are not dates.
    """
    found: list[tuple[int, int, str, list, str | None]] = [
        (start, end, "", [], None) for start, end, *_ in amounts_in(text)
    ]
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text or ""):
            start, end = match.span()
            if any(s < end and start < e for s, e, *_ in found):
                continue
            groups = match.groupdict()
            readings: list[Reading] = []
            weekday = None
            year = _full_year(groups["year"]) if groups.get("year") else None
            if groups.get("weekday"):
                weekday = groups["weekday"].lower()
            elif groups.get("mon"):
                readings.append((year, int(groups["mon"]), int(groups["day"])))
            elif groups.get("a"):
                a, b = int(groups["a"]), int(groups["b"])
                readings += [(year, a, b), (year, b, a)]  # US and European order
            elif groups.get("month"):
                word = groups["month"].lower().rstrip(".")
                month = MONTHS.get(word) or MONTH_ABBR.get(word)
                day = int(groups["day"]) if groups.get("day") else None
                readings.append((year, month, day))
            else:
                readings.append((year, None, None))
            found.append((start, end, match.group(0), readings, weekday))
    return [
        (phrase, readings, wd) for _, _, phrase, readings, wd in sorted(found) if phrase
    ]
