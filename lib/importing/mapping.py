"""Which column of an export holds which donor field.

Every CRM names its columns differently ("INFORMAL_SAL", "Nick Name", "Informal
Name"; "Contact1 Personal Email", "Primary Email Address", "Donor Email"), and the
same header can mean different things ("Salutation" is "Ms." in Salesforce NPSP,
"Mrs. Whitcombe" in DonorPerfect and "Don and Maura" in Little Green Light). So a
column is matched on its cleaned header and then checked against what its first
values look like.

A mapping is an ordered ``{source column: donor field}``; when several columns feed
one field, earlier ones win (greetings, email addresses) or all are combined
(notes, flags). People correct the suggestion by passing their own mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pandas as pd

from lib.errors import ImportError_
from lib.importing.fields import (
    DONOR_FIELDS,
    EMAIL_PLACEHOLDERS,
    IDENTITY_FIELDS,
    IGNORE,
    MULTI_FIELDS,
    SYNONYMS,
)
from lib.importing.names import is_bare_honorific, starts_with_honorific

# Limit: a second person on the row (NPSP Contact2, a spouse) is not imported as a
# donor of their own; their columns are left unmapped.
_SECONDARY_PERSON = re.compile(
    r"^(?:(?:contact|person|member)\s?[2-9]|spouse|partner)\b"
)
_PRIMARY_PREFIX = re.compile(
    r"^(?:contact\s?1|primary contact|donor s|donors|donor)\s+"
)
_NOT_ADDRESS = frozenset(
    {
        "subscribed",
        "opt",
        "opted",
        "optout",
        "no",
        "not",
        "bounced",
        "bounce",
        "status",
        "preference",
        "type",
        "consent",
        "format",
        "date",
        "time",
        "count",
        "rating",
    }
)
# Salesforce custom fields ("npsp__Deceased__c", "Deceased__c") and camelCase API
# names ("HasOptedOutOfEmail") are matched as the words they spell.
_SALESFORCE_SUFFIX = re.compile(r"__c$", re.IGNORECASE)
_SALESFORCE_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9]*__(?=[A-Za-z])")
_CAMEL_CASE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# Synonyms with their spaces removed, so "DONOTEMAIL" and "donotcontact" match too.
_COMPACT_SYNONYMS = {
    field: {synonym.replace(" ", ""): rank for rank, synonym in enumerate(synonyms)}
    for field, synonyms in SYNONYMS.items()
}
_AMBIGUOUS_TITLES = frozenset({"salutation", "title"})
_ADDRESS_LIKE = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")
# A gift column named like this holds one summary gift per donor, not one per row.
_SUMMARY_GIFT = re.compile(r"\b(?:first|last|latest|recent|largest|biggest)\b")


def normalise_header(header: str) -> str:
    """A header for matching: Salesforce ``__c`` suffix and namespace dropped,
    camelCase split into words, lower case, punctuation to spaces, emoji dropped."""
    text = header.replace("\ufeff", "").strip()
    text = _SALESFORCE_NAMESPACE.sub("", _SALESFORCE_SUFFIX.sub("", text))
    text = _CAMEL_CASE.sub(" ", text).casefold().replace("_", " ")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def _header_forms(header: str) -> list[str]:
    norm = normalise_header(header)
    stripped = _PRIMARY_PREFIX.sub("", norm)
    return [norm] if stripped == norm else [norm, stripped]


def _rank(field: str, header: str) -> int | None:
    """Where ``header`` stands in the field's synonyms (lower is better)."""
    synonyms = SYNONYMS[field]
    forms = _header_forms(header)
    for form in forms:
        if form in synonyms:
            return synonyms.index(form)
    for form in forms:
        compact = _COMPACT_SYNONYMS[field].get(form.replace(" ", ""))
        if compact is not None:
            return compact
    if field == "email":
        tokens = set(normalise_header(header).split())
        if ("email" in tokens or {"e", "mail"} <= tokens) and not tokens & _NOT_ADDRESS:
            return len(synonyms)
    return None


def _values(sample: pd.DataFrame, column: str) -> list[str]:
    texts = sample[column].astype("str").fillna("").str.strip()
    return [t for t in texts.tolist() if t]


def _share(values: list[str], test: Callable[[str], object]) -> float:
    if not values:
        return 0.0
    return sum(1 for v in values if test(v)) / len(values)


def _field_for(column: str, sample: pd.DataFrame) -> tuple[str, int] | None:
    """The field a column feeds and its rank, judged on header and sample values."""
    if _SECONDARY_PERSON.match(normalise_header(column)):
        return None  # a second person on the row (Contact2, Spouse): not this donor
    candidates = [(f, r) for f in SYNONYMS if (r := _rank(f, column)) is not None]
    values = _values(sample, column)
    if not candidates and (flag := _blocking_flag_by_words(column)):
        # An unknown header that still says "deceased", "bounce", "unsubscribe"...:
        # never leave a do-not-contact column unread (any filled cell blocks).
        return flag, len(SYNONYMS[flag])
    if not candidates:
        # A header in another language or an odd name: a column of addresses is
        # still an email column.
        if values and _share(values, _ADDRESS_LIKE.fullmatch) >= 0.8:
            return "email", len(SYNONYMS["email"]) + 1
        return None
    ranks = dict(candidates)
    if "email" in ranks or "email_preference" in ranks:
        if "email" in ranks and _is_email_column(values, ranks):
            return "email", ranks["email"]
        if "email_preference" in ranks:
            return "email_preference", ranks["email_preference"]
        candidates = [c for c in candidates if c[0] != "email"]
        if not candidates:
            return None
    if set(_header_forms(column)) & _AMBIGUOUS_TITLES:
        return _title_field(column, values, dict(candidates))
    return min(candidates, key=lambda c: c[1])


