"""The sync dashboard's data: for every sent email and recipient, is it in the CRM?

Why a separate check: the log queue says what Steward *tried*; the dashboard
compares the Sent folder (``sent_mail`` and its ``log_queue`` rows) with what the CRM
actually holds (``Crm.read_log()``), so an entry deleted in the CRM, or one that was
written although its answer was lost, shows as it really is.

Built with vectorised pandas so 100,000 sent emails stay within twice the time it
takes just to read their rows from SQLite (bench/bench_dashboard.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from lib.models import LoggedEmail
from lib.tracking import tracking_counts

# The rows the table is built from: one per (sent email, recipient, record).
SYNC_ROWS_SQL = (
    "SELECT s.sent_at AS sent_at, s.subject AS subject, q.recipient AS recipient,"
    " q.record_id AS record_id, q.status AS queue_status, q.error AS error,"
    " s.sender AS sender, s.rfc_message_id AS message_id"
    " FROM log_queue q JOIN sent_mail s ON s.id = q.sent_mail_id"
)

LOGGED = "logged"
NOT_YET_LOGGED = "not yet logged"
NO_RECORD = "no matching record"
EXCLUDED = "excluded"
ERROR = "error"
STATUSES = [LOGGED, NOT_YET_LOGGED, NO_RECORD, EXCLUDED, ERROR]

COLUMNS = [
    "sent_at",
    "logged_at",
    "lag_s",
    "subject",
    "recipient",
    "record",
    "status",
    "sender",
    "message_id",
    "opens",
    "machine_opens",
    "clicks",
    "scanner_clicks",
    "error",
]

_SEP = "\x1f"  # joins message id and record id into one lookup key


def _crm_logged_at(crm_log: list[LoggedEmail]) -> tuple[pd.Index, np.ndarray]:
    """Unique "<message id>\\x1f<record id>" keys and their CRM log times (epoch s)."""
    keys = pd.Index(
        [f"{e.rfc_message_id}{_SEP}{e.record_id}" for e in crm_log], dtype="str"
    )
    stamps = np.fromiter(
        (e.logged_at.timestamp() if e.logged_at else np.nan for e in crm_log),
        dtype="float64",
        count=len(crm_log),
    )
    if keys.is_unique:
        return keys, stamps
    first = ~keys.duplicated()
    return keys[first], stamps[first]


def _positions(index: pd.Index, keys: pd.Series) -> np.ndarray:
    """Positions of ``keys`` in a unique ``index`` (-1 where absent)."""
    if len(index) == 0:
        return np.full(len(keys), -1, dtype="int64")
    return index.get_indexer(keys)


def _pick(values: np.ndarray, positions: np.ndarray, missing: float) -> np.ndarray:
    """values[positions], with ``missing`` where the position is -1."""
    if len(values) == 0:
        return np.full(len(positions), missing, dtype="float64")
    return np.where(positions >= 0, values[np.maximum(positions, 0)], missing)


def sync_table(engine: Engine, crm_log: list[LoggedEmail]) -> pd.DataFrame:
    """One row per (sent email, recipient, record) with its state in the CRM.

    Columns: sent_at (in Sent), logged_at (in the CRM), lag_s, subject, recipient,
    record (the record id, or "no matching record" / "excluded"), status (logged,
    not yet logged, no matching record, excluded, error; categorical), sender,
    message_id, opens and clicks by people, machine_opens, scanner_clicks
    (approximate: see lib.tracking), error.
    """
    with engine.connect() as conn:
        rows = pd.read_sql(text(SYNC_ROWS_SQL), conn)
    sent_at = pd.to_datetime(rows["sent_at"], utc=True, format="ISO8601")
    queue_status = rows["queue_status"]
    excluded = (queue_status == "excluded").to_numpy(dtype=bool)
    unmatched = (queue_status == "unmatched").to_numpy(dtype=bool)
    failed = (queue_status == "error").to_numpy(dtype=bool)

    crm_keys, crm_stamps = _crm_logged_at(crm_log)
    position = _positions(crm_keys, rows["message_id"] + _SEP + rows["record_id"])
    in_crm = position >= 0
    logged_s = _pick(crm_stamps, position, np.nan)
    sent_s = (sent_at - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()

    # Codes into STATUSES; the CRM's own log decides "logged".
    codes = np.select(
        [excluded, unmatched, in_crm, failed], [3, 2, 0, 4], default=1
    ).astype("int8")
    record = rows["record_id"].mask(excluded, EXCLUDED).mask(unmatched, NO_RECORD)

    counts = tracking_counts(engine)
    where = _positions(pd.Index(counts["rfc_message_id"]), rows["message_id"])
    table = pd.DataFrame(
        {
            "sent_at": sent_at,
            "logged_at": pd.to_datetime(logged_s, unit="s", utc=True),
            "lag_s": logged_s - sent_s,
            "subject": rows["subject"],
            "recipient": rows["recipient"],
            "record": record,
            "status": pd.Categorical.from_codes(codes, categories=STATUSES),
            "sender": rows["sender"],
            "message_id": rows["message_id"],
        }
    )
    for target, source in (
        ("opens", "human_opens"),
        ("machine_opens", "machine_opens"),
        ("clicks", "human_clicks"),
        ("scanner_clicks", "scanner_clicks"),
    ):
        values = counts[source].to_numpy(dtype="float64")
        table[target] = _pick(values, where, 0).astype("int64")
    table["error"] = rows["error"].where(codes == 4)
    return table[COLUMNS]


def sync_counts(table: pd.DataFrame) -> dict[str, float | int | None]:
    """Headline figures of a :func:`sync_table`.

    ``not_yet_logged`` is the per-message check: recipients with a known record
    whose entry the CRM does not hold (yet). Lags are in seconds, None when nothing
    is logged.
    """
    status = table["status"]
    lags = table.loc[status == LOGGED, "lag_s"].dropna()
    return {
        "sent_emails": int(table["message_id"].nunique()),
        "recipients": int(len(table[["message_id", "recipient"]].drop_duplicates())),
        "logged": int((status == LOGGED).sum()),
        "not_yet_logged": int((status == NOT_YET_LOGGED).sum()),
        "unmatched": int((status == NO_RECORD).sum()),
        "excluded": int((status == EXCLUDED).sum()),
        "errors": int((status == ERROR).sum()),
        "median_lag_s": float(lags.median()) if len(lags) else None,
        "max_lag_s": float(lags.max()) if len(lags) else None,
    }


def lag_series(table: pd.DataFrame) -> pd.Series:
    """Seconds from sending to the CRM entry, indexed by send time (for a chart)."""
    logged = table[table["status"] == LOGGED]
    series = pd.Series(
        logged["lag_s"].to_numpy(), index=pd.DatetimeIndex(logged["sent_at"])
    )
    series.index.name = "sent_at"
    return series.sort_index().rename("lag_s")
