"""ThreadExecutor: the real openai client against the stub server on 127.0.0.1, calls in flight together, in order,
retried on 429, and a step deadline that records late calls as timed out."""

from __future__ import annotations

import time

from scoring.backend import AgentConfig, backend_class, make_backend
from scoring.config import BackendSettings
from scoring.scorer import CallSpec
from scoring.thread_executor import ThreadExecutor
from tests.fakes.stub_server import StubVLMServer, make_stub_request


def _setup(stub, **settings):
    cfg = {"openai": BackendSettings(kwargs={"base_url": stub.openai_base_url}, **settings)}
    backend = make_backend("openai", **cfg["openai"].constructor_kwargs(backend_class("openai")))
    return cfg, {"openai": backend}


def test_calls_run_together_in_order_and_retry(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    request = make_stub_request(n_candidates=3, view_names=("front", "top"))
    agents = [AgentConfig(f"q{i}", "openai", "stub-vlm") for i in range(3)]
    calls = [CallSpec(a, v) for a in agents for v in request.views]
    with StubVLMServer(lambda i, path, body: "429" if i == 0 else "good", delay_s=0.4, retry_after="0",
                       expect_response_format="any") as stub:
        settings, backends = _setup(stub, timeout_s=10, max_retries=2, backoff_s=0.01)
        executor = ThreadExecutor(settings, step_timeout_s=30)
        try:
            outcomes = executor.run(request, calls, backends)
        finally:
            executor.close()
        assert [o.error for o in outcomes] == [None] * 6
        assert sum(o.attempts for o in outcomes) == 7   # one call was answered 429 once and retried
        assert stub.max_in_flight >= 4   # together, not one after another
        assert stub.failed_checks == []


def test_step_deadline_records_late_calls(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    request = make_stub_request(n_candidates=2, view_names=("front",))
    calls = [CallSpec(AgentConfig(f"q{i}", "openai", "stub-vlm"), request.views[0]) for i in range(2)]
    with StubVLMServer("slow", slow_s=5.0, expect_response_format="any") as stub:
        settings, backends = _setup(stub, timeout_s=10, max_retries=0)
        executor = ThreadExecutor(settings, step_timeout_s=0.5)
        try:
            start = time.perf_counter()
            outcomes = executor.run(request, calls, backends)
            wall_s = time.perf_counter() - start
        finally:
            executor.close()
    assert all(o.error and o.error.startswith("TimeoutError") for o in outcomes), outcomes
    assert wall_s < 5.0   # the step ended at its deadline, not when the slow server answered


def test_backend_concurrency_cap_holds(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000")
    request = make_stub_request(n_candidates=2, view_names=("front", "top", "left"))
    calls = [CallSpec(AgentConfig(f"q{i}", "openai", "stub-vlm"), v) for i in range(2) for v in request.views]
    with StubVLMServer("good", delay_s=0.3, expect_response_format="any") as stub:
        settings, backends = _setup(stub, timeout_s=10, max_concurrency=2)
        executor = ThreadExecutor(settings, step_timeout_s=30)
        try:
            outcomes = executor.run(request, calls, backends)
        finally:
            executor.close()
        assert [o.error for o in outcomes] == [None] * 6
        assert stub.max_in_flight == 2
