"""Retries: only transient failures, exponential backoff with jitter, Retry-After honoured, deadlines kept."""

import json
import random

import pytest

from scoring.backend import AgentConfig, Backend
from scoring.config import BackendSettings, ScoringConfig
from scoring.errors import BackendError, TransientBackendError
from scoring.retry import NO_RETRY, AttemptLog, RetryPolicy, call_with_retries
from scoring.scorer import CallSpec, Scorer, SerialExecutor, run_call
from tests.fakes.fake_time import FakeTime


def failing(errors, result="ok"):
    """fn() raising the given errors in turn, then returning result."""
    queue = list(errors)
    calls = []

    def fn():
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return result

    fn.calls = calls
    return fn


def test_succeeds_after_transient_failures_with_exponential_backoff():
    t = FakeTime(100.0)
    log = AttemptLog()
    policy = RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=3.0, jitter=0.0)
    fn = failing([TransientBackendError("429"), TransientBackendError("503"), TransientBackendError("reset")])
    assert call_with_retries(fn, policy, sleep=t.sleep, clock=t.clock, log=log) == "ok"
    assert t.sleeps == [1.0, 2.0, 3.0]  # doubling, capped at max_backoff_s
    assert log.attempts == 4 and log.waits_s == [1.0, 2.0, 3.0]
    assert log.errors == [
        "TransientBackendError: 429",
        "TransientBackendError: 503",
        "TransientBackendError: reset",
    ]


def test_retry_after_is_a_lower_bound_even_above_max_backoff():
    t = FakeTime(100.0)
    policy = RetryPolicy(max_retries=2, backoff_s=0.5, max_backoff_s=1.0, jitter=0.0)
    fn = failing([TransientBackendError("429", retry_after_s=7.0), TransientBackendError("429", retry_after_s=0.1)])
    call_with_retries(fn, policy, sleep=t.sleep, clock=t.clock)
    assert t.sleeps == [7.0, 1.0]  # the server's 7 s wins; a short Retry-After does not shorten the backoff


@pytest.mark.parametrize("error", [BackendError("HTTP 400"), TimeoutError("read timed out"), ValueError("bad")])
def test_other_errors_are_not_retried(error):
    t = FakeTime(100.0)
    log = AttemptLog()
    fn = failing([error])
    with pytest.raises(type(error)):
        call_with_retries(fn, RetryPolicy(max_retries=5), sleep=t.sleep, clock=t.clock, log=log)
    assert len(fn.calls) == 1 and t.sleeps == [] and log.attempts == 1
    assert log.errors == [f"{type(error).__name__}: {error}"]


def test_exhausted_retries_raise_the_last_transient_error():
    t = FakeTime(100.0)
    log = AttemptLog()
    fn = failing([TransientBackendError(f"503 #{i}") for i in range(5)])
    with pytest.raises(TransientBackendError, match="503 #2"):
        call_with_retries(fn, RetryPolicy(max_retries=2, jitter=0.0), sleep=t.sleep, clock=t.clock, log=log)
    assert log.attempts == 3 and len(t.sleeps) == 2 and log.gave_up == ""


def test_no_retry_would_pass_the_deadline():
    t = FakeTime(100.0)
    log = AttemptLog()
    policy = RetryPolicy(max_retries=5, backoff_s=1.0, jitter=0.0)
    fn = failing([TransientBackendError("429", retry_after_s=10.0)])
    with pytest.raises(TransientBackendError):
        call_with_retries(fn, policy, sleep=t.sleep, clock=t.clock, deadline=t.now + 5.0, log=log)
    assert t.sleeps == [] and log.attempts == 1
    assert "no retry 1: a wait of 10.00 s would pass the call deadline (in 5.00 s)" == log.gave_up


