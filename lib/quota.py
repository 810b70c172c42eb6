"""One Gmail quota budget per Google account, shared by sending and syncing, and the
backoff used when Google says "slow down".

Why a shared budget: Gmail counts quota units per user per minute over every call
the account makes. The send flow and the background sync run in the same process
for the same account; if each paced itself alone, together they would overrun the
limit and both would get 429s. One budget per account keeps their sum under it.

Why reserves: a full resync of a large Sent folder could use the whole minute
and hold back a person's click on "Send" (or a burst of sends could stall logging).
Each kind of caller ("send", "sync") has a reserved share it can always use, and
neither may spend the other's unused reserve, so neither starves the other.

Clock and sleep are injectable so tests (and the benchmark) run without waiting.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# limits.md, "Gmail API": per-user quota of 6,000 units per minute for projects
# created from May 2026 (older projects: 15,000). Configurable per deployment.
DEFAULT_UNITS_PER_MINUTE = 6000
QUOTA_WINDOW_S = 60.0

# limits.md, "Gmail API": cost per call in quota units.
COST_SEND = 100  # messages.send
COST_GET = 20  # messages.get (each call inside a batch is charged on its own)
COST_LIST = 5  # messages.list
COST_HISTORY = 2  # history.list
COST_PROFILE = 1  # users.getProfile

SEND = "send"
SYNC = "sync"
PURPOSES = (SEND, SYNC)
# Share of the budget each purpose can always count on (our choice: a quarter each,
# so a full resync still gets three quarters when nobody is sending).
RESERVED_SHARE = 0.25
# A caller never waits longer than this for quota; it then gives up with an error.
MAX_QUOTA_WAIT_S = 300.0

# limits.md, "Gmail API": back off exponentially, starting at one second or more.
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 32.0
BACKOFF_MAX_RETRIES = 5


class QuotaWaitTooLong(TimeoutError):
    """Waiting for quota would take longer than the caller allows."""


@dataclass
class _Spent:
    at: float
    units: int
    purpose: str


class QuotaBudget:
    """Quota units of one Google account over a sliding one-minute window.

    :meth:`acquire` blocks (with the injected ``sleep``) until the units fit, so
    every Gmail call made through the same budget stays under the per-user limit.
    Thread-safe.
    """

    def __init__(
        self,
        units_per_minute: int = DEFAULT_UNITS_PER_MINUTE,
        *,
        window_s: float = QUOTA_WINDOW_S,
        reserved_share: float = RESERVED_SHARE,
        max_wait_s: float = MAX_QUOTA_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if units_per_minute <= 0:
            raise ValueError("units_per_minute must be positive")
        self.capacity = int(units_per_minute)
        self.window_s = window_s
        self.reserve = int(self.capacity * reserved_share)
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._spent: deque[_Spent] = deque()
        self._totals = {purpose: 0 for purpose in PURPOSES}  # units in the window
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers spent waiting (for the benchmark)

    def _prune(self, now: float) -> None:
        while self._spent and self._spent[0].at <= now - self.window_s:
            gone = self._spent.popleft()
            self._totals[gone.purpose] -= gone.units

    def _used(self) -> dict[str, int]:
        return dict(self._totals)

    def _fits(self, units: int, purpose: str) -> bool:
        used = self._used()
        total = sum(used.values())
        if total == 0:
            return True  # an oversized single call still goes, alone in its minute
        other = SYNC if purpose == SEND else SEND
        others_unused_reserve = max(0, self.reserve - used[other])
        if total + units > self.capacity:
            return False
        return used[purpose] + units <= self.capacity - others_unused_reserve

    def acquire(self, units: int, purpose: str = SYNC) -> float:
        """Take ``units`` for ``purpose`` ("send" or "sync"), waiting until they fit.

        Returns the seconds waited. Raises QuotaWaitTooLong when the wait would
        exceed ``max_wait_s``.
        """
        if purpose not in PURPOSES:
            raise ValueError(f"unknown quota purpose {purpose!r}")
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._prune(now)
                if self._fits(units, purpose):
                    self._spent.append(_Spent(now, units, purpose))
                    self._totals[purpose] += units
                    self.waited_s += waited
                    return waited
                # The earliest moment anything leaves the window.
                delay = max(self._spent[0].at + self.window_s - now, 0.001)
            if waited + delay > self.max_wait_s:
                self.waited_s += waited
                raise QuotaWaitTooLong(
                    f"Gmail quota for this account is used up for the next "
                    f"{delay:.0f} s"
                )
            self._sleep(delay)
            waited += delay

    def used(self) -> dict[str, int]:
        """Units spent per purpose in the current window (for pages and tests)."""
        with self._lock:
            self._prune(self._clock())
            return self._used()


_budgets: dict[str, QuotaBudget] = {}
_budgets_lock = threading.Lock()


def shared_budget(account: str, units_per_minute: int) -> QuotaBudget:
    """The process-wide budget of ``account``: every mailbox object of the same
    account gets the same one, so sending and syncing share it."""
    # Limit: the budget is per process; the command-line sync and the app running
    # at the same time each count only their own calls.
    key = account.lower()
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None or budget.capacity != units_per_minute:
            budget = QuotaBudget(units_per_minute)
            _budgets[key] = budget
        return budget


@dataclass
class Backoff:
    """Exponential backoff with jitter, as Google asks for rate-limit and server
    errors: wait 2**n seconds plus up to one second of randomness, capped.

    ``sleep`` and ``rng`` are injectable so tests do not wait.
    """

    base_s: float = BACKOFF_BASE_S
    max_s: float = BACKOFF_MAX_S
    max_retries: int = BACKOFF_MAX_RETRIES
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0 = first retry); at
        least ``retry_after`` when the service named one, never above ``max_s``
        unless the service asked for more."""
        delay = min(self.base_s * (2**attempt) + self.rng() * self.base_s, self.max_s)
        if retry_after is not None and retry_after > delay:
            delay = retry_after
        return delay

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Sleep before retry ``attempt`` and return how long that was."""
        delay = self.delay(attempt, retry_after)
        log.info("backing off %.1f s before retry %d", delay, attempt + 1)
        self.sleep(delay)
        return delay
