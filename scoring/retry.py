"""Retries for backend calls: only transient failures (HTTP 429, 5xx, connection errors), exponential backoff
with jitter, never sooner than the server's Retry-After, never past the call's deadline.

Backends translate their transport's failures: ``TransientBackendError`` for what is worth another try,
anything else (a 4xx, a timeout, a malformed request) is final. ``call_with_retries`` runs a call in this
thread; the Ray pool uses the same ``RetryPolicy.delay_s`` to schedule its retries in the driver, so every
attempt passes the per-backend rate limiter again.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from scoring.errors import TransientBackendError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _check_number(value: object, where: str, *, minimum: float, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum:g}, {maximum:g}]" if maximum is not None else f">= {minimum:g}"
        raise ValueError(f"{where}: expected a number {bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    max_retries: retries after the first attempt (0 = no retry). backoff_s: the wait before retry 1; it doubles
    for every further retry, capped at max_backoff_s. jitter: the fraction of each wait drawn at random (0 = exact
    waits, 1 = anywhere between 0 and the full wait) so agents hitting one rate limit do not retry in lockstep.
    A server's retry_after_s raises the wait to at least that, even above max_backoff_s.
    """

    max_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"RetryPolicy.max_retries: expected an integer >= 0, got {retries!r}")
        backoff_s = _check_number(self.backoff_s, "RetryPolicy.backoff_s", minimum=0.0)
        max_backoff_s = _check_number(self.max_backoff_s, "RetryPolicy.max_backoff_s", minimum=0.0)
        if max_backoff_s < backoff_s:
            raise ValueError(
                f"RetryPolicy.max_backoff_s: expected a number >= backoff_s ({backoff_s:g}), "
                f"got {self.max_backoff_s!r}"
            )
        object.__setattr__(self, "backoff_s", backoff_s)
        object.__setattr__(self, "max_backoff_s", max_backoff_s)
        object.__setattr__(
            self, "jitter", _check_number(self.jitter, "RetryPolicy.jitter", minimum=0.0, maximum=1.0)
        )

    def delay_s(self, retry: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before retry number ``retry`` (1 = the first retry)."""
        if retry < 1:
            raise ValueError(f"retry: expected a retry number >= 1, got {retry}")
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** (retry - 1))
        draw = (rng or random).random()
        delay = base * (1.0 - self.jitter * draw)
        if retry_after_s is not None and math.isfinite(retry_after_s) and retry_after_s > delay:
            delay = float(retry_after_s)
        return delay


NO_RETRY = RetryPolicy(max_retries=0, backoff_s=0.0, max_backoff_s=0.0, jitter=0.0)


@dataclass
class AttemptLog:
    """What happened across the attempts of one call, for the CallRecord.

    attempts: attempts made. errors: 'ExceptionType: message' of every failed attempt, in order (the last one is
    the call's error when it failed). waits_s: the backoff slept before each retry. gave_up: why no further
    retry was made although the last error was transient ('' when retries were not needed or ran out).
    """

    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)
    gave_up: str = ""


def format_error(err: BaseException) -> str:
    """'ExceptionType: message', the form CallRecord.error uses."""
    return f"{type(err).__name__}: {err}"


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    log: AttemptLog | None = None,
) -> T:
    """``fn()``, retried on TransientBackendError per ``policy``; any other exception propagates at once.

    deadline: a ``clock()`` time after which no retry starts; a retry whose wait would end past it is not made
    and the last transient error is raised (``log.gave_up`` says so). ``log`` collects attempts and errors.
    """
    log = log if log is not None else AttemptLog()
    while True:
        log.attempts += 1
        try:
            return fn()
        except TransientBackendError as err:
            log.errors.append(format_error(err))
            retry = log.attempts  # the retry this failure would lead to
            if retry > policy.max_retries:
                raise
            delay = policy.delay_s(retry, err.retry_after_s, rng)
            if deadline is not None and clock() + delay > deadline:
                log.gave_up = (
                    f"no retry {retry}: a wait of {delay:.2f} s would pass the call deadline "
                    f"(in {max(0.0, deadline - clock()):.2f} s)"
                )
                raise
            logger.info("transient failure (%s); retry %d of %d in %.2f s", err, retry, policy.max_retries, delay)
            log.waits_s.append(delay)
            sleep(delay)
        except Exception as err:
            log.errors.append(format_error(err))
            raise
