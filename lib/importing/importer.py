"""The donor import as one call: bytes of an export in, donors and a report out.

Reading order matters for large files: the header and a sample are read first, the
mapping is decided on them, and only the mapped columns of the whole file are then
parsed (a 45-column Donorbox export needs a dozen).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import date

import pandas as pd

from lib.errors import ImportError_
from lib.importing.flags import ANY_STATUS_PATTERN
from lib.importing.mapping import (
    fields_plan,
    require_identity,
    resolve_mapping,
    suggest_mapping,
)
from lib.importing.reading import open_table
from lib.importing.refusal import check_not_fec
from lib.importing.result import FLAGS, ImportResult, RowIssue
from lib.importing.rollup import roll_up
from lib.importing.rows import extract_rows

log = logging.getLogger(__name__)

# Limit: UTC timestamps ("Payment captured (UTC)") are dated in this zone; the
# exports Steward targets come from US organisations. Pass local_timezone to change.
DEFAULT_LOCAL_TIMEZONE = "America/New_York"


def read_donor_file(
    data: bytes,
    filename: str,
    mapping: Mapping[str, str] | None = None,
    *,
    local_timezone: str = DEFAULT_LOCAL_TIMEZONE,
    today: date | None = None,
) -> ImportResult:
    """Read a donor export (CSV or XLSX) into donors, one per person.

    ``mapping`` ({source column: donor field}, see DONOR_FIELDS) replaces the
    automatic one; columns it leaves out are not used. ``today`` fixes "now" for
    2-digit years (tests).

    Raises ImportError_ for a file that cannot be read as a donor table (empty,
    binary, no email or name column, a mapping naming unknown columns or fields)
    and RefusedFileError for the FEC's contributor lists. Row-level problems never
    raise: they are in the result's ``rejected`` and ``doubtful`` lists.
    """
    started = time.perf_counter()
    table = open_table(data, filename)
    check_not_fec(table.columns, table.first_line)
    suggested = suggest_mapping(table.columns, table.sample)
    used = suggested if mapping is None else resolve_mapping(mapping, table.columns)
    plan = fields_plan(used)
    require_identity(plan, table.columns, filename)
    if table.sample.empty:
        raise ImportError_(f"{filename} has a header but no donor rows.")

    positions = [table.columns.index(column) for column in used]
    frame = table.read(positions)
    record_count = len(frame) + len(table.rejected)
    fields = extract_rows(frame, plan, local_timezone=local_timezone, today=today)
    del frame
    rows = fields.frame
    identified = (
        (rows["record_id"] != "")
        | rows["email"].notna()
        | (rows["name"] != "")
        | (rows["organization"] != "")
    )
    money = rows["amount"].notna() | rows["lifetime"].notna()
    totals = ~identified & ~rows["had_email_text"] & money
    rejected = list(table.rejected)
    doubtful = [
        issue
        for issue in [*table.doubtful, *fields.doubtful]
        if identified.get(issue.row, True)
    ]
    doubtful.extend(
        RowIssue(int(r), "totals row (no name, address or ID, only amounts): skipped")
        for r in rows.index[totals]
    )
    for row in rows.index[~identified & ~totals]:
        if rows.at[row, "had_email_text"]:
            reason = "no name and no valid email address: not imported"
        else:
            reason = (
                "no name, email address or record ID (a totals or blank row?): "
                "not imported"
            )
        rejected.append(RowIssue(int(row), reason))

    donors, merge_issues = roll_up(fields, identified)
    doubtful.extend(merge_issues)
    doubtful.extend(_notes_that_mention_flags(donors))
    result = ImportResult(
        frame=donors,
        rejected=sorted(rejected),
        doubtful=sorted(set(doubtful)),
        encoding=table.encoding_label or table.encoding,
        separator=table.separator,
        columns=list(table.columns),
        mapping=dict(used),
        suggested_mapping=suggested,
        record_count=record_count,
        filename=filename,
        notes=list(table.notes),
    )
    log.info(
        "imported %s: %d records -> %d donors, %d rejected, %d doubtful, %.0f ms",
        filename,
        record_count,
        result.imported,
        len(result.rejected),
        len(result.doubtful),
        (time.perf_counter() - started) * 1000,
    )
    return result


def _notes_that_mention_flags(donors: pd.DataFrame) -> list[RowIssue]:
    """Notes are free text, so "DO NOT EMAIL - asked 2024" cannot set a flag on
    its own (it may be about someone else); the donor is listed for a person to
    check instead of passing unnoticed."""
    clear = ~donors[list(FLAGS)].astype(bool).any(axis=1)
    notes = donors["notes"].fillna("").astype(str).str.lower()
    hits = clear & notes.str.contains(ANY_STATUS_PATTERN, regex=True)
    return [
        RowIssue(
            int(min(rows)) if len(rows) else 0,
            "the notes mention not emailing, an opt-out, a bounce or a death, but "
            "no flag is set: check before drafting (mark the donor in the CRM)",
        )
        for rows in donors.loc[hits, "rows"]
    ]
