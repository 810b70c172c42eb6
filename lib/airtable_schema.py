"""Airtable's metadata API: which bases, tables and fields exist, whether the email
log table is fit to write to, and creating what is missing.

Why check the schema before writing: a renamed field or a missing select option makes
Airtable refuse a whole batch with a terse 422. Reading the schema first lets
Steward say exactly which table or field is wrong, in plain words with the fix
(case C13), before a single log row is sent, and lets the Connect page offer to
create the missing pieces when the token has schema write access.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from pyairtable import Api

from lib.airtable_client import crm_error
from lib.errors import CrmSchemaError

log = logging.getLogger(__name__)

DEFAULT_ACTIVITY_TABLE = "Email log"
SCHEMA_WRITE_SCOPE = "schema.bases:write"
# Base permission level needed to add tables and fields (Airtable's "creator").
SCHEMA_WRITE_PERMISSION = "create"

TEXT_TYPES = ("singleLineText", "multilineText", "richText")
TYPE_LABELS = {
    "singleLineText": "single line text",
    "multilineText": "long text",
    "richText": "rich text",
    "email": "email",
    "url": "URL",
    "phoneNumber": "phone number",
    "number": "number",
    "currency": "currency",
    "percent": "percent",
    "checkbox": "checkbox",
    "date": "date",
    "dateTime": "date and time",
    "singleSelect": "single select",
    "multipleSelects": "multiple select",
    "multipleRecordLinks": "link to another record",
    "formula": "formula",
    "rollup": "rollup",
    "lookup": "lookup",
    "multipleLookupValues": "lookup",
}


def type_label(kind: str) -> str:
    return TYPE_LABELS.get(kind, kind)


@dataclass(frozen=True)
class FieldInfo:
    id: str
    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def choices(self) -> tuple[str, ...]:
        """Option names of a single or multiple select field."""
        return tuple(
            str(c.get("name", "")) for c in self.options.get("choices", []) or []
        )


@dataclass(frozen=True)
class TableInfo:
    id: str
    name: str
    primary_field_id: str
    fields: tuple[FieldInfo, ...]

    def field(self, name: str) -> FieldInfo | None:
        for item in self.fields:
            if item.name == name or item.id == name:
                return item
        return None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


@dataclass(frozen=True)
class BaseInfo:
    id: str
    name: str
    permission_level: str = ""


def _field_from(payload: Mapping[str, Any]) -> FieldInfo:
    return FieldInfo(
        id=str(payload.get("id", "")),
        name=str(payload.get("name", "")),
        type=str(payload.get("type", "")),
        options=dict(payload.get("options") or {}),
    )


def _table_from(payload: Mapping[str, Any]) -> TableInfo:
    return TableInfo(
        id=str(payload.get("id", "")),
        name=str(payload.get("name", "")),
        primary_field_id=str(payload.get("primaryFieldId", "")),
        fields=tuple(_field_from(f) for f in payload.get("fields", [])),
    )


def list_bases(api: Api) -> list[BaseInfo]:
    """Every base the token can reach. Raises CrmError."""
    try:
        pages = list(api.iterate_requests("GET", api.build_url("meta/bases")))
    except requests.RequestException as exc:
        raise crm_error(exc, "list your bases") from exc
    return [
        BaseInfo(str(b["id"]), str(b.get("name", "")), str(b.get("permissionLevel")))
        for page in pages
        for b in page.get("bases", [])
    ]


def list_tables(api: Api, base_id: str) -> list[TableInfo]:
    """Tables of a base, with their fields and field types. Raises CrmError."""
    try:
        payload = api.request("GET", api.build_url("meta/bases", base_id, "tables"))
    except requests.RequestException as exc:
        raise crm_error(exc, "read the tables of the base") from exc
    return [_table_from(t) for t in payload.get("tables", [])]


def find_table(tables: Sequence[TableInfo], name_or_id: str) -> TableInfo | None:
    for table in tables:
        if name_or_id in (table.name, table.id):
            return table
    return None


def who_am_i(api: Api) -> dict[str, Any]:
    """Airtable's answer about the token (user id, maybe scopes): proves the token
    works. Raises CrmError saying what to do when it does not."""
    try:
        return dict(api.whoami())
    except requests.RequestException as exc:
        raise crm_error(exc, "check the access token") from exc


def schema_write_allowed(api: Api, base: BaseInfo | None = None) -> bool | None:
    """True when the token may add tables and fields, False when it may not, None
    when Airtable does not say (the attempt will tell)."""
    if base is not None and base.permission_level not in ("", SCHEMA_WRITE_PERMISSION):
        return False
    scopes = who_am_i(api).get("scopes")
    if scopes is None:
        return None
    return SCHEMA_WRITE_SCOPE in scopes


# -- the email log (activity) table --------------------------------------------------


@dataclass(frozen=True)
class ActivityField:
    """One field of the email log table Steward writes."""

    key: str  # Steward's name for it
    default_name: str  # the field name Steward creates and expects by default
    purpose: str
    accepted: tuple[str, ...]
    create_type: str
    required: bool = True


ACTIVITY_FIELDS: tuple[ActivityField, ...] = (
    # First: it becomes the primary field when Steward creates the table.
    ActivityField(
        "key",
        "Log Key",
        "the upsert key '<Message-ID>|<record id>' that stops duplicates",
        ("singleLineText",),
        "singleLineText",
    ),
    ActivityField(
        "donor", "Donor", "the link to the donor record", ("multipleRecordLinks",), ""
    ),
    ActivityField("subject", "Subject", "the subject", TEXT_TYPES, "singleLineText"),
    ActivityField(
        "excerpt", "Excerpt", "a short excerpt", TEXT_TYPES, "multilineText", False
    ),
    ActivityField("sent_at", "Sent At", "when it was sent", ("dateTime",), "dateTime"),
    ActivityField(
        "sender",
        "Sender",
        "who sent it",
        ("email", *TEXT_TYPES, "singleSelect"),
        "email",
    ),
    ActivityField(
        "recipient", "Recipient", "the donor's address", ("email", *TEXT_TYPES), "email"
    ),
    ActivityField(
        "mailbox_message_id",
        "Gmail Message ID",
        "the Gmail message id",
        TEXT_TYPES,
        "singleLineText",
        False,
    ),
    ActivityField(
        "thread_id",
        "Gmail Thread ID",
        "the Gmail thread id",
        TEXT_TYPES,
        "singleLineText",
        False,
    ),
    ActivityField(
        "rfc_message_id",
        "Message-ID",
        "the email's Message-ID",
        TEXT_TYPES,
        "singleLineText",
    ),
    ActivityField("opens", "Opens", "opens seen", ("number",), "number", False),
    ActivityField("clicks", "Clicks", "clicks seen", ("number",), "number", False),
)


def activity_field_names(saved: Mapping[str, str] | None = None) -> dict[str, str]:
    """Steward's key -> Airtable field name, the saved choices over the defaults."""
    names = {f.key: f.default_name for f in ACTIVITY_FIELDS}
    for key, value in (saved or {}).items():
        if key in names and value:
            names[key] = str(value)
    return names


