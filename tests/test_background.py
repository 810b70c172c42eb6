"""Background sync: one thread per database, survives errors, stops cleanly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from lib.background import (
    BackgroundSync,
    start_background_sync,
    stop_all_background_syncs,
)
from lib.crm.sandbox import SandboxCrm
from lib.errors import MailboxError
from lib.models import CrmRecord
from lib.services import Services
from lib.sync import SyncReport
from tests.fakes.sent_folder import ListMailbox

INTERVAL_S = 0.02
WAIT_S = 5.0


@pytest.fixture(autouse=True)
def no_threads_left() -> Iterator[None]:
    yield
    stop_all_background_syncs(timeout_s=5)


def wait_for(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_background_sync_logs_new_mail(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("recAnn", "Ann", ("ann@example.org",))])
    box = ListMailbox()
    monkeypatch.setattr(services, "mailboxes", lambda: [box])
    monkeypatch.setattr(services, "crm", lambda: crm)
    worker = start_background_sync(lambda: services, INTERVAL_S)
    assert wait_for(lambda: worker.runs >= 1)
    box.add(("ann@example.org",))
    worker.wake()
    assert wait_for(lambda: len(crm.read_log()) == 1)
    runs = worker.runs
    assert wait_for(lambda: worker.runs >= runs + 3)
    assert len(crm.read_log()) == 1  # many passes, one entry
    assert worker.last_error is None and worker.last_run_at is not None
    worker.stop()
    assert not worker.running


def test_one_thread_per_database(services: Services) -> None:
    calls: list[int] = []

    def quiet(_services: Services) -> list[SyncReport]:
        calls.append(1)
        return []

    first = start_background_sync(lambda: services, 60, sync_pass=quiet)
    second = start_background_sync(lambda: services, 60, sync_pass=quiet)
    assert first is second and first.running
    first.stop()
    third = start_background_sync(lambda: services, 60, sync_pass=quiet)
    assert third is not first and third.running
    third.stop()


def test_survives_errors_with_backoff(services: Services) -> None:
    outcomes: list[object] = [
        MailboxError("Gmail is unreachable; try again."),
        RuntimeError("a bug"),
        [SyncReport(mailbox="test:a", error="CRM refused")],
    ]

    def flaky(_services: Services) -> list[SyncReport]:
        if outcomes:
            outcome = outcomes.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            return outcome  # type: ignore[return-value]
        return [SyncReport(mailbox="test:a")]

    worker = start_background_sync(
        lambda: services, INTERVAL_S, sync_pass=flaky, max_backoff_s=0.05
    )
    assert wait_for(lambda: worker.runs >= 5 and worker.failures == 0)
    assert worker.last_error is None
    assert worker.running
    assert worker.last_reports[0].ok


def test_backoff_grows_and_is_capped(services: Services) -> None:
    worker = BackgroundSync(
        lambda: services, 10, services.settings.database_url, max_backoff_s=60
    )
    assert worker.next_delay() == 10
    worker.failures = 1
    assert worker.next_delay() == 20
    worker.failures = 5
    assert worker.next_delay() == 60


def test_error_is_recorded(services: Services) -> None:
    def broken(_services: Services) -> list[SyncReport]:
        raise MailboxError("Gmail is unreachable; try again.")

    worker = start_background_sync(
        lambda: services, INTERVAL_S, sync_pass=broken, max_backoff_s=0.05
    )
    assert wait_for(lambda: worker.failures >= 2)
    assert "unreachable" in worker.last_error
    assert worker.running
