"""The per-account Gmail quota budget and the backoff policy (lib.quota), on a fake
clock so nothing really waits."""

from __future__ import annotations

import threading

import pytest

from lib import quota
from lib.quota import SEND, SYNC, Backoff, QuotaBudget, QuotaWaitTooLong


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budget(clock: FakeClock, units: int = 6000, **kwargs: float) -> QuotaBudget:
    return QuotaBudget(units, clock=clock, sleep=clock.sleep, **kwargs)


def test_calls_within_the_minute_do_not_wait() -> None:
    clock = FakeClock()
    b = budget(clock)
    for _ in range(30):
        assert b.acquire(quota.COST_SEND, SEND) == 0.0
    assert clock.sleeps == []
    assert b.used() == {SEND: 3000, SYNC: 0}


def test_over_the_minute_waits_until_units_leave_the_window() -> None:
    clock = FakeClock()
    b = budget(clock, units=600, reserved_share=0.0)
    for _ in range(6):
        b.acquire(100, SEND)
        clock.now += 1.0
    # the seventh send must wait until the first leaves the 60 s window
    waited = b.acquire(100, SEND)
    assert waited == pytest.approx(54.0)
    assert b.used()[SEND] == 600


def test_sync_cannot_take_the_reserve_of_sending() -> None:
    clock = FakeClock()
    b = budget(clock, units=6000)  # a quarter (1500) reserved for each purpose
    for _ in range(4500 // 100):
        b.acquire(100, SYNC)
    assert clock.sleeps == []
    # sync has used all it may while nobody sends: the next sync call waits ...
    b.acquire(100, SYNC)
    assert clock.sleeps, "sync should have waited for the window"
    # ... but a send goes through at once, from its reserve
    clock.sleeps.clear()
    for _ in range(14):
        b.acquire(quota.COST_SEND, SEND)
    assert clock.sleeps == []


def test_sending_cannot_starve_sync_either() -> None:
    clock = FakeClock()
    b = budget(clock, units=6000)
    for _ in range(45):
        b.acquire(quota.COST_SEND, SEND)
    assert clock.sleeps == []
    b.acquire(quota.COST_GET * 50, SYNC)  # 1000 units from sync's reserve
    assert clock.sleeps == []


def test_a_wait_longer_than_allowed_raises() -> None:
    clock = FakeClock()
    b = budget(clock, units=100, max_wait_s=10.0, reserved_share=0.0)
    b.acquire(100, SEND)
    with pytest.raises(QuotaWaitTooLong):
        b.acquire(100, SEND)
    assert clock.sleeps == []


def test_budget_is_thread_safe() -> None:
    clock = FakeClock()
    b = budget(clock, units=10_000_000)
    threads = [
        threading.Thread(target=lambda: [b.acquire(1, SYNC) for _ in range(500)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.used()[SYNC] == 4000


def test_shared_budget_is_one_object_per_account() -> None:
    first = quota.shared_budget("Ann@Example.org", 6000)
    assert quota.shared_budget("ann@example.org", 6000) is first
    assert quota.shared_budget("bob@example.org", 6000) is not first
    assert quota.shared_budget("ann@example.org", 15000).capacity == 15000


def test_unknown_purpose_is_refused() -> None:
    with pytest.raises(ValueError):
        budget(FakeClock()).acquire(1, "drafts")


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    sleeps: list[float] = []
    backoff = Backoff(sleep=sleeps.append, rng=lambda: 0.5)
    for attempt in range(7):
        backoff.wait(attempt)
    assert sleeps == [1.5, 2.5, 4.5, 8.5, 16.5, 32.0, 32.0]


def test_backoff_starts_at_one_second_or_more() -> None:
    low = Backoff(rng=lambda: 0.0)
    high = Backoff(rng=lambda: 0.999)
    assert low.delay(0) >= 1.0
    assert 1.0 <= high.delay(0) < 2.0
    assert low.delay(3) == 8.0


def test_backoff_honours_retry_after() -> None:
    backoff = Backoff(rng=lambda: 0.0)
    assert backoff.delay(0, retry_after=20.0) == 20.0
    assert backoff.delay(4, retry_after=2.0) == 16.0
