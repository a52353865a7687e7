"""RayExecutor: calls in flight together, dead actors, timeouts, retries, per-backend limits, cancellation.

One local Ray session for the module and one long-lived executor whose test backend is driven by per-agent
params, so most tests reuse warm actors. The backend is a test double for the pool's logic (it sleeps, fails
on purpose); the real HTTP backends against a stub server are exercised below and by
`antigrounding bench scoring-pool`. Ray is a declared dependency: imported, never skipped. Durations are
checked through the calls' own logged start/end times and error messages, not by timing the test.
"""

import json
import logging
import sys
import threading
import time

import pytest
import ray

from scoring.backend import AgentConfig, Backend
from scoring.config import BackendSettings, ScoringConfig
from scoring.errors import BackendError, TransientBackendError
from scoring.pool import RayExecutor
from scoring.request import ScoreRequest, ViewImage
from scoring.scorer import CallSpec, Scorer, SerialExecutor

# The test backends below live in this module, which Ray workers cannot import: ship them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}
VIEWS = ("front", "top", "side")


class Scripted(Backend):
    """Answers valid JSON after params['delay_s'] (or delay_by_view[view]); fails on purpose when told to.

    fail: "transient" (TransientBackendError with retry_after_s) or "error" (BackendError); fail_times: how many
    attempts per (token, view) fail before one succeeds (None: all). log: a file to append 'start end' times.
    """

    name = "scripted"

    def __init__(self):
        self.counts = {}
        self.lock = threading.Lock()
        self.warmed = False

    def warm_up(self):
        self.warmed = True

    def answer(self, request, view, agent):
        if not self.warmed:  # the actor calls warm_up() before any call
            raise AssertionError("answer() before warm_up()")
        p = agent.params
        start = time.time()
        time.sleep(p.get("delay_by_view", {}).get(view.name, p.get("delay_s", 0.0)))
        try:
            fail = p.get("fail")
            if fail:
                with self.lock:
                    key = (p.get("token"), view.name)
                    self.counts[key] = self.counts.get(key, 0) + 1
                    n = self.counts[key]
                if p.get("fail_times") is None or n <= p["fail_times"]:
                    if fail == "transient":
                        raise TransientBackendError(f"HTTP 429 on {view.name}", p.get("retry_after_s"))
                    raise BackendError(f"HTTP 400 on {view.name}")
            score = float(p.get("score", 5.0))
            return json.dumps(
                {
                    "view_clarity": 8,
                    "candidates": [
                        {"id": j, "safety": score, "task_alignment": score, "efficiency": score, "feasibility": score}
                        for j in request.candidate_ids
                    ],
                }
            )
        finally:
            if p.get("log"):
                with open(p["log"], "a") as handle:
                    handle.write(f"{start} {time.time()}\n")


class Unbuildable(Backend):
    name = "unbuildable"

    def __init__(self):
        pass

    def warm_up(self):
        raise BackendError("model weights not found")

    def answer(self, request, view, agent):
        raise AssertionError("never built")


SETTINGS = {
    "scripted": BackendSettings(timeout_s=20.0, max_retries=2, backoff_s=0.05, max_backoff_s=1.0),
    "timed": BackendSettings(timeout_s=0.6, max_retries=0),
    "limited": BackendSettings(max_concurrency=1),
    "rated": BackendSettings(requests_per_minute=300, burst=1),  # one start per 0.2 s
    "scarce": BackendSettings(requests_per_minute=20, burst=1),  # one start per 3 s
}
FACTORIES = {name: Scripted for name in SETTINGS} | {"unbuildable": Unbuildable}


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(ray_session):
    executor = RayExecutor(SETTINGS, factories=FACTORIES)
    ens = [AgentConfig(f"a{i}", "scripted") for i in range(3)]
    executor.start_in_background(ens)  # returns at once; the first run() waits for it
    request = make_request(views=("front",))
    assert all(o.error is None for o in executor.run(request, calls_for(ens, request), {}))
    assert set(executor.actors) == {"a0", "a1", "a2"}
    yield executor
    executor.close()
    assert ray.is_initialized()  # the executor joined the module's Ray, so it must not shut it down


