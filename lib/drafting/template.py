"""The mail-merge drafter: a Jinja2 template filled in with each donor's record.

Why a sandboxed Jinja environment with StrictUndefined: the template is typed on a
page, so it must not reach Python internals (``{{ ''.__class__ }}``) or build huge
strings, and a typo like ``{{ frist_name }}`` must stop with a message naming the
variable instead of quietly writing "Dear ,". Donor values are passed in as
variables, never pasted into the template text, so a name like ``{{ 7*7 }}`` is
printed as it is and never evaluated. Autoescape is off because the body is plain
text; lib.message escapes it when it builds the HTML part.

The first template line is ``Subject: …``; the subject is rendered on its own and
folded onto one line, so a line break in donor data cannot start the body early.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from lib.drafting.base import CampaignBrief, DraftResult, ProgressCallback
from lib.errors import DraftError
from lib.models import Donor

# A rendered draft longer than this is a template mistake (a runaway loop).
MAX_DRAFT_CHARS = 50_000
# Bounds for "*" and "**" inside a template (the sandbox does not bound them).
MAX_REPEAT = 10_000
MAX_EXPONENT = 100

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CAD": "CA$", "AUD": "A$"}

DEFAULT_TEMPLATE = """\
Subject: {% if campaign %}{{ campaign }}: thank you, {{ greeting }}\
{% else %}Thank you, {{ greeting }}{% endif %}
Dear {{ greeting }},

{% if last_gift_amount and last_gift_date %}
Thank you for your generous gift of {{ last_gift_amount }} on {{ last_gift_date }}.
{% elif last_gift_amount %}
Thank you for your generous gift of {{ last_gift_amount }}.
{% else %}
Thank you for being part of our community of supporters.
{% endif %}

{% if lifetime_giving %}
Over the years you have given {{ lifetime_giving }} in all, and every gift has \
made a real difference.
{% endif %}

{% if note %}
{{ note }}

{% endif %}
{% if campaign %}
I hope you will join us again for {{ campaign }}.

{% endif %}
With gratitude,
{% if signature %}
{{ signature }}
{% endif %}
"""

_SUBJECT_LINE = re.compile(r"[ \t]*subject[ \t]*:[ \t]?(.*)", re.IGNORECASE)


class _Environment(SandboxedEnvironment):
    """The sandbox, plus limits on string/list repetition and powers."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and right > MAX_EXPONENT:
            raise SecurityError(f"the power {right} is too large")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    if len(seq) * times > MAX_REPEAT:
                        raise SecurityError("the repetition is too long")
        return super().call_binop(context, operator, left, right)


