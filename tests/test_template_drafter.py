"""The template drafter: the default letter, formatting, and template safety."""

from __future__ import annotations

import pytest

from lib.drafting.base import CampaignBrief
from lib.drafting.template import (
    DEFAULT_TEMPLATE,
    TemplateDrafter,
    format_date,
    format_money,
    greeting_for,
    render_preview,
)
from lib.errors import DraftError
from lib.models import Donor

BRIEF = CampaignBrief(
    campaign="Spring Appeal",
    note="This spring we open a second food pantry.",
    signature="Maria Ortiz\nDevelopment Director",
)


def donor(**fields: object) -> Donor:
    base: dict[str, object] = {"name": "Margaret Whitcombe", "id": 7}
    base.update(fields)
    return Donor(**base)  # type: ignore[arg-type]


def test_default_template_writes_a_complete_letter() -> None:
    subject, body = render_preview(
        None,
        donor(
            greeting="Peggy",
            last_gift_amount=1234.5,
            last_gift_date="2024-03-05",
            lifetime_giving=5000,
        ),
        BRIEF,
    )
    assert subject == "Spring Appeal: thank you, Peggy"
    assert body.startswith("Dear Peggy,\n\n")
    assert "your generous gift of $1,234.50 on March 5, 2024." in body
    assert "$5,000 in all" in body
    assert "This spring we open a second food pantry." in body
    assert body.endswith("With gratitude,\nMaria Ortiz\nDevelopment Director\n")
    assert "\n\n\n" not in body


def test_missing_gift_facts_are_left_out_gracefully() -> None:
    subject, body = render_preview(None, donor(first_name="Ann"), CampaignBrief())
    assert subject == "Thank you, Ann"
    assert "$" not in body and "None" not in body
    assert "Thank you for being part of our community" in body
    _subject, body = render_preview(
        None, donor(last_gift_amount=50.0, last_gift_date="not a date"), BRIEF
    )
    assert "gift of $50." in body and "not a date" not in body


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"greeting": "Don and Maura", "salutation": "Mr. Doe"}, "Don and Maura"),
        ({"salutation": "Mrs. Whitcombe", "first_name": "Peggy"}, "Mrs. Whitcombe"),
        ({"first_name": "Peggy"}, "Peggy"),
        ({}, "Margaret Whitcombe"),
        ({"name": "  "}, "Friend"),
    ],
)
def test_greeting_fallbacks(fields: dict[str, str], expected: str) -> None:
    assert greeting_for(donor(**fields)) == expected


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1234.5, None, "$1,234.50"),
        (500.0, "usd", "$500"),
        (99.99, "EUR", "€99.99"),
        (1000000, "CHF", "1,000,000 CHF"),
        (None, None, None),
        (0, None, None),
        (float("nan"), None, None),
    ],
)
def test_format_money(
    amount: float | None, currency: str | None, expected: str | None
) -> None:
    assert format_money(amount, currency) == expected


def test_format_date() -> None:
    assert format_date("2024-03-05") == "March 5, 2024"
    assert format_date("2023-12-31T10:00:00") == "December 31, 2023"
    assert format_date("05/03/2024") is None
    assert format_date(None) is None


def test_donor_values_with_template_syntax_are_data() -> None:
    sneaky = donor(
        first_name="{{ 7*7 }}",
        name="{% for x in range(3) %}x{% endfor %}",
        greeting="{{ ''.__class__ }}",
    )
    brief = CampaignBrief(campaign="{{ campaign }}", note="{{ 6*7 }} {% raw %}")
    subject, body = render_preview(
        "Subject: {{ first_name }} {{ campaign }}\n"
        "{{ name }} {{ greeting }} {{ note }}",
        sneaky,
        brief,
    )
    assert subject == "{{ 7*7 }} {{ campaign }}"
    assert body == (
        "{% for x in range(3) %}x{% endfor %} {{ ''.__class__ }} {{ 6*7 }} {% raw %}\n"
    )


def test_a_line_break_in_donor_data_cannot_leave_the_subject() -> None:
    subject, body = render_preview(
        None, donor(greeting="Ann\r\nX-Injected: yes"), CampaignBrief()
    )
    assert subject == "Thank you, Ann X-Injected: yes"
    assert "\r" not in subject and "\n" not in subject


def test_a_typo_names_the_variable() -> None:
    with pytest.raises(DraftError, match="frist_name"):
        render_preview("Subject: Hi\nDear {{ frist_name }},", donor(), BRIEF)


