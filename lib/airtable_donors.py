"""Airtable donor records as Steward donors: which field is what, and the mapping.

Why: a donors table in Airtable is laid out by each team (``Donor_Email`` or
``Email 2``, a checkbox or a select for opting out, currency or text for gifts). The
field mapping is suggested from field names and types, corrected by the user on the
Connect page and saved; every record pulled is then turned into the same
:class:`lib.models.Donor` the CSV import produces, keeping its Airtable record ID, so
the donor list and drafting work unchanged.

Safety first: a flag field (opted out, do not email, deceased) holding any text
that is not a clear "no" counts as set, so an unusual value never lets a donor who
asked not to be emailed through.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from typing import Any

import pandas as pd

from lib.airtable_schema import (
    TEXT_TYPES,
    FieldInfo,
    SchemaProblem,
    TableInfo,
    field_problem,
)
from lib.emails import InvalidAddress, normalise_address
from lib.importing import DONOR_COLUMNS, ImportResult, RowIssue
from lib.models import Donor

# Email fields Steward reads per record (primary, secondary, work...).
MAX_EMAIL_FIELDS = 3
NUMBER_TYPES = ("number", "currency", "percent")
COMPUTED_TYPES = ("formula", "rollup", "lookup", "multipleLookupValues")
FLAG_TYPES = ("checkbox", "singleSelect", "multipleSelects", *TEXT_TYPES)
# Flag values that clearly mean "not set"; any other non-empty value means set.
_FALSE_WORDS = {"", "no", "n", "false", "0", "none", "subscribed", "optedin", "off"}
_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class DonorMapping:
    """Airtable field name for each donor fact ("" = not in this table)."""

    full_name: str = ""
    first_name: str = ""
    last_name: str = ""
    greeting: str = ""
    salutation: str = ""
    organization: str = ""
    emails: tuple[str, ...] = ()
    opted_out: str = ""
    do_not_email: str = ""
    deceased: str = ""
    last_gift_amount: str = ""
    last_gift_date: str = ""
    lifetime_giving: str = ""
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["emails"] = list(self.emails)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DonorMapping:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: str(v or "") for k, v in data.items() if k in known and k != "emails"
        }
        emails = data.get("emails") or ()
        if isinstance(emails, str):
            emails = [emails]
        values["emails"] = tuple(str(e) for e in emails if e)[:MAX_EMAIL_FIELDS]
        return cls(**values)

    def field_names(self) -> list[str]:
        """Every mapped Airtable field (for the ``fields`` list of a read)."""
        names = [v for k, v in asdict(self).items() if k != "emails" and v]
        return list(dict.fromkeys([*self.emails, *names]))


# Steward key -> (label shown on the Connect page, accepted types, name patterns).
# A pattern is a tuple of fragments that must all occur in the squashed field name;
# earlier patterns win. Fields already taken by an earlier key are skipped.
_TEXTISH = (*TEXT_TYPES, *COMPUTED_TYPES)
_NUMERIC = (*NUMBER_TYPES, *COMPUTED_TYPES, *TEXT_TYPES)
_DATES = ("date", "dateTime", *COMPUTED_TYPES, *TEXT_TYPES)
Rule = tuple[str, str, tuple[str, ...], tuple[tuple[str, ...], ...]]
SUGGESTION_RULES: tuple[Rule, ...] = (
    ("opted_out", "Opted out", FLAG_TYPES,
     (("emailoptout",), ("optedout",), ("optout",), ("unsubscribed",), ("unsub",))),
    ("do_not_email", "Do not email", FLAG_TYPES,
     (("donotemail",), ("noemail",), ("donotcontact",), ("donotsolicit",))),
    ("deceased", "Deceased", FLAG_TYPES, (("deceased",), ("dead",))),
    ("last_gift_date", "Last gift date", _DATES,
     (("last", "gift", "date"), ("last", "donation", "date"),
      ("recent", "gift", "date"))),
    ("last_gift_amount", "Last gift amount", _NUMERIC,
     (("last", "gift", "amount"), ("last", "donation", "amount"), ("lastgift",),
      ("lastdonation",), ("recentgift",))),
    ("lifetime_giving", "Lifetime giving", _NUMERIC,
     (("lifetime",), ("total", "giving"), ("total", "given"), ("total", "gifts"),
      ("total", "donation"))),
    ("first_name", "First name", _TEXTISH,
     (("firstname",), ("givenname",), ("forename",), ("first",))),
    ("last_name", "Last name", _TEXTISH,
     (("lastname",), ("surname",), ("familyname",))),
    ("greeting", "Greeting (informal)", _TEXTISH,
     (("greeting",), ("informal",), ("nickname",), ("preferredname",), ("goesby",))),
    ("salutation", "Salutation (formal)", _TEXTISH,
     (("salutation",), ("formal",), ("addressee",))),
    ("organization", "Organization", _TEXTISH,
     (("organization",), ("organisation",), ("company",), ("employer",))),
    ("full_name", "Full name", _TEXTISH,
     (("fullname",), ("donorname",), ("contactname",), ("name",))),
    ("notes", "Notes", _TEXTISH,
     (("notes",), ("note",), ("comments",), ("background",), ("bio",))),
)  # fmt: skip
EMAIL_TYPES = ("email", *TEXT_TYPES, *COMPUTED_TYPES)
_MAIN_EMAIL_NAMES = ("email", "primaryemail", "emailaddress", "preferredemail")
_SECONDARY_MARKS = ("work", "secondary", "alternate", "other", "2", "3")
_EMAIL_EXCLUDE = (
    "opt",
    "unsub",
    "donot",
    "bounce",
    "consent",
    "status",
    "date",
    "sent",
)
FIELD_LABELS = {key: label for key, label, _t, _p in SUGGESTION_RULES}
FIELD_LABELS["emails"] = "Email"


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _email_rank(item: FieldInfo) -> int:
    """Main address fields first, then other named ones, then email-typed ones."""
    name = _squash(item.name)
    if name in _MAIN_EMAIL_NAMES:
        return 0
    if "email" not in name:
        return 3
    return 2 if any(m in name for m in _SECONDARY_MARKS) else 1


def suggest_donor_mapping(table: TableInfo) -> DonorMapping:
    """The mapping Steward guesses from the table's field names and types."""
    taken: set[str] = set()
    chosen: dict[str, Any] = {}
    email_fields = [
        f
        for f in table.fields
        if f.type in EMAIL_TYPES
        and "email" in _squash(f.name)
        and not any(x in _squash(f.name) for x in _EMAIL_EXCLUDE)
    ]
    typed = [f for f in table.fields if f.type == "email" and f not in email_fields]
    ranked = sorted([*email_fields, *typed], key=_email_rank)
    chosen["emails"] = tuple(f.name for f in ranked[:MAX_EMAIL_FIELDS])
    taken.update(chosen["emails"])
    for key, _label, types, patterns in SUGGESTION_RULES:
        for pattern in patterns:
            match = next(
                (
                    f
                    for f in table.fields
                    if f.name not in taken
                    and f.type in types
                    and all(part in _squash(f.name) for part in pattern)
                ),
                None,
            )
            if match is not None:
                chosen[key] = match.name
                taken.add(match.name)
                break
    if not chosen.get("full_name") and not chosen.get("first_name"):
        primary = next(
            (f for f in table.fields if f.id == table.primary_field_id), None
        )
        if (
            primary is not None
            and primary.name not in taken
            and primary.type in _TEXTISH
        ):
            chosen["full_name"] = primary.name
    return DonorMapping(**chosen)


