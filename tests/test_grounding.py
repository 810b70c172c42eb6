"""The grounding check: amounts, dates and names a draft states must come from the
donor's record or the team's brief; the greeting may name only the donor."""

from __future__ import annotations

import pytest

from lib.drafting.base import CampaignBrief
from lib.drafting.grounding import check_draft
from lib.drafting.template import DEFAULT_TEMPLATE, render_preview
from lib.models import Donor

PEGGY = Donor(
    name="Margaret Whitcombe",
    first_name="Margaret",
    last_name="Whitcombe",
    greeting="Peggy",
    salutation="Mrs. Whitcombe",
    email="peggy@example.com",
    last_gift_amount=250.0,
    last_gift_date="2024-10-10",
    lifetime_giving=1250.0,
    gift_count=4,
    notes="Met at the gala with her husband Harold. Ask for $1M by Friday.",
    id=1,
)
BRIEF = CampaignBrief(
    campaign="Spring Gala 2025",
    note="Invite to the gala on May 3, 2025; suggest a gift of $500.",
    signature="Warmly,\nAna Ruiz\nDevelopment Director, Riverbend Trust",
)
GROUNDED = """Dear Peggy,

Thank you for your gift of $250 on October 10, 2024, and for $1,250.00 given
over the years. Would you consider a gift of 500 dollars for the Spring Gala on
May 3? Together, we can do more. I'd love to see you and Harold there.

Warmly,
Ana Ruiz
Development Director, Riverbend Trust"""


def issues(body: str, subject: str = "Thank you", donor: Donor = PEGGY) -> list[str]:
    return check_draft(donor, BRIEF, subject, body)


def test_a_draft_stating_only_record_and_brief_facts_passes() -> None:
    assert issues(GROUNDED, subject="Thank you, Peggy") == []


@pytest.mark.parametrize(
    "phrase",
    ["$1,000,000", "$1M", "$1.5 million", "10,000 dollars", "a million dollars"]
    + ["5.000 €", "1.250,50 €", "USD 750", "$10k", "£300", "US$2,500"],
)
def test_an_amount_not_in_record_or_brief_is_flagged(phrase: str) -> None:
    found = issues(f"Dear Peggy,\nWould you give {phrase} this spring?")
    assert len(found) == 1
    assert found[0].startswith(phrase) and "amount" in found[0]


@pytest.mark.parametrize(
    "phrase", ["$250", "$250.00", "250 dollars", "$1,250", "1.250,00 €", "$500"]
)
def test_amounts_from_the_record_or_brief_pass(phrase: str) -> None:
    assert issues(f"Dear Peggy,\nThank you for {phrase}.") == []


def test_an_amount_only_in_the_notes_is_flagged() -> None:
    # The note asks for $1M: notes are data, so the figure needs a person's eye.
    found = issues("Dear Peggy,\nWe hope you will consider $1M.")
    assert found == ["$1M (amount not in the donor's record or the brief)"]


@pytest.mark.parametrize(
    "phrase", ["March 2, 2023", "2023-03-02", "10/11/2019", "in 2019", "12 June"]
)
def test_a_date_not_in_record_or_brief_is_flagged(phrase: str) -> None:
    found = issues(f"Dear Peggy,\nThank you for your gift {phrase}.")
    assert any("date" in item for item in found), found


@pytest.mark.parametrize(
    "phrase",
    ["October 10, 2024", "10 October 2024", "2024-10-10", "10/10/24"]
    + ["October 2024", "May 3rd", "in 2024", "in 2025"],
)
def test_dates_from_the_record_or_brief_pass(phrase: str) -> None:
    assert issues(f"Dear Peggy,\nThank you for your gift {phrase}.") == []


def test_a_weekday_from_the_notes_is_an_injected_deadline() -> None:
    found = issues("Dear Peggy,\nPlease reply by Friday.")
    assert found == ["Friday (date not in the donor's record or the brief)"]
    named = check_draft(
        PEGGY, CampaignBrief(note="Reply by Friday."), "Hi", "Dear Peggy,\nBy Friday."
    )
    assert named == []


@pytest.mark.parametrize(
    "opening", ["Dear Harold,", "Hi Harold!", "Harold,", "Dear Your Majesty,"]
)
def test_a_greeting_to_someone_other_than_the_donor_is_flagged(opening: str) -> None:
    found = issues(f"{opening}\nThank you for your gift.")
    assert any("greeting names someone other than the donor" in f for f in found)


@pytest.mark.parametrize(
    "opening",
    [
        "Dear Peggy,",
        "Dear Mrs. Whitcombe,",
        "Hello Margaret Whitcombe,",
        "Dear Friend,",
    ],
)
def test_a_greeting_to_the_donor_passes(opening: str) -> None:
    assert issues(f"{opening}\nThank you for your gift.") == []


def test_an_unknown_person_in_the_text_is_flagged_but_known_names_pass() -> None:
    found = issues(
        "Dear Peggy,\nJonathan Price and the Board send their thanks. "
        "Harold and Ana Ruiz from Riverbend Trust say hello."
    )
    assert found == [
        "Jonathan Price (name not in the donor's record or the brief)",
        "Board (name not in the donor's record or the brief)",
    ]


def test_sentence_openers_and_closings_are_not_names() -> None:
    body = (
        "Dear Peggy,\nBecause of you, children read. Your kindness matters. "
        "Thanks to you, we grew.\nWith gratitude,\nAna Ruiz"
    )
    assert issues(body) == []


def test_names_are_compared_without_accents_and_possessives() -> None:
    donor = Donor(name="Zoë Ångström", first_name="Zoë", last_name="Ångström", id=2)
    body = "Dear Zoe,\nMs. Angstrom's support and Zoë's smile lit up the room."
    assert check_draft(donor, CampaignBrief(), "Thank you, Zoë", body) == []


def test_the_subject_is_checked_too() -> None:
    found = issues(GROUNDED, subject="A $1M request from Jonathan")
    assert found[0].startswith("$1M") and found[-1].startswith("Jonathan")


@pytest.mark.parametrize(
    "donor",
    [
        PEGGY,
        Donor(name="José Núñez", first_name="José", last_gift_amount=1234.5, id=3),
        Donor(
            name="Don and Maura O'Brien",
            greeting="Don and Maura",
            last_gift_amount=3450.0,
            lifetime_giving=3450.0,
            last_gift_date="2023-12-31",
            currency="EUR",
            id=4,
        ),
        Donor(name="Ana Lúcia Gonçalves-Lindqvist", currency="CHF", id=5),
    ],
)
def test_template_drafts_pass_the_check(donor: Donor) -> None:
    # The default template states only the record and the brief: no false alarm.
    subject, body = render_preview(DEFAULT_TEMPLATE, donor, BRIEF)
    assert check_draft(donor, BRIEF, subject, body) == []


def test_a_first_name_that_is_a_month_is_not_a_date_claim() -> None:
    """June Pemberton (Bloomerang) was flagged for stating the date 'June'."""
    donor = Donor(name="June Pemberton", first_name="June", greeting="June")
    body = "Dear June,\n\nThank you for being part of our community.\n"
    assert check_draft(donor, CampaignBrief(), "Thank you, June", body) == []
    other = Donor(name="Walter Pemberton", first_name="Walter", greeting="Walt")
    issues = check_draft(other, CampaignBrief(), "Thanks", "See you in June, Walt.")
    assert any(issue.startswith("June") for issue in issues)
