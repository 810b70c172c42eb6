"""Steward's command line: the headless steps, sharing the app's database and code.

    python -m lib import FILE [--json]   store donors, print the import report
    python -m lib sync [--watch]         log new sent mail on CRM records
    python -m lib new-key                print a fresh encryption key for secrets

The command line is a thin shell over the library, like the pages.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cryptography.fernet import Fernet

from lib.errors import StewardError

log = logging.getLogger(__name__)


def _cmd_import(args: argparse.Namespace) -> int:
    raise NotImplementedError  # filled in by the donor-import work


def _cmd_sync(args: argparse.Namespace) -> int:
    raise NotImplementedError  # filled in by the sync work


def _cmd_new_key(args: argparse.Namespace) -> int:
    print(Fernet.generate_key().decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    p_import = sub.add_parser("import", help="import a donor file (CSV or XLSX)")
    p_import.add_argument("file", help="path to the export")
    p_import.add_argument("--json", action="store_true", help="print JSON")
    p_import.set_defaults(func=_cmd_import)

    p_sync = sub.add_parser("sync", help="log sent mail on CRM records")
    p_sync.add_argument("--watch", action="store_true", help="keep syncing")
    p_sync.add_argument(
        "--interval", type=float, default=None, help="seconds between passes"
    )
    p_sync.set_defaults(func=_cmd_sync)

    p_key = sub.add_parser("new-key", help="print a new encryption key")
    p_key.set_defaults(func=_cmd_new_key)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except StewardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
