"""One export row -> the donor fields it states, whole columns at a time.

This is where the columns chosen by the mapping become a name, a greeting, email
addresses, a gift (or a row that is not a gift: refunded, failed, pledged, a
ticket) and the do-not-email / opted-out / deceased / bounced flags, for every row
at once. Rolling rows up into donors is lib.importing.rollup's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from lib.importing import names, values
from lib.importing.addresses import RowAddresses, collect_addresses
from lib.importing.flags import (
    read_flag_column,
    read_status_column,
    read_subscription_column,
)
from lib.importing.mapping import (
    is_date_like_column,
    is_per_gift_column,
    is_utc_column,
)
from lib.importing.result import RowIssue

# What a status says about a gift row (Givebutter "failed", NPSP stage "Pledged"),
# first match wins; what it says about the donor is lib.importing.flags' job. Only
# rows with an amount are gifts, so "Prospect" on a donor row is harmless.
GIFT_STATUS_PATTERNS = (
    (r"fail|declin|\berror\b|unpaid", "failed payment"),
    (r"refund|charge ?back|disput|revers|\bvoid", "refunded"),
    (
        r"pledge|promis|pending|processing|authori[sz]|prospect|closed ?lost|\blost\b"
        r"|cancel",
        "pledged or pending, not received",
    ),
)
NOT_A_DONATION = r"ticket|registration|admission|merchandise|\bitem\b|auction"
ORGANIZATION_VALUES = (
    r"(?:y|yes|true|1|x|org\w*|business|compan\w*|corporat\w*"
    r"|foundation|account\d*)"
)


@dataclass
class RowFields:
    """Per-row donor fields (index = record number) and what was noticed."""

    frame: pd.DataFrame
    addresses: RowAddresses
    per_gift: bool  # the amount column holds one gift per row (a transaction export)
    has_amount: bool
    has_lifetime: bool
    doubtful: list[RowIssue] = field(default_factory=list)


def _text(frame: pd.DataFrame, plan: dict[str, list[str]], name: str) -> pd.Series:
    """The field's first filled column per row ("" when none)."""
    columns = plan.get(name, [])
    if not columns:
        return pd.Series("", index=frame.index, dtype="str")
    return names.first_filled(*(frame[c] for c in columns))


def _joined(columns: list[pd.Series], separator: str, index: pd.Index) -> pd.Series:
    result = pd.Series("", index=index, dtype="str")
    for column in columns:
        glue = pd.Series(separator, index=index, dtype="str").where(
            (result != "") & (column != ""), ""
        )
        result = result + glue + column
    return result


def _people(frame: pd.DataFrame, plan: dict[str, list[str]]) -> dict[str, pd.Series]:
    """Names, greeting, formal salutation and organization of every row."""
    index = frame.index
    first, nickname = names.split_nicknames(_text(frame, plan, "first_name"))
    last = _text(frame, plan, "last_name")
    prefix = _text(frame, plan, "prefix")
    organization = _text(frame, plan, "organization")
    name_cell = _text(frame, plan, "name")
    display = name_cell
    if "name" in plan:
        parsed = {t: names.split_full_name(t) for t in name_cell.unique().tolist()}

        def part(attribute: str) -> pd.Series:
            table = {t: getattr(p, attribute) for t, p in parsed.items()}
            return name_cell.map(table).astype("str")

        display = part("display")
        if "first_name" not in plan and "last_name" not in plan:
            first, last = part("first"), part("last")
            prefix = names.first_filled(prefix, part("prefix"))
        else:
            # A row with a name but no first or last name is an organization
            # (Bloomerang writes foundations that way).
            unnamed = (first == "") & (last == "") & (display != "")
            organization = organization.where(~unnamed | (organization != ""), display)
    is_org = pd.Series(False, index=index)
    for column in plan.get("is_organization", []):
        is_org |= frame[column].str.lower().str.fullmatch(ORGANIZATION_VALUES)
    full_name = display.where(display != "", names.person_names(first, last))
    full_name = full_name.where(~(is_org & (organization != "")), organization)
    full_name = full_name.where(full_name != "", organization)
    crm_salutation = _text(frame, plan, "salutation")
    greeting = names.choose_greeting(
        [frame[c] for c in plan.get("greeting", [])],
        nickname,
        crm_salutation,
        first,
        prefix,
        last,
        full_name,
    )
    titled = (prefix + " " + last).str.strip()
    salutation = crm_salutation.where(
        (crm_salutation != "") | (prefix == "") | (last == ""), titled
    )
    return {
        "name": full_name,
        "first_name": first,
        "last_name": last,
        "greeting": greeting,
        "salutation": salutation,
        "organization": organization,
    }


