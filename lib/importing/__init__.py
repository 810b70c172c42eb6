"""Donor import: a CRM export (CSV or XLSX) -> one donor per person, and a report.

    result = read_donor_file(data, "donors.csv")
    result.donors            # list[lib.models.Donor]
    result.to_frame()        # the same as a DataFrame, with blocked_reason
    result.rejected          # RowIssue(row, reason): not imported
    result.doubtful          # RowIssue(row, reason): imported or skipped, worth a look
    result.suggested_mapping # {source column: donor field}; pass a corrected one back

The modules, in the order the work flows: decoding (bytes -> text encoding),
reading (bytes -> text table), refusal (the FEC check), mapping (columns -> fields),
values (money, dates), flags (may this donor be emailed?), names and addresses,
rows (fields per row), rollup (rows -> donors), result.
"""

from lib.importing.importer import DEFAULT_LOCAL_TIMEZONE, read_donor_file
from lib.importing.mapping import DONOR_FIELDS, suggest_mapping
from lib.importing.result import DONOR_COLUMNS, ImportResult, RowIssue, blocked_reasons

__all__ = [
    "DEFAULT_LOCAL_TIMEZONE",
    "DONOR_COLUMNS",
    "DONOR_FIELDS",
    "ImportResult",
    "RowIssue",
    "blocked_reasons",
    "read_donor_file",
    "suggest_mapping",
]
