"""The donor store: imported donors in the ``donors`` table, one row per person.

Why a store of its own: drafting, sending and the pages all work from donor ids in
Steward's database, whichever file or CRM the donors came from. Importing the same
export twice must not create anyone twice, so each donor has a stable
``donor_key`` (the CRM record ID, else "email:<address>", else "name:<name>"), and an
import updates the donors it already knows.

Re-imports never clear a do-not-email, opted-out, deceased or bounced flag (a file
that lacks the column must not make a donor emailable again) and never drop an
address a donor was already known by (sent mail to it must still be logged).

In sandbox mode each donor is mirrored into the local CRM so sent mail can be
logged on a record; donors without a CRM record ID get a stable generated one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, func, or_, select

from lib.db import as_utc, utcnow
from lib.importing import DONOR_COLUMNS, ImportResult, blocked_reasons
from lib.importing.result import FLAGS, TEXT, donor_records
from lib.models import CrmRecord, Donor
from lib.schema import donors_table, imports_table

log = logging.getLogger(__name__)

# SQLite builds before 3.32 allow at most 999 bound variables per statement.
IN_LIST_BATCH = 500
LOCAL_RECORD_PREFIX = "loc_"
# Text columns a re-import only overwrites with a non-empty value.
TEXT_COLUMNS = tuple(c for c in TEXT if c != "donor_key")
# Columns list_donors returns, in order (plus blocked_reason).
LIST_COLUMNS = (
    "id",
    "name",
    "email",
    "greeting",
    "salutation",
    "organization",
    "last_gift_amount",
    "last_gift_date",
    "lifetime_giving",
    "gift_count",
    "currency",
    "campaign",
    "notes",
    "do_not_email",
    "opted_out",
    "deceased",
    "bounced",
    "record_id",
)


@dataclass(frozen=True)
class StoredImport:
    """What storing an import did."""

    import_id: int
    created: int
    updated: int


def donor_key(record_id: str | None, email: str | None, name: str) -> str:
    """The stable identity of a donor across imports (same rule as the importer)."""
    if record_id:
        return record_id
    if email:
        return f"email:{email}"
    return "name:" + " ".join(name.casefold().split())


def local_record_id(key: str) -> str:
    """The generated local-CRM record ID for a donor without one (stable)."""
    return LOCAL_RECORD_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def _existing(
    conn: Connection,
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Known donors by key, and keys by address (to recognise a donor whose key
    changed, e.g. first imported by address, later with a record ID)."""
    d = donors_table.c
    by_key: dict[str, dict[str, Any]] = {}
    by_email: dict[str, list[str]] = {}
    for row in conn.execute(select(d.id, d.donor_key, d.record_id, d.email, d.emails)):
        by_key[row.donor_key] = {
            "id": row.id,
            "record_id": row.record_id,
            "emails": list(row.emails or []),
        }
        if row.email:
            by_email.setdefault(row.email, []).append(row.donor_key)
    return by_key, by_email


def _update_statement() -> Any:
    d = donors_table.c
    values: dict[str, Any] = {
        "donor_key": bindparam("b_key"),
        "import_id": bindparam("b_import_id"),
        "record_id": func.coalesce(bindparam("b_record_id"), d.record_id),
        "email": func.coalesce(bindparam("b_email"), d.email),
        "emails": bindparam("b_emails", type_=donors_table.c.emails.type),
        "last_gift_amount": func.coalesce(
            bindparam("b_last_gift_amount"), d.last_gift_amount
        ),
        "last_gift_date": func.coalesce(
            bindparam("b_last_gift_date"), d.last_gift_date
        ),
        "lifetime_giving": func.coalesce(
            bindparam("b_lifetime_giving"), d.lifetime_giving
        ),
        "gift_count": func.coalesce(
            func.nullif(bindparam("b_gift_count"), 0), d.gift_count
        ),
        "currency": func.coalesce(bindparam("b_currency"), d.currency),
        "source_rows": bindparam("b_rows", type_=donors_table.c.source_rows.type),
        "updated_at": bindparam("b_now"),
    }
    for column in TEXT_COLUMNS:
        values[column] = func.coalesce(
            func.nullif(bindparam(f"b_{column}"), ""), getattr(d, column)
        )
    for flag in FLAGS:
        values[flag] = or_(getattr(d, flag), bindparam(f"b_{flag}"))
    return donors_table.update().where(d.id == bindparam("b_id")).values(**values)