def _gifts(
    frame: pd.DataFrame,
    plan: dict[str, list[str]],
    doubtful: list[RowIssue],
    *,
    local_timezone: str,
    today: date | None,
) -> dict[str, pd.Series]:
    """Amount, date and lifetime total of every row; cells that are not a number
    or a date are reported."""
    amount_text = _text(frame, plan, "gift_amount")
    lifetime_text = _text(frame, plan, "lifetime_giving")
    date_text = _text(frame, plan, "gift_date")
    amount_comma, lifetime_comma = values.choose_decimal_comma(
        [amount_text, lifetime_text]
    )
    amount, bad_amount = values.parse_money(amount_text, amount_comma)
    lifetime, bad_lifetime = values.parse_money(lifetime_text, lifetime_comma)
    date_columns = plan.get("gift_date", [])
    gift_date, bad_date = values.parse_dates(
        date_text,
        utc_column=bool(date_columns) and is_utc_column(date_columns[0]),
        local_timezone=local_timezone,
        today=today,
    )
    for mask, label, cells in (
        (bad_amount, "gift amount", amount_text),
        (bad_lifetime, "lifetime giving", lifetime_text),
        (bad_date, "gift date", date_text),
    ):
        doubtful.extend(
            RowIssue(int(r), f"{label} {cells[r]!r} is not understood: left blank")
            for r in frame.index[mask]
        )
    return {"amount": amount, "gift_date": gift_date, "lifetime": lifetime}


def _flags_of(
    frame: pd.DataFrame, plan: dict[str, list[str]], doubtful: list[RowIssue]
) -> dict[str, pd.Series]:
    """Do-not-email, opted-out, deceased and bounced, from flag columns, from
    subscription columns and from free-text statuses ("Do Not Contact"); cells
    that are not clearly yes or no block and are listed in ``doubtful``."""
    flags = {
        flag: pd.Series(False, index=frame.index)
        for flag in ("do_not_email", "opted_out", "deceased", "bounced")
    }
    for flag in flags:
        for column in plan.get(flag, []):
            reading = read_flag_column(
                frame[column], column, flag, any_value=is_date_like_column(column)
            )
            flags[flag] |= reading.blocked
            doubtful.extend(reading.doubtful)
    for column in plan.get("email_subscribed", []):
        reading = read_subscription_column(frame[column], column)
        flags["opted_out"] |= reading.blocked
        doubtful.extend(reading.doubtful)
    for column in plan.get("status", []):
        clear, loose = read_status_column(frame[column], column)
        for flag, hits in clear.items():
            flags[flag] |= hits
        flags["do_not_email"] |= loose.blocked
        doubtful.extend(loose.doubtful)
    return flags


def _exclusions(
    frame: pd.DataFrame, plan: dict[str, list[str]], amount: pd.Series
) -> pd.Series:
    """Why a row with an amount is not a completed gift ("" when it is one)."""
    refund_text = _text(frame, plan, "refund_date")
    excluded = pd.Series("", index=frame.index, dtype="str")
    excluded = excluded.where(
        refund_text == "", "refunded (refund date " + refund_text + ")"
    )
    for column in plan.get("status", []):
        status = frame[column].str.lower()
        for pattern, reason in GIFT_STATUS_PATTERNS:
            hit = status.str.contains(pattern, regex=True) & (excluded == "")
            excluded = excluded.where(
                ~hit, f"{reason} ({column} '" + frame[column] + "')"
            )
    for column in plan.get("gift_type", []):
        hit = frame[column].str.lower().str.contains(NOT_A_DONATION, regex=True)
        hit &= excluded == ""
        excluded = excluded.where(~hit, "not a donation (" + frame[column] + ")")
    return excluded.where(amount.notna(), "")


def _notes_of(frame: pd.DataFrame, plan: dict[str, list[str]]) -> pd.Series:
    """Every notes column, one per line, then any dedication ("In memory of ...")."""
    index = frame.index
    notes = _joined([frame[c] for c in plan.get("notes", [])], "\n", index)
    dedication = _joined([frame[c] for c in plan.get("dedication", [])], " ", index)
    tribute = ("Dedication: " + dedication).where(dedication != "", "")
    return _joined([notes, tribute], "\n", index)


def extract_rows(
    frame: pd.DataFrame,
    plan: dict[str, list[str]],
    *,
    local_timezone: str,
    today: date | None = None,
) -> RowFields:
    """Read every mapped field of every row. ``frame`` holds the mapped columns as
    stripped text, indexed by record number."""
    doubtful: list[RowIssue] = []
    people = _people(frame, plan)
    preference = plan.get("email_preference", [None])[0]
    addresses = collect_addresses(frame, plan.get("email", []), preference)
    doubtful.extend(addresses.issues)
    nameless = (people["name"] == "") & addresses.primary.notna()
    if nameless.any():
        people["name"] = people["name"].where(~nameless, addresses.primary.fillna(""))
        if any(f in plan for f in ("name", "first_name", "last_name")):
            doubtful.extend(
                RowIssue(int(r), "no name: listed under the email address")
                for r in frame.index[nameless]
            )
    gifts = _gifts(frame, plan, doubtful, local_timezone=local_timezone, today=today)
    amount_columns = plan.get("gift_amount", [])
    rows = pd.DataFrame(
        {
            "record_id": _text(frame, plan, "record_id"),
            **people,
            "email": addresses.primary,
            "had_email_text": addresses.had_text,
            **gifts,
            "currency": _text(frame, plan, "currency").str.upper(),
            "campaign": _text(frame, plan, "campaign"),
            "notes": _notes_of(frame, plan),
            "excluded": _exclusions(frame, plan, gifts["amount"]),
            **_flags_of(frame, plan, doubtful),
        },
        index=frame.index,
    )
    return RowFields(
        frame=rows,
        addresses=addresses,
        per_gift=bool(amount_columns) and is_per_gift_column(amount_columns[0]),
        has_amount=bool(amount_columns),
        has_lifetime="lifetime_giving" in plan,
        doubtful=doubtful,
    )