def test_jitter_stays_within_its_fraction():
    policy = RetryPolicy(max_retries=3, backoff_s=2.0, max_backoff_s=100.0, jitter=0.5)
    rng = random.Random(0)
    delays = [policy.delay_s(2, rng=rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)  # base 4 s, up to half of it drawn away
    assert max(delays) - min(delays) > 1.0  # actually jittered
    assert RetryPolicy(jitter=0.0, backoff_s=2.0).delay_s(1) == 2.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_retries": -1}, "max_retries: expected an integer >= 0"),
        ({"max_retries": 1.5}, "max_retries: expected an integer >= 0"),
        ({"backoff_s": -1}, "backoff_s: expected a number >= 0"),
        ({"backoff_s": 5, "max_backoff_s": 1}, "max_backoff_s: expected a number >= backoff_s"),
        ({"jitter": 2}, r"jitter: expected a number in \[0, 1\]"),
        ({"jitter": float("nan")}, "jitter: expected a finite number"),
    ],
)
def test_policy_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


VALID = json.dumps(
    {"view_clarity": 7, "candidates": [{"id": 1, "safety": 5, "task_alignment": 5, "efficiency": 5, "feasibility": 5}]}
)


class Flaky(Backend):
    """Fails the first `failures` calls per view with a transient error."""

    name = "flaky"

    def __init__(self, failures, transient=True):
        self.failures = failures
        self.transient = transient
        self.calls = {}

    def answer(self, request, view, agent):
        n = self.calls[view.name] = self.calls.get(view.name, 0) + 1
        if n <= self.failures:
            if self.transient:
                raise TransientBackendError(f"HTTP 503 (call {n})")
            raise BackendError(f"HTTP 401 (call {n})")
        return VALID


def test_run_call_reports_attempts(view):
    from scoring.request import ScoreRequest

    request = ScoreRequest("do it", "", (1,), (view("front"),))
    call = CallSpec(AgentConfig("a", "flaky"), view("front"))
    policy = RetryPolicy(max_retries=1, backoff_s=0.0, max_backoff_s=0.0, jitter=0.0)
    ok = run_call(request, call, Flaky(1), policy)
    assert ok.error is None and ok.raw_text == VALID and ok.attempts == 2
    assert ok.attempt_errors == ("TransientBackendError: HTTP 503 (call 1)",)
    failed = run_call(request, call, Flaky(5), policy)
    assert failed.error == "TransientBackendError: HTTP 503 (call 2) (after 2 attempts)"
    assert failed.attempts == 2
    plain = run_call(request, call, Flaky(1), NO_RETRY)
    assert plain.error == "TransientBackendError: HTTP 503 (call 1)" and plain.attempts == 1


def test_serial_executor_retries_per_backend_settings_and_records_them(view):
    from scoring.request import ScoreRequest

    request = ScoreRequest("do it", "", (1,), (view("front"), view("top")))
    agents = (AgentConfig("a", "flaky"), AgentConfig("b", "hard"))
    settings = {
        "flaky": BackendSettings(max_retries=2, backoff_s=0.0, max_backoff_s=0.0),
        "hard": BackendSettings(max_retries=2, backoff_s=0.0, max_backoff_s=0.0),
    }
    cfg = ScoringConfig(
        weights={"safety": 1, "task_alignment": 1, "efficiency": 1, "feasibility": 1},
        lambda_C=0.5,
        agents=agents,
        views=("front", "top"),
        backends=settings,
    )
    scorer = Scorer(None, cfg, backends={"flaky": Flaky(2), "hard": Flaky(9, transient=False)})
    assert isinstance(scorer.executor, SerialExecutor)
    table = scorer.score(request)
    flaky = [c for c in table.calls if c.agent == "a"]
    assert all(c.ok and c.attempts == 3 and len(c.attempt_errors) == 2 for c in flaky)
    hard = [c for c in table.calls if c.agent == "b"]
    assert all(not c.ok and c.attempts == 1 for c in hard)  # a 401 is not retried
    assert hard[0].error == "BackendError: HTTP 401 (call 1)"
    assert table.to_dict()["calls"][0]["attempts"] == 3
