"""Per-backend budgets: how many calls may be in flight at once, and how many may start per minute.

Both are thread-safe and deadline-aware. Each offers a non-blocking ``try_acquire`` (used by the Ray pool's
dispatch loop, which must not block one backend's calls behind another's budget) and a blocking ``acquire``
that waits until the budget is there or raises ``LimitTimeout`` when it cannot be had before the deadline.
Deadlines and ``clock`` readings are ``time.monotonic()`` seconds unless a clock is injected.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from scoring.errors import BackendError


class LimitTimeout(BackendError):
    """A call's budget (a concurrency slot or a rate-limit token) could not be had before its deadline."""


class ConcurrencyLimit:
    """At most ``max_concurrency`` holders at once (a counting semaphore that knows its deadline)."""

    def __init__(self, max_concurrency: int, name: str = "backend") -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"ConcurrencyLimit.max_concurrency: expected an integer >= 1, got {max_concurrency!r}")
        self.max_concurrency = max_concurrency
        self.name = name
        self._in_use = 0
        self._cond = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def try_acquire(self) -> bool:
        """Take a slot if one is free now."""
        with self._cond:
            if self._in_use < self.max_concurrency:
                self._in_use += 1
                return True
            return False

    def acquire(self, deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """Wait for a slot; LimitTimeout if none frees up before ``deadline``."""
        with self._cond:
            while self._in_use >= self.max_concurrency:
                remaining = None if deadline is None else deadline - clock()
                if remaining is not None and remaining <= 0:
                    raise LimitTimeout(
                        f"{self.name}: all {self.max_concurrency} concurrent call slots stayed busy until the "
                        "call deadline"
                    )
                self._cond.wait(timeout=remaining)
            self._in_use += 1

    def release(self) -> None:
        with self._cond:
            if self._in_use <= 0:
                raise RuntimeError(f"{self.name}: ConcurrencyLimit released more often than acquired")
            self._in_use -= 1
            self._cond.notify()

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        self.acquire(deadline)
        try:
            yield
        finally:
            self.release()


class RateLimiter:
    """Token bucket: ``requests_per_minute`` tokens per minute, at most ``burst`` saved up (default: one
    second's worth, at least 1). Each call start takes one token.

    A blocking ``acquire`` reserves its token first and then sleeps outside the lock, so waiting callers are
    served in arrival order and never oversubscribe the rate.
    """

    def __init__(
        self,
        requests_per_minute: float,
        burst: float | None = None,
        name: str = "backend",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        rpm = requests_per_minute
        if isinstance(rpm, bool) or not isinstance(rpm, (int, float)) or not math.isfinite(rpm) or rpm <= 0:
            raise ValueError(f"RateLimiter.requests_per_minute: expected a number > 0, got {rpm!r}")
        if burst is None:
            burst = max(1.0, rpm / 60.0)
        if isinstance(burst, bool) or not isinstance(burst, (int, float)) or not math.isfinite(burst) or burst < 1:
            raise ValueError(f"RateLimiter.burst: expected a number >= 1, got {burst!r}")
        self.requests_per_minute = float(rpm)
        self.burst = float(burst)
        self.name = name
        self._rate_per_s = self.requests_per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst  # may go negative: tokens reserved by callers that are still waiting
        self._stamp = clock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self._rate_per_s)
        self._stamp = now

    def try_acquire(self) -> float:
        """Take a token if one is there now and return 0.0; otherwise take nothing and return the seconds until
        one will be (for a dispatch loop to wait that long)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate_per_s

    def acquire(self, deadline: float | None = None) -> float:
        """Wait for a token and take it; returns the seconds waited. LimitTimeout (taking nothing) when the
        token would come after ``deadline``."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait_s = max(0.0, (1.0 - self._tokens) / self._rate_per_s)
            if deadline is not None and now + wait_s > deadline:
                raise LimitTimeout(
                    f"{self.name}: rate limit of {self.requests_per_minute:g} requests/min: the next slot is in "
                    f"{wait_s:.2f} s, past the call deadline (in {max(0.0, deadline - now):.2f} s)"
                )
            self._tokens -= 1.0
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s