def _create_spec(spec: ActivityField, name: str, donors_table_id: str) -> dict:
    if spec.key == "donor":
        return {
            "name": name,
            "type": "multipleRecordLinks",
            "options": {"linkedTableId": donors_table_id},
        }
    options: dict[str, Any] | None = None
    if spec.create_type == "dateTime":
        options = {
            "dateFormat": {"name": "iso"},
            "timeFormat": {"name": "24hour"},
            "timeZone": "utc",
        }
    elif spec.create_type == "number":
        options = {"precision": 0}
    body: dict[str, Any] = {"name": name, "type": spec.create_type}
    if options:
        body["options"] = options
    return body


@dataclass(frozen=True)
class SchemaProblem:
    """One thing wrong with a table, in words, with the fix."""

    table: str
    field: str | None  # None: the table itself is missing
    message: str
    fix: str
    blocking: bool = True
    create: dict | None = None  # what "Create missing fields" would send

    @property
    def text(self) -> str:
        return f"{self.message} {self.fix}"


def _close_name(name: str, candidates: Sequence[str]) -> str | None:
    """A field name that looks like ``name`` (renamed, spaces vs underscores)."""

    def squash(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    for candidate in candidates:
        if squash(candidate) == squash(name):
            return candidate
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.8)
    return close[0] if close else None


