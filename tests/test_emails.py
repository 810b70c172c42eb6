"""Address rules shared by import, message building and sync."""

from __future__ import annotations

import pytest

from lib.emails import (
    InvalidAddress,
    addresses_in_header,
    domain_of,
    is_valid_address,
    normalise_address,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("donor+gala@example.org", "donor+gala@example.org"),  # C17: tag kept
        (" TREVOR.GUNDERSEN@EXAMPLE.ORG ", "trevor.gundersen@example.org"),
        ("zoe.hartwell@example.net ", "zoe.hartwell@example.net"),
        ("jürgen@bücher.example", "jürgen@bücher.example"),
    ],
)
def test_valid_addresses_are_normalised(raw: str, expected: str) -> None:
    assert normalise_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("tad.greer.example.com", "@"),
        ("", "no address"),
        ("   ", "no address"),
        ("a@example.org\r\nBcc: x@example.org", "line break"),
        ("two@@example.org", ""),
    ],
)
def test_invalid_addresses_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalise_address(raw)
    assert reason in info.value.reason
    assert not is_valid_address(raw)


def test_header_addresses_are_split_and_deduplicated() -> None:
    header = (
        '"Ellis, Jordan" <Jordan.Ellis@example.org>, board@example.org, '
        "jordan.ellis@example.org"
    )
    assert addresses_in_header(header) == [
        "jordan.ellis@example.org",
        "board@example.org",
    ]
    assert addresses_in_header(None) == []
    assert domain_of("a@Example.ORG") == "example.org"
