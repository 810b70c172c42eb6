"""Bytes of an uploaded export -> a table of text cells, and how it was read.

CRM exports arrive as UTF-8 (with or without a byte-order mark), as Windows cp1252
from "CSV (Comma delimited)", comma-, semicolon- or tab-separated, with line breaks
inside quoted cells, or as XLSX. This module works out which, says so (the encoding
and separator are shown to the person importing), and hands on every cell as text:
nothing is evaluated, so "=1+1" or "+1 617 555 0142" stay exactly as typed.

Record numbers follow the export: record 1 is the first record after the header as
a CSV parser counts it, whatever line it starts on.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from lib.errors import ImportError_
from lib.importing.decoding import SNIFF_BYTES, choose_decoding
from lib.importing.result import RowIssue

log = logging.getLogger(__name__)

# Enough of the file to judge what a column holds.
SAMPLE_RECORDS = 500
SEPARATORS = (",", ";", "\t", "|")
XLSX_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # legacy .xls (and other Office 97 files)


@dataclass
class SourceTable:
    """An export whose format is known: header, a sample of records, and a way to
    read the columns that are needed."""

    filename: str
    kind: str  # "csv" or "xlsx"
    encoding: str
    separator: str
    columns: list[str]
    sample: pd.DataFrame  # first SAMPLE_RECORDS records, every column, as text
    first_line: str = ""
    _data: bytes = field(default=b"", repr=False)
    _full: pd.DataFrame | None = field(default=None, repr=False)
    rejected: list[RowIssue] = field(default_factory=list)
    # Records decoded differently from the rest of the file, and file-level remarks
    # (an encoding that had to be guessed), for the import report.
    doubtful: list[RowIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encoding_label: str = ""  # the encoding as shown: "utf-8 (some lines cp1252)"

    def read(self, positions: Sequence[int]) -> pd.DataFrame:
        """Every record, only the columns at ``positions``, as stripped text ("" for
        a blank cell), named by their cleaned headers, indexed by record number.

        Records with more cells than the header are left out and listed in
        ``rejected`` with their record number; shorter ones are padded with blanks.
        """
        positions = sorted(set(positions))
        names = [self.columns[p] for p in positions]
        if self._full is not None:
            frame = self._full.iloc[:, positions].copy()
        else:
            frame = self._read_csv(positions)
        frame.columns = names
        for name in names:
            frame[name] = frame[name].fillna("").astype("str").str.strip()
        return frame

    def _read_csv(self, positions: list[int]) -> pd.DataFrame:
        """Arrow's CSV reader: fast, no Python object per cell, and strict about
        records whose cell count differs from the header's."""
        names = [f"c{i}" for i in range(len(self.columns))]
        wanted = [names[p] for p in positions]
        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(self._data)),
                read_options=pacsv.ReadOptions(
                    column_names=names, encoding=self.encoding.replace("-sig", "")
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.separator,
                    newlines_in_values=True,
                    ignore_empty_lines=False,
                ),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    column_types=dict.fromkeys(wanted, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            ).slice(1)  # the header, read as a record so quoted line breaks count
        except (pa.ArrowInvalid, UnicodeDecodeError):
            # Some records have more (or fewer) cells than the header: read with the
            # csv module so each one can be named, and left out or padded.
            frame, self.rejected = _read_ragged(
                self._data, self.encoding, self.separator
            )
            return frame.iloc[:, positions]  # indexed by record number already
        columns = {name: pd.array(table.column(name), dtype="str") for name in wanted}
        return pd.DataFrame(columns, index=pd.RangeIndex(1, table.num_rows + 1))