def field_problem(
    table: TableInfo, name: str, purpose: str, accepted: Sequence[str]
) -> SchemaProblem | None:
    """A problem when ``table`` lacks field ``name`` or it has a type not in
    ``accepted``; None when the field is fine."""
    found = table.field(name)
    wanted = " or ".join(type_label(t) for t in accepted)
    if found is None:
        close = _close_name(name, table.field_names)
        hint = (
            f' It has a field "{close}": rename one of them in Airtable, or choose '
            f'"{close}" on the Connect page.'
            if close
            else ""
        )
        return SchemaProblem(
            table.name,
            name,
            f'The Airtable table "{table.name}" has no field "{name}" ({purpose}).'
            + hint,
            f'Add a {wanted} field named "{name}" in Airtable, or click "Create '
            'missing fields" on the Connect page.',
        )
    if found.type not in accepted:
        return SchemaProblem(
            table.name,
            name,
            f'The field "{name}" in "{table.name}" is a {type_label(found.type)} '
            f"field; Steward needs a {wanted} field for {purpose}.",
            "Change its type in Airtable, or choose another field on the Connect page.",
        )
    return None


def check_activity_table(
    tables: Sequence[TableInfo],
    activity_table: str,
    donors_table: TableInfo,
    field_names: Mapping[str, str] | None = None,
) -> list[SchemaProblem]:
    """Everything that stops Steward logging emails in ``activity_table``.

    Optional fields that are missing come back with ``blocking=False``: the log
    is written without them.
    """
    names = activity_field_names(field_names)
    table = find_table(tables, activity_table)
    if table is None:
        fields = [
            _create_spec(spec, names[spec.key], donors_table.id)
            for spec in ACTIVITY_FIELDS
        ]
        listing = ", ".join(
            f"{names[s.key]} ({type_label(s.create_type or 'multipleRecordLinks')})"
            for s in ACTIVITY_FIELDS
        )
        return [
            SchemaProblem(
                activity_table,
                None,
                f'The Airtable base has no table "{activity_table}" for the email log.',
                'Click "Create missing fields" on the Connect page, or create it in '
                f"Airtable with these fields: {listing}.",
                create={"name": activity_table, "fields": fields},
            )
        ]
    problems: list[SchemaProblem] = []
    for spec in ACTIVITY_FIELDS:
        name = names[spec.key]
        problem = field_problem(table, name, spec.purpose, spec.accepted)
        if problem is not None:
            if table.field(name) is None:
                problem = SchemaProblem(
                    problem.table,
                    problem.field,
                    problem.message,
                    problem.fix,
                    blocking=spec.required,
                    create=_create_spec(spec, name, donors_table.id),
                )
            problems.append(problem)
            continue
        found = table.field(name)
        if spec.key == "donor" and found is not None:
            linked = found.options.get("linkedTableId")
            if linked and linked != donors_table.id:
                target = next((t.name for t in tables if t.id == linked), linked)
                problems.append(
                    SchemaProblem(
                        table.name,
                        name,
                        f'The field "{name}" in "{table.name}" links to the table '
                        f'"{target}", not to the donors table "{donors_table.name}".',
                        "Point it at the donors table in Airtable, or choose another "
                        "link field on the Connect page.",
                    )
                )
    return problems


def schema_error(problems: Sequence[SchemaProblem]) -> CrmSchemaError:
    """One error naming every blocking problem and its fix."""
    blocking = [p for p in problems if p.blocking] or list(problems)
    return CrmSchemaError(
        " ".join(p.text for p in blocking), detail=[p.text for p in blocking]
    )


def create_missing(
    api: Api,
    base_id: str,
    tables: Sequence[TableInfo],
    problems: Sequence[SchemaProblem],
) -> list[str]:
    """Create the missing table or fields the problems describe; return what was
    created, in words. Wrong types are never changed. Raises CrmError (403 when
    the token has no schema write access)."""
    created: list[str] = []
    for problem in problems:
        if problem.create is None:
            continue
        try:
            if problem.field is None:
                api.request(
                    "POST",
                    api.build_url("meta/bases", base_id, "tables"),
                    json=problem.create,
                )
                created.append(f'table "{problem.table}"')
                continue
            table = find_table(tables, problem.table)
            if table is None:
                continue
            api.request(
                "POST",
                api.build_url("meta/bases", base_id, "tables", table.id, "fields"),
                json=problem.create,
            )
            created.append(f'field "{problem.field}" in "{problem.table}"')
        except requests.RequestException as exc:
            raise crm_error(exc, f"create {problem.field or problem.table}") from exc
    log.info("created %d missing Airtable table(s)/field(s)", len(created))
    return created
