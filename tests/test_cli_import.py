"""``python -m lib import FILE [--json]``: stores the donors and prints the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.cli import main
from lib.donors import list_donors
from lib.services import open_services
from tests.conftest import DONOR_FORMATS


def test_import_json_output_shape(capsys: pytest.CaptureFixture[str]) -> None:
    path = DONOR_FORMATS / "givebutter_transactions.csv"
    assert main(["import", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["import_id"] == 1 and shown["imported"] == 12
    assert (shown["created"], shown["updated"]) == (12, 0)
    assert shown["encoding"] == "utf-8" and shown["separator"] == ","
    assert shown["mapping"]["Payment captured (UTC)"] == "gift_date"
    assert shown["rejected"] == []
    zoe = shown["donors"][0]
    assert zoe["name"] == "Zoë Calloway-Reyes" and zoe["rows"] == [1, 2, 3, 16]
    assert {"name", "email", "greeting", "do_not_email", "rows"} <= set(zoe)
    assert [i["row"] for i in shown["doubtful"]] == [4, 10, 12, 15]
    assert len(list_donors(open_services().engine)) == 12


def test_import_human_report(capsys: pytest.CaptureFixture[str]) -> None:
    path = DONOR_FORMATS / "donorperfect_gifts.csv"
    assert main(["import", str(path)]) == 0
    assert main(["import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "16 records -> 9 donors (9 new, 0 updated), import 1." in out
    assert "16 records -> 9 donors (0 new, 9 updated), import 2." in out
    assert "3 donor(s) may not be emailed" in out
    assert "  INFORMAL_SAL -> greeting" in out
    assert "row 12: reversal of the gift on row 11" in out


def test_import_error_exits_2_with_the_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "photo.csv"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert main(["import", str(garbage), "--json"]) == 2
    assert "binary" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "missing.csv")]) == 2
    assert "Cannot read" in capsys.readouterr().err


def test_refused_fec_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fec = tmp_path / "itcont.txt"
    fec.write_text(
        "C00123456|N|Q2|P|202407159000000001|15|IND|DOE, JANE|SPRINGFIELD|IL|"
        "627040000|ACME|ENGINEER|06152024|250||SA11AI|1||MEMO|407152024\n"
    )
    assert main(["import", str(fec)]) == 2
    assert "30111(a)(4)" in capsys.readouterr().err
