"""The shared pacer: at most 5 requests per window per base, across threads; a 429
pauses the base (case C11)."""

from __future__ import annotations

import threading
import time

import pytest

from lib.airtable_client import base_key
from lib.pacer import Pacer, airtable_pacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def paced(clock: FakeClock, **kwargs: float) -> Pacer:
    return Pacer(clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def test_five_per_window_then_waits_for_the_oldest_slot() -> None:
    clock = FakeClock()
    pacer = paced(clock, rate=5, window_s=1.0)
    starts = []
    for _ in range(12):
        with pacer.slot("appA"):
            starts.append(clock.now)
    assert starts == [0.0] * 5 + [1.0] * 5 + [2.0] * 2
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= 1.0


def test_slot_is_counted_from_the_answer_not_the_start() -> None:
    clock = FakeClock()
    pacer = paced(clock, rate=5, window_s=1.0)
    for _ in range(5):
        pacer.acquire("appA")
    clock.now = 0.4  # the five answers arrive 0.4 s later
    for _ in range(5):
        pacer.release("appA")
    pacer.acquire("appA")
    assert clock.now == pytest.approx(1.4)


def test_bases_have_separate_budgets() -> None:
    clock = FakeClock()
    pacer = paced(clock, rate=5, window_s=1.0)
    for key in ("appA", "appB"):
        for _ in range(5):
            with pacer.slot(key):
                pass
    assert clock.now == 0.0


def test_pause_holds_every_caller_of_that_base_only() -> None:
    clock = FakeClock()
    pacer = paced(clock, rate=5, window_s=1.0, pause_s=30.0)
    pacer.pause("appA")
    with pacer.slot("appB") as waited_b:
        assert waited_b == 0.0
    with pacer.slot("appA") as waited_a:
        assert waited_a == pytest.approx(30.0)
    assert pacer.pauses == 1


def test_threads_share_one_budget() -> None:
    window = 0.1
    pacer = Pacer(rate=5, window_s=window)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(8):
            with pacer.slot("appShared"):
                with lock:
                    starts.append(time.monotonic())
                time.sleep(0.001)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    elapsed = time.monotonic() - began
    starts.sort()
    assert len(starts) == 32
    for i in range(len(starts) - 5):
        assert starts[i + 5] - starts[i] >= window
    assert elapsed >= (32 / 5 - 1) * window


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Pacer(rate=0)


def test_one_pacer_per_process() -> None:
    assert airtable_pacer() is airtable_pacer()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://api.airtable.com/v0/appX/tblY?filterByFormula=x", "appX"),
        ("https://api.airtable.com/v0/appX/tblY/listRecords", "appX"),
        ("https://api.airtable.com/v0/meta/bases/appX/tables", "appX"),
        ("https://api.airtable.com/v0/meta/bases", "meta"),
        ("https://api.airtable.com/v0/meta/whoami", "meta"),
        ("http://127.0.0.1:5000/proxy/v0/appZ/tbl", "appZ"),
    ],
)
def test_requests_are_counted_against_their_base(url: str, key: str) -> None:
    assert base_key(url) == key
