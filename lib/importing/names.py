"""People's names as exports write them, and how a letter to them should open.

A name cell may be "Ellis, Jordan", "Dr. Amara Nwankwo-Ellis", "Mr. & Mrs. Fenwick"
or an organization; a first-name cell may carry a nickname ('Robert "Bud"') or only
an initial ("D."). The greeting prefers what the CRM says a letter should open with
(informal name, nick name, salutation; a joint "Don and Maura" beats "Don"), then a
nickname, then the first name, and never opens with a bare initial.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

_TITLE = (
    r"(?:the\s+)?(?:mr|mrs|ms|miss|mx|dr|drs|rev|revd|prof|hon|sir|dame|fr|capt|"
    r"rabbi|pastor|father|mister|madam|mme|mlle|herr|frau|sra|srta)\.?"
)
_TITLES = rf"{_TITLE}(?:\s*(?:&|and|und|et)\s*{_TITLE})*"
_BARE_TITLES_RE = re.compile(_TITLES, re.IGNORECASE)
_LEADING_TITLES_RE = re.compile(
    rf"(?P<titles>{_TITLES})\s+(?P<rest>\S.*)", re.IGNORECASE
)
_JOINT_RE = re.compile(r" (?:and|und|et|y) |&", re.IGNORECASE)
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "cpa", "dds"})
_PARTICLES = frozenset(
    {
        "van",
        "von",
        "de",
        "da",
        "del",
        "della",
        "di",
        "du",
        "la",
        "le",
        "der",
        "den",
        "ter",
        "ten",
        "bin",
        "ibn",
        "al",
        "st",
        "st.",
        "mac",
        "dos",
        "das",
    }
)
_ORGANIZATION_WORDS = frozenset(
    {
        "foundation",
        "inc",
        "inc.",
        "llc",
        "llp",
        "ltd",
        "ltd.",
        "co",
        "co.",
        "corp",
        "corp.",
        "company",
        "corporation",
        "church",
        "school",
        "trust",
        "fund",
        "association",
        "society",
        "group",
        "gmbh",
        "university",
        "college",
        "club",
        "bank",
        "partners",
        "council",
        "institute",
        "ministries",
        "family",
        "bakery",
        "&",
    }
)
# Kana, CJK ideographs and Hangul (written as characters, not \u escapes, so
# pandas can hand the pattern to pyarrow).
_CJK = "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+"
# 'Robert "Bud"' or 'Robert “Bud”': a nickname in quotes inside a first-name cell.
NICKNAME_RE = r'^(?P<first>[^"“”]*?)\s*["“](?P<nick>[^"“”]+)["”]\s*(?P<after>.*)$'


def is_bare_honorific(text: str) -> bool:
    """True for a cell that is only a title: "Ms.", "Dr.", "Mr. and Mrs."."""
    return bool(_BARE_TITLES_RE.fullmatch(text.strip()))


def starts_with_honorific(text: str) -> bool:
    """True for "Mrs. Whitcombe", "Dr. and Mr. Chen-Ramos"."""
    return bool(_LEADING_TITLES_RE.fullmatch(text.strip()))


def is_joint(text: str) -> bool:
    """True for a greeting addressed to two people ("Don and Maura")."""
    return bool(_JOINT_RE.search(text))


def looks_like_organization(text: str) -> bool:
    """True for names such as "Hollis Family Foundation" or "Maple & Main Bakery"."""
    words = {w.casefold().strip(",") for w in text.split()}
    return bool(words & _ORGANIZATION_WORDS) and not starts_with_honorific(text)


@dataclass(frozen=True)
class PersonName:
    """A full-name cell taken apart."""

    display: str  # "Jordan Ellis" for "Ellis, Jordan"
    prefix: str = ""
    first: str = ""
    last: str = ""


def split_full_name(text: str) -> PersonName:
    """Take a full-name cell apart: "Last, First" is turned round, leading titles
    become the prefix, particles ("van Dijk") stay with the last name.
    Organization names are kept whole."""
    name = " ".join((text or "").split())
    if not name:
        return PersonName("")
    if looks_like_organization(name):
        return PersonName(name)
    if name.count(",") == 1 and not is_joint(name):
        left, right = (part.strip() for part in name.split(","))
        if left and right and right.strip(".").casefold() not in _SUFFIXES:
            name = f"{right} {left}"
    prefix = ""
    match = _LEADING_TITLES_RE.fullmatch(name)
    rest = name
    if match:
        prefix, rest = match["titles"], match["rest"]
    tokens = [t for t in rest.replace(",", " ").split() if t]
    while len(tokens) > 1 and tokens[-1].strip(".").casefold() in _SUFFIXES:
        tokens.pop()
    if not tokens:
        return PersonName(name, prefix=prefix)
    if len(tokens) == 1 or (prefix and is_joint(prefix)):
        # "Dr. Okafor" or "Mr. & Mrs. Fenwick": no first name given.
        return PersonName(name, prefix=prefix, last=" ".join(tokens))
    start = len(tokens) - 1
    for index in range(1, len(tokens) - 1):
        if tokens[index].casefold() in _PARTICLES:
            start = index
            break
    return PersonName(
        name, prefix=prefix, first=tokens[0], last=" ".join(tokens[start:])
    )


def split_nicknames(first_names: pd.Series) -> tuple[pd.Series, pd.Series]:
    """('Robert "Bud"' -> "Robert", "Bud') for a whole column; cells without a
    quoted nickname are unchanged, with "" as nickname."""
    nick = pd.Series("", index=first_names.index, dtype="str")
    quoted = first_names.str.contains('["“]', regex=True)
    if not quoted.any():
        return first_names, nick
    parts = first_names[quoted].str.extract(NICKNAME_RE)
    found = parts["nick"].notna()
    parts = parts[found]
    cleaned = (parts["first"].fillna("") + " " + parts["after"].fillna("")).str.strip()
    first = first_names.copy()
    first.loc[parts.index] = cleaned.astype("str")
    nick.loc[parts.index] = parts["nick"].str.strip().astype("str")
    return first, nick


def strip_quotes(values: pd.Series) -> pd.Series:
    """Literal quotes around a whole cell ('"Benny"' -> 'Benny')."""
    return values.str.strip().str.strip('"“”').str.strip()


def person_names(first: pd.Series, last: pd.Series) -> pd.Series:
    """ "First Last" per row; Chinese, Japanese and Korean names (both parts in
    CJK script) are written family name first without a space ("李雷")."""
    western = (first + " " + last).str.strip()
    cjk = first.str.fullmatch(_CJK) & last.str.fullmatch(_CJK)
    return western.where(~cjk, last + first)


def first_filled(*columns: pd.Series) -> pd.Series:
    """Per row, the first non-blank value among ``columns`` ("" when none)."""
    result = columns[0]
    for column in columns[1:]:
        result = result.where(result != "", column)
    return result


def choose_greeting(
    greetings: list[pd.Series],
    nickname: pd.Series,
    salutation: pd.Series,
    first_name: pd.Series,
    prefix: pd.Series,
    last_name: pd.Series,
    name: pd.Series,
) -> pd.Series:
    """How each letter opens: a joint greeting from the CRM's greeting columns wins,
    then the first filled greeting column, a quoted nickname, the formal salutation,
    the first name (unless only an initial), "Prefix Last", and the full name."""
    empty = pd.Series("", index=name.index, dtype="str")
    cleaned = [strip_quotes(g) for g in greetings]
    joint = empty
    for column in cleaned:
        joint = joint.where(joint != "", column.where(_joint_cells(column), ""))
    initial = first_name.str.fullmatch(r"[^ .]\.?")  # "D." (no \w: stays in pyarrow)
    usable_first = first_name.where(~initial, "")
    titled = (
        (prefix + " " + last_name)
        .str.strip()
        .where((prefix != "") & (last_name != ""), "")
    )
    return first_filled(
        joint, *cleaned, nickname, salutation, usable_first, titled, name
    )


def _joint_cells(values: pd.Series) -> pd.Series:
    return values.str.lower().str.contains(_JOINT_RE.pattern, regex=True)
