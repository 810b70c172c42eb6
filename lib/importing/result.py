"""What an import produced: the donors, the rows that need a person's eye, and how
the file was read.

Donors are held as one pandas DataFrame (one row per donor) because a 100,000-row
export must fit comfortably in memory; the list of :class:`lib.models.Donor` objects
is built from it only when asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from lib.models import Donor

# The donors frame's columns, in order (the Donor fields plus the store's key).
DONOR_COLUMNS = (
    "donor_key",
    "record_id",
    "name",
    "first_name",
    "last_name",
    "greeting",
    "salutation",
    "organization",
    "email",
    "emails",
    "last_gift_amount",
    "last_gift_date",
    "lifetime_giving",
    "gift_count",
    "currency",
    "campaign",
    "notes",
    "do_not_email",
    "opted_out",
    "deceased",
    "bounced",
    "rows",
)
# Text that is either a value or absent (None), rather than "".
OPTIONAL_TEXT = ("record_id", "email", "last_gift_date", "currency")
FLAGS = ("do_not_email", "opted_out", "deceased", "bounced")
# Text that is "" when blank.
TEXT = (
    "donor_key",
    "name",
    "first_name",
    "last_name",
    "greeting",
    "salutation",
    "organization",
    "campaign",
    "notes",
)


@dataclass(frozen=True, order=True)
class RowIssue:
    """One source record (1 = first after the header) and what is wrong with it."""

    row: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "reason": self.reason}


def blocked_reasons(frame: pd.DataFrame) -> pd.Series:
    """Per donor row, why they must never be emailed (the same order of reasons as
    :attr:`lib.models.Donor.blocked_reason`), or None when they may be."""
    email = frame["email"]
    no_address = email.isna() | (email.astype("str").fillna("") == "")
    choices = [
        frame["deceased"].astype(bool),
        frame["opted_out"].astype(bool),
        frame["do_not_email"].astype(bool),
        frame["bounced"].astype(bool),
        no_address,
    ]
    labels = ["deceased", "opted out", "do not email", "address bounced", "no address"]
    reasons = np.select(choices, labels, default="")
    return pd.Series(reasons, index=frame.index, dtype="str").replace("", np.nan)


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """One column as plain Python values, None for missing ones."""
    series = frame[name]
    values = series.tolist()
    if name in ("emails", "rows"):
        return [list(v) if isinstance(v, list | tuple) else [] for v in values]
    missing = series.isna().to_numpy()
    if missing.any():
        values = [None if gone else v for v, gone in zip(values, missing, strict=True)]
    return values


def donor_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A donors frame (DONOR_COLUMNS) as one dict of plain Python values per donor:
    None for absent optional text and numbers, "" for blank text. Built column by
    column, which is much faster than DataFrame.to_dict on Arrow-backed columns."""
    columns = {name: _column(frame, name) for name in DONOR_COLUMNS}
    for name in OPTIONAL_TEXT:
        columns[name] = [v or None for v in columns[name]]
    for name in TEXT:
        columns[name] = [v or "" for v in columns[name]]
    for name in FLAGS:
        columns[name] = [bool(v) for v in columns[name]]
    columns["gift_count"] = [int(v or 0) for v in columns["gift_count"]]
    names = list(columns)
    rows = zip(*columns.values(), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _plain(value: Any) -> Any:
    """numpy/pandas scalars -> JSON-ready Python values (NaN -> None)."""
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if value is pd.NA:
        return None
    return value


@dataclass
class ImportResult:
    """The outcome of reading one donor export.

    ``rejected`` rows were not imported; ``doubtful`` rows were imported (or
    deliberately skipped, like a totals row or a refund) but deserve a look.
    ``mapping`` is what was used (source column -> donor field); within one field,
    earlier columns win. ``record_count`` counts every record after the header.
    ``notes`` are remarks about the whole file (an encoding that was guessed).
    """

    frame: pd.DataFrame = field(repr=False)
    rejected: list[RowIssue]
    doubtful: list[RowIssue]
    encoding: str
    separator: str
    columns: list[str]
    mapping: dict[str, str]
    suggested_mapping: dict[str, str]
    record_count: int
    filename: str = ""
    notes: list[str] = field(default_factory=list)  # about the whole file

    @property
    def imported(self) -> int:
        return len(self.frame)

    @cached_property
    def donors(self) -> list[Donor]:
        """The donors as :class:`lib.models.Donor` objects, in file order."""
        donors = []
        for record in donor_records(self.frame):
            record.pop("donor_key")
            donors.append(Donor(**record))
        return donors

    def to_frame(self) -> pd.DataFrame:
        """One row per donor (the Donor fields, ``donor_key`` and a
        ``blocked_reason`` column: None when the donor may be emailed)."""
        return self.frame.assign(blocked_reason=blocked_reasons(self.frame))

    def report(self) -> dict[str, Any]:
        """The import report without the donor list (kept with the import)."""
        return {
            "filename": self.filename,
            "imported": self.imported,
            "record_count": self.record_count,
            "encoding": self.encoding,
            "separator": self.separator,
            "columns": list(self.columns),
            "mapping": dict(self.mapping),
            "suggested_mapping": dict(self.suggested_mapping),
            "rejected": [issue.to_dict() for issue in self.rejected],
            "doubtful": [issue.to_dict() for issue in self.doubtful],
            "notes": list(self.notes),
        }

    def to_json(self) -> dict[str, Any]:
        """The report plus one small entry per donor, ready for ``json.dumps``."""
        shown = [
            "name",
            "email",
            "greeting",
            "record_id",
            "do_not_email",
            "opted_out",
            "deceased",
            "bounced",
            "blocked_reason",
            "last_gift_amount",
            "last_gift_date",
            "lifetime_giving",
            "rows",
        ]
        frame = self.to_frame()[shown]
        donors = [
            {key: _plain(value) for key, value in record.items()}
            for record in frame.to_dict("records")
        ]
        return {**self.report(), "donors": donors}
