"""Email address columns of an export -> each row's valid addresses, best first.

A row may hold addresses in several columns (Personal, Work, Alternate; Preferred
Email, Email 2, Email 3), two addresses in one cell ("zcr@example.net,
Zoe.Calloway@example.org"), and a column saying which one is preferred ("Work").
Every address is checked and normalised with :mod:`lib.emails`, so the importer,
the sender and Sent-mail sync agree on what "the same address" is; an address that
fails is reported with its row and reason, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from email_validator import SPECIAL_USE_DOMAIN_NAMES

from lib.emails import InvalidAddress, normalise_address
from lib.importing.fields import EMAIL_PLACEHOLDERS
from lib.importing.mapping import normalise_header
from lib.importing.result import RowIssue

# Plain ASCII addresses that lib.emails (email-validator) certainly accepts, whose
# normal form is simply the lower-cased text. Anything else goes through
# lib.emails; tests check both paths agree. This keeps 100,000 rows fast.
_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_PLAIN_ADDRESS = (
    rf"{_ATEXT}{{1,64}}(?:\.{_ATEXT}+)*@"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_SPECIAL_USE = tuple(SPECIAL_USE_DOMAIN_NAMES)
MAX_ADDRESS_LENGTH = 254  # RFC 5321 4.5.3.1.3 (path length minus the brackets)
MAX_LOCAL_LENGTH = 64  # RFC 5321 4.5.3.1.1
_CELL_SEPARATORS = r"\s*[,;]\s*"
_HEADER_NOISE = frozenset({"email", "e", "mail", "address", "addresses", "contact1"})


@dataclass
class RowAddresses:
    """Every valid address per row, in the order a letter should use them."""

    valid: pd.DataFrame  # columns: row, email (best first within a row, no repeats)
    primary: pd.Series  # per row (record number): the address to write to, or NaN
    had_text: pd.Series  # per row: some email cell was filled (valid or not)
    invalid_text: pd.Series  # per row: the first address that failed, or ""
    issues: list[RowIssue] = field(default_factory=list)


def normalise_many(texts: list[str]) -> tuple[list[str | None], list[str]]:
    """Normalise distinct address texts: (normal form or None, reason or "")."""
    if not texts:
        return [], []
    series = pd.Series(texts, dtype="str")
    lowered = series.str.lower()
    plain = lowered.str.fullmatch(_PLAIN_ADDRESS) & (
        series.str.len() <= MAX_ADDRESS_LENGTH
    )
    plain &= ~lowered.str.contains("--", regex=False)
    domains = lowered.str.replace(r"^.*@", "", regex=True)
    for special in _SPECIAL_USE:
        plain &= ~((domains == special) | domains.str.endswith("." + special))
    plain &= lowered.str.replace(r"@.*$", "", regex=True).str.len() <= MAX_LOCAL_LENGTH
    results: list[str | None] = []
    reasons: list[str] = []
    for text, low, fast in zip(texts, lowered.tolist(), plain.tolist(), strict=True):
        if fast:
            results.append(low)
            reasons.append("")
            continue
        try:
            results.append(normalise_address(text))
            reasons.append("")
        except InvalidAddress as exc:
            embedded = _embedded_address(text)
            results.append(embedded)
            reasons.append("" if embedded else exc.reason)
    return results, reasons


# Only clear wrappers around one address: "Name <a@b.org>", "mailto:a@b.org",
# a quoted address, a trailing full stop. Anything looser could pick out a part
# of a different address ("ann\nlee@example.org" is not lee@example.org).
_WRAPPED = (
    re.compile(r"[^<>]*<\s*([^<>\s]+@[^<>\s]+)\s*>\s*"),
    re.compile(r"\s*mailto:\s*(\S+@\S+?)\s*", re.IGNORECASE),
    re.compile(r"\s*[\"'](\S+@\S+)[\"']\s*"),
    re.compile(r"\s*(\S+@\S+?)\.\s*"),
)


def _embedded_address(text: str) -> str | None:
    """The address inside a clearly wrapped cell, so a flagged record still
    protects its address; None when the cell is not such a wrapper."""
    for pattern in _WRAPPED:
        match = pattern.fullmatch(text)
        if match:
            try:
                return normalise_address(match.group(1))
            except InvalidAddress:
                return None
    return None


def _preference_words(columns: list[str]) -> dict[str, int]:
    """{"personal": 0, "work": 1, ...}: the word naming each email column."""
    words: dict[str, int] = {}
    for rank, column in enumerate(columns):
        for word in normalise_header(column).split():
            if word not in _HEADER_NOISE and not word.isdigit():
                words.setdefault(word, rank)
    return words


def collect_addresses(
    frame: pd.DataFrame, columns: list[str], preference: str | None = None
) -> RowAddresses:
    """The valid addresses of every row from the ``columns`` (best first).

    A row's preferred column (``preference`` holds "Work", "Personal"...) comes
    first when it holds an address; otherwise the first filled column does.
    """
    index = frame.index
    parts = []
    for rank, column in enumerate(columns):
        cells = frame[column]
        cells = cells[cells != ""]
        if cells.empty:
            continue
        several = cells.str.contains(r"[,;]", regex=True)
        if several.any():
            split = cells[several].str.split(_CELL_SEPARATORS, regex=True).explode()
            cells = pd.concat([cells[~several], split.astype("str").str.strip()])
        # "N/A", "none", "-": no address (the donor is reported as having none).
        cells = cells[(cells != "") & ~cells.str.lower().isin(EMAIL_PLACEHOLDERS)]
        if cells.empty:
            continue
        parts.append(
            pd.DataFrame(
                {"row": cells.index.to_numpy(), "rank": rank, "raw": cells.array}
            )
        )
    empty_rows = pd.Series(False, index=index)
    if not parts:
        return RowAddresses(
            valid=pd.DataFrame(
                {
                    "row": pd.Series([], dtype="int64"),
                    "email": pd.Series([], dtype="str"),
                }
            ),
            primary=pd.Series(np.nan, index=index, dtype="str"),
            had_text=empty_rows,
            invalid_text=pd.Series("", index=index, dtype="str"),
        )
    long = pd.concat(parts, ignore_index=True)
    long["pos"] = np.arange(len(long))
    codes, uniques = pd.factorize(long["raw"])
    normal, reasons = normalise_many(uniques.tolist())
    long["email"] = pd.Series(
        np.array(normal + [None], dtype=object)[codes], dtype="str"
    )
    reason_table = np.array(reasons + [""], dtype=object)
    long["reason"] = reason_table[codes]

    issues = []
    bad = long[long["email"].isna()]
    for row, rank, raw, reason in zip(
        bad["row"].tolist(),
        bad["rank"].tolist(),
        bad["raw"].tolist(),
        bad["reason"].tolist(),
        strict=True,
    ):
        reason = reason.strip()
        if reason and reason[-1] not in ".!?":
            reason += "."
        issues.append(
            RowIssue(
                int(row),
                f"invalid email {raw!r} in {columns[rank]!r}: {reason} "
                "Imported without this address.",
            )
        )
    invalid_text = pd.Series("", index=index, dtype="str")
    if not bad.empty:
        first_bad = bad.drop_duplicates("row").set_index("row")["raw"]
        invalid_text.loc[first_bad.index] = first_bad.astype("str")

    good = long[long["email"].notna()].copy()
    good["preferred"] = False
    if preference is not None and not good.empty:
        words = _preference_words(columns)
        said = frame[preference].str.lower()
        lookup = {
            text: next((words[w] for w in re.findall(r"\w+", text) if w in words), -1)
            for text in said.unique().tolist()
        }
        wanted = said.map(lookup)
        good["preferred"] = (
            good["rank"].to_numpy() == wanted.loc[good["row"]].to_numpy()
        )
    good = good.sort_values(
        ["row", "preferred", "rank", "pos"], ascending=[True, False, True, True]
    ).drop_duplicates(["row", "email"])
    primary = good.drop_duplicates("row").set_index("row")["email"]
    had_text = pd.Series(index.isin(long["row"]), index=index)
    return RowAddresses(
        valid=good[["row", "email"]].reset_index(drop=True),
        primary=primary.reindex(index).astype("str"),
        had_text=had_text,
        invalid_text=invalid_text,
        issues=issues,
    )
