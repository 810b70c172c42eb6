"""A local Airtable for tests and the benchmark: the real pyairtable client talks to
it over HTTP on 127.0.0.1 (``Api(token, endpoint_url=server.url)``).

It serves the paths Steward uses, with Airtable's rules as limits.md states them:

- records: list (GET, and POST ``listRecords``) with ``pageSize`` <= 100 and
  ``offset`` paging, ``filterByFormula`` evaluated per record (tests/fakes/
  airtable_formula.py), ``fields``; get one record; create, update and upsert
  (``performUpsert.fieldsToMergeOn``, 1 to 3 fields) of at most 10 records;
- metadata: whoami with scopes, list bases, tables with fields and types, create
  table and field (403 without ``schema.bases:write``);
- refusals: 401 for a wrong token, 414 for a URL over 16,000 characters, 422 for a
  batch over 10, an unknown field, a value of the wrong type or a select option
  that does not exist (unless ``typecast``), a link to a missing record, a bad
  formula; 429 when a base gets more than ``rate`` requests in ``window_s``, and
  then for ``penalty_s`` more (Airtable's 30 seconds);
- every request is recorded in ``requests``; anything it does not serve goes to
  ``unexpected`` (tests end by checking it is empty).

Writes are atomic per request: a 422 leaves the table as it was.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.fakes.airtable_formula import FormulaError, compile_formula, truthy

MAX_RECORDS_PER_WRITE = 10
MAX_PAGE_SIZE = 100
MAX_URL_LENGTH = 16_000
TEXT = {"singleLineText", "multilineText", "richText", "email", "url", "phoneNumber"}
NUMBERS = {"number", "currency", "percent", "rating", "duration"}
COMPUTED = {
    "formula",
    "rollup",
    "lookup",
    "multipleLookupValues",
    "autoNumber",
    "createdTime",
    "lastModifiedTime",
    "count",
}
KNOWN_TYPES = (
    TEXT
    | NUMBERS
    | COMPUTED
    | {
        "checkbox",
        "date",
        "dateTime",
        "singleSelect",
        "multipleSelects",
        "multipleRecordLinks",
    }
)
PRIMARY_TYPES = TEXT | {"number", "date", "dateTime", "formula", "autoNumber"}


def new_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(14))


class ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str = "") -> None:
        super().__init__(message or kind)
        self.status, self.kind, self.message = status, kind, message or kind


@dataclass
class FakeField:
    id: str
    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.name, "type": self.type}
        if self.options:
            body["options"] = self.options
        return body


@dataclass
class FakeTable:
    id: str
    name: str
    fields: list[FakeField]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # insertion order

    def field(self, name: str) -> FakeField | None:
        return next((f for f in self.fields if f.name == name or f.id == name), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "primaryFieldId": self.fields[0].id,
            "fields": [f.as_json() for f in self.fields],
            "views": [],
        }


@dataclass
class FakeBase:
    id: str
    name: str
    permission_level: str = "create"
    tables: list[FakeTable] = field(default_factory=list)

    def table(self, name_or_id: str) -> FakeTable | None:
        return next((t for t in self.tables if name_or_id in (t.id, t.name)), None)


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    status: int
    base: str = ""
    records: int = 0  # records in a write
    returned: int = 0  # records in a list answer
    formula: str | None = None
    url_length: int = 0
    at: float = 0.0


class FakeAirtable:
    """The server state and its WSGI app; use :func:`running` to serve it."""

    def __init__(
        self,
        token: str = "patSTEWARDTEST.0000",
        *,
        rate: int = 5,
        window_s: float = 1.0,
        penalty_s: float = 30.0,
        scopes: Sequence[str] = (
            "data.records:read",
            "data.records:write",
            "schema.bases:read",
            "schema.bases:write",
        ),
        max_requests: int = 20_000,
    ) -> None:
        self.token = token
        self.rate, self.window_s, self.penalty_s = rate, window_s, penalty_s
        self.scopes: list[str] | None = list(scopes)
        self.max_requests = max_requests
        self.bases: list[FakeBase] = []
        self.requests: list[Seen] = []
        self.unexpected: list[str] = []
        self.other_failures = 0
        self._arrivals: dict[str, deque[float]] = {}
        self._penalty_until: dict[str, float] = {}
        self._offsets: dict[str, tuple[str, list[str], int]] = {}
        self._lock = threading.RLock()
        self.url = ""
        # Called with (method, path) before each request: lets a test start a rate
        # limit or change the schema at an exact point of a client's work.
        self.hook: Callable[[str, str], None] | None = None

    # -- test helpers --------------------------------------------------------------

    def add_base(self, name: str = "Development", permission: str = "create") -> str:
        with self._lock:
            base = FakeBase(new_id("app"), name, permission)
            self.bases.append(base)
            return base.id

    def base(self, base_id: str) -> FakeBase:
        found = next((b for b in self.bases if b.id == base_id), None)
        if found is None:
            raise KeyError(base_id)
        return found

    def add_table(
        self,
        base_id: str,
        name: str,
        fields: Sequence[tuple[str, str] | tuple[str, str, dict[str, Any]]],
    ) -> str:
        """``fields``: (name, type[, options]); the first is the primary field."""
        with self._lock:
            made = []
            for spec in fields:
                options: dict[str, Any] = dict(spec[2]) if len(spec) > 2 else {}  # type: ignore[misc]
                made.append(FakeField(new_id("fld"), spec[0], spec[1], options))
            table = FakeTable(new_id("tbl"), name, made)
            self.base(base_id).tables.append(table)
            return table.id

    def table(self, base_id: str, name: str) -> FakeTable:
        found = self.base(base_id).table(name)
        if found is None:
            raise KeyError(name)
        return found

    def add_records(
        self, base_id: str, table: str, rows: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        with self._lock:
            target = self.table(base_id, table)
            ids = []
            for row in rows:
                record_id = new_id("rec")
                target.records[record_id] = self._new_record(record_id, dict(row))
                ids.append(record_id)
            return ids

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.table(base_id, table).records.values()]

    def rename_field(self, base_id: str, table: str, old: str, new: str) -> None:
        with self._lock:
            target = self.table(base_id, table)
            found = target.field(old)
            assert found is not None
            found.name = new
            for record in target.records.values():
                if old in record["fields"]:
                    record["fields"][new] = record["fields"].pop(old)

    def status_counts(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for seen in self.requests:
            counts[seen.status] = counts.get(seen.status, 0) + 1
        return counts

    def penalise(self, base_id: str, seconds: float) -> None:
        """Answer 429 to every request for the base during ``seconds``, as if
        another program had used up its budget."""
        with self._lock:
            self._penalty_until[base_id] = time.monotonic() + seconds

    # -- rate limit ----------------------------------------------------------------

    def _admit(self, base: str, now: float) -> bool:
        with self._lock:
            if self._penalty_until.get(base, 0.0) > now:
                return False
            arrivals = self._arrivals.setdefault(base, deque())
            while arrivals and arrivals[0] <= now - self.window_s:
                arrivals.popleft()
            if len(arrivals) >= self.rate:
                self._penalty_until[base] = now + self.penalty_s
                return False
            arrivals.append(now)
            return True

    # -- WSGI ----------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if self.hook is not None:
            self.hook(request.method, request.path)
        now = time.monotonic()
        parts = [p for p in request.path.split("/") if p]
        base = ""
        if parts[:1] == ["v0"]:
            parts = parts[1:]
            if parts[:2] == ["meta", "bases"] and len(parts) > 2:
                base = parts[2]
            elif parts and parts[0] != "meta":
                base = parts[0]
        seen = Seen(request.method, request.path, 0, base, at=now)
        seen.url_length = len(request.url)
        try:
            if len(self.requests) >= self.max_requests:
                raise ApiError(503, "TOO_MANY_TEST_REQUESTS")
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(
                    401, "AUTHENTICATION_REQUIRED", "Authentication required"
                )
            if request.method == "GET" and seen.url_length > MAX_URL_LENGTH:
                raise ApiError(414, "URL_TOO_LONG", "The URL is too long")
            if base and not self._admit(base, now):
                raise ApiError(429, "RATE_LIMIT_REACHED", "Rate limit exceeded")
            with self._lock:
                body = self._route(request, parts, seen)
            response = Response(_json(body), 200, mimetype="application/json")
            seen.status = 200
        except ApiError as exc:
            payload = {"error": {"type": exc.kind, "message": exc.message}}
            if exc.status == 429:
                payload = {"errors": [{"error": exc.kind, "message": exc.message}]}
            response = Response(_json(payload), exc.status, mimetype="application/json")
            seen.status = exc.status
        with self._lock:
            self.requests.append(seen)
        return response(environ, start_response)

    def _route(self, request: Request, parts: list[str], seen: Seen) -> Any:
        method = request.method
        if parts == ["meta", "whoami"] and method == "GET":
            body: dict[str, Any] = {"id": "usrSTEWARDTEST0001"}
            if self.scopes is not None:
                body["scopes"] = self.scopes
            return body
        if parts == ["meta", "bases"] and method == "GET":
            return {
                "bases": [
                    {"id": b.id, "name": b.name, "permissionLevel": b.permission_level}
                    for b in self.bases
                ]
            }
        if parts[:2] == ["meta", "bases"] and len(parts) >= 4:
            base = self._base(parts[2])
            if parts[3:] == ["tables"] and method == "GET":
                return {"tables": [t.as_json() for t in base.tables]}
            if parts[3:] == ["tables"] and method == "POST":
                return self._create_table(base, request.get_json(silent=True))
            if len(parts) == 6 and parts[5] == "fields" and method == "POST":
                table = self._table(base, parts[4])
                return self._create_field(
                    base, table, request.get_json(silent=True)
                ).as_json()
        elif parts and parts[0] != "meta" and len(parts) in (2, 3):
            base = self._base(parts[0])
            table = self._table(base, parts[1])
            if len(parts) == 2 and method == "GET":
                return self._list(table, _get_options(request), seen)
            if parts[2:] == ["listRecords"] and method == "POST":
                return self._list(table, request.get_json(silent=True) or {}, seen)
            if len(parts) == 2 and method == "POST":
                return self._write(
                    base, table, request.get_json(silent=True), "create", seen
                )
            if len(parts) == 2 and method in ("PATCH", "PUT"):
                return self._write(
                    base, table, request.get_json(silent=True), method, seen
                )
            if len(parts) == 3 and method == "GET":
                record = table.records.get(parts[2])
                if record is None:
                    raise ApiError(
                        404, "NOT_FOUND", "Could not find what you are looking for"
                    )
                return _shown(record, None)
        self.unexpected.append(f"{method} {request.path}")
        raise ApiError(404, "NOT_FOUND", "Unknown path")

    def _base(self, base_id: str) -> FakeBase:
        found = next((b for b in self.bases if b.id == base_id), None)
        if found is None:
            raise ApiError(404, "NOT_FOUND", f"Base {base_id} not found")
        return found

    def _table(self, base: FakeBase, name: str) -> FakeTable:
        found = base.table(name)
        if found is None:
            raise ApiError(
                404, "TABLE_NOT_FOUND", f'Could not find table "{name}" in this base'
            )
        return found

    # -- metadata writes -----------------------------------------------------------

    def _require_schema_write(self, base: FakeBase) -> None:
        if base.permission_level != "create" or (
            self.scopes is not None and "schema.bases:write" not in self.scopes
        ):
            raise ApiError(
                403,
                "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND",
                "Invalid permissions, or the requested model was not found.",
            )

    def _check_new_field(
        self, base: FakeBase, table: FakeTable | None, spec: Mapping[str, Any]
    ) -> FakeField:
        name, kind = str(spec.get("name") or ""), str(spec.get("type") or "")
        if not name or kind not in KNOWN_TYPES or kind in COMPUTED:
            raise ApiError(422, "INVALID_FIELD_TYPE", f"Cannot create field {name!r}")
        if table is not None and table.field(name) is not None:
            raise ApiError(422, "DUPLICATE_OR_EMPTY_FIELD_NAME", f"{name!r} exists")
        options = dict(spec.get("options") or {})
        if kind == "multipleRecordLinks":
            if base.table(str(options.get("linkedTableId", ""))) is None:
                raise ApiError(422, "INVALID_FIELD_TYPE_OPTIONS", "No linked table")
        return FakeField(new_id("fld"), name, kind, options)

    def _link_back(self, base: FakeBase, source: FakeTable, link: FakeField) -> None:
        """Airtable adds the inverse link field in the linked table."""
        target = base.table(link.options["linkedTableId"])
        if target is None or target is source:
            return
        name, n = source.name, 2
        while target.field(name) is not None:
            name, n = f"{source.name} {n}", n + 1
        inverse = FakeField(
            new_id("fld"), name, "multipleRecordLinks", {"linkedTableId": source.id}
        )
        target.fields.append(inverse)
        link.options["inverseLinkFieldId"] = inverse.id

    def _create_table(self, base: FakeBase, spec: Mapping[str, Any]) -> Any:
        self._require_schema_write(base)
        name = str(spec.get("name") or "")
        if not name or base.table(name) is not None:
            raise ApiError(422, "DUPLICATE_TABLE_NAME", f"Table {name!r} exists")
        specs = list(spec.get("fields") or [])
        if not specs or specs[0].get("type") not in PRIMARY_TYPES:
            raise ApiError(422, "INVALID_PRIMARY_FIELD", "Bad primary field")
        table = FakeTable(new_id("tbl"), name, [])
        for item in specs:
            table.fields.append(self._check_new_field(base, table, item))
        base.tables.append(table)
        for item in table.fields:
            if item.type == "multipleRecordLinks":
                self._link_back(base, table, item)
        return table.as_json()

    def _create_field(
        self, base: FakeBase, table: FakeTable, spec: Mapping[str, Any]
    ) -> FakeField:
        self._require_schema_write(base)
        created = self._check_new_field(base, table, spec)
        table.fields.append(created)
        if created.type == "multipleRecordLinks":
            self._link_back(base, table, created)
        return created

    # -- records -------------------------------------------------------------------

    def _new_record(self, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": record_id,
            "createdTime": datetime.now().astimezone().isoformat(),
            "fields": {k: v for k, v in fields.items() if v not in (None, "", [])},
        }

    def _list(self, table: FakeTable, options: Mapping[str, Any], seen: Seen) -> Any:
        size = int(options.get("pageSize") or MAX_PAGE_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ApiError(422, "INVALID_PAGE_SIZE", "pageSize must be 1 to 100")
        offset = options.get("offset")
        fields = options.get("fields") or None
        if offset:
            if offset not in self._offsets or self._offsets[offset][0] != table.id:
                raise ApiError(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "Bad offset")
            _table, ids, start = self._offsets.pop(offset)
        else:
            formula = options.get("filterByFormula") or ""
            seen.formula = formula
            ids = self._matching(table, formula)
            max_records = int(options.get("maxRecords") or 0)
            ids = ids[:max_records] if max_records else ids
            start = 0
        page = [
            table.records[i] for i in ids[start : start + size] if i in table.records
        ]
        body: dict[str, Any] = {"records": [_shown(r, fields) for r in page]}
        seen.returned = len(page)
        if start + size < len(ids):
            token = f"itr{new_id('')}/{ids[start + size]}"
            self._offsets[token] = (table.id, ids, start + size)
            body["offset"] = token
        return body

    def _matching(self, table: FakeTable, formula: str) -> list[str]:
        if not formula:
            return list(table.records)
        known = {f.name for f in table.fields}
        try:
            node = compile_formula(formula, known)
            return [
                rid
                for rid, r in table.records.items()
                if truthy(node(r["fields"], rid))
            ]
        except FormulaError as exc:
            raise ApiError(
                422,
                "INVALID_FILTER_BY_FORMULA",
                f"The formula for filtering records is invalid: {exc}",
            ) from exc

    def _check_value(
        self, base: FakeBase, spec: FakeField, value: Any, typecast: bool
    ) -> Any:
        def bad(why: str) -> ApiError:
            return ApiError(
                422,
                "INVALID_VALUE_FOR_COLUMN",
                f'Field "{spec.name}" cannot accept the provided value: {why}',
            )

        if value is None:
            return None
        kind = spec.type
        if kind in COMPUTED:
            raise bad("the field is computed")
        if kind in TEXT:
            if not isinstance(value, str):
                raise bad("expected text")
            return value
        if kind in NUMBERS:
            if typecast and isinstance(value, str):
                try:
                    return float(value)
                except ValueError as exc:
                    raise bad("expected a number") from exc
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad("expected a number")
            return value
        if kind == "checkbox":
            if not isinstance(value, bool):
                raise bad("expected true or false")
            return value
        if kind in ("date", "dateTime"):
            try:
                text = str(value)
                if kind == "date":
                    date.fromisoformat(text)
                else:
                    datetime.fromisoformat(text)
            except ValueError as exc:
                raise bad("expected an ISO date") from exc
            return text
        if kind == "singleSelect":
            choices = spec.options.setdefault("choices", [])
            if not isinstance(value, str):
                raise bad("expected an option name")
            if value not in [c["name"] for c in choices]:
                if not typecast:
                    raise ApiError(
                        422,
                        "INVALID_MULTIPLE_CHOICE_OPTIONS",
                        "Insufficient permissions to create new select option "
                        f'""{value}""',
                    )
                choices.append({"id": new_id("sel"), "name": value})
            return value
        if kind == "multipleRecordLinks":
            linked = base.table(spec.options.get("linkedTableId", ""))
            if not isinstance(value, list) or linked is None:
                raise bad("expected a list of record ids")
            for record_id in value:
                if record_id not in linked.records:
                    raise ApiError(
                        422,
                        "ROW_DOES_NOT_EXIST",
                        f"Record ID {record_id} does not exist",
                    )
            return list(value)
        if kind == "multipleSelects":
            return list(value)
        raise bad("unsupported type")

    def _checked_fields(
        self,
        base: FakeBase,
        table: FakeTable,
        fields: Mapping[str, Any],
        typecast: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in fields.items():
            spec = table.field(name)
            if spec is None:
                raise ApiError(
                    422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"'
                )
            out[spec.name] = self._check_value(base, spec, value, typecast)
        return out

    def _write(
        self, base: FakeBase, table: FakeTable, body: Any, method: str, seen: Seen
    ) -> Any:
        body = body or {}
        rows = list(body.get("records") or [])
        seen.records = len(rows)
        if not rows or len(rows) > MAX_RECORDS_PER_WRITE:
            raise ApiError(
                422,
                "INVALID_RECORDS",
                f"You must send 1 to {MAX_RECORDS_PER_WRITE} records per request",
            )
        typecast = bool(body.get("typecast"))
        checked = [
            self._checked_fields(base, table, r.get("fields") or {}, typecast)
            for r in rows
        ]
        merge = (body.get("performUpsert") or {}).get("fieldsToMergeOn")
        plan: list[tuple[str | None, dict[str, Any]]] = []  # (existing id, fields)
        if method == "create":
            plan = [(None, f) for f in checked]
        elif merge is not None:
            plan = self._upsert_plan(table, merge, rows, checked)
        else:
            for row, fields in zip(rows, checked, strict=True):
                if row.get("id") not in table.records:
                    raise ApiError(
                        404, "NOT_FOUND", f"Record {row.get('id')} not found"
                    )
                plan.append((row["id"], fields))
        created, updated, out = [], [], []
        for existing, fields in plan:
            if existing is None:
                record_id = new_id("rec")
                table.records[record_id] = self._new_record(record_id, fields)
                created.append(record_id)
            else:
                record = table.records[existing]
                merged = fields if method == "PUT" else {**record["fields"], **fields}
                record["fields"] = {
                    k: v for k, v in merged.items() if v not in (None, "", [])
                }
                record_id = existing
                updated.append(record_id)
            out.append(_shown(table.records[record_id], None))
        if merge is not None:
            return {
                "records": out,
                "createdRecords": created,
                "updatedRecords": updated,
            }
        return {"records": out}

    def _upsert_plan(
        self,
        table: FakeTable,
        merge: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        checked: Sequence[dict[str, Any]],
    ) -> list[tuple[str | None, dict[str, Any]]]:
        if not 1 <= len(merge) <= 3 or any(table.field(m) is None for m in merge):
            raise ApiError(
                422, "INVALID_MERGE_FIELDS", "fieldsToMergeOn: 1 to 3 fields"
            )
        index: dict[tuple[Any, ...], list[str]] = {}
        for rid, record in table.records.items():
            key = tuple(_hashable(record["fields"].get(m)) for m in merge)
            index.setdefault(key, []).append(rid)
        plan: list[tuple[str | None, dict[str, Any]]] = []
        keys_in_request: set[tuple[Any, ...]] = set()
        for fields in checked:
            if any(fields.get(m) in (None, "") for m in merge):
                raise ApiError(422, "INVALID_RECORDS", "A merge field is empty")
            key = tuple(_hashable(fields.get(m)) for m in merge)
            if key in keys_in_request:
                raise ApiError(422, "INVALID_RECORDS", "Two records with the same key")
            keys_in_request.add(key)
            matches = index.get(key, [])
            if len(matches) > 1:
                raise ApiError(422, "INVALID_RECORDS", "More than one record matched")
            plan.append((matches[0] if matches else None, fields))
        return plan


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _shown(record: Mapping[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    values = record["fields"]
    if fields:
        values = {k: v for k, v in values.items() if k in fields}
    return {
        "id": record["id"],
        "createdTime": record["createdTime"],
        "fields": dict(values),
    }


def _get_options(request: Request) -> dict[str, Any]:
    args = request.args
    return {
        "pageSize": args.get("pageSize"),
        "offset": args.get("offset"),
        "filterByFormula": args.get("filterByFormula"),
        "maxRecords": args.get("maxRecords"),
        "fields": args.getlist("fields[]") or None,
    }


def _json(body: Any) -> str:
    return json.dumps(body)


@contextmanager
def running(fake: FakeAirtable) -> Iterator[FakeAirtable]:
    """Serve ``fake`` on 127.0.0.1 on a free port, in a thread, for the block."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
