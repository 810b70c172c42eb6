"""Export rows -> one donor each.

Transaction exports (DonorPerfect, Givebutter, Donorbox, NPSP) hold one row per
gift; donor lists sometimes hold a person twice. Rows are the same donor when they
share the CRM record ID, else the same email address, else the same name. A
donor's last gift is their latest completed gift and their lifetime giving is the
sum of completed gifts (or the CRM's own total when the export has one, never that
total added up once per row). Refunds, failed payments, pledges, tickets and
reversed gifts are kept out of both and listed for a person to see.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lib.importing.result import DONOR_COLUMNS, FLAGS, RowIssue
from lib.importing.rows import RowFields

TEXT_FIELDS = (
    "name",
    "first_name",
    "last_name",
    "greeting",
    "salutation",
    "organization",
)


def _donor_keys(rows: pd.DataFrame, valid: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per row: the donor key and what it is based on ("record ID", "address",
    "name"). Rows without a record ID join the one record that holds their
    address, when exactly one does."""
    rid = rows["record_id"]
    has_rid = rid != ""
    by_address = pd.DataFrame({"row": valid["row"], "email": valid["email"]})
    by_address["rid"] = rid.reindex(by_address["row"]).to_numpy()
    by_address = by_address[by_address["rid"] != ""].drop_duplicates(["email", "rid"])
    owners = by_address.drop_duplicates("email", keep=False).set_index("email")["rid"]
    email = rows["email"]
    adopted = pd.Series(np.nan, index=rows.index, dtype="str")
    orphans = ~has_rid & email.notna()
    if len(owners) and orphans.any():
        adopted[orphans] = email[orphans].map(owners).astype("str")
    key = rid.where(has_rid, adopted)
    key = key.where(key.notna() & (key != ""), "email:" + email)
    nameless = key.isna()
    if nameless.any():
        names = rows.loc[nameless, "name"].tolist()
        key[nameless] = ["name:" + " ".join(n.casefold().split()) for n in names]
    basis = pd.Series("name", index=rows.index, dtype="str")
    basis = basis.where(email.isna(), "address")
    basis = basis.where(~(has_rid | adopted.notna()), "record ID")
    return key.astype("str"), basis


def _reverse_negatives(rows: pd.DataFrame) -> pd.Series:
    """Negative amounts reverse an earlier gift of the same amount by the same
    donor: neither counts. Returns the updated exclusion reasons."""
    excluded = rows["excluded"].copy()
    negative = (rows["amount"] < 0) & (excluded == "")
    if not negative.any():
        return excluded
    involved = rows[rows["code"].isin(rows.loc[negative, "code"])]
    by_donor: dict[int, list[list[Any]]] = {}
    for row, code, amount, why in zip(
        involved.index.tolist(),
        involved["code"].tolist(),
        involved["amount"].tolist(),
        involved["excluded"].tolist(),
        strict=True,
    ):
        by_donor.setdefault(code, []).append([row, amount, why])
    changes: dict[int, str] = {}
    for gifts in by_donor.values():
        for position, (row, amount, why) in enumerate(gifts):
            if why or not amount < 0:
                continue
            earlier = [
                g
                for g in gifts[:position]
                if not g[2] and math.isclose(g[1], -amount, abs_tol=0.005)
            ]
            if earlier:
                target = earlier[-1]
                target[2] = changes[target[0]] = f"reversed by row {row}"
                gifts[position][2] = changes[row] = (
                    f"reversal of the gift on row {target[0]}"
                )
            else:
                gifts[position][2] = changes[row] = (
                    "negative amount (a refund or reversal)"
                )
    excluded[list(changes)] = list(changes.values())
    return excluded


