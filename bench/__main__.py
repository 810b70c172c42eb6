"""Run every benchmark, each in its own process so memory figures do not mix, and
print their figures as ``name: value`` lines under a heading per benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHES = [
    "bench.bench_import",
    "bench.bench_sandbox",
    "bench.bench_dashboard",
    "bench.bench_gmail_sync",
    "bench.bench_airtable",
    "bench.bench_drafting",
]


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    failed = []
    for module in BENCHES:
        print(f"# {module}", flush=True)
        done = subprocess.run([sys.executable, "-m", module], cwd=root, check=False)
        if done.returncode != 0:
            failed.append(module)
    if failed:
        print(f"# failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