def check_donor_fields(table: TableInfo, mapping: DonorMapping) -> list[SchemaProblem]:
    """Mapped fields that are missing from the donors table or can't be read."""
    problems: list[SchemaProblem] = []
    if not mapping.emails:
        problems.append(
            SchemaProblem(
                table.name,
                None,
                f'No email field of the table "{table.name}" is chosen.',
                "Choose the field(s) holding donors' addresses on the Connect page.",
            )
        )
    for name in mapping.emails:
        problem = field_problem(table, name, "donors' addresses", EMAIL_TYPES)
        if problem is not None:
            problems.append(problem)
    for key, label, types, _patterns in SUGGESTION_RULES:
        name = getattr(mapping, key)
        if name:
            problem = field_problem(table, name, label.lower(), types)
            if problem is not None:
                problems.append(problem)
    return problems


# -- values ------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None or isinstance(value, dict):  # a dict is a formula error
        return ""
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value).strip()


def flag_is_set(value: Any) -> bool:
    """True for a ticked checkbox, a non-zero number, or any text that is not a
    clear "no" (so an unexpected value errs towards not emailing)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, list):
        return any(flag_is_set(v) for v in value)
    return _squash(_text(value)) not in _FALSE_WORDS


def _amount(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    cleaned = re.sub(r"[^\d.\-]", "", _text(value))
    try:
        return float(cleaned) if cleaned else None
    except ValueError:
        return None


def _iso_date(value: Any) -> str | None:
    text = _text(value[0] if isinstance(value, list) and value else value)
    try:
        return date.fromisoformat(text[:10]).isoformat()
    except ValueError:
        return None


def addresses_in(values: Iterable[Any]) -> list[str]:
    """Every valid address in these field values, normalised, in order."""
    found: list[str] = []
    for value in values:
        for part in _ADDRESS_SPLIT.split(_text(value)):
            if not part:
                continue
            try:
                address = normalise_address(part)
            except InvalidAddress:
                continue
            if address not in found:
                found.append(address)
    return found


def record_to_donor(
    record: Mapping[str, Any], mapping: DonorMapping, row: int = 0
) -> Donor:
    """A Donor from one Airtable record (``{"id": ..., "fields": {...}}``)."""
    values: Mapping[str, Any] = record.get("fields") or {}

    def get(name: str) -> Any:
        return values.get(name) if name else None

    first, last = _text(get(mapping.first_name)), _text(get(mapping.last_name))
    organization = _text(get(mapping.organization))
    emails = addresses_in(get(name) for name in mapping.emails)
    name = (
        _text(get(mapping.full_name))
        or " ".join(p for p in (first, last) if p)
        or organization
        or (emails[0] if emails else "")
    )
    return Donor(
        name=name,
        email=emails[0] if emails else None,
        emails=emails,
        first_name=first,
        last_name=last,
        greeting=_text(get(mapping.greeting)) or first,
        salutation=_text(get(mapping.salutation)),
        organization=organization,
        record_id=str(record.get("id") or "") or None,
        last_gift_amount=_amount(get(mapping.last_gift_amount)),
        last_gift_date=_iso_date(get(mapping.last_gift_date)),
        lifetime_giving=_amount(get(mapping.lifetime_giving)),
        notes=_text(get(mapping.notes)),
        opted_out=bool(mapping.opted_out) and flag_is_set(get(mapping.opted_out)),
        do_not_email=bool(mapping.do_not_email)
        and flag_is_set(get(mapping.do_not_email)),
        deceased=bool(mapping.deceased) and flag_is_set(get(mapping.deceased)),
        rows=[row] if row else [],
    )


def records_to_donors(
    records: Sequence[Mapping[str, Any]], mapping: DonorMapping, start: int = 1
) -> list[Donor]:
    return [
        record_to_donor(record, mapping, row)
        for row, record in enumerate(records, start=start)
    ]


def _doubtful(
    record: Mapping[str, Any], mapping: DonorMapping, row: int
) -> RowIssue | None:
    """An issue when an email field holds text that is not a usable address."""
    values: Mapping[str, Any] = record.get("fields") or {}
    for name in mapping.emails:
        for part in _ADDRESS_SPLIT.split(_text(values.get(name))):
            if not part:
                continue
            try:
                normalise_address(part)
            except InvalidAddress as exc:
                return RowIssue(row, f'"{name}" holds {part!r}: {exc.reason}')
    return None


def import_result(
    records: Sequence[Mapping[str, Any]], mapping: DonorMapping, source: str
) -> ImportResult:
    """The donors of an Airtable pull as an import, for the same store and donor
    list as a CSV import (one donor per record, keyed by record ID; a record
    with a bad address is imported and listed as doubtful)."""
    donors = records_to_donors(records, mapping)
    doubtful = [
        issue
        for row, record in enumerate(records, start=1)
        if (issue := _doubtful(record, mapping, row)) is not None
    ]
    rows = []
    for donor in donors:
        values = asdict(donor)
        values["donor_key"] = donor.record_id
        rows.append({column: values.get(column) for column in DONOR_COLUMNS})
    frame = pd.DataFrame(rows, columns=list(DONOR_COLUMNS))
    used = {
        name: key for key, name in mapping.to_dict().items() if key != "emails" and name
    }
    used.update({name: "email" for name in mapping.emails})
    return ImportResult(
        frame=frame,
        rejected=[],
        doubtful=doubtful,
        encoding="",
        separator="",
        columns=list(used),
        mapping=used,
        suggested_mapping=dict(used),
        record_count=len(records),
        filename=source,
    )