def _list_column(codes: np.ndarray, values: pa.Array, count: int) -> pd.Series:
    """Per code 0..count-1, the values with that code in their original order, as
    one compact Arrow list column (no Python object per value)."""
    order = np.argsort(codes, kind="stable")
    cuts = np.searchsorted(codes[order], np.arange(count + 1)).astype("int32")
    lists = pa.ListArray.from_arrays(pa.array(cuts), values.take(pa.array(order)))
    return pd.Series(pd.arrays.ArrowExtensionArray(lists))


def _first_rows(codes: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Per code, the first (lowest) record number."""
    first = np.full(count, np.iinfo(np.int64).max, dtype="int64")
    np.minimum.at(first, codes, rows)
    return first


def roll_up(fields: RowFields, keep: pd.Series) -> tuple[pd.DataFrame, list[RowIssue]]:
    """Donors (one row each, DONOR_COLUMNS) from the rows marked ``keep``, plus
    the doubtful rows noticed while merging and counting gifts."""
    doubtful: list[RowIssue] = []
    rows = fields.frame[keep].copy()
    valid = fields.addresses.valid
    valid = valid[valid["row"].isin(rows.index)]
    key, basis = _donor_keys(rows, valid)
    codes, keys = pd.factorize(key, sort=False)
    count = len(keys)
    rows["code"] = codes
    rows["row"] = rows.index
    groups = rows.groupby("code", sort=True)

    rows["excluded"] = _reverse_negatives(rows)
    excluded = rows[rows["excluded"] != ""]
    doubtful.extend(
        RowIssue(int(r), f"{why}: skipped, not counted as a gift")
        for r, why in zip(excluded.index, excluded["excluded"], strict=True)
    )
    completed = rows["amount"].gt(0) & (rows["excluded"] == "")

    donors = pd.DataFrame(index=pd.RangeIndex(count))
    donors["donor_key"] = pd.Series(keys, dtype="str")
    first_of = {}
    for column in ("record_id", *TEXT_FIELDS, "campaign", "currency"):
        present = rows[column].where(rows[column] != "")
        first_of[column] = present.groupby(rows["code"]).first().reindex(donors.index)
    for column in TEXT_FIELDS:
        donors[column] = first_of[column].fillna("").astype("str")
    donors["record_id"] = first_of["record_id"].astype("str")
    donors["email"] = groups["email"].first().astype("str")

    address_rows = valid.assign(code=rows["code"].reindex(valid["row"]).to_numpy())
    address_rows = address_rows.drop_duplicates(["code", "email"])
    donors["emails"] = _list_column(
        address_rows["code"].to_numpy(), pa.array(address_rows["email"]), count
    )
    del address_rows

    gift_columns = ["code", "gift_date", "row", "amount", "campaign", "currency"]
    gifts = rows.loc[completed, gift_columns].sort_values(
        ["code", "gift_date", "row"], na_position="first"
    )
    last = gifts.groupby("code").last()
    donors["last_gift_amount"] = last["amount"].reindex(donors.index)
    if fields.has_amount:
        donors["last_gift_date"] = last["gift_date"].reindex(donors.index).astype("str")
    else:
        donors["last_gift_date"] = groups["gift_date"].max().astype("str")
    lifetime = pd.Series(np.nan, index=donors.index)
    if fields.has_lifetime:
        lifetime = groups["lifetime"].max().reindex(donors.index)
    if fields.per_gift:
        summed = gifts.groupby("code")["amount"].sum().reindex(donors.index).fillna(0.0)
        lifetime = lifetime.fillna(summed)
    donors["lifetime_giving"] = lifetime.astype("float64")
    donors["gift_count"] = (
        completed.groupby(rows["code"])
        .sum()
        .reindex(donors.index)
        .fillna(0)
        .astype(int)
    )
    from_gift = last["currency"].where(last["currency"] != "").reindex(donors.index)
    donors["currency"] = from_gift.fillna(first_of["currency"]).astype("str")
    # The campaign of the latest completed gift that names one; a donor with
    # completed gifts never takes it from a refunded, failed or ticket row.
    named = gifts[gifts["campaign"] != ""].groupby("code")["campaign"].last()
    campaign = named.reindex(donors.index)
    has_gifts = pd.Series(donors.index.isin(gifts["code"]), index=donors.index)
    campaign = campaign.where(has_gifts | campaign.notna(), first_of["campaign"])
    donors["campaign"] = campaign.fillna("").astype("str")
    del first_of, last
    donors["notes"] = _notes(rows, count)
    for flag in FLAGS:
        donors[flag] = (
            groups[flag].any().reindex(donors.index).fillna(False).astype(bool)
        )
    donors["rows"] = _list_column(
        codes, pa.array(rows.index.to_numpy(), pa.int32()), count
    )

    first_row = _first_rows(codes, rows.index.to_numpy(), count)
    doubtful.extend(_currency_issues(gifts, first_row))
    del gifts
    doubtful.extend(
        _merge_issues(rows, basis, donors, first_row, per_gift=fields.per_gift)
    )
    return donors[list(DONOR_COLUMNS)], doubtful


def _notes(rows: pd.DataFrame, count: int) -> pd.Series:
    """Per donor, the distinct notes of their rows in row order, one per line."""
    noted = rows.loc[rows["notes"] != "", ["code", "notes"]].drop_duplicates()
    joined = [""] * count
    for code, note in zip(noted["code"].tolist(), noted["notes"].tolist(), strict=True):
        joined[code] = f"{joined[code]}\n{note}" if joined[code] else note
    return pd.Series(joined, dtype="str")


def _merge_issues(
    rows: pd.DataFrame,
    basis: pd.Series,
    donors: pd.DataFrame,
    first_row: np.ndarray,
    *,
    per_gift: bool,
) -> list[RowIssue]:
    issues: list[RowIssue] = []
    later = rows.loc[rows["code"].duplicated(), ["code", "name"]]
    codes = later["code"].to_numpy()
    # Compared as Arrow strings: no Python object per row.
    own = later["name"].str.lower().reset_index(drop=True)
    theirs = donors["name"].str.lower().iloc[codes].reset_index(drop=True)
    differs = ((own != theirs) & (own != "")).to_numpy()
    for i in np.flatnonzero(differs | (not per_gift)):
        row, first = int(later.index[i]), int(first_row[codes[i]])
        why = basis.at[row]
        if differs[i]:
            own_name, donor_name = later["name"].iat[i], donors["name"].iat[codes[i]]
            reason = (
                f"merged with row {first} (same {why}) although the name differs: "
                f"{own_name!r} vs {donor_name!r}"
            )
        else:
            reason = f"same donor as row {first} (same {why}): merged"
        issues.append(RowIssue(row, reason))
    emails = donors["email"]
    has_email = emails.notna().to_numpy()
    shared = np.flatnonzero(has_email & emails.duplicated().to_numpy())
    if len(shared):
        owner_row: dict[str, int] = {}
        for email, row in zip(emails[has_email], first_row[has_email], strict=True):
            owner_row.setdefault(email, int(row))
        for position in shared:
            issues.append(
                RowIssue(
                    int(first_row[position]),
                    f"same email address as row {owner_row[emails.iat[position]]} but "
                    "a different record: possibly a duplicate in the CRM",
                )
            )
    issues.extend(
        RowIssue(int(first_row[position]), "no email: imported but cannot be emailed")
        for position in np.flatnonzero(~has_email)
    )
    return issues


def _currency_issues(gifts: pd.DataFrame, first_row: np.ndarray) -> list[RowIssue]:
    currencies = gifts[gifts["currency"] != ""].groupby("code")["currency"].nunique()
    mixed = currencies[currencies > 1].index
    # Limit: gifts in several currencies are added up as written (no conversion).
    return [
        RowIssue(
            int(first_row[code]),
            "gifts in several currencies: lifetime giving adds them as written",
        )
        for code in mixed
    ]
