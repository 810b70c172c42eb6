"""Background sync: a daemon thread that runs a sync pass every interval.

Why a thread in the app process: fundraisers expect a sent email on the CRM record
within a minute without running anything else. Streamlit re-runs scripts on every
click and may open several sessions, so :func:`start_background_sync` keeps at most
one thread per process and database and hands back the running one when asked
again. The thread survives errors: a StewardError (an account disconnected, the CRM
down) is logged and the pass repeats later with backoff; an unexpected error is
logged with its traceback and treated the same, so one bug cannot stop logging.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from lib.db import utcnow
from lib.errors import StewardError
from lib.services import Services
from lib.sync import SyncReport, sync_all

log = logging.getLogger(__name__)

# Longest wait between passes after repeated failures (a sync "within a minute" is
# the promise; after errors we retry at most this far apart).
MAX_BACKOFF_S = 300.0

SyncPass = Callable[[Services], list[SyncReport]]

_running: dict[str, BackgroundSync] = {}
_running_lock = threading.Lock()


class BackgroundSync:
    """One daemon thread running ``sync_pass`` every ``interval_s`` seconds."""

    def __init__(
        self,
        services_factory: Callable[[], Services],
        interval_s: float,
        database_url: str,
        *,
        sync_pass: SyncPass = sync_all,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self.interval_s = float(interval_s)
        self.database_url = database_url
        self.max_backoff_s = max_backoff_s
        self.runs = 0
        self.failures = 0  # consecutive failed passes
        self.last_run_at: datetime | None = None
        self.last_error: str | None = None
        self.last_reports: list[SyncReport] = []
        self._factory = services_factory
        self._sync_pass = sync_pass
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name="steward-background-sync", daemon=True
        )

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run the next pass now instead of waiting for the interval."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (after the pass in progress) and forget it."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)
        with _running_lock:
            if _running.get(self.database_url) is self:
                del _running[self.database_url]

    def next_delay(self) -> float:
        """Seconds until the next pass: the interval, doubled per failure, capped."""
        if self.failures == 0:
            return self.interval_s
        return min(self.interval_s * 2**self.failures, self.max_backoff_s)

    def run_pass(self) -> None:
        """One pass, recording its outcome; never raises."""
        started = time.perf_counter()
        try:
            reports = self._sync_pass(self._factory())
        except StewardError as exc:
            self._failed(str(exc))
            log.warning("background sync failed: %s", type(exc).__name__)
            return
        except Exception as exc:  # a bug must not end background logging
            self._failed(f"Unexpected error: {type(exc).__name__}")
            log.exception("background sync crashed; retrying later")
            return
        finally:
            self.runs += 1
            self.last_run_at = utcnow()
        self.last_reports = reports
        errors = [r.error for r in reports if r.error]
        if errors:
            self._failed("; ".join(errors))
        else:
            self.failures = 0
            self.last_error = None
        log.info(
            "background sync pass %d: %d mailboxes, %d errors, %.0f ms",
            self.runs,
            len(reports),
            len(errors),
            (time.perf_counter() - started) * 1000,
        )

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_pass()
            self._wake.wait(self.next_delay())
            self._wake.clear()


def start_background_sync(
    services_factory: Callable[[], Services],
    interval_s: float,
    *,
    sync_pass: SyncPass = sync_all,
    max_backoff_s: float = MAX_BACKOFF_S,
) -> BackgroundSync:
    """Start background sync for the factory's database, or return the running one.

    At most one thread runs per process and database URL; a second call (another
    Streamlit session, a re-run) returns the first. Raises StewardError when the
    factory cannot build services (bad configuration).
    """
    database_url = services_factory().settings.database_url
    with _running_lock:
        current = _running.get(database_url)
        if current is not None and current.running:
            return current
        worker = BackgroundSync(
            services_factory,
            interval_s,
            database_url,
            sync_pass=sync_pass,
            max_backoff_s=max_backoff_s,
        )
        _running[database_url] = worker
        worker.start()
    log.info("background sync started, every %.0f s", interval_s)
    return worker


def stop_all_background_syncs(timeout_s: float = 10.0) -> None:
    """Stop every background sync of this process (shutdown and tests)."""
    with _running_lock:
        workers = list(_running.values())
    for worker in workers:
        worker.stop(timeout_s)
