"""Columns -> donor fields: the automatic suggestion, value checks on ambiguous
headers, and a person's corrected mapping (lib.importing.mapping)."""

from __future__ import annotations

import pandas as pd
import pytest

from lib.errors import ImportError_
from lib.importing import DONOR_FIELDS, read_donor_file, suggest_mapping
from lib.importing.mapping import normalise_header


def _suggest(columns: dict[str, list[str]]) -> dict[str, str]:
    return suggest_mapping(list(columns), pd.DataFrame(columns, dtype="str"))


def test_headers_are_matched_after_trimming_case_folding_and_punctuation() -> None:
    assert normalise_header("\ufeff  Donor's First Name ") == "donor s first name"
    assert normalise_header("💸 Employer match eligible?") == "employer match eligible"
    mapping = _suggest(
        {" E-Mail ": ["a@example.org"], "FIRST_NAME": ["Ann"], "Surname": ["Lee"]}
    )
    assert mapping == {
        "FIRST_NAME": "first_name",
        "Surname": "last_name",
        " E-Mail ": "email",
    }


def test_salutation_header_is_judged_on_its_values() -> None:
    bare = _suggest(
        {"Salutation": ["Ms.", "Dr.", "Mr. and Mrs."], "Email": ["a@b.org"] * 3}
    )
    formal = _suggest(
        {"Salutation": ["Mrs. Whitcombe", "Dr. Folsom"], "Email": ["x"] * 2}
    )
    informal = _suggest({"Salutation": ["Don and Maura", "Clem"], "Name": ["a", "b"]})
    assert bare["Salutation"] == "prefix"
    assert formal["Salutation"] == "salutation"
    assert informal["Salutation"] == "greeting"
    job = _suggest({"Title": ["Owner", "Director"], "Name": ["Ann", "Bo"]})
    assert "Title" not in job


def test_preferred_email_column_of_words_is_a_preference_not_an_address() -> None:
    mapping = _suggest(
        {
            "Preferred Email": ["Work", "Personal"],
            "Work Email": ["w@example.org", ""],
            "Personal Email": ["", "p@example.org"],
        }
    )
    assert mapping["Preferred Email"] == "email_preference"
    # Several email columns, best first.
    assert [c for c, f in mapping.items() if f == "email"] == [
        "Personal Email",
        "Work Email",
    ]


def test_second_person_columns_are_not_the_donor() -> None:
    mapping = _suggest(
        {
            "Contact1 Email": ["a@example.org"],
            "Contact2 Email": ["b@example.org"],
            "Spouse Name": ["Bo"],
        }
    )
    assert mapping == {"Contact1 Email": "email"}


def test_single_field_takes_the_best_column_only() -> None:
    mapping = _suggest(
        {
            "Contact External ID": ["L-1"],
            "Givebutter Contact ID": ["40010231"],
            "Email": ["a@example.org"],
        }
    )
    assert mapping["Givebutter Contact ID"] == "record_id"
    assert "Contact External ID" not in mapping


CSV = (
    b"Full Name,Mail,Informal,Given\n"
    b"Ann Lee,ann@example.org,Annie,$20.00\n"
    b"Bo Chen,bo@example.org,,$5.00\n"
)


def test_mapping_override_corrects_the_suggestion() -> None:
    auto = read_donor_file(CSV, "odd.csv")
    assert auto.mapping.get("Given") is None  # not recognised
    fixed = read_donor_file(
        CSV,
        "odd.csv",
        mapping={
            "Full Name": "name",
            "mail": "email",  # case-insensitive column match
            "Informal": "greeting",
            "Given": "gift_amount",
        },
    )
    assert fixed.mapping == {
        "Full Name": "name",
        "Mail": "email",
        "Informal": "greeting",
        "Given": "gift_amount",
    }
    assert fixed.suggested_mapping == auto.suggested_mapping
    ann, bo = fixed.donors
    assert (ann.greeting, ann.last_gift_amount) == ("Annie", 20.0)
    assert (bo.greeting, bo.last_gift_amount) == ("Bo", 5.0)


def test_mapping_can_ignore_a_column() -> None:
    result = read_donor_file(
        CSV, "odd.csv", mapping={"Full Name": "name", "Mail": "email", "Informal": ""}
    )
    assert "Informal" not in result.mapping
    assert result.donors[0].greeting == "Ann"


def test_mapping_naming_unknown_columns_or_fields_is_refused() -> None:
    with pytest.raises(ImportError_) as caught:
        read_donor_file(CSV, "odd.csv", mapping={"Phone": "email", "Mail": "email"})
    assert "'Phone'" in str(caught.value) and "'Full Name'" in str(caught.value)
    with pytest.raises(ImportError_) as caught:
        read_donor_file(CSV, "odd.csv", mapping={"Mail": "e_mail"})
    assert "'e_mail'" in str(caught.value) and "email" in str(caught.value)


def test_mapping_without_any_name_or_email_is_refused() -> None:
    with pytest.raises(ImportError_, match="no email or name column"):
        read_donor_file(CSV, "odd.csv", mapping={"Given": "gift_amount"})


def test_every_field_is_described() -> None:
    assert all(description for description in DONOR_FIELDS.values())
    assert {"email", "name", "greeting", "record_id", "do_not_email"} <= set(
        DONOR_FIELDS
    )