_ENV = _Environment(
    undefined=StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
# A letter needs no big loops: range() is capped per render and lipsum (which can
# be asked for a million paragraphs) is gone, so a template cannot pin the CPU
# with generated sequences (a tester froze drafting with nested range loops).
MAX_RANGE_ITEMS = 1_000
_range_budget = threading.local()


def _capped_range(*args: int) -> range:
    numbers = range(*args)
    used = getattr(_range_budget, "used", 0) + len(numbers)
    if used > MAX_RANGE_ITEMS:
        raise SecurityError(
            f"range() may produce at most {MAX_RANGE_ITEMS:,} numbers per draft"
        )
    _range_budget.used = used
    return numbers


_ENV.globals["range"] = _capped_range
_ENV.globals.pop("lipsum", None)


def format_money(amount: float | None, currency: str | None = None) -> str | None:
    """ "$1,234.50" (or "$500" for a whole amount); None when there is no positive
    amount. Currencies without a symbol here read "1,234.50 CHF"."""
    if amount is None or not math.isfinite(amount) or amount <= 0:
        return None
    text = f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"
    code = (currency or "USD").upper()
    symbol = CURRENCY_SYMBOLS.get(code)
    return f"{symbol}{text}" if symbol else f"{text} {code}"


def format_date(iso: str | None) -> str | None:
    """ "March 5, 2024" for an ISO date; None when absent or not a date."""
    try:
        day = date.fromisoformat((iso or "").strip()[:10])
    except ValueError:
        return None
    return f"{day:%B} {day.day}, {day.year}"


_INITIAL = re.compile(r"\w\.?", re.UNICODE)


def greeting_for(donor: Donor) -> str:
    """How the letter opens: greeting, else salutation, first name, name, "Friend".

    An email address (an email-only subscriber's "name") or a lone initial ("D.")
    is never used to greet anyone.
    """
    for value in (donor.greeting, donor.salutation, donor.first_name, donor.name):
        text = " ".join((value or "").split())
        if text and "@" not in text and not _INITIAL.fullmatch(text):
            return text
    return "Friend"


def donor_context(donor: Donor, brief: CampaignBrief) -> dict[str, Any]:
    """The variables a template can use for one donor."""
    return {
        "greeting": greeting_for(donor),
        "name": donor.name,
        "first_name": donor.first_name,
        "last_name": donor.last_name,
        "salutation": donor.salutation,
        "organization": donor.organization,
        "last_gift_amount": format_money(donor.last_gift_amount, donor.currency),
        "last_gift_date": format_date(donor.last_gift_date),
        "lifetime_giving": format_money(donor.lifetime_giving, donor.currency),
        "gift_count": donor.gift_count,
        "campaign": (brief.campaign or donor.campaign or "").strip(),
        "note": (brief.note or "").strip(),
        "signature": (brief.signature or "").strip(),
        "tone": brief.tone,
    }


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return text if text.endswith(".") else text + "."


def _compile(text: str, what: str) -> Template:
    try:
        return _ENV.from_string(text)
    except TemplateSyntaxError as exc:
        raise DraftError(
            f"The template has a mistake on line {exc.lineno}: "
            f"{_sentence(exc.message)} {what}"
        ) from exc


def compile_template(text: str) -> tuple[Template, Template]:
    """The subject and body templates of ``text``.

    Raises DraftError naming the line of a syntax error, or when the first line is
    not "Subject: …".
    """
    _compile(text, "Fix it and preview again.")
    first, _, rest = text.partition("\n")
    match = _SUBJECT_LINE.fullmatch(first.rstrip("\r"))
    if match is None:
        raise DraftError(
            'The template\'s first line must be the subject, as "Subject: …".'
        )
    keep = "Keep the Subject line complete on its own line."
    # The leading newline keeps the body's line numbers those of the whole text.
    return _compile(match.group(1), keep), _compile("\n" + rest, keep)


def _too_long() -> DraftError:
    return DraftError(
        f"The template produced more than {MAX_DRAFT_CHARS:,} characters; "
        "check it for a runaway loop."
    )


def _render(template: Template, context: dict[str, Any]) -> str:
    """Render, stopping as soon as the output passes MAX_DRAFT_CHARS."""
    # Limit: a loop that prints nothing can still keep a render busy for long.
    parts: list[str] = []
    size = 0
    _range_budget.used = 0
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_DRAFT_CHARS:
                raise _too_long()
            parts.append(chunk)
        return "".join(parts)
    except UndefinedError as exc:
        raise DraftError(
            f"The template uses something Steward does not know "
            f"({_sentence(exc.message).rstrip('.')}). "
            f"Use one of: {', '.join(sorted(context))}."
        ) from exc
    except SecurityError as exc:
        raise DraftError(
            f"The template is not allowed to do that: {_sentence(str(exc))}"
        ) from exc
    except (TemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise DraftError(
            f"The template failed for this donor: {_sentence(str(exc))}"
        ) from exc


def render_draft(
    templates: tuple[Template, Template], donor: Donor, brief: CampaignBrief
) -> tuple[str, str]:
    """Subject and body for one donor. Raises DraftError."""
    context = donor_context(donor, brief)
    subject = " ".join(_render(templates[0], context).split())
    body = _render(templates[1], context).removeprefix("\n")
    body = "\n".join(line.rstrip() for line in body.splitlines())
    body = re.sub(r"\n{3,}", "\n\n", body).strip("\n") + "\n"
    if len(subject) + len(body) > MAX_DRAFT_CHARS:
        raise _too_long()
    if not subject:
        raise DraftError("The template produced an empty subject for this donor.")
    return subject, body


def render_preview(
    template: str | None, donor: Donor, brief: CampaignBrief
) -> tuple[str, str]:
    """Subject and body ``template`` (the default one when None) gives ``donor``.

    Raises DraftError with the line number of a syntax error, the unknown
    variable of a typo, or what else went wrong.
    """
    return render_draft(compile_template(template or DEFAULT_TEMPLATE), donor, brief)


def _facts(donor: Donor, brief: CampaignBrief) -> list[str]:
    context = donor_context(donor, brief)
    labels = {
        "last_gift_amount": "last gift",
        "last_gift_date": "last gift date",
        "lifetime_giving": "lifetime giving",
    }
    return [f"{label}: {context[key]}" for key, label in labels.items() if context[key]]


class TemplateDrafter:
    """Drafts every donor from one template: instant, free and offline."""

    name = "template"

    def __init__(self, template: str | None = None) -> None:
        self.template = template

    def draft_many(
        self,
        donors: Sequence[Donor],
        brief: CampaignBrief,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[DraftResult]:
        """One result per donor, in order; fewer when ``cancelled`` says stop.

        A donor the template fails for gets a result with ``error``. Raises
        DraftError when the template itself does not compile.
        """
        templates = compile_template(
            brief.template or self.template or DEFAULT_TEMPLATE
        )
        results: list[DraftResult] = []
        failed = 0
        for donor in donors:
            if cancelled is not None and cancelled():
                break
            donor_id = int(donor.id or 0)
            try:
                subject, body = render_draft(templates, donor, brief)
            except DraftError as exc:
                failed += 1
                results.append(DraftResult(donor_id=donor_id, error=str(exc)))
            else:
                results.append(
                    DraftResult(
                        donor_id=donor_id,
                        subject=subject,
                        body=body,
                        facts=_facts(donor, brief),
                    )
                )
            if progress is not None:
                progress(len(results), failed, len(donors))
        return results
