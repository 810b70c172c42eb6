"""The FEC's individual-contributions lists are refused with the legal reason
(52 U.S.C. 30111(a)(4)), in every form they are published (lib.importing.refusal)."""

from __future__ import annotations

import io

import openpyxl
import pytest

from lib.errors import RefusedFileError, StewardError
from lib.importing import read_donor_file

BULK_RECORD = (
    "C00123456|N|Q2|P|202407159000000001|15|IND|DOE, JANE|SPRINGFIELD|IL|627040000|"
    "ACME CORP|ENGINEER|06152024|250||SA11AI.1234|1234567||MEMO|4071520241234567890\n"
)
BULK_HEADER = (
    "CMTE_ID,AMNDT_IND,RPT_TP,TRANSACTION_PGI,IMAGE_NUM,TRANSACTION_TP,ENTITY_TP,NAME,"
    "CITY,STATE,ZIP_CODE,EMPLOYER,OCCUPATION,TRANSACTION_DT,TRANSACTION_AMT,OTHER_ID,"
    "TRAN_ID,FILE_NUM,MEMO_CD,MEMO_TEXT,SUB_ID\n"
)
SCHEDULE_A = (
    "committee_id,committee_name,report_year,contributor_name,contributor_first_name,"
    "contributor_last_name,contributor_city,contributor_state,contributor_employer,"
    "contributor_occupation,contribution_receipt_date,contribution_receipt_amount,"
    "contributor_aggregate_ytd\n"
    'C00123456,FRIENDS OF SOMEONE,2024,"DOE, JANE",JANE,DOE,SPRINGFIELD,IL,ACME,'
    "ENGINEER,2024-06-15,250.00,500.00\n"
)


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (BULK_RECORD.encode() * 3, "itcont.txt"),
        ((BULK_HEADER + BULK_RECORD.replace("|", ",")).encode(), "indiv.csv"),
        (SCHEDULE_A.encode(), "schedule_a-2024.csv"),
    ],
)
def test_fec_contributor_lists_are_refused_with_the_law(
    data: bytes, filename: str
) -> None:
    with pytest.raises(RefusedFileError) as caught:
        read_donor_file(data, filename)
    message = str(caught.value)
    assert "52 U.S.C. 30111(a)(4)" in message and "solicit" in message
    assert isinstance(caught.value, StewardError)


def test_fec_list_in_a_workbook_is_refused_too() -> None:
    workbook = openpyxl.Workbook()
    for row in SCHEDULE_A.splitlines():
        workbook.active.append(row.split(","))
    buffer = io.BytesIO()
    workbook.save(buffer)
    with pytest.raises(RefusedFileError):
        read_donor_file(buffer.getvalue(), "fec.xlsx")


def test_a_donor_list_mentioning_a_committee_is_not_refused() -> None:
    text = "Name,Email,Committee ID,Employer\nAnn Lee,ann@example.org,C1,Acme\n"
    assert read_donor_file(text.encode(), "board.csv").imported == 1
