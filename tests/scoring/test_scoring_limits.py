"""Per-backend budgets: the concurrency limit and the token-bucket rate limiter."""

import threading
import time

import pytest

from scoring.limits import ConcurrencyLimit, LimitTimeout, RateLimiter
from tests.fakes.fake_time import FakeTime


def test_concurrency_limit_counts_slots():
    limit = ConcurrencyLimit(2, name="openai")
    assert limit.try_acquire() and limit.try_acquire()
    assert not limit.try_acquire() and limit.in_use == 2
    limit.release()
    assert limit.try_acquire()
    limit.release()
    limit.release()
    assert limit.in_use == 0
    with pytest.raises(RuntimeError, match="released more often"):
        limit.release()


def test_concurrency_limit_gives_up_at_the_deadline():
    limit = ConcurrencyLimit(1, name="openai")
    limit.acquire()
    start = time.monotonic()
    with pytest.raises(LimitTimeout, match="openai: all 1 concurrent call slots stayed busy until the call deadline"):
        limit.acquire(deadline=start + 0.2)
    assert time.monotonic() - start >= 0.2 - 1e-3   # it waited for the deadline, not less


def test_concurrency_limit_holds_across_threads():
    limit = ConcurrencyLimit(2)
    active = []
    peak = [0]
    lock = threading.Lock()

    def work():
        with limit.slot(deadline=time.monotonic() + 10):
            with lock:
                active.append(1)
                peak[0] = max(peak[0], len(active))
            time.sleep(0.03)
            with lock:
                active.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2 and limit.in_use == 0


def test_rate_limiter_bucket_with_a_fake_clock():
    t = FakeTime()
    limiter = RateLimiter(60, burst=2, clock=t.clock, sleep=t.sleep)  # 1 token per second, 2 saved up
    assert limiter.try_acquire() == 0.0 and limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(1.0)  # nothing taken
    t.now += 0.5
    assert limiter.try_acquire() == pytest.approx(0.5)
    t.now += 10.0  # refills to the burst, not beyond
    assert limiter.try_acquire() == 0.0 and limiter.try_acquire() == 0.0
    assert limiter.try_acquire() > 0


def test_blocking_acquire_reserves_in_order():
    t = FakeTime()
    limiter = RateLimiter(60, burst=1, clock=t.clock, sleep=lambda s: t.sleeps.append(s))  # clock frozen
    waits = [limiter.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 1.0, 2.0])  # each waiter reserves the next free second


def test_acquire_past_the_deadline_raises_and_takes_nothing():
    t = FakeTime()
    limiter = RateLimiter(60, burst=1, clock=t.clock, sleep=t.sleep)
    limiter.acquire()
    with pytest.raises(LimitTimeout, match=r"rate limit of 60 requests/min: the next slot is in 1.00 s, past"):
        limiter.acquire(deadline=t.now + 0.5)
    assert limiter.acquire(deadline=t.now + 1.5) == pytest.approx(1.0)  # the failed call reserved nothing


def test_rate_limiter_across_threads_keeps_the_rate():
    limiter = RateLimiter(600, burst=1)  # one start per 0.1 s
    starts = []
    lock = threading.Lock()

    def work():
        limiter.acquire(deadline=time.monotonic() + 10)
        with lock:
            starts.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    assert starts[-1] - starts[0] >= 0.35  # 5 starts need 4 intervals of 0.1 s


def test_default_burst_is_one_second_worth():
    assert RateLimiter(30).burst == 1.0
    assert RateLimiter(600).burst == 10.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ConcurrencyLimit(0), "max_concurrency: expected an integer >= 1"),
        (lambda: RateLimiter(0), "requests_per_minute: expected a number > 0"),
        (lambda: RateLimiter(60, burst=0.5), "burst: expected a number >= 1"),
    ],
)
def test_validation(make, message):
    with pytest.raises(ValueError, match=message):
        make()
