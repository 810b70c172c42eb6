"""The shape of an import result: donors as objects, as a DataFrame and as JSON
(lib.importing.result)."""

from __future__ import annotations

import json

from lib.importing import DONOR_COLUMNS, read_donor_file
from lib.models import Donor
from tests.conftest import DONOR_FORMATS


def test_to_json_shape_is_json_ready() -> None:
    path = DONOR_FORMATS / "donorperfect_gifts.csv"
    result = read_donor_file(path.read_bytes(), path.name)
    shown = json.loads(json.dumps(result.to_json()))
    assert shown["imported"] == 9 == len(shown["donors"])
    assert shown["encoding"] == "utf-8" and shown["separator"] == ","
    assert shown["mapping"]["EMAIL"] == "email"
    assert shown["record_count"] == 16
    peggy = shown["donors"][0]
    assert {"name", "email", "greeting", "do_not_email", "rows"} <= set(peggy)
    assert peggy["rows"] == [1, 2, 3, 16] and peggy["greeting"] == "Peggy"
    assert peggy["lifetime_giving"] == 425.0 and peggy["blocked_reason"] is None
    assert all({"row", "reason"} == set(item) for item in shown["doubtful"])
    winston = next(d for d in shown["donors"] if d["name"] == "Winston Achebe-Park")
    assert winston["email"] is None and winston["blocked_reason"] == "no address"


def test_to_frame_and_donors_agree() -> None:
    path = DONOR_FORMATS / "littlegreenlight_constituents.csv"
    result = read_donor_file(path.read_bytes(), path.name)
    frame = result.to_frame()
    assert list(frame.columns) == [*DONOR_COLUMNS, "blocked_reason"]
    assert len(frame) == len(result.donors) == 15
    for row, donor in zip(frame.to_dict("records"), result.donors, strict=True):
        assert isinstance(donor, Donor) and donor.id is None
        assert row["name"] == donor.name and list(row["emails"]) == donor.emails
        expected = donor.blocked_reason
        assert (
            row["blocked_reason"] if isinstance(row["blocked_reason"], str) else None
        ) == (expected)
    report = result.report()
    assert "donors" not in report and report["imported"] == 15
