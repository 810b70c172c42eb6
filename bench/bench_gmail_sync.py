"""Benchmark: reading the Sent folder of a simulated Gmail mailbox of 100,000
messages, 200 of them sent since the last sync, through the real Gmail client and
the local fake Gmail (tests/fakes/gmail_server.py).

Target (issue 3): the incremental path makes at most 2 + ceil(new / 100) HTTP
requests, whatever the mailbox size: one history.list page (up to 500 records) and
one batch request per 100 new messages. Batches hold 100 calls, Google's maximum,
rather than the 50 Google advises: each batch is one HTTP request, so 50 would
double the request count, while quota is charged per call either way and an item
answered 429 is simply fetched again in the next batch.

The full listing (first sync, or an expired cursor) reads every message: one list
page of 500 ids and five batches per read. Quota waits run on a simulated clock,
so the wall time measures Steward and the client; ``full_quota_minutes`` is what
Google's per-user quota (6,000 units a minute) would add on a real account.

    .venv/bin/python -m bench.bench_gmail_sync [TOTAL [NEW]]

prints ``incremental_requests``, ``incremental_bound``, ``full_requests``,
``incremental_s`` and ``full_s`` (and a few figures behind them) as
``name: value`` lines. The full listing of 100,000 messages takes a few minutes.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 100_000
NEW = 200
ACCOUNT = "ann@example.org"


class _SimulatedClock:
    """Quota time that passes only while the budget waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(total: int = TOTAL, new: int = NEW) -> dict[str, float]:
    """Sync a mailbox of ``total`` messages with ``new`` fresh sends, both ways."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    data_dir = tempfile.mkdtemp(prefix="steward-bench-gmail-")
    os.environ["STEWARD_DATA_DIR"] = data_dir
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the fake is plain http, local

    from lib.db import dispose_engines
    from lib.mailbox.gmail import open_gmail_mailbox
    from lib.models import OutgoingEmail
    from lib.quota import QuotaBudget
    from lib.services import open_services
    from tests.fakes.gmail_server import FakeGoogle, connect_account, gmail_settings

    figures: dict[str, float] = {}
    with FakeGoogle((ACCOUNT,), synthetic=total - new) as google:
        services = open_services(gmail_settings(google, daily_send_limit=new + 1))
        connect_account(services)
        clock = _SimulatedClock()
        budget = QuotaBudget(6000, clock=clock, sleep=clock.sleep)
        box = open_gmail_mailbox(services, ACCOUNT, budget=budget)
        cursor = f"h:{google.mailboxes[ACCOUNT].history_id}"  # the last sync's
        for i in range(new):
            box.send(
                OutgoingEmail(
                    sender=ACCOUNT,
                    to=(f"donor{i}@example.net",),
                    subject=f"Thank you, donor {i}",
                    body_text="Thank you for your gift.",
                )
            )

        before = len(google.http_requests())
        started = time.perf_counter()
        page = box.read_sent(cursor)
        figures["incremental_s"] = time.perf_counter() - started
        figures["incremental_requests"] = len(google.http_requests()) - before
        figures["incremental_bound"] = 2 + math.ceil(new / 100)
        figures["incremental_messages"] = len(page.messages)

        before = len(google.http_requests())
        waited = budget.waited_s
        started = time.perf_counter()
        seen = 0
        full_cursor: str | None = None
        for _read in range(total // 500 + 10):  # bounded: one list page per read
            full_page = box.read_sent(full_cursor)
            seen += len(full_page.messages)
            full_cursor = full_page.cursor
            if full_cursor and full_cursor.startswith("h:"):
                break
        figures["full_s"] = time.perf_counter() - started
        figures["full_requests"] = len(google.http_requests()) - before
        figures["full_messages"] = seen
        figures["full_quota_minutes"] = (budget.waited_s - waited) / 60
        if google.violations or google.drafts_calls():
            raise SystemExit(f"fake Gmail saw bad requests: {google.violations}")
    dispose_engines()
    shutil.rmtree(data_dir, ignore_errors=True)
    return figures


def main(argv: list[str]) -> int:
    total = int(argv[0]) if argv else TOTAL
    new = int(argv[1]) if len(argv) > 1 else NEW
    figures = run(total, new)
    for name in (
        "incremental_requests",
        "incremental_bound",
        "full_requests",
        "incremental_s",
        "full_s",
        "incremental_messages",
        "full_messages",
        "full_quota_minutes",
    ):
        value = figures[name]
        print(
            f"{name}: {value:.3f}"
            if name.endswith(("_s", "_minutes"))
            else f"{name}: {int(value)}"
        )
    ok = figures["incremental_requests"] <= figures["incremental_bound"]
    return 0 if ok and figures["full_messages"] == total else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