_BLOCKING_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("deceased", ("deceased", "death", "died")),
    ("bounced", ("bounce", "undeliverable", "invalid email", "bad email")),
    ("opted_out", ("unsubscrib", "opt out", "opted out", "optout")),
    ("do_not_email", ("do not email", "no email", "do not solicit", "do not contact")),
)


def _blocking_flag_by_words(column: str) -> str | None:
    """The blocking flag an unrecognised header names in words, if any."""
    text = normalise_header(column)
    for flag, words in _BLOCKING_WORDS:
        if any(word in text for word in words):
            return flag
    return None


def _is_email_column(values: list[str], ranks: dict[str, int]) -> bool:
    """True when a column the header says may hold addresses does: its header is
    an email header and nothing else ("Email", however few cells are valid), or
    most of its cells are addresses or placeholders such as "N/A"."""
    if not values:
        return set(ranks) <= {"email", "email_preference"}
    if ranks["email"] < len(SYNONYMS["email"]) and set(ranks) == {"email"}:
        return True
    real = [v for v in values if v.casefold() not in EMAIL_PLACEHOLDERS]
    return bool(real) and _share(real, lambda v: "@" in v) >= 0.5


def _title_field(
    column: str, values: list[str], ranks: dict[str, int]
) -> tuple[str, int] | None:
    """ "Salutation" and "Title" mean different things per CRM: bare titles ("Ms.")
    are a prefix, "Mrs. Whitcombe" is a formal salutation, "Don and Maura" or "Clem"
    is how the letter opens; "Title" may also be a job title ("Owner")."""
    if not values:
        field = "salutation" if "salutation" in ranks else "prefix"
        return field, ranks[field]
    if _share(values, is_bare_honorific) >= 0.6:
        return "prefix", ranks["prefix"]
    if "salutation" not in ranks:
        return None  # a "Title" column of job titles
    if _share(values, starts_with_honorific) >= 0.5:
        return "salutation", ranks["salutation"]
    return "greeting", ranks["greeting"]


def suggest_mapping(columns: list[str], sample: pd.DataFrame) -> dict[str, str]:
    """The automatic mapping for these columns: ``{column: field}``, grouped by
    field in DONOR_FIELDS order and, within a field, best match first. A field
    that takes one column gets the best one; the others stay unmapped."""
    found: dict[str, list[tuple[int, int, str]]] = {}
    for position, column in enumerate(columns):
        matched = _field_for(column, sample)
        if matched:
            field, rank = matched
            found.setdefault(field, []).append((rank, position, column))
    mapping: dict[str, str] = {}
    for field in DONOR_FIELDS:
        choices = sorted(found.get(field, []))
        if field not in MULTI_FIELDS:
            choices = choices[:1]
        for _rank, _position, column in choices:
            mapping[column] = field
    return mapping


def resolve_mapping(mapping: Mapping[str, str], columns: list[str]) -> dict[str, str]:
    """Check a mapping someone typed or edited against the file's columns.

    Columns match exactly or ignoring case and outer spaces; a field of "" or
    "ignore" leaves the column out. Raises ImportError_ naming unknown columns or
    fields.
    """
    by_key = {c.strip().casefold(): c for c in columns}
    unknown_columns = []
    unknown_fields = []
    resolved: dict[str, str] = {}
    for column, field in mapping.items():
        name = (
            column if column in columns else by_key.get(str(column).strip().casefold())
        )
        if name is None:
            unknown_columns.append(str(column))
            continue
        value = (field or "").strip()
        if value.lower().strip("()") in (IGNORE, "ignore", "none"):
            continue
        if value not in DONOR_FIELDS:
            unknown_fields.append(value)
            continue
        resolved[name] = value
    if unknown_columns:
        raise ImportError_(
            "The mapping names columns this file does not have: "
            f"{', '.join(repr(c) for c in unknown_columns)}. The file's columns are: "
            f"{', '.join(repr(c) for c in columns)}."
        )
    if unknown_fields:
        raise ImportError_(
            "Unknown donor field(s) in the mapping: "
            f"{', '.join(map(repr, unknown_fields))}. Use one of: "
            f"{', '.join(DONOR_FIELDS)} (or '' to ignore a column)."
        )
    return resolved


def fields_plan(mapping: Mapping[str, str]) -> dict[str, list[str]]:
    """``{field: [columns, best first]}`` from a mapping."""
    plan: dict[str, list[str]] = {}
    for column, field in mapping.items():
        plan.setdefault(field, []).append(column)
    return plan


def require_identity(
    plan: Mapping[str, list[str]], columns: list[str], name: str
) -> None:
    """Raise ImportError_ unless some column gives a name or an email address."""
    if not any(field in plan for field in IDENTITY_FIELDS):
        shown = ", ".join(repr(c) for c in columns[:30])
        raise ImportError_(
            f"{name} has no email or name column Steward recognises (columns: "
            f"{shown}). Map the columns by hand, or export the donor list with names "
            "and email addresses."
        )


def is_per_gift_column(header: str) -> bool:
    """True for "Amount"-like columns (one gift per row), False for summary columns
    such as "Last Gift Amount" or "First Transaction Amount"."""
    return not _SUMMARY_GIFT.search(normalise_header(header))


def is_utc_column(header: str) -> bool:
    """True when the header says its times are UTC ("Payment captured (UTC)")."""
    return "utc" in normalise_header(header).split()


def is_date_like_column(header: str) -> bool:
    """True for flag columns that hold a date, time or reason ("Deceased Date",
    "UNSUB_TIME", "EmailBouncedReason"), where any filled cell means yes."""
    tokens = set(normalise_header(header).split())
    return bool(tokens & {"date", "time", "at", "on", "since", "reason", "type"})
