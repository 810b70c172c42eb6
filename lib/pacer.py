"""Keep every caller in this process under a service's request rate, together.

Why a shared pacer: Airtable counts requests per base over every token and program
that uses it (5 per second), and answers a burst with 429 and a 30 second penalty.
The background sync, the pages and the command line all talk to the same base, so
only one budget for the whole process keeps their sum under the limit; pacing each
client on its own would let three of them send 15 requests a second.

How a slot is counted: a request holds a slot from the moment it starts until one
window after its answer came back. The service counts a request when it arrives,
which is always before its answer reaches us, so counting from the answer keeps us
under the limit whatever the network delay, without guessing a safety margin.

Clock and sleep are injectable so tests run in microseconds instead of seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# limits.md, "Airtable Web API": 5 requests per second per base (all tokens).
AIRTABLE_REQUESTS_PER_WINDOW = 5
AIRTABLE_WINDOW_S = 1.0
# limits.md, "Airtable Web API": after a 429, wait 30 seconds.
AIRTABLE_RATE_LIMIT_PAUSE_S = 30.0
# How often a caller waiting only on in-flight requests looks again.
POLL_INTERVAL_S = 0.005


@dataclass
class _Budget:
    """Slots of one key (one Airtable base)."""

    finished: deque[float] = field(default_factory=deque)  # answer times
    in_flight: int = 0
    paused_until: float = 0.0


class Pacer:
    """At most ``rate`` requests per ``window_s`` for each key, across threads.

    ``key`` is whatever the service counts by (for Airtable, the base id). After a
    rate-limit answer, :meth:`pause` holds every caller of that key for
    ``pause_s``.
    """

    def __init__(
        self,
        rate: int = AIRTABLE_REQUESTS_PER_WINDOW,
        window_s: float = AIRTABLE_WINDOW_S,
        pause_s: float = AIRTABLE_RATE_LIMIT_PAUSE_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate < 1 or window_s <= 0 or pause_s < 0:
            raise ValueError("rate must be >= 1, window_s > 0 and pause_s >= 0")
        self.rate = rate
        self.window_s = window_s
        self.pause_s = pause_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._budgets: dict[str, _Budget] = {}
        self.pauses = 0  # how many times a rate-limit answer paused a key

    def _budget(self, key: str) -> _Budget:
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = _Budget()
        return budget

    def acquire(self, key: str) -> float:
        """Block until a request for ``key`` may start; return the seconds waited.

        Every successful acquire must be followed by :meth:`release` (use
        :meth:`slot`).
        """
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                budget = self._budget(key)
                while budget.finished and budget.finished[0] + self.window_s <= now:
                    budget.finished.popleft()
                if budget.paused_until > now:
                    delay = budget.paused_until - now
                elif budget.in_flight + len(budget.finished) < self.rate:
                    budget.in_flight += 1
                    return waited
                elif budget.finished:
                    delay = budget.finished[0] + self.window_s - now
                else:  # every slot is a request still on its way
                    delay = POLL_INTERVAL_S
            self._sleep(delay)
            waited += delay

    def release(self, key: str) -> None:
        """Mark one request for ``key`` as answered (its slot frees one window
        later)."""
        with self._lock:
            budget = self._budget(key)
            budget.in_flight = max(0, budget.in_flight - 1)
            budget.finished.append(self._clock())

    @contextmanager
    def slot(self, key: str) -> Iterator[float]:
        """Hold a slot for one request: ``with pacer.slot(base_id): send()``."""
        waited = self.acquire(key)
        try:
            yield waited
        finally:
            self.release(key)

    def pause(self, key: str, seconds: float | None = None) -> None:
        """Hold every caller of ``key`` for ``seconds`` (default ``pause_s``): the
        service answered 429 and asks us to wait."""
        delay = self.pause_s if seconds is None else seconds
        with self._lock:
            budget = self._budget(key)
            budget.paused_until = max(budget.paused_until, self._clock() + delay)
            self.pauses += 1
        log.warning("rate limited: pausing requests for %.1f s", delay)


# Limit: Airtable also caps 50 requests per second per token owner across bases;
# Steward talks to one base per process, so only the per-base budget is enforced.
_airtable_pacer = Pacer()


def airtable_pacer() -> Pacer:
    """The one Airtable pacer of this process, shared by every caller."""
    return _airtable_pacer