def _store_frame(
    services: Any,
    frame: pd.DataFrame,
    source: str,
    *,
    encoding: str | None,
    separator: str | None,
    mapping: dict[str, str],
    report: dict[str, Any],
) -> StoredImport:
    started = time.perf_counter()
    records = donor_records(frame)
    local_crm = bool(services.uses_local_crm)
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    mirrored: list[CrmRecord] = []
    with services.engine.begin() as conn:
        import_id = conn.execute(
            imports_table.insert().values(
                source=source[:200],
                imported_at=now,
                encoding=encoding,
                separator=separator,
                mapping=mapping,
                report=report,
                imported_count=len(records),
            )
        ).inserted_primary_key[0]
        by_key, by_email = _existing(conn)
        for record in records:
            key = record["donor_key"]
            known = by_key.get(key)
            if known is None and record["email"]:
                # Same address, different key: one donor seen from two sources.
                keys = by_email.get(record["email"], [])
                if len(keys) == 1 and (
                    not record["record_id"]
                    or by_key[keys[0]]["record_id"] in (None, record["record_id"])
                    or str(by_key[keys[0]]["record_id"]).startswith(LOCAL_RECORD_PREFIX)
                ):
                    known = by_key[keys[0]]
                    # Limit: when a "loc_" donor gains a real record ID, its old
                    # local-CRM record stays (log entries on it are kept).
                    key = key if record["record_id"] else keys[0]
            record_id = record["record_id"]
            if local_crm and not record_id and not (known and known["record_id"]):
                record_id = local_record_id(key)
            emails = list(record["emails"])
            if known is not None:
                emails += [e for e in known["emails"] if e not in emails]
            if known is None:
                inserts.append(
                    {
                        **{c: record[c] for c in DONOR_COLUMNS if c != "rows"},
                        "donor_key": key,
                        "record_id": record_id,
                        "emails": emails,
                        "source_rows": record["rows"],
                        "import_id": import_id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                by_key[key] = {"id": None, "record_id": record_id, "emails": emails}
            else:
                update = {
                    f"b_{c}": record[c]
                    for c in DONOR_COLUMNS
                    if c not in ("rows", "donor_key", "emails")
                }
                if "@" in str(update.get("b_name") or ""):
                    # An email-only file (an unsubscribe list) names donors by
                    # address: keep the name the donor already has.
                    update["b_name"] = ""
                update.update(
                    b_id=known["id"],
                    b_key=key,
                    b_record_id=record_id,
                    b_emails=emails,
                    b_rows=record["rows"],
                    b_import_id=import_id,
                    b_now=now,
                )
                updates.append(update)
            mirror_id = record_id or (known or {}).get("record_id")
            if local_crm and mirror_id:
                mirrored.append(CrmRecord(mirror_id, record["name"], tuple(emails)))
        if inserts:
            conn.execute(donors_table.insert(), inserts)
        if updates:
            conn.execute(_update_statement(), updates)
    if mirrored:
        from lib.crm.sandbox import SandboxCrm

        # Limit: the local CRM is written after the donors commit; a crash in between
        # leaves records to be written by the next import of the same file.
        SandboxCrm(services.engine).upsert_records(mirrored)
    log.info(
        "stored import %s: %d new, %d updated donors, %d local CRM records, %.0f ms",
        import_id,
        len(inserts),
        len(updates),
        len(mirrored),
        (time.perf_counter() - started) * 1000,
    )
    return StoredImport(int(import_id), len(inserts), len(updates))


def store_import(services: Any, result: ImportResult, source: str) -> StoredImport:
    """Upsert the import's donors (keyed by donor_key) and record the import and
    its report in ``imports``, in one transaction. In sandbox mode
    (``services.uses_local_crm``) each donor is also written to the local CRM, with
    a generated "loc_..." record ID when the file had none.

    Importing the same file again creates no donor twice. Flags are never cleared
    by a re-import and known addresses are kept.
    """
    return _store_frame(
        services,
        result.frame,
        source,
        encoding=result.encoding,
        separator=result.separator,
        mapping=dict(result.mapping),
        report=result.report(),
    )


def store_donors(
    services: Any,
    donors: Sequence[Donor],
    source: str,
    report: dict[str, Any] | None = None,
) -> StoredImport:
    """Store donors that did not come from a file (e.g. read from Airtable), with
    the same rules as :func:`store_import`."""
    rows = []
    for donor in donors:
        row = asdict(donor)
        row.pop("id", None)
        row["emails"] = row["emails"] or ([donor.email] if donor.email else [])
        row["donor_key"] = donor_key(donor.record_id, donor.email, donor.name)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(DONOR_COLUMNS))
    shown = {"source": source, "imported": len(rows), "rejected": [], "doubtful": []}
    return _store_frame(
        services,
        frame,
        source,
        encoding=None,
        separator=None,
        mapping={},
        report={**shown, **(report or {})},
    )


def _donor(row: Any) -> Donor:
    return Donor(
        id=row.id,
        name=row.name or "",
        email=row.email,
        emails=list(row.emails or []),
        first_name=row.first_name or "",
        last_name=row.last_name or "",
        greeting=row.greeting or "",
        salutation=row.salutation or "",
        organization=row.organization or "",
        record_id=row.record_id,
        last_gift_amount=row.last_gift_amount,
        last_gift_date=row.last_gift_date,
        lifetime_giving=row.lifetime_giving,
        gift_count=int(row.gift_count or 0),
        currency=row.currency,
        campaign=row.campaign or "",
        notes=row.notes or "",
        do_not_email=bool(row.do_not_email),
        opted_out=bool(row.opted_out),
        deceased=bool(row.deceased),
        bounced=bool(row.bounced),
        rows=list(row.source_rows or []),
    )


def get_donors(engine: Engine, ids: Iterable[int]) -> list[Donor]:
    """The donors with these ids, in the order asked; unknown ids are left out."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    found: dict[int, Donor] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), IN_LIST_BATCH):
            part = wanted[start : start + IN_LIST_BATCH]
            query = select(donors_table).where(donors_table.c.id.in_(part))
            for row in conn.execute(query):
                found[row.id] = _donor(row)
    return [found[i] for i in wanted if i in found]


def get_donor(engine: Engine, donor_id: int) -> Donor | None:
    """One donor by id, or None."""
    donors = get_donors(engine, [donor_id])
    return donors[0] if donors else None


def list_donors(engine: Engine) -> pd.DataFrame:
    """Every donor, one row each (LIST_COLUMNS plus ``blocked_reason``: why the
    donor may not be emailed, or None), ordered by id."""
    columns = [getattr(donors_table.c, name) for name in LIST_COLUMNS]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(donors_table.c.id)).all()
    frame = pd.DataFrame.from_records(rows, columns=list(LIST_COLUMNS))
    for flag in FLAGS:
        frame[flag] = frame[flag].astype(bool)
    for column in ("last_gift_amount", "lifetime_giving"):
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    frame["id"] = frame["id"].astype("int64")
    frame["gift_count"] = frame["gift_count"].fillna(0).astype("int64")
    frame["blocked_reason"] = blocked_reasons(frame)
    frame["possible_duplicate"] = possible_duplicates(frame)
    return frame


def possible_duplicates(frame: pd.DataFrame) -> pd.Series:
    """For each donor, "same name as #<id>" when another record carries the same
    name (case, accents-as-typed and punctuation aside), else None.

    Why: exports from two systems give one person two records with different IDs
    and sometimes different addresses (Mailchimp keys by address, NPSP by
    contact), so one person could get two letters. Steward does not merge records
    on its own; it points them out so a person can.
    """
    key = (
        frame["name"]
        .fillna("")
        .str.casefold()
        .str.replace(r"[^\w]+", " ", regex=True)
        .str.strip()
    )
    first_id = frame["id"].groupby(key).transform("min")
    counts = key.map(key.value_counts())
    other = frame["id"].groupby(key).transform("max")
    partner = first_id.where(first_id != frame["id"], other)
    result = ("same name as #" + partner.astype(str)).where(
        (counts > 1) & (key != "") & ~key.str.contains("@"), None
    )
    return result.astype(object).where(result.notna(), None)


def last_import_report(engine: Engine) -> dict[str, Any] | None:
    """The newest import's report: source, time, encoding, separator, mapping,
    imported count, rejected and doubtful rows. None before the first import."""
    i = imports_table.c
    with engine.connect() as conn:
        row = conn.execute(select(imports_table).order_by(i.id.desc()).limit(1)).first()
    if row is None:
        return None
    report = dict(row.report or {})
    report.update(
        import_id=row.id,
        source=row.source,
        imported_at=as_utc(row.imported_at).isoformat(),  # type: ignore[union-attr]
        encoding=row.encoding,
        separator=row.separator,
        mapping=row.mapping,
        imported=row.imported_count,
    )
    report.setdefault("rejected", [])
    report.setdefault("doubtful", [])
    return report
