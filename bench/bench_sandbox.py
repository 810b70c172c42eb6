"""Benchmark: the whole sandbox flow at scale, each step measured in one run.

Imports a generated 100,000-row transaction export (bench_import's generator),
drafts and sends 10,000 emails through the sandbox mailbox, then syncs them to the
local CRM. Prints rows per second for each step, and checks on the way that every
sent email was logged exactly once (a fast but wrong run is not a result).

    .venv/bin/python -m bench.bench_sandbox [ROWS] [SENDS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_import import generate

ROWS = 100_000
SENDS = 10_000


def run(rows: int = ROWS, sends: int = SENDS) -> dict[str, float]:
    """Run the flow in a fresh data folder; return the figures."""
    with tempfile.TemporaryDirectory() as folder:
        os.environ["STEWARD_DATA_DIR"] = str(Path(folder) / "data")
        os.environ["STEWARD_SECRETS"] = str(Path(folder) / "no-secrets.toml")
        from sqlalchemy import func, select

        from lib.approval import approve
        from lib.donors import list_donors, store_import
        from lib.drafting.base import CampaignBrief
        from lib.drafting.run import draft_for_donors
        from lib.importing import read_donor_file
        from lib.schema import crm_log_table
        from lib.sending import send_approved
        from lib.services import open_services
        from lib.sync import sync_all

        export = Path(folder) / "transactions.csv"
        generate(export, rows)
        services = open_services()
        account = services.sandbox_account

        started = time.perf_counter()
        result = read_donor_file(export.read_bytes(), export.name)
        store_import(services, result, export.name)
        import_s = time.perf_counter() - started

        donors = list_donors(services.engine)
        ids = [int(i) for i in donors.loc[donors["blocked_reason"].isna(), "id"]]
        ids = ids[:sends]
        brief = CampaignBrief(campaign="Year-End Appeal", note="Thank you.")

        started = time.perf_counter()
        drafted = draft_for_donors(services, ids, brief)
        draft_s = time.perf_counter() - started

        approve(services.engine, drafted.draft_ids, account)
        started = time.perf_counter()
        report = send_approved(services, account, drafted.draft_ids)
        send_s = time.perf_counter() - started

        started = time.perf_counter()
        while True:  # a pass reads a bounded number of pages; drain the backlog
            reports = sync_all(services)
            if all(r.new_emails == 0 and r.pending == 0 for r in reports):
                break
        sync_s = time.perf_counter() - started

        with services.engine.connect() as conn:
            logged = conn.execute(select(func.count()).select_from(crm_log_table))
            logged_count = int(logged.scalar_one())
        sent = len(report.sent)
        if logged_count != sent:
            raise SystemExit(f"logged {logged_count} entries for {sent} sent emails")
        return {
            "import_and_store_rows_per_s": rows / import_s,
            "draft_rows_per_s": len(drafted.draft_ids) / draft_s,
            "send_rows_per_s": sent / send_s,
            "sync_rows_per_s": sent / sync_s,
            "sent": float(sent),
            "logged": float(logged_count),
        }


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    sends = int(sys.argv[2]) if len(sys.argv) > 2 else SENDS
    for name, value in run(rows, sends).items():
        print(f"{name}: {value:.1f}")


if __name__ == "__main__":
    main()
