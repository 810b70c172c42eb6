"""Benchmark: importing a 100,000-row transaction export (one row per gift).

The file is generated like a Givebutter transactions export: ~33,000 donors with
about three gifts each, 26 columns (most of them not needed), money as "$1,234.50",
UTC timestamps, and the rows that must not count as gifts (refunds, failed
payments, tickets, reversals) plus donors without an address and opted-out ones.

Targets (task brief): peak memory traced during ``read_donor_file`` divided by the
deep memory size of the resulting donors DataFrame under 3, at a good rows/second.

    .venv/bin/python -m bench.bench_import [ROWS]

prints ``import_rows_per_s: <value>`` and ``import_rss_ratio: <value>`` (and the
figures behind them). ``run()`` returns the same figures as a dict.
"""

from __future__ import annotations

import csv
import random
import sys
import tempfile
import time
import tracemalloc
import unicodedata
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = 100_000
GIFTS_PER_DONOR = 3
SEED = 20261204
COLUMNS = [
    "Reference #",
    "Campaign",
    "Campaign slug",
    "Team",
    "Description",
    "Subtype",
    "First name",
    "Last name",
    "Email",
    "Company",
    "Country",
    "Status",
    "Fund code",
    "Method",
    "Amount",
    "Fee",
    "Donated",
    "Currency",
    "Recurring plan ID",
    "Payment captured (UTC)",
    "Refund date (UTC)",
    "Public message",
    "Phone",
    "Address",
    "External ID",
    "Household name",
]
FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dmitri",
    "Esther",
    "Farid",
    "Grace",
    "Hiro",
    "Inês",
    "Jamal",
    "Kofi",
    "Lena",
    "María",
    "Noor",
    "Olu",
    "Priya",
    "Quinn",
    "Rosa",
    "Søren",
    "Tomasz",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoë",
]
LAST = [
    "Abernathy",
    "Bergström",
    "Carvalho",
    "Dubois",
    "Eze",
    "Fujita",
    "García",
    "Haddad",
    "Ivanova",
    "Jones",
    "Kim",
    "López",
    "Mensah",
    "Nakamura",
    "O'Brien",
    "Patel",
    "Quist",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ulloa",
    "Varga",
    "Weiß",
]
CAMPAIGNS = [
    "Monthly Giving Circle",
    "Spring Gala 2025",
    "Year-End Appeal 2025",
    "Giving Tuesday 2025",
    "Library Fund",
]
AMOUNTS = [10, 20, 25, 35, 50, 75, 100, 150, 250, 500, 1000, 1234.5, 2500, 5000]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def generate(path: Path, rows: int = ROWS) -> int:
    """Write the export; return how many distinct donors it holds."""
    rng = random.Random(SEED)
    donors = max(rows // GIFTS_PER_DONOR, 1)
    start = datetime(2025, 1, 1, 12, 0)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        previous: dict[int, float] = {}
        for i in range(rows):
            d = rng.randrange(donors)
            first, last = FIRST[d % len(FIRST)], LAST[(d // 7) % len(LAST)]
            # Addresses are ASCII like real ones ("zoe.calloway" for Zoë), with a
            # few internationalised ones.
            local = first.lower() if d % 200 == 0 else _ascii(first.lower())
            email = "" if d % 50 == 0 else f"{local}.{d}@example.org"
            if d % 97 == 0:
                email = email.upper()
            amount = AMOUNTS[rng.randrange(len(AMOUNTS))] + rng.choice(
                [0, 0, 0.5, 0.99]
            )
            subtype, status, refund = "donation", "succeeded", ""
            kind = rng.random()
            if kind < 0.01:
                subtype = "ticket"
            elif kind < 0.02:
                status = "failed"
            elif kind < 0.03:
                refund = (start + timedelta(days=200)).strftime("%Y-%m-%d %H:%M:%S")
            elif kind < 0.035 and d in previous:
                amount = -previous[d]
            previous[d] = amount
            captured = start + timedelta(minutes=7 * i + rng.randrange(5))
            writer.writerow(
                [
                    f"GB-{i:07d}",
                    CAMPAIGNS[d % len(CAMPAIGNS)],
                    "slug",
                    "",
                    "Donation",
                    subtype,
                    first,
                    last,
                    email,
                    "",
                    "US",
                    status,
                    "GEN",
                    "card",
                    f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}",
                    "1.05",
                    f"{abs(amount):.2f}",
                    "USD",
                    "",
                    captured.strftime("%Y-%m-%d %H:%M:%S"),
                    refund,
                    "@team thank you!" if i % 113 == 0 else "",
                    f"+1617555{d % 10000:04d}",
                    f"{d} Main St\nApt {d % 9}",
                    "",
                    f"{last} Household",
                ]
            )
    return donors


def run(rows: int = ROWS) -> dict[str, float]:
    """Generate, import (timed, then again under tracemalloc) and measure."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from lib.importing import read_donor_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "givebutter_transactions_100k.csv"
        generate(path, rows)
        data = path.read_bytes()
        warm = Path(folder) / "warm.csv"
        generate(warm, 2_000)
        # Warm up (module imports, regex compilation) before timing.
        read_donor_file(warm.read_bytes(), warm.name)
    rss_before = _rss_kb("VmRSS") if _reset_peak_rss() else None
    started = time.perf_counter()
    result = read_donor_file(data, path.name)
    elapsed = time.perf_counter() - started
    rss_peak = _rss_kb("VmHWM") if rss_before is not None else None
    del result
    tracemalloc.start()
    result = read_donor_file(data, path.name)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frame_bytes = int(result.to_frame().memory_usage(deep=True).sum())
    figures = {
        "import_rows_per_s": rows / elapsed,
        "import_rss_ratio": peak / frame_bytes,
        "import_seconds": elapsed,
        "import_peak_traced_mb": peak / 2**20,
        "import_frame_mb": frame_bytes / 2**20,
        "import_file_mb": len(data) / 2**20,
        "import_donors": float(result.imported),
        "import_doubtful_rows": float(len(result.doubtful)),
    }
    if rss_before is not None and rss_peak is not None:
        # tracemalloc does not see Arrow's own buffers; the process's peak resident
        # memory does (Linux only).
        figures["import_peak_rss_growth_mb"] = (rss_peak - rss_before) / 1024
    figures.update(_store(result))
    return figures


def _store(result: object) -> dict[str, float]:
    """Store the donors in a fresh sandbox database, twice (inserts, then updates),
    and list them back."""
    import os

    from lib.db import dispose_engines
    from lib.donors import list_donors, store_import
    from lib.services import open_services
    from lib.settings import settings_from_mapping

    with tempfile.TemporaryDirectory() as folder:
        saved = {k: os.environ.get(k) for k in ("STEWARD_DATA_DIR", "STEWARD_SECRETS")}
        os.environ["STEWARD_DATA_DIR"] = folder
        os.environ["STEWARD_SECRETS"] = str(Path(folder) / "none.toml")
        try:
            services = open_services(settings_from_mapping({}))
            donors = float(result.imported)  # type: ignore[attr-defined]
            started = time.perf_counter()
            store_import(services, result, "bench.csv")  # type: ignore[arg-type]
            inserted = time.perf_counter() - started
            started = time.perf_counter()
            store_import(services, result, "bench.csv")  # type: ignore[arg-type]
            updated = time.perf_counter() - started
            started = time.perf_counter()
            listed = len(list_donors(services.engine))
            listing = time.perf_counter() - started
            assert listed == donors
        finally:
            dispose_engines()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    return {
        "store_new_donors_per_s": donors / inserted,
        "store_known_donors_per_s": donors / updated,
        "list_donors_seconds": listing,
    }


def _reset_peak_rss() -> bool:
    """Reset the process's peak resident size (Linux: /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    for name, value in run(rows).items():
        print(f"{name}: {value:.3f}" if value % 1 else f"{name}: {value:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
