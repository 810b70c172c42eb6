"""The grounding check: a draft may state only amounts, dates and names found in the
donor's record or in the team's campaign brief.

Why: a language model writes fluent text that can still invent a gift, a deadline
or a person, and a donor note can smuggle in an instruction ("ask for $1M"). Every
draft is checked before a person sees it; a draft with findings is marked "needs
review" with the offending phrases, and cannot be approved until it is edited or a
person overrides the check.

What counts as a source:

- amounts: the record's gift figures (last gift, lifetime giving) and any number in
  the brief (campaign, note, signature, template). Figures that appear only in
  free-text notes do not count: notes are written by others (sometimes by the
  donor, in a public message) and are where injected asks live.
- dates: the last gift date, and dates in the brief or the notes. A weekday counts
  only when the brief names it (a note's "by Friday" is an injected deadline).
- names: words of the donor's own name fields, organisation, campaign and notes,
  and of the brief. The greeting line is stricter: it may name only the donor
  (their name, greeting, salutation or organisation), so a draft addressed to
  someone else is always caught.

The check is deliberately conservative: a false alarm costs a person one look, a
miss can put an invented fact in a donor's inbox.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from lib.drafting.base import CampaignBrief
from lib.drafting.mentions import (
    MONTH_ABBR,
    MONTHS,
    WEEKDAYS,
    Reading,
    amounts_in,
    dates_in,
    valid_date,
)
from lib.models import Donor

# -- names ---------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*(?:-[^\W\d_]+(?:['’][^\W\d_]+)*)*")
_TITLES = set("mr mrs ms mx miss dr drs prof rev sir madam dame hon jr sr st".split())
_GREETINGS = {"dear", "hi", "hello", "hey", "greetings", "good", "morning"}
_GREETINGS |= {"afternoon", "evening"}
# Words a letter may capitalise that are not names: sentence openers followed by a
# comma, closings, pronouns, and the team's own generic words.
_COMMON = set(
    """
    i i'm i've i'd i'll we we're we've our us you you're your yours he she they it
    his her their its the a an and or but so yet for nor if as at by in of on to with
    from this that these those there here thank thanks thankyou please welcome
    warmly warm warmest best kind kindest regards sincerely gratefully gratitude
    cheers love respectfully faithfully cordially with yours together again also
    however meanwhile today tonight tomorrow yesterday now yes no finally
    additionally sadly happily recently personally honestly truly indeed still
    first second third next last lastly then because since when while whether
    whatever wherever every each all many more most some any other another once
    friend friends team family everyone everybody all supporter supporters donor
    donors p ps s re fwd update news so as such whatever after before during
    again why what who how where which just even ever only really perhaps maybe
    of course congratulations happy hope sure absolutely certainly well oh
    """.split()
)
_CONNECTORS = {"de", "da", "di", "du", "van", "von", "der", "den", "del", "della"}
_CONNECTORS |= {"la", "le", "bin", "ibn", "al"}
_GREETING_MAX_WORDS = 10


@dataclass(frozen=True)
class _Sources:
    amounts: list[float]
    dates: list[Reading]
    weekdays: set[str]
    years: set[int]
    names: set[str]
    own_names: set[str]


def check_draft(
    donor: Donor, brief: CampaignBrief, subject: str, body: str
) -> list[str]:
    """Every amount, date or name the draft states that neither the donor's record
    nor the campaign brief supports, each with the reason, in the order found.

    An empty list means the draft is grounded. Never raises on odd text.
    """
    sources = _sources(donor, brief)
    findings: list[str] = []
    for text in (subject, body):
        findings += _unsupported_amounts(text, sources)
        findings += _unsupported_dates(text, sources)
    findings += _greeting_names(body, sources)
    for text in (subject, body):
        findings += _unsupported_names(text, sources)
    return list(dict.fromkeys(findings))


# -- sources -------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _brief_sources(
    brief: CampaignBrief,
) -> tuple[tuple[float, ...], tuple[Reading, ...], frozenset[str], frozenset[str]]:
    """Amounts, dates, weekdays and name words of the team's brief: the same for
    every donor of a run, so worked out once."""
    texts = [brief.campaign, brief.note, brief.signature, brief.template or ""]
    amounts = tuple(
        value for text in texts for *_, value in amounts_in(text, bare=True) if value
    )
    dates: list[Reading] = []
    weekdays: set[str] = set()
    for text in texts:
        for _, readings, weekday in dates_in(text):
            dates += readings
            weekdays.update([weekday] if weekday else [])
    return amounts, tuple(dates), frozenset(weekdays), frozenset(_name_keys(texts))


def _sources(donor: Donor, brief: CampaignBrief) -> _Sources:
    brief_amounts, brief_dates, brief_weekdays, brief_names = _brief_sources(brief)
    record = (donor.last_gift_amount, donor.lifetime_giving)
    amounts = [*brief_amounts, *(value for value in record if value is not None)]
    dates = list(brief_dates)
    try:
        day = date.fromisoformat((donor.last_gift_date or "")[:10])
        dates.append((day.year, day.month, day.day))
    except ValueError:
        pass
    for text in (donor.campaign, donor.notes):
        for _, readings, _weekday in dates_in(text):
            dates += readings  # a note's weekday ("by Friday") is not a source
    weekdays = set(brief_weekdays) | {
        WEEKDAYS[date(y, m, d).weekday()]
        for y, m, d in dates
        if y and m and d and valid_date(y, m, d)
    }
    years = {y for y, _, _ in dates if y} | {date.today().year}
    own = [donor.name, donor.first_name, donor.last_name, donor.greeting]
    own_names = _name_keys([*own, donor.salutation, donor.organization])
    # Limit: names from the notes pass outside the greeting (a tribute name is
    # legitimate), so an injected title used mid-letter is not flagged.
    names = own_names | brief_names | _name_keys([donor.campaign, donor.notes])
    return _Sources(amounts, dates, weekdays, years, names, own_names)


# -- amounts -------------------------------------------------------------------------


def _unsupported_amounts(text: str, sources: _Sources) -> list[str]:
    out = []
    for _, _, phrase, value in amounts_in(text):
        supported = value is not None and any(
            abs(value - allowed) < 0.005 for allowed in sources.amounts
        )
        if not supported:
            out.append(f"{phrase} (amount not in the donor's record or the brief)")
    return out


# -- dates ---------------------------------------------------------------------------


def _date_matches(stated: Reading, known: Reading) -> bool:
    return all(s is None or s == k for s, k in zip(stated, known, strict=True))


def _is_lone_month(readings: list[Reading]) -> bool:
    return len(readings) == 1 and readings[0][0] is None and readings[0][2] is None


def _unsupported_dates(text: str, sources: _Sources) -> list[str]:
    out = []
    for phrase, readings, weekday in dates_in(text):
        if weekday is not None:
            supported = weekday in sources.weekdays
        elif readings and readings[0][1] is None:  # a year on its own
            supported = readings[0][0] in sources.years
        elif _is_lone_month(readings) and _is_known(phrase, sources.own_names):
            # "June", "April", "August" are also first names: the donor's own
            # name is not a date claim.
            supported = True
        else:
            supported = any(
                _date_matches(reading, known)
                for reading in readings
                for known in sources.dates
            )
        if not supported:
            out.append(f"{phrase} (date not in the donor's record or the brief)")
    return out


# -- names ---------------------------------------------------------------------------


def _fold(word: str) -> str:
    word = word.replace("’", "'")
    for suffix in ("'s", "'"):
        if word.lower().endswith(suffix) and len(word) > len(suffix) + 1:
            word = word[: -len(suffix)]
            break
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _name_keys(texts: Iterable[str | None]) -> set[str]:
    keys: set[str] = set()
    for text in texts:
        for match in _WORD.finditer(text or ""):
            word = _fold(match.group(0))
            keys.add(word)
            keys.update(part for part in re.split(r"[-']", word) if part)
    return keys


def _is_known(word: str, allowed: set[str]) -> bool:
    key = _fold(word)
    if key in allowed:
        return True
    parts = [part for part in re.split(r"[-']", key) if part]
    return bool(parts) and all(part in allowed for part in parts)


def _ignorable(word: str) -> bool:
    key = _fold(word)
    return (
        len(word) == 1
        or (word.isupper() and len(word) > 1)  # acronyms: CEO, USD, PS
        or key in _COMMON
        or key in _TITLES
        or key in _GREETINGS
        or key in MONTHS
        or key in MONTH_ABBR
        or key in WEEKDAYS
    )


def _name_runs(text: str) -> list[tuple[list[str], bool, str]]:
    """Runs of capitalised words: (words, starts a sentence, text right after)."""
    runs: list[tuple[list[str], bool, str]] = []
    words: list[str] = []
    run_start = False
    prev_end = 0
    prev_word = ""
    matches = list(_WORD.finditer(text or ""))
    for index, match in enumerate(matches):
        word = match.group(0)
        gap = text[prev_end : match.start()]
        after_title = prev_word.casefold() in _TITLES or len(prev_word) == 1
        sentence_start = (
            not prev_word
            or "\n" in gap
            or any(ch in gap for ch in "!?:;")
            or ("." in gap and not after_title)
        )
        joins = words and gap.strip() in ("", ".") and not sentence_start
        if word[0].isupper():
            if not joins:
                if words:
                    runs.append((words, run_start, gap))
                words, run_start = [], sentence_start
            words.append(word)
        elif (
            word in _CONNECTORS
            and words
            and index + 1 < len(matches)
            and matches[index + 1].group(0)[0].isupper()
        ):
            words.append(word)
        elif words:
            runs.append((words, run_start, gap))
            words = []
        prev_end, prev_word = match.end(), word
    if words:
        runs.append((words, run_start, text[prev_end:] + "\n"))
    return runs


def _unsupported_names(text: str, sources: _Sources) -> list[str]:
    # Limit: only capitalised words are name candidates, so names in scripts
    # without letter case (李雷) and claims without a figure or name ("the board
    # approved a matching gift") are not checked.
    out = []
    for words, at_sentence_start, after in _name_runs(text):
        kept = [w for w in words if w not in _CONNECTORS and not _ignorable(w)]
        if not kept:
            continue
        vocative = after.lstrip(" \t").startswith((",", "\n"))
        if at_sentence_start and len(words) == 1 and not vocative:
            continue  # an ordinary word opening a sentence
        if not all(_is_known(w, sources.names) for w in kept):
            phrase = " ".join(kept)
            out.append(f"{phrase} (name not in the donor's record or the brief)")
    return out


def _greeting_names(body: str, sources: _Sources) -> list[str]:
    lines = [line.strip() for line in (body or "").splitlines() if line.strip()]
    if not lines:
        return []
    first = lines[0]
    words = _WORD.findall(first)
    if words and _fold(words[0]) in _GREETINGS:
        first = re.split(r"[,:!]", first, maxsplit=1)[0]
    elif len(words) > _GREETING_MAX_WORDS or not first.endswith((",", ":")):
        return []
    words = _WORD.findall(first)
    named = [w for w in words if w[0].isupper() and not _ignorable(w)]
    strangers = [w for w in named if not _is_known(w, sources.own_names)]
    if not strangers:
        return []
    return [f"{' '.join(strangers)} (greeting names someone other than the donor)"]
