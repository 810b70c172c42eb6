"""Reading the bytes of an export: encodings, separators, quoted line breaks, XLSX,
and files that are not donor tables at all (lib.importing.reading)."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import openpyxl
import pytest

from lib.errors import ImportError_
from lib.importing import read_donor_file


def test_c15_excel_utf8_bom_header_is_clean() -> None:
    data = "\ufeffEmail,Name\nmaya@example.org,Maya Cruz\n".encode()
    result = read_donor_file(data, "excel-utf8.csv")
    assert result.columns == ["Email", "Name"]
    assert result.encoding == "utf-8-sig"
    assert result.mapping == {"Name": "name", "Email": "email"}
    assert result.donors[0].email == "maya@example.org"


def test_c16_windows_cp1252_file_decoded_exactly() -> None:
    text = (
        "Name,Email,Notes\r\n"
        "José Ñúñez-O’Brien,jose@example.org,“Thank you” – he wrote… 50€\r\n"
    )
    result = read_donor_file(text.encode("cp1252"), "windows.csv")
    assert result.encoding == "cp1252"
    donor = result.donors[0]
    assert donor.name == "José Ñúñez-O’Brien"
    assert donor.notes == "“Thank you” – he wrote… 50€"


def test_other_encodings_fall_back_to_charset_normalizer() -> None:
    text = (
        "名前,メールアドレス,メモ\n"
        "山田 太郎,taro@example.org,メモです。よろしくお願いします\n"
        "佐藤 花子,hanako@example.org,ありがとうございました\n"
    )
    result = read_donor_file(text.encode("shift_jis"), "japan.csv")
    assert result.encoding not in ("utf-8", "cp1252")
    # An unknown header holding addresses is still the email column.
    assert result.mapping == {"メールアドレス": "email"}
    assert [d.email for d in result.donors] == [
        "taro@example.org",
        "hanako@example.org",
    ]


def test_utf16_with_bom_is_read() -> None:
    data = "Email\tName\nann@example.org\tAnn Lee\n".encode("utf-16")
    result = read_donor_file(data, "unicode.txt")
    assert result.encoding == "utf-16" and result.separator == "\t"
    assert result.donors[0].name == "Ann Lee"


@pytest.mark.parametrize(
    ("separator", "text"),
    [
        (",", 'Name,Email,Notes\n"Ellis, Jordan",j@example.org,"a; b"\n'),
        (";", 'Name;Email;Notes\n"Ellis; Jordan";j@example.org;"a, b, c"\n'),
        ("\t", "Name\tEmail\tNotes\nJordan Ellis\tj@example.org\ta, b; c\n"),
        ("|", "Name|Email|Notes\nJordan Ellis|j@example.org|a, b\n"),
    ],
)
def test_separator_is_sniffed_respecting_quotes(separator: str, text: str) -> None:
    result = read_donor_file(text.encode(), "donors.csv")
    assert result.separator == separator
    assert result.donors[0].email == "j@example.org"


def test_quoted_line_breaks_keep_record_numbers() -> None:
    text = (
        "Name,Email,Notes\n"
        'Ann Lee,ann@example.org,"line one\nline two\nline three"\n'
        "Bo Chen,bo@example.org,\n"
    )
    result = read_donor_file(text.encode(), "notes.csv")
    assert [d.rows for d in result.donors] == [[1], [2]]
    assert result.donors[0].notes == "line one\nline two\nline three"


def test_record_with_too_many_cells_is_rejected_by_number() -> None:
    text = (
        "Name,Email\n"
        "Ann Lee,ann@example.org\n"
        "Bo Chen,bo@example.org,extra,cells\n"
        "Cy Diaz,cy@example.org\n"
    )
    result = read_donor_file(text.encode(), "ragged.csv")
    assert [d.rows for d in result.donors] == [[1], [3]]
    assert [(i.row, "4 cells" in i.reason) for i in result.rejected] == [(2, True)]
    assert result.record_count == 3


def test_blank_and_identity_less_rows_are_reported_not_dropped() -> None:
    text = "Name,Email,Phone\nAnn Lee,ann@example.org,\n,,555-0101\n,not-an-address,\n"
    result = read_donor_file(text.encode(), "gaps.csv")
    assert result.imported == 1
    assert [(i.row, i.reason) for i in result.rejected] == [
        (
            2,
            "no name, email address or record ID (a totals or blank row?): "
            "not imported",
        ),
        (3, "no name and no valid email address: not imported"),
    ]


def _xlsx(rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_round_trip_keeps_text_and_types() -> None:
    data = _xlsx(
        [
            ["Email", "Name", "Amount", "Date", "Notes", "Donor ID"],
            [
                "X@Example.org ",
                "Ellis, Jordan",
                1234.5,
                datetime(2024, 3, 5),
                "-",
                10482,
            ],
            ["b@example.org", "Dr. Amara Ellis", "$25.00", 45500, "+1 617 555 0142", 7],
        ]
    )
    result = read_donor_file(data, "donors.xlsx")
    assert result.encoding == "xlsx" and result.record_count == 2
    first, second = result.donors
    assert (first.email, first.name, first.record_id) == (
        "x@example.org",
        "Jordan Ellis",
        "10482",
    )
    assert first.last_gift_amount == 1234.5 and first.last_gift_date == "2024-03-05"
    assert second.last_gift_amount == 25.0 and second.last_gift_date == "2024-07-27"
    assert second.notes == "+1 617 555 0142"


def test_xlsx_formula_text_is_kept_never_evaluated() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Name", "Notes"])
    sheet.append(["a@example.org", "Ann Lee", "x"])
    sheet["C2"].value = "=1+1"
    sheet["C2"].data_type = "s"  # typed as text, the way a CRM export stores it
    buffer = io.BytesIO()
    workbook.save(buffer)
    result = read_donor_file(buffer.getvalue(), "bait.xlsx")
    assert result.donors[0].notes == "=1+1"


def test_formula_bait_in_csv_is_literal_text() -> None:
    text = (
        "Name,Email,Notes,Amount\n"
        'Ann Lee,ann@example.org,"=HYPERLINK(""http://x.example"")",-$5.00\n'
        "Bo Chen,bo@example.org,@mention +1 555 0100,$5.00\n"
    )
    result = read_donor_file(text.encode(), "bait.csv")
    notes = [d.notes for d in result.donors]
    assert notes == ['=HYPERLINK("http://x.example")', "@mention +1 555 0100"]
    assert result.to_json()["donors"][0]["name"] == "Ann Lee"


@pytest.mark.parametrize(
    ("data", "filename", "words"),
    [
        (b"", "empty.csv", "is empty"),
        (b"   \r\n\r\n  ", "blank.csv", "is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "photo.csv", "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "old.xls", ".xls"),
        (b"<!DOCTYPE html><html><body>Report</body></html>", "report.xls", "web page"),
        (b'{"donors": [{"email": "a@example.org"}]}', "donors.json", "JSON"),
        (b"Name,Email\n", "header-only.csv", "no donor rows"),
        (b"Phone,City\n555-0100,Boston\n", "phones.csv", "no email or name column"),
        (b'Name,Email\n"Ann Lee,ann@example.org\n', "quote.csv", "never closed"),
        (b"not really a table", "note.txt", "no email or name column"),
    ],
)
def test_garbage_input_raises_a_clear_error(
    data: bytes, filename: str, words: str
) -> None:
    with pytest.raises(ImportError_) as caught:
        read_donor_file(data, filename)
    assert words in str(caught.value)


def test_zip_that_is_not_a_workbook_is_refused_clearly() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("donors.csv", "Name,Email\n")
    with pytest.raises(ImportError_, match="not an Excel workbook"):
        read_donor_file(buffer.getvalue(), "donors.zip")
    with pytest.raises(ImportError_, match="not a valid .xlsx"):
        read_donor_file(b"Name,Email\n", "donors.xlsx")


def test_duplicate_and_blank_headers_get_names() -> None:
    text = "Email,Email,,Name\na@example.org,b@example.org,x,Ann Lee\n"
    result = read_donor_file(text.encode(), "dups.csv")
    assert result.columns == ["Email", "Email (2)", "Column 3", "Name"]
    assert result.donors[0].emails == ["a@example.org", "b@example.org"]


def test_one_stray_cp1252_line_does_not_garble_the_utf8_lines() -> None:
    """Tester case: one cp1252 byte in a UTF-8 file made the whole file decode as
    cp1252 ('JosÃ© NÃºÃ±ez'). UTF-8 lines stay exact, the odd line is read as
    cp1252 and listed with its record number (after a quoted line break)."""
    data = (
        'Name,Email,Notes\nJosé Núñez,jose@example.org,"line one\nline two"\n'.encode()
        + "Renée Café,renee@example.org,50€\n".encode("cp1252")
        + "Zoë Ardèche,zoe@example.org,\n".encode()
    )
    result = read_donor_file(data, "mixed.csv")
    assert [d.name for d in result.donors] == [
        "José Núñez",
        "Renée Café",
        "Zoë Ardèche",
    ]
    assert result.donors[1].notes == "50€"
    assert "cp1252" in result.encoding
    odd = [i for i in result.doubtful if "not UTF-8" in i.reason]
    assert [(i.row, "read as cp1252" in i.reason) for i in odd] == [(2, True)]


def test_stray_byte_after_utf8_bom_is_read_not_refused() -> None:
    data = (
        "\ufeffName,Email\nJosé,jose@example.org\n".encode()
        + "Müller,m@example.org\n".encode("cp1252")
    )
    result = read_donor_file(data, "bom.csv")
    assert [d.name for d in result.donors] == ["José", "Müller"]
    assert [i.row for i in result.doubtful if "not UTF-8" in i.reason] == [2]


def test_guessed_encoding_is_named_in_the_report() -> None:
    text = (
        "名前,メールアドレス\n"
        "山田 太郎,taro@example.org\n"
        "佐藤 花子,hanako@example.org\n"
    )
    result = read_donor_file(text.encode("shift_jis"), "japan.csv")
    (note,) = result.notes
    assert result.encoding in note and "guessed" in note
    assert result.report()["notes"] == [note]


def test_other_sheets_of_a_workbook_are_named_not_skipped_silently() -> None:
    """Second tester: an 'Unsubscribed' second sheet was skipped with no note."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    donors = book.active
    donors.title = "Donors"
    donors.append(["Name", "Email"])
    donors.append(["Ann Lee", "ann@example.org"])
    book.create_sheet("Unsubscribed").append(["Email"])
    buffer = io.BytesIO()
    book.save(buffer)
    result = read_donor_file(buffer.getvalue(), "book.xlsx")
    assert result.imported == 1
    assert any("'Unsubscribed'" in note for note in result.notes)
