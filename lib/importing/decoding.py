"""Bytes of a CSV export -> which text encoding to read it with.

Exports arrive as UTF-8 (with or without a byte-order mark), UTF-16, Windows cp1252
from Excel's "CSV (Comma delimited)", or now and then something else. A file that
is UTF-8 but for a line or two (a name pasted from a Windows program) is read line
by line, so one stray byte never garbles every other accented name; the lines read
differently are named for the import report.
"""

from __future__ import annotations

import codecs

import charset_normalizer

from lib.errors import ImportError_

# Enough of the file to sniff the separator and to spot binary data.
SNIFF_BYTES = 64 * 1024
# Decoding is checked in slices so a large file never exists twice in memory.
DECODE_CHUNK_BYTES = 1024 * 1024


def detect_encoding(data: bytes) -> str:
    """The text encoding of a CSV export: UTF-8 (with or without BOM), UTF-16 with
    BOM, else cp1252 (Windows "CSV (Comma delimited)"), else charset-normalizer's
    best guess. Raises ImportError_ for binary data."""
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    elif b"\x00" in data[:SNIFF_BYTES]:
        raise ImportError_(
            "This file is binary, not a CSV or XLSX export: export the donor list "
            "as CSV or XLSX and import that."
        )
    elif _decodes(data, "utf-8"):
        return "utf-8"
    elif _decodes(data, "cp1252"):
        return "cp1252"
    else:
        best = charset_normalizer.from_bytes(data[: 4 * SNIFF_BYTES]).best()
        if best is None or not _decodes(data, best.encoding):
            raise ImportError_(
                "This file is not text in any encoding Steward knows: export the "
                "donor list as CSV (UTF-8) or XLSX."
            )
        return best.encoding
    if not _decodes(data, encoding):
        raise ImportError_(
            "This file starts like UTF-8 but contains bytes that are not UTF-8: "
            "save it again as 'CSV UTF-8' and import that."
        )
    return encoding


def choose_decoding(data: bytes) -> tuple[str, bytes, list[tuple[int, str]]]:
    """(encoding to read with, the bytes to read, [(record, encoding)] for records
    decoded otherwise).

    A file that is UTF-8 but for a few lines (one name pasted from a Windows
    program) is read line by line: UTF-8 lines exactly, the others as cp1252, so
    one stray byte never garbles every other accented name. Raises ImportError_
    as detect_encoding does.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    if bom or (
        not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        and b"\x00" not in data[:SNIFF_BYTES]
        and not _decodes(data, "utf-8")
    ):
        mixed = _mixed_lines(data, force=bom)
        if mixed is not None:
            fixed, odd_lines = mixed
            return ("utf-8-sig" if bom else "utf-8"), fixed, odd_lines
    return detect_encoding(data), data, []


def _mixed_lines(
    data: bytes, *, force: bool
) -> tuple[bytes, list[tuple[int, str]]] | None:
    """The file re-encoded as UTF-8, decoding each line as UTF-8 when it is and as
    cp1252 (latin-1 for the 5 bytes cp1252 leaves undefined) when it is not, with
    the record number of every line decoded the minority way. None when no line
    holds UTF-8 beyond ASCII (a plain cp1252 file) and ``force`` is off."""
    lines = data.split(b"\n")
    fixed: list[bytes] = []
    utf8_records: list[int] = []
    other_records: list[tuple[int, str]] = []
    record = 0
    quoted = False
    for line in lines:
        try:
            line.decode("utf-8")
            if not line.isascii():
                utf8_records.append(record)
            fixed.append(line)
        except UnicodeDecodeError:
            try:
                text, how = line.decode("cp1252"), "cp1252"
            except UnicodeDecodeError:
                text, how = line.decode("latin-1"), "latin-1"
            fixed.append(text.encode("utf-8"))
            other_records.append((record, how))
        if line.count(b'"') % 2:
            quoted = not quoted  # a quoted cell goes on over the line break
        if not quoted:
            record += 1
    if not utf8_records and not force:
        return None
    if len(other_records) > len(utf8_records):
        # Mostly cp1252: name the UTF-8 lines instead, the fewer.
        odd = [(r, "UTF-8") for r in utf8_records]
    else:
        odd = other_records
    by_record: dict[int, str] = {}
    for record_number, how in odd:
        by_record.setdefault(record_number, how)
    return b"\n".join(fixed), list(by_record.items())


def _decodes(data: bytes, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        for start in range(0, len(data), DECODE_CHUNK_BYTES):
            decoder.decode(data[start : start + DECODE_CHUNK_BYTES], final=False)
        decoder.decode(b"", final=True)
    except (UnicodeDecodeError, LookupError):
        return False
    return True
