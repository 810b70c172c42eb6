"""Benchmark: logging 2,000 sent emails on Airtable records through the local
Airtable server, which enforces Airtable's real limits (5 requests per second per
base, 10 records per write, 30 s penalty after a 429; limits.md).

The ceiling is 50 records per second (5 requests x 10 records). Target (issue 4):
at least 0.9 of it, with no 429, no duplicate and nothing lost. Takes about 40 s.

    .venv/bin/python -m bench.bench_airtable [N]

prints ``ceiling_fraction``, ``http_429``, ``duplicates`` and ``lost`` (and the
figures behind them) as ``name: value`` lines.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMAILS = 2_000
DONORS = 500
# What sync hands the adapter at once (lib.sync.LOG_WRITE_BATCH).
SYNC_BATCH = 100
CEILING_RECORDS_PER_S = 5 * 10  # limits.md: 5 requests/s x 10 records/request


def run(emails: int = EMAILS) -> dict[str, float]:
    """Log ``emails`` emails and return the figures."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib.airtable_config import AirtableConfig
    from lib.crm.airtable import AirtableCrm
    from lib.pacer import Pacer
    from tests.fakes.airtable_seed import (
        DONOR_FIELDS,
        activity_fields,
        donor_row,
        log_entries,
    )
    from tests.fakes.airtable_server import FakeAirtable, running

    fake = FakeAirtable(rate=5, window_s=1.0, penalty_s=30.0)
    base_id = fake.add_base("Benchmark")
    donors_id = fake.add_table(base_id, "Donors", DONOR_FIELDS)
    record_ids = fake.add_records(
        base_id, "Donors", [donor_row(i) for i in range(DONORS)]
    )
    fake.add_table(base_id, "Email log", activity_fields(donors_id))
    entries = log_entries([record_ids[i % DONORS] for i in range(emails)], tag="b")
    with running(fake):
        config = AirtableConfig(
            token=fake.token,
            base_id=base_id,
            donors_table="Donors",
            activity_table="Email log",
            endpoint_url=fake.url,
        )
        crm = AirtableCrm(config, pacer=Pacer())  # Airtable's real pacing
        failed = 0
        started = time.perf_counter()
        for start in range(0, len(entries), SYNC_BATCH):
            results = crm.write_log(entries[start : start + SYNC_BATCH])
            failed += sum(1 for r in results if r.error)
        seconds = time.perf_counter() - started
        rows = fake.records(base_id, "Email log")
    keys = Counter(row["fields"].get("Log Key") for row in rows)
    wanted = {f"{e.rfc_message_id}|{e.record_id}" for e in entries}
    statuses = fake.status_counts()
    return {
        "emails": float(emails),
        "seconds": seconds,
        "records_per_second": emails / seconds,
        "ceiling_fraction": emails / seconds / CEILING_RECORDS_PER_S,
        "requests": float(len(fake.requests)),
        "http_429": float(statuses.get(429, 0)),
        "failed_entries": float(failed),
        "duplicates": float(sum(n - 1 for n in keys.values() if n > 1)),
        "lost": float(len(wanted - set(keys))),
    }


def main() -> int:
    emails = int(sys.argv[1]) if len(sys.argv) > 1 else EMAILS
    figures = run(emails)
    for name, value in figures.items():
        print(f"{name}: {value:.3f}" if value % 1 else f"{name}: {value:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
