"""Do-not-email, opted-out, deceased and bounced columns and statuses: anything that
is not clearly "may email" blocks, and unclear cells are listed (lib.importing.flags
and the CRM headers in lib.importing.fields)."""

from __future__ import annotations

import pandas as pd
import pytest

from lib.importing import read_donor_file
from lib.importing.flags import read_flag_column, read_subscription_column


def _import(header: str, cells: list[str]):  # noqa: ANN202 - ImportResult
    rows = "".join(
        f"Donor {i},donor{i}@example.org,{cell}\n" for i, cell in enumerate(cells)
    )
    return read_donor_file(f"Name,Email,{header}\n{rows}".encode(), "flags.csv")


def _blocked(result) -> list[bool]:  # noqa: ANN001 - ImportResult
    return result.to_frame()["blocked_reason"].notna().tolist()


def test_unrecognised_values_in_do_not_email_column_block() -> None:
    """Tester case: 'Do not email', 'no email', 'opt out', 'Unsubscribed',
    'bounced', 'deceased' and 'maybe' in a Do Not Email column counted as may
    email, with 0 doubtful rows."""
    cells = [
        "Do not email",
        "no email",
        "opt out",
        "Unsubscribed",
        "bounced",
        "deceased",
        "maybe",
        "N",
        "no",
        "false",
        "0",
        "",
    ]
    result = _import("Do Not Email", cells)
    assert result.mapping["Do Not Email"] == "do_not_email"
    assert _blocked(result) == [True] * 7 + [False] * 5
    unclear = [i for i in result.doubtful if "not a clear yes or no" in i.reason]
    assert [(i.row, "Do Not Email 'maybe'" in i.reason) for i in unclear] == [(7, True)]


@pytest.mark.parametrize("header", ["Bounced", "Do Not Solicit"])
def test_date_or_word_in_flag_column_blocks(header: str) -> None:
    """Tester case: a date or the word 'Bounced' in a Bounced / Do Not Solicit
    column did not block."""
    result = _import(header, ["2024-03-01", "3/1/2024", "Bounced", "", "No"])
    assert _blocked(result) == [True, True, True, False, False]
    assert not [i for i in result.doubtful if "clear yes or no" in i.reason]


def test_free_text_status_words_block() -> None:
    """Tester case: 'Email opt-out', 'Spam complaint' and 'No Solicitations' in a
    Status column did not block; vaguer words block and are listed."""
    cells = [
        "Email opt-out",
        "Spam complaint",
        "No Solicitations",
        "Email inactive",
        "Do not call",
        "Inactive",
        "Active",
        "Opted in",
        "Lapsed",
    ]
    result = _import("Status", cells)
    assert _blocked(result) == [True] * 6 + [False] * 3
    listed = sorted(i.row for i in result.doubtful if "may mean" in i.reason)
    assert listed == [5, 6]


def test_subscription_column_blocks_anything_not_clearly_yes() -> None:
    """In 'Engage Email Subscribed' (yes = may email) an unclear value blocks and
    is listed with its row, column and value; blank says nothing."""
    result = _import(
        "Engage Email Subscribed", ["yes", "TRUE", "no", "pending", "Unsubscribed", ""]
    )
    assert _blocked(result) == [False, False, True, True, True, False]
    (issue,) = [i for i in result.doubtful if "clear yes or no" in i.reason]
    assert issue.row == 4 and "Engage Email Subscribed 'pending'" in issue.reason


def test_email_status_yes_is_not_a_subscription() -> None:
    """An 'Email Status' column says 'Subscribed' when mail may go; a bare 'Yes'
    there is unclear, so it blocks and is listed."""
    reading = read_subscription_column(
        pd.Series(["Subscribed", "Yes", "cleaned", "Unsubscribed"]), "Email Status"
    )
    assert reading.blocked.tolist() == [False, True, True, True]
    assert [i.row for i in reading.doubtful] == [1]


def test_negated_flag_value_is_unclear() -> None:
    reading = read_flag_column(
        pd.Series(["not deceased", "Y", ""]), "Deceased", "deceased", any_value=False
    )
    assert reading.blocked.tolist() == [True, True, False]
    assert [i.row for i in reading.doubtful] == [0]


CRM_HEADERS = {
    "HasOptedOutOfEmail": "opted_out",
    "npsp__Deceased__c": "deceased",
    "Deceased__c": "deceased",
    "DoNotContact": "do_not_email",
    "Do Not Contact": "do_not_email",
    "EmailBouncedReason": "bounced",
    "EmailBouncedDate": "bounced",
    "Email Unsubscribed": "opted_out",
    "Email Status": "email_subscribed",
    "No Solicitation": "do_not_email",
    "Do Not Solicit": "do_not_email",
    "Email Opt Out": "opted_out",
    "Opted Out": "opted_out",
    "Unsubscribed": "opted_out",
    "Is Deceased": "deceased",
    "Bounced": "bounced",
    "Email Bounced": "bounced",
    "EMAIL_OPT_OUT": "opted_out",
    "do_not_contact__c": "do_not_email",
}


@pytest.mark.parametrize("header", sorted(CRM_HEADERS))
def test_crm_opt_out_headers_are_mapped_and_block(header: str) -> None:
    """Tester case: HasOptedOutOfEmail, npsp__Deceased__c, DoNotContact,
    EmailBouncedReason, Email Status, No Solicitation... were not recognised; each
    is mapped and 1/true/Y/Yes/a date/text blocks while a blank does not."""
    result = _import(header, ["1", "true", "Y", "Yes", "2024-05-01", "550 bad", ""])
    assert result.mapping[header] == CRM_HEADERS[header]
    assert _blocked(result) == [True] * 6 + [False]


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("Email Opt Out Date", "1/1/2024", "opted out"),
        ("Unsubscribe", "Yes", "opted out"),
        ("Email Hard Bounced", "1", "address bounced"),
        ("Primary Email Is Bad", "TRUE", "address bounced"),
        ("Date Deceased", "3/4/2021", "deceased"),
        ("Died", "2021", "deceased"),
        ("Email: Do Not Email", "Y", "do not email"),
        ("Do Not Solicit Email", "x", "do not email"),
        ("OK to Email", "No", "opted out"),
        ("GDPR Consent", "Withdrawn", "opted out"),
        ("Email Permission", "Denied", "opted out"),
        ("Deceased Spouse Flag", "1", "deceased"),  # unknown header, telling words
    ],
)
def test_second_tester_headers_block(header: str, value: str, reason: str) -> None:
    """Second tester: these do-not-contact headers were left unmapped and the
    donor could be emailed. A header naming such a flag in words is always read;
    the other donor, with the cell blank, stays emailable."""
    data = f'Name,Email,"{header}"\nJo Person,jo@example.org,{value}\n'
    data += "Al Other,al@example.org,\n"
    frame = read_donor_file(data.encode(), "flags.csv").to_frame()
    assert frame.loc[0, "blocked_reason"] == reason
    assert pd.isna(frame.loc[1, "blocked_reason"])


def test_notes_that_say_do_not_email_are_listed_for_a_person() -> None:
    """Second tester: Notes = 'DO NOT EMAIL - asked 2024' passed unnoticed. Free
    text may be about someone else, so it is listed, not turned into a flag."""
    data = b"Name,Email,Notes\nJo,jo@example.org,DO NOT EMAIL - asked 2024\n"
    data += b"Al,al@example.org,loves the community garden\n"
    result = read_donor_file(data, "notes.csv")
    assert [issue.row for issue in result.doubtful] == [1]
    assert "notes mention" in result.doubtful[0].reason
