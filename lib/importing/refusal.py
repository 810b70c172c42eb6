"""Files Steward refuses to import: the FEC's lists of individual contributors.

Federal law forbids using the names and addresses of contributors copied from FEC
reports to solicit contributions (52 U.S.C. 30111(a)(4)). Steward exists to write to
donors, so it recognises these lists and refuses them with that reason: the bulk
"indiv" files (pipe-separated, usually without a header) and the CSV of Schedule A
receipts downloaded from fec.gov.
"""

from __future__ import annotations

import re

from lib.errors import RefusedFileError

# Columns of the FEC bulk individual-contributions file (indiv_header_file.csv).
FEC_BULK_COLUMNS = frozenset(
    {
        "cmte_id",
        "amndt_ind",
        "rpt_tp",
        "transaction_pgi",
        "image_num",
        "transaction_tp",
        "entity_tp",
        "transaction_dt",
        "transaction_amt",
        "other_id",
        "tran_id",
        "file_num",
        "memo_cd",
        "memo_text",
        "sub_id",
    }
)
# Columns of the Schedule A (receipts) CSV exported from the FEC website.
FEC_SCHEDULE_A_COLUMNS = frozenset(
    {
        "committee_id",
        "committee_name",
        "contributor_name",
        "contributor_first_name",
        "contributor_last_name",
        "contributor_employer",
        "contributor_occupation",
        "contributor_street_1",
        "contributor_zip",
        "contribution_receipt_date",
        "contribution_receipt_amount",
        "contributor_aggregate_ytd",
        "filing_form",
        "link_id",
        "line_number",
        "transaction_id",
        "report_type",
        "entity_type",
    }
)
# A headerless bulk record starts with a committee ID and an amendment indicator.
_BULK_RECORD = re.compile(r"C\d{8}\|[NAT]\|")
REASON = (
    "This is a list of individual contributors from FEC reports. Federal law forbids "
    "using names and addresses copied from these reports to solicit contributions "
    "(52 U.S.C. 30111(a)(4)), so Steward will not import it. Import your own donor "
    "records (from your CRM or giving platform) instead."
)


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def check_not_fec(columns: list[str], first_line: str) -> None:
    """Raise RefusedFileError when the header or first record is the FEC's."""
    keys = {_key(c) for c in columns}
    bulk = len(keys & FEC_BULK_COLUMNS)
    schedule_a = len(keys & FEC_SCHEDULE_A_COLUMNS)
    has_committee = bool(keys & {"cmte_id", "committee_id"})
    headerless = bool(_BULK_RECORD.match(first_line.lstrip("\ufeff")))
    if headerless or bulk >= 4 or (has_committee and schedule_a >= 4):
        raise RefusedFileError(REASON)
