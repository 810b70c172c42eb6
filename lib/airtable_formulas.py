"""Airtable formulas built from untrusted values, safely.

Why a module: a donor's address is data, and a formula is code. An address such as
``o'brien@example.org`` or ``x') , TRUE()`` pasted into a formula unescaped would break
the lookup or, worse, turn it into "every record" and log an email on the wrong
donors. Every value goes through :func:`text_literal`; every field name through
:func:`field_ref`, which refuses names Airtable cannot reference.

Lookups are chunked so each formula stays below Airtable's 16,000 character URL
limit (limits.md); pyairtable switches to ``POST .../listRecords`` on its own when
the encoded URL would pass it.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyairtable.formulas import quoted

from lib.errors import CrmSchemaError

# Longest lookup formula Steward sends in one request: just under the 16,000
# character URL cap (limits.md). Percent-encoding makes most long formulas pass the
# cap, so pyairtable sends them by POST listRecords: fewer requests per lookup.
# Limit: Airtable documents no cap on the formula itself; if one appears, lower this.
MAX_FORMULA_CHARS = 15_000


def text_literal(value: str) -> str:
    """A formula string literal holding exactly ``value`` (quotes and backslashes
    escaped, so the value can never end the literal)."""
    return quoted(value)


def field_ref(name: str) -> str:
    """``{Field name}``. Raises CrmSchemaError for a name with a closing brace,
    which Airtable formulas cannot reference."""
    if "}" in name or not name.strip():
        raise CrmSchemaError(
            f'Steward cannot look up the Airtable field "{name}": a field name used '
            "for lookups may not contain '}' or be blank. Rename it in Airtable."
        )
    return "{" + name + "}"


def address_haystack(email_fields: Sequence[str]) -> str:
    """Every email field of a record, lower-cased and joined by spaces."""
    joined = "&' '&".join(field_ref(name) for name in email_fields)
    return f"LOWER({joined})"


def lookup_formulas(
    addresses: Sequence[str],
    email_fields: Sequence[str],
    max_chars: int = MAX_FORMULA_CHARS,
) -> list[str]:
    """Formulas that together select every record whose email fields contain one
    of ``addresses`` (already lower case). A superset: the caller keeps only
    records holding the exact address."""
    haystack = address_haystack(email_fields)
    formulas: list[str] = []
    terms: list[str] = []
    size = len("OR()")
    for address in addresses:
        term = f"FIND({text_literal(address)},{haystack})"
        if terms and size + len(term) + 1 > max_chars:
            formulas.append(f"OR({','.join(terms)})")
            terms, size = [], len("OR()")
        terms.append(term)
        size += len(term) + 1
    if terms:
        formulas.append(f"OR({','.join(terms)})")
    return formulas
