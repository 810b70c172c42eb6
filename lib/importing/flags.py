"""Flag and status cells -> whether a donor must not be emailed, and which cells
were unclear.

A wrong "may email" is the one mistake an import must not make, so every reading
here leans towards blocking: in a do-not-email, opted-out, deceased or bounced
column any filled cell that is not clearly "no" blocks; in a subscription column
("Engage Email Subscribed", "Email Status") any filled cell that is not clearly
"yes" blocks; a free-text status that mentions opting out, bounces, spam or "do
not" blocks. A cell that is neither clearly yes nor clearly no still blocks and is
listed for a person to look at, with its column and value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.importing.mapping import normalise_header
from lib.importing.result import RowIssue
from lib.importing.values import FALSE_WORDS, TRUE_WORDS, parse_date_text

# What a status or flag text says about the donor, per flag. Patterns run on
# lower-cased text, vectorised; they avoid \s (pyarrow's regex engine treats it
# differently, so pandas would fall back to Python for every row).
DONOR_STATUS_PATTERNS = {
    "do_not_email": r"do[ _-]?not[ _-]?(?:contact|e-?mail|solicit)"
    r"|\bno[ _-]?(?:contact|e-?mail|solicit\w*)\b|\bdnc\b",
    "opted_out": r"unsubscrib|\bopt(?:ed)?[ _-]*out|\boptout|\bspam\b",
    "deceased": r"deceased|\bdied\b|passed away",
    "bounced": r"bounce|\bcleaned\b|undeliverable"
    r"|(?:invalid|bad|inactive)[ _-]?e-?mail|e-?mail[ _-]?(?:invalid|inactive)",
}
# Any of them: a flag cell saying "Unsubscribed" in a "Do Not Email" column.
ANY_STATUS_PATTERN = "|".join(f"(?:{p})" for p in DONOR_STATUS_PATTERNS.values())
_ANY_STATUS = re.compile(ANY_STATUS_PATTERN)
# Words that may mean "do not email" without saying it plainly ("Do not call",
# "Inactive", "Opt-out pending"): such a status blocks and is listed.
LOOSE_STATUS_PATTERN = (
    r"\bopt|unsub|\bdo[ _-]?not\b|\bdon'?t\b|\bno[ _-]?(?:mail|call|solicit|contact)"
    r"|spam|bounc|deceas|inactive|invalid|suppress|blocked|blacklist|block ?list"
)
# "Opted in" mentions "opt" but says the opposite.
_OPT_IN = r"\bopt(?:ed)?[ _-]?in\b"
# A subscription cell that clearly says "may email".
SUBSCRIBED_WORDS = TRUE_WORDS | frozenset(
    {"subscribed", "opted in", "opt in", "opt-in", "opted-in", "active", "confirmed"}
)
# Headers that ask a yes/no question whose "yes" means "may email".
_YES_MEANS_SUBSCRIBED = re.compile(r"\bsubscribed\b|\bopt(?:ed)? in\b|\bconsent")
# A flag cell opening with a negation ("not deceased") is not clearly either.
_NEGATED = ("not ", "non ", "non-", "never ")

MEANING = {
    "do_not_email": "do not email",
    "opted_out": "opted out",
    "deceased": "deceased",
    "bounced": "address bounced",
}


@dataclass
class FlagReading:
    """Per row (record number): whether the column blocks email, and the cells that
    were not clear, as doubtful rows."""

    blocked: pd.Series
    doubtful: list[RowIssue] = field(default_factory=list)


def _judge_flag(text: str, any_value: bool) -> tuple[bool, bool]:
    """(blocks, unclear) for one cell of a blocking flag column."""
    low = text.casefold()
    if not low or low in FALSE_WORDS:
        return False, False
    if low.startswith(_NEGATED):
        return True, True
    if any_value or low in TRUE_WORDS or _ANY_STATUS.search(low):
        return True, False
    if parse_date_text(text) is not None:
        return True, False  # the date it happened
    return True, True


def _judge_subscription(text: str, yes_may_email: bool) -> tuple[bool, bool]:
    """(blocks, unclear) for one cell of a subscription column. "Yes" means may
    email only when the header asks "subscribed?" (``yes_may_email``); in an
    "Email Status" column it is unclear. A blank cell says nothing and does not
    block."""
    low = text.casefold()
    if not low:
        return False, False
    if low in SUBSCRIBED_WORDS and (yes_may_email or low not in TRUE_WORDS):
        return False, False
    if low in FALSE_WORDS or _ANY_STATUS.search(low):
        return True, False
    return True, True


def _read_column(
    cells: pd.Series,
    column: str,
    judge: Callable[[str], tuple[bool, bool]],
    meaning: str,
) -> FlagReading:
    """Judge each distinct text once and spread the answers over the rows."""
    texts = cells.astype("str").fillna("").str.strip()
    codes, uniques = pd.factorize(texts)
    answers = [judge(text) for text in uniques.tolist()]
    blocks = np.array([a[0] for a in answers] + [False], dtype=bool)[codes]
    unclear = np.array([a[1] for a in answers] + [False], dtype=bool)[codes]
    doubtful = [
        RowIssue(
            int(row),
            f"{column} {texts[row]!r} is not a clear yes or no: read as "
            f"{meaning}, not emailed",
        )
        for row in texts.index[unclear]
    ]
    return FlagReading(pd.Series(blocks, index=texts.index), doubtful)


def read_flag_column(
    cells: pd.Series, column: str, flag: str, *, any_value: bool
) -> FlagReading:
    """A do-not-email / opted-out / deceased / bounced column -> FlagReading.

    ``any_value`` (a date, time or reason column such as "Deceased Date" or
    "EmailBouncedReason"): any filled cell that is not a "no" word blocks, clearly.
    """
    return _read_column(
        cells, column, lambda t: _judge_flag(t, any_value), MEANING[flag]
    )


def read_subscription_column(cells: pd.Series, column: str) -> FlagReading:
    """A subscription column ("Engage Email Subscribed": yes = may email; "Email
    Status": "Subscribed" = may email) -> FlagReading; blocked means opted out."""
    yes_may_email = bool(_YES_MEANS_SUBSCRIBED.search(normalise_header(column)))
    return _read_column(
        cells,
        column,
        lambda text: _judge_subscription(text, yes_may_email),
        MEANING["opted_out"],
    )


def read_status_column(
    cells: pd.Series, column: str
) -> tuple[dict[str, pd.Series], FlagReading]:
    """A free-text status column -> (per flag: rows it clearly sets, and a reading
    of the rows whose status only may mean "do not email", blocked and listed)."""
    status = cells.astype("str").fillna("").str.strip()
    lowered = status.str.lower()
    clear = {
        flag: lowered.str.contains(pattern, regex=True).astype(bool)
        for flag, pattern in DONOR_STATUS_PATTERNS.items()
    }
    any_clear = pd.Series(False, index=status.index)
    for hits in clear.values():
        any_clear |= hits
    loose = lowered.str.replace(_OPT_IN, "", regex=True).str.contains(
        LOOSE_STATUS_PATTERN, regex=True
    )
    loose = loose.astype(bool) & ~any_clear
    doubtful = [
        RowIssue(
            int(row),
            f"{column} {status[row]!r} may mean the donor must not be emailed: "
            "read as do not email",
        )
        for row in status.index[loose]
    ]
    return clear, FlagReading(loose, doubtful)
