"""Steward's command line: the headless steps, sharing the app's database and code.

    python -m lib import FILE [--json]   store donors, print the import report
    python -m lib sync [--watch]         log new sent mail on CRM records
    python -m lib track [--port 8600]    serve open/click tracking (pixel, links)
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
    import json
    import re
    from pathlib import Path

    from lib.donors import store_import
    from lib.errors import ImportError_
    from lib.importing import read_donor_file
    from lib.services import open_services

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportError_(
            f"Cannot read {path}: {exc.strerror or exc}. Check the path and try again."
        ) from exc
    result = read_donor_file(data, path.name)
    stored = store_import(open_services(), result, path.name)
    if args.json:
        shown = {**result.to_json(), "import_id": stored.import_id}
        shown.update(created=stored.created, updated=stored.updated)
        print(json.dumps(shown, ensure_ascii=False))
        return 0

    def safe(text: str) -> str:  # donor data may hold terminal control characters
        return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "?", text).replace("\n", " / ")

    blocked = int(result.to_frame()["blocked_reason"].notna().sum())
    print(
        f"{safe(path.name)}: {result.record_count} records -> {result.imported} donors "
        f"({stored.created} new, {stored.updated} updated), import {stored.import_id}."
    )
    print(f"Encoding {result.encoding}, separator {result.separator!r}.")
    for note in result.notes:
        print(f"Note: {safe(note)}")
    print(f"{blocked} donor(s) may not be emailed (flags or no address).")
    print("Columns used:")
    for column, field in result.mapping.items():
        print(f"  {safe(column)} -> {field}")
    for label, issues in (
        ("Not imported", result.rejected),
        ("Worth a look", result.doubtful),
    ):
        if issues:
            print(f"{label} ({len(issues)}):")
            for issue in issues:
                print(f"  row {issue.row}: {safe(issue.reason)}")
    return 0


def _cmd_sync(args: argparse.Namespace) -> int:
    import time

    from lib.services import open_services
    from lib.sync import sync_all

    services = open_services()
    interval = max(args.interval or services.settings.sync_interval_s, 1.0)
    try:
        while True:
            reports = sync_all(services)
            for report in reports:
                print(report.summary())
            if not args.watch:
                return 0 if all(report.ok for report in reports) else 1
            time.sleep(interval)
    except KeyboardInterrupt:
        print("sync stopped")
        return 0


def _cmd_track(args: argparse.Namespace) -> int:
    from lib.services import open_services
    from lib.tracking_links import signing_key
    from lib.tracking_server import make_tracking_server

    services = open_services()
    if not services.settings.tracking_base_url:
        print(
            "note: steward.tracking_base_url is not set, so sent emails carry no "
            "tracking links; this server only answers links sent earlier.",
            file=sys.stderr,
        )
    try:
        server = make_tracking_server(
            services.engine, signing_key(services.settings), args.host, args.port
        )
    except OSError as exc:
        raise StewardError(
            f"Cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "choose another --port or stop what is using it."
        ) from exc
    # One line per hit is this command's own output, with or without --verbose.
    logging.getLogger("lib.tracking_server").setLevel(logging.INFO)
    print(f"tracking server on http://{args.host}:{server.server_port} (Ctrl+C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("tracking server stopped")
    finally:
        server.server_close()
    return 0


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

    p_track = sub.add_parser("track", help="serve open pixels and tracked links")
    p_track.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p_track.add_argument("--port", type=int, default=8600, help="port to listen on")
    p_track.set_defaults(func=_cmd_track)

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
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