def make_request(views=VIEWS, ids=(1, 2)):
    return ScoreRequest(
        instruction="Put the red block on the blue block.",
        subtask="grasp",
        candidate_ids=ids,
        views=tuple(ViewImage(v, b"\x89PNG " + v.encode(), 64, 48) for v in views),
    )


def agents(params, n=3, backend="scripted", prefix="a"):
    return [AgentConfig(f"{prefix}{i}", backend, "m", dict(params)) for i in range(n)]


def calls_for(agent_list, request):
    return [CallSpec(a, v) for a in agent_list for v in request.views]


def config(agent_list, views=VIEWS):
    return ScoringConfig(weights=WEIGHTS, lambda_C=0.5, agents=tuple(agent_list), views=tuple(views))


def test_all_calls_are_in_flight_together(pool, tmp_path):
    log = tmp_path / "calls.log"
    ens = agents({"delay_s": 0.5, "log": str(log)})
    # Not closed: the scorer's close() would stop the shared pool.
    scorer = Scorer(ens, config(ens), backends={"scripted": Scripted()}, executor=pool)
    table = scorer.score(make_request())
    assert table.error is None and table.M_prime == 3
    assert all(c.ok and c.attempts == 1 and not c.cached for c in table.calls)
    assert all(c.latency_s >= 0.5 for c in table.calls)
    # In flight together: every one of the 9 calls started before the first one ended (serially, each would
    # start after the previous one's end).
    spans = read_log(log)
    assert len(spans) == 9
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans


def test_a_killed_actor_leaves_the_step_to_the_others_and_comes_back(pool, caplog):
    ens = agents({"delay_s": 1.0})
    scorer = Scorer(ens, config(ens), backends={"scripted": Scripted()}, executor=pool)
    victim = pool.actors["a1"]
    killer = threading.Timer(0.3, lambda: ray.kill(victim))
    killer.start()
    with caplog.at_level(logging.INFO, logger="scoring.pool"):
        table = scorer.score(make_request())
    killer.join()
    assert table.M_prime == 2 and table.error is None and table.S
    dead = [c for c in table.calls if c.agent == "a1"]
    assert len(dead) == 3 and all(not c.ok for c in dead)
    assert all("agent actor died" in c.error and "'a1'" in c.error for c in dead)
    assert all(c.ok for c in table.calls if c.agent != "a1")
    # A replacement was started when the step ended (and the log says so); it serves the next step.
    assert pool.actors["a1"] != victim
    assert any("re-creating the actor of agent 'a1'" in r.getMessage() for r in caplog.records)
    ens = agents({})
    scorer = Scorer(ens, config(ens), backends={"scripted": Scripted()}, executor=pool)
    again = scorer.score(make_request())
    assert again.M_prime == 3 and all(c.ok for c in again.calls)


def test_a_call_past_its_timeout_is_an_error_and_the_others_are_fine(pool):
    ens = agents({"delay_by_view": {"top": 5.0}, "delay_s": 0.1}, n=1, backend="timed", prefix="t")
    request = make_request()
    outcomes = pool.run(request, calls_for(ens, request), {})
    by_view = {}
    for call, outcome in zip(calls_for(ens, request), outcomes):
        by_view.setdefault(call.view.name, []).append(outcome)
    assert all(o.error == "TimeoutError: timed out after 0.6 s" for o in by_view["top"])
    assert all(o.error is None and o.raw_text for v in ("front", "side") for o in by_view[v])


def test_transient_failures_are_retried_after_retry_after(pool):
    token = time.time()
    ens = agents({"fail": "transient", "fail_times": 2, "retry_after_s": 0.3, "token": token}, n=1)
    request = make_request(views=("front",))
    start = time.perf_counter()
    [outcome] = pool.run(request, calls_for(ens, request), {})
    wall_s = time.perf_counter() - start
    assert outcome.error is None and outcome.raw_text
    assert outcome.attempts == 3
    assert outcome.attempt_errors == ("TransientBackendError: HTTP 429 on front",) * 2
    assert wall_s >= 0.6  # two waits of at least the server's 0.3 s, though backoff_s is 0.05