def open_table(data: bytes, filename: str) -> SourceTable:
    """Recognise the file and read its header and first records.

    Raises ImportError_ when the file is empty, binary, an old .xls or a web page,
    or not readable as a table.
    """
    if not data or re.search(rb"\S", data) is None:  # no copy of a large file
        raise ImportError_(f"{filename} is empty: export the donor list again.")
    if data.startswith(XLSX_MAGIC):
        return _open_xlsx(data, filename)
    if data.startswith(OLE_MAGIC):
        raise ImportError_(
            f"{filename} is an old Excel .xls (or another Office 97) file. Open it in "
            "Excel and save it as .xlsx or CSV, then import that."
        )
    if filename.lower().endswith((".xlsx", ".xlsm")):
        raise ImportError_(f"{filename} is not a valid .xlsx workbook.")
    encoding, data, odd_lines = choose_decoding(data)
    head_bytes = data[:SNIFF_BYTES]
    head = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head_bytes)
    _refuse_non_tables(head, filename)
    separator = sniff_separator(head)
    try:
        sample = pd.read_csv(
            io.BytesIO(data),
            sep=separator,
            encoding=encoding,
            dtype="str",
            keep_default_na=False,
            skip_blank_lines=False,
            header=0,
            nrows=SAMPLE_RECORDS,
            engine="c",
        )
    except pd.errors.ParserError:
        sample, _ = _read_ragged(data, encoding, separator, limit=SAMPLE_RECORDS)
    except (UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ImportError_(f"{filename} could not be read as a table: {exc}") from exc
    columns = clean_headers([str(c) for c in sample.columns])
    sample.columns = columns
    if isinstance(sample.index, pd.RangeIndex):
        sample.index = pd.RangeIndex(1, len(sample) + 1)
    first_line = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    log.info(
        "opened %s: csv, %s, separator %r, %d columns",
        filename,
        encoding,
        separator,
        len(columns),
    )
    table = SourceTable(
        filename=filename,
        kind="csv",
        encoding=encoding,
        separator=separator,
        columns=columns,
        sample=sample.fillna("").astype("str"),
        first_line=first_line,
        _data=data,
        encoding_label=encoding,
    )
    _report_decoding(table, odd_lines)
    return table


def _report_decoding(table: SourceTable, odd_lines: list[tuple[int, str]]) -> None:
    """Name, on the table, every record read in another encoding than the file's,
    and an encoding that was only guessed."""
    if odd_lines:
        used = sorted({how for _, how in odd_lines})
        table.encoding_label = f"{table.encoding} (some lines {', '.join(used)})"
        for record, how in odd_lines:
            if how == "UTF-8":
                reason = "UTF-8 in a mostly cp1252 file, read as UTF-8"
            else:
                reason = f"not UTF-8, read as {how}"
            if record == 0:
                table.notes.append(f"The header: {reason}.")
            else:
                table.doubtful.append(
                    RowIssue(record, f"{reason}: check its accented text")
                )
    elif table.encoding not in ("utf-8", "utf-8-sig", "utf-16", "cp1252"):
        table.notes.append(
            f"The file is neither UTF-8 nor Windows cp1252: its encoding was guessed "
            f"as {table.encoding}. Check that accented names read correctly, or "
            "export the list again as CSV UTF-8."
        )


def _refuse_non_tables(head: str, filename: str) -> None:
    text = head.lstrip("\ufeff \r\n\t").lower()
    if text.startswith(("<!doctype html", "<html", "<table", "<?xml")):
        raise ImportError_(
            f"{filename} is a web page or XML file, not a CSV or XLSX export. Open it "
            "in Excel, save it as CSV or XLSX, and import that."
        )
    if text.startswith(("{", "[")):
        raise ImportError_(
            f"{filename} looks like JSON, not a table: export the donor list as CSV "
            "or XLSX."
        )
    controls = sum(1 for ch in head if ord(ch) < 32 and ch not in "\t\r\n")
    if controls > max(8, len(head) // 50) or head.count("\ufffd") > len(head) // 20:
        raise ImportError_(
            f"{filename} is binary, not a CSV export: export the donor list as CSV "
            "or XLSX."
        )


def sniff_separator(text: str) -> str:
    """The separator of a CSV, judged on its first records with quotes respected:
    the candidate found in the header that splits the following records the same
    way. Comma when nothing splits (a one-column file)."""
    records = _split_records(text, limit=20)
    if not records:
        return ","
    best, best_score = ",", (0, 0)
    for sep in SEPARATORS:
        counts = [_count_outside_quotes(record, sep) for record in records]
        header = counts[0]
        if header == 0:
            continue
        rest = counts[1:-1] if len(counts) > 2 else counts[1:]  # last may be cut off
        agreeing = sum(1 for c in rest if c == header) if rest else 1
        score = (agreeing, header)
        if score > best_score:
            best, best_score = sep, score
    return best


def _split_records(text: str, limit: int) -> list[str]:
    """The first ``limit`` logical records (a quoted cell may hold line breaks)."""
    records: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text.lstrip("\ufeff"):
        if ch == '"':
            quoted = not quoted
        if ch == "\n" and not quoted:
            records.append("".join(current).rstrip("\r"))
            current = []
            if len(records) >= limit:
                break
            continue
        current.append(ch)
    if current and len(records) < limit:
        records.append("".join(current))
    return [r for r in records if r.strip()]


def _count_outside_quotes(record: str, sep: str) -> int:
    count = 0
    quoted = False
    for ch in record:
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            count += 1
    return count


def clean_headers(raw: list[str]) -> list[str]:
    """Headers as shown to people: byte-order mark and outer spaces removed, blank
    ones named "Column N", repeats numbered "Email (2)"."""
    cleaned: list[str] = []
    seen: dict[str, int] = {}
    for position, header in enumerate(raw, start=1):
        name = header.replace("\ufeff", "").strip()
        if not name or re.fullmatch(r"Unnamed: \d+", name):
            name = f"Column {position}"
        base = re.sub(
            r"\.\d+$", "", name
        )  # pandas renames a repeated "Email" "Email.1"
        if base != name and base.casefold() in seen:
            name = base
        key = name.casefold()
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            name = f"{name} ({seen[key]})"
        cleaned.append(name)
    return cleaned


def _read_ragged(
    data: bytes, encoding: str, separator: str, limit: int | None = None
) -> tuple[pd.DataFrame, list[RowIssue]]:
    """Read with the csv module, leaving out (and listing) records with more cells
    than the header; short records are padded with blanks."""
    text = data.decode(encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    rejected: list[RowIssue] = []
    rows: list[list[str]] = []
    try:
        header = next(reader)
        width = len(header)
        for number, record in enumerate(reader, start=1):
            if limit is not None and number > limit:
                break
            if len(record) > width:
                rejected.append(
                    RowIssue(
                        number,
                        f"has {len(record)} cells but the header has {width}: a "
                        "separator inside an unquoted cell? Row not imported.",
                    )
                )
                continue
            rows.append(record + [""] * (width - len(record)))
    except csv.Error as exc:
        raise ImportError_(
            f"The file could not be read as a table (line {reader.line_num}: {exc}). "
            "Check for a quote that is opened and never closed."
        ) from exc
    if rows and len(rejected) > len(rows):
        raise ImportError_(
            "Most records have more cells than the header: this does not look like "
            "a table Steward can read."
        )
    skipped = {issue.row for issue in rejected}
    numbers = [n for n in range(1, len(rows) + len(rejected) + 1) if n not in skipped]
    frame = pd.DataFrame(rows, columns=header, index=numbers, dtype="str")
    return frame, rejected


def _open_xlsx(data: bytes, filename: str) -> SourceTable:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "xl/workbook.xml" not in archive.namelist():
                raise ImportError_(
                    f"{filename} is a zip archive, not an Excel workbook: unpack it "
                    "and import the CSV or XLSX inside."
                )
        book = pd.ExcelFile(io.BytesIO(data), engine="openpyxl")
        sheets = list(book.sheet_names)
        raw = pd.read_excel(book, sheet_name=0, header=None, dtype=object)
    except ImportError_:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ImportError_(
            f"{filename} could not be read as a workbook: {exc}"
        ) from exc
    # Limit: only the first sheet is read, and its first row must be the header.
    if raw.empty:
        raise ImportError_(f"{filename} has an empty first sheet.")
    header = [_cell_text(v) for v in raw.iloc[0].tolist()]
    body = raw.iloc[1:].reset_index(drop=True)
    frame = pd.DataFrame(
        {i: [_cell_text(v) for v in body[col].tolist()] for i, col in enumerate(body)},
        index=pd.RangeIndex(1, len(body) + 1),
        dtype="str",
    )
    columns = clean_headers(header)
    frame.columns = columns
    log.info("opened %s: xlsx, %d columns", filename, len(columns))
    table = SourceTable(
        filename=filename,
        kind="xlsx",
        encoding="xlsx",
        separator="",
        columns=columns,
        sample=frame.head(SAMPLE_RECORDS),
        first_line=",".join(header),
        _full=frame,
    )
    if len(sheets) > 1:
        table.notes.append(
            f"Only the first sheet ({sheets[0]!r}) was read; the workbook also has "
            f"{', '.join(repr(n) for n in sheets[1:])}. Export those as separate "
            "files to import them (an opt-out sheet too)."
        )
    return table


def _cell_text(value: object) -> str:
    """A workbook cell as the text a person sees (numbers without a stray ".0",
    dates as ISO); formulas are never evaluated (pandas reads cached values)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
        if stamp.hour == stamp.minute == stamp.second == 0:
            return stamp.strftime("%Y-%m-%d")
        return stamp.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)