def test_a_syntax_error_gives_the_line_number() -> None:
    template = "Subject: Hi\nDear {{ greeting }},\n\n{% if note %}\n{{ note }}\n"
    with pytest.raises(DraftError, match="line 5"):
        render_preview(template, donor(), BRIEF)
    with pytest.raises(DraftError, match="line 3"):
        render_preview("Subject: Hi\nfine\n{{ greeting ", donor(), BRIEF)


def test_the_first_line_must_be_the_subject() -> None:
    with pytest.raises(DraftError, match="Subject"):
        render_preview("Dear {{ greeting }},", donor(), BRIEF)
    with pytest.raises(DraftError, match="empty subject"):
        render_preview("Subject: {{ organization }}\nHello", donor(), BRIEF)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ greeting.__init__.__globals__ }}",
        "{{ 'x' * 10000000 }}",
        "{{ 10 ** 100000 }}",
    ],
)
def test_the_sandbox_refuses_dangerous_templates(expression: str) -> None:
    with pytest.raises(DraftError, match="not allowed"):
        render_preview(f"Subject: Hi\n{expression}", donor(), BRIEF)


def test_draft_many_reports_progress_errors_and_cancel() -> None:
    donors = [donor(id=i, first_name=f"D{i}", gift_count=i % 2) for i in range(1, 5)]
    template = "Subject: Hello {{ greeting }}\n{{ 10 // gift_count }} per gift"
    seen: list[tuple[int, int, int]] = []
    results = TemplateDrafter(template).draft_many(
        donors, CampaignBrief(), progress=lambda *p: seen.append(p)
    )
    assert [r.donor_id for r in results] == [1, 2, 3, 4]
    assert [r.error is None for r in results] == [True, False, True, False]
    assert "failed for this donor" in (results[1].error or "")
    assert results[0].subject == "Hello D1" and results[0].body == "10 per gift\n"
    assert seen[-1] == (4, 2, 4)
    calls = iter([False, False, True])
    partial = TemplateDrafter().draft_many(
        donors, BRIEF, cancelled=lambda: next(calls, True)
    )
    assert [r.donor_id for r in partial] == [1, 2]


def test_brief_template_wins_and_facts_are_listed() -> None:
    drafter = TemplateDrafter("Subject: drafter's\nbody")
    assert drafter.name == "template"
    (result,) = drafter.draft_many(
        [donor(last_gift_amount=25.0)], CampaignBrief(template="Subject: brief's\nb")
    )
    assert result.subject == "brief's"
    assert result.facts == ["last gift: $25"]
    (default,) = TemplateDrafter().draft_many([donor()], BRIEF)
    assert default.subject == "Spring Appeal: thank you, Margaret Whitcombe"


def test_a_broken_template_stops_the_run_before_any_donor() -> None:
    with pytest.raises(DraftError, match="line 2"):
        TemplateDrafter("Subject: x\n{% endif %}").draft_many([donor()], BRIEF)


def test_default_template_compiles() -> None:
    assert DEFAULT_TEMPLATE.startswith("Subject: ")
    render_preview(DEFAULT_TEMPLATE, donor(), CampaignBrief())


def test_a_runaway_loop_is_stopped_early() -> None:
    template = "Subject: Hi\n{% for i in range(900) %}{{ 'x' * 9999 }}{% endfor %}"
    with pytest.raises(DraftError, match="runaway loop"):
        render_preview(template, donor(), BRIEF)


def test_greeting_never_uses_an_address_or_a_lone_initial() -> None:
    """Mailchimp email-only subscriber (record 6) and NPSP's 'D.' (record 15)."""
    from lib.drafting.template import greeting_for

    subscriber = Donor(name="reader1987@example.net", email="reader1987@example.net")
    assert greeting_for(subscriber) == "Friend"
    initial = Donor(name="", first_name="D.", last_name="Murphy-Oyelaran")
    assert greeting_for(initial) == "Friend"
    assert greeting_for(Donor(name="Peggy Yoon", greeting="Peggy")) == "Peggy"


def test_generated_loops_cannot_pin_the_cpu() -> None:
    """Tester: nested range(100000) loops froze drafting; lipsum(1000000) took 75 s."""
    nested = (
        "Subject: Hi\n{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% endfor %}{% endfor %}Dear {{ greeting }}"
    )
    with pytest.raises(DraftError, match="range"):
        render_preview(nested, donor(), BRIEF)
    with pytest.raises(DraftError):
        render_preview("Subject: Hi\n{{ lipsum(1000000) }}", donor(), BRIEF)
    small = "Subject: Hi\n{% for i in range(3) %}{{ i }}{% endfor %} {{ greeting }}"
    assert render_preview(small, donor(), BRIEF)[1].startswith("012 ")