def test_other_errors_are_not_retried_and_exhausted_retries_say_so(pool):
    request = make_request(views=("front", "top"))
    hard = AgentConfig("a0", "scripted", "m", {"fail": "error"})
    flaky = AgentConfig("a1", "scripted", "m", {"fail": "transient", "token": time.time()})
    outcomes = pool.run(request, calls_for([hard, flaky], request), {})
    assert [o.attempts for o in outcomes[:2]] == [1, 1]
    assert outcomes[0].error == "BackendError: HTTP 400 on front"
    assert [o.attempts for o in outcomes[2:]] == [3, 3]  # max_retries = 2
    assert outcomes[2].error == "TransientBackendError: HTTP 429 on front (after 3 attempts)"
    assert len(outcomes[2].attempt_errors) == 2


def read_log(path):
    return sorted(tuple(map(float, line.split())) for line in path.read_text().splitlines())


def test_concurrency_limit_runs_one_call_at_a_time(pool, tmp_path):
    log = tmp_path / "calls.log"
    ens = agents({"delay_s": 0.25, "log": str(log)}, n=1, backend="limited", prefix="l")
    request = make_request()
    outcomes = pool.run(request, calls_for(ens, request), {})
    assert all(o.error is None for o in outcomes)
    spans = read_log(log)
    assert len(spans) == 3
    for (_, end), (next_start, _) in zip(spans, spans[1:]):
        assert next_start >= end - 0.01, "two calls of a max_concurrency=1 backend overlapped"


def test_rate_limit_spaces_call_starts(pool, tmp_path):
    log = tmp_path / "calls.log"
    ens = agents({"log": str(log)}, n=1, backend="rated", prefix="r")
    request = make_request()
    outcomes = pool.run(request, calls_for(ens, request), {})
    assert all(o.error is None for o in outcomes)
    starts = [s for s, _ in read_log(log)]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(g >= 0.15 for g in gaps), f"300 requests/min with burst 1 allows one start per 0.2 s: {gaps}"


def test_calls_still_waiting_for_budget_at_the_step_deadline_fail_unstarted(pool):
    ens = agents({}, n=1, backend="scarce", prefix="x")
    pool.start(ens)
    request = make_request()
    pool.step_timeout_s = 0.6
    try:
        outcomes = pool.run(request, calls_for(ens, request), {})
    finally:
        pool.step_timeout_s = None
    assert outcomes[0].error is None and outcomes[0].attempts == 1
    for outcome in outcomes[1:]:
        assert outcome.attempts == 0
        assert outcome.error == (
            "TimeoutError: not started before the step deadline of 0.6 s (waiting for backend 'scarce' budget)"
        )


def test_cancel_abandons_the_step(pool):
    ens = agents({"delay_s": 5.0})
    request = make_request()
    result = {}
    worker = threading.Thread(target=lambda: result.update(out=pool.run(request, calls_for(ens, request), {})))
    worker.start()
    time.sleep(0.5)
    pool.cancel()
    worker.join(timeout=30)
    assert not worker.is_alive()
    # every call ends as cancelled, none as answered (each would have answered after its 5 s)
    assert all(o.error and "cancelled" in o.error and o.raw_text is None for o in result["out"])


def test_step_timeout_bounds_the_whole_step(pool):
    pool.step_timeout_s = 0.8  # the shared pool's warm actors; restored below
    try:
        ens = [AgentConfig("a0", "scripted", "m", {"delay_by_view": {"top": 5.0}})]
        request = make_request()
        outcomes = pool.run(request, calls_for(ens, request), {})
        assert outcomes[0].error is None and outcomes[2].error is None
        assert outcomes[1].error == "TimeoutError: timed out at the step deadline of 0.8 s"
    finally:
        pool.step_timeout_s = None


def test_a_backend_that_cannot_be_built_answers_with_its_error(pool):
    ens = [AgentConfig("u0", "unbuildable")]
    request = make_request(views=("front",))
    [outcome] = pool.run(request, calls_for(ens, request), {})
    assert outcome.error == (
        "BackendError: cannot build backend 'unbuildable': BackendError: model weights not found"
    )
    assert "u0" in pool.actors  # a build error is an answer, not a dead actor


def test_registry_backends_give_the_serial_result(pool, request_with, evidence):
    """simjudge built inside the actors from the registry: same S as the serial executor."""
    request = request_with([evidence(1), evidence(2, progress=0.9), evidence(3, collisions=1)])
    ens = [AgentConfig("sj0", "simjudge", "rollout-metrics", {"noise_std": 0.5, "seed": 3})]
    pooled = Scorer(ens, config(ens, ("front", "top")), executor=pool).score(request)
    serial = Scorer(ens, config(ens, ("front", "top")), executor=SerialExecutor()).score(request)
    assert pooled.M_prime == 1 and pooled.S == serial.S and len(pooled.S) == 3


def test_real_openai_backend_in_the_actors_retries_429_and_500(ray_session, caplog):
    """The production path: OpenAIBackend built from the registry inside an actor, against the local stub."""
    from tests.fakes.stub_server import StubVLMServer, make_stub_request

    request = make_stub_request(n_candidates=3, view_names=("front",))
    with StubVLMServer(["429", "500", "good"], retry_after="0.3", expect_response_format="any") as stub:
        settings = {
            "openai": BackendSettings(
                kwargs={"base_url": stub.openai_base_url}, timeout_s=10, max_retries=2, backoff_s=0.05
            )
        }
        executor = RayExecutor(settings)
        try:
            ens = [AgentConfig("q0", "openai", "stub-vlm", {"prompt": "v1"})]
            start = time.perf_counter()
            [outcome] = executor.run(request, calls_for(ens, request), {})
            wall_s = time.perf_counter() - start
            assert outcome.error is None and outcome.attempts == 3, outcome
            assert outcome.attempt_errors[0].startswith("TransientBackendError")
            assert outcome.attempt_errors[1].startswith("TransientBackendError")
            assert stub.counts == {"/v1/chat/completions": 3} and stub.failed_checks == []
            assert wall_s >= 0.3  # the server's Retry-After of 0.3 s was honoured
            # A warning the backend logs inside its actor reaches the driver's log.
            stub.behaviours = ("reject_response_format",)
            with caplog.at_level(logging.WARNING, logger="scoring.pool"):
                [fallback] = executor.run(request, calls_for(ens, request), {})
            assert fallback.error is None
            assert any("rejected response_format" in r.getMessage() and "'q0'" in r.getMessage()
                       for r in caplog.records)
        finally:
            executor.close()


def test_a_pool_failure_fails_the_calls_instead_of_raising(monkeypatch):
    executor = RayExecutor(SETTINGS, factories=FACTORIES, address="ray://10.0.0.1:10001")

    def unreachable():
        raise ConnectionError("cannot reach ray://10.0.0.1:10001")

    monkeypatch.setattr(executor, "_ensure_ray", unreachable)
    request = make_request(views=("front", "top"))
    outcomes = executor.run(request, calls_for(agents({}, n=1), request), {})
    assert [o.error for o in outcomes] == ["pool failure: ConnectionError: cannot reach ray://10.0.0.1:10001"] * 2
    executor.close()  # nothing was started, nothing to stop


class SlowToBuild(Scripted):
    """Takes 2 s to build, like a model loading in the actor."""

    def __init__(self):
        time.sleep(2.0)
        super().__init__()


@pytest.mark.slow
def test_an_actor_still_starting_at_the_step_deadline_is_kept_for_the_next_step(ray_session):
    executor = RayExecutor(
        {"loading": BackendSettings(), "scripted": BackendSettings()},
        factories={"loading": SlowToBuild, "scripted": Scripted},
        step_timeout_s=0.5,
    )
    try:
        ready = AgentConfig("f0", "scripted")
        executor.start([ready])
        ens = [AgentConfig("m0", "loading"), ready]
        request = make_request(views=("front",))
        first = executor.run(request, calls_for(ens, request), {})
        assert first[0].error.startswith("agent actor still starting (") and first[0].attempts == 0
        assert first[0].error.endswith("s so far; kept for the next step)")
        assert first[1].error is None  # the ready agent did not wait for the one still loading
        handle = executor.actors["m0"]
        # later steps: still starting (on a loaded machine) until it is ready, then it answers; never a new actor
        for _ in range(60):
            time.sleep(1.0)
            second = executor.run(request, calls_for(ens, request), {})
            assert executor.actors["m0"] == handle
            if second[0].error is None or not second[0].error.startswith("agent actor still starting ("):
                break
        assert [o.error for o in second] == [None, None]
    finally:
        executor.close()
