"""`ThreadExecutor`: every (agent, view) call of a step in flight together on threads of this process.

The local default for agents that call a model over HTTP. Their calls wait on the network, so threads give
them the same concurrency a Ray pool would, with nothing started and nothing listening: a local Ray head
(GCS, raylet, workers) binds its ports on every interface in Ray 2.60 whatever `ray.init` is told, so Ray is
kept for the cluster the user names (`--ray-address`). Per call it runs exactly what `SerialExecutor` runs
(per-backend rate limit, retries on transient errors, the call's deadline), under the backend's
`max_concurrency` cap; a call still running when the
step's deadline has passed is recorded as timed out and left to its client's own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from scoring.backend import Backend
from scoring.config import BackendSettings
from scoring.errors import BackendError
from scoring.limits import ConcurrencyLimit
from scoring.request import ScoreRequest
from scoring.retry import format_error
from scoring.scorer import CallOutcome, CallSpec, SerialExecutor

MAX_THREADS = 32
# Backends whose one instance must not answer two calls at once (a local model in this process).
ONE_AT_A_TIME = frozenset({"transformers"})
_GRACE_S = 1.0   # past the step deadline, for a call that is returning right now


class ThreadExecutor(SerialExecutor):
    """Runs the calls of a step concurrently (at most MAX_THREADS at once); one outcome per call, in order."""

    def __init__(
        self, settings: Mapping[str, BackendSettings] | None = None, step_timeout_s: float | None = None,
        max_threads: int = MAX_THREADS,
    ) -> None:
        super().__init__(settings, step_timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="agent-call")
        self._slots: dict[str, ConcurrencyLimit] = {}

    def _slot(self, backend: str) -> ConcurrencyLimit | None:
        """The backend's concurrency cap (max_concurrency; one at a time for an in-process model), or None."""
        cap = self._settings(backend).max_concurrency
        if cap is None and backend in ONE_AT_A_TIME:
            cap = 1
        if cap is not None and backend not in self._slots:
            self._slots[backend] = ConcurrencyLimit(cap, name=backend)
        return self._slots.get(backend)

    def _one(self, request: ScoreRequest, call: CallSpec, backends: Mapping[str, Backend],
             step_deadline: float | None) -> CallOutcome:
        slot = self._slots.get(call.agent.backend)
        if slot is None:
            return SerialExecutor.run(self, request, [call], backends)[0]
        start = time.perf_counter()
        try:
            slot.acquire(step_deadline)
        except BackendError as err:
            return CallOutcome(None, format_error(err), time.perf_counter() - start, 0)
        try:
            return SerialExecutor.run(self, request, [call], backends)[0]
        finally:
            slot.release()

    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        for call in calls:   # limits are shared by the threads; create them here, not in a race
            self._limiter(call.agent.backend)
            self._slot(call.agent.backend)
        start = time.monotonic()
        step_deadline = None if self.step_timeout_s is None else start + self.step_timeout_s
        futures = [self._pool.submit(self._one, request, call, backends, step_deadline) for call in calls]
        outcomes = []
        for fut in futures:
            wait = None if self.step_timeout_s is None else \
                max(0.0, start + self.step_timeout_s + _GRACE_S - time.monotonic())
            try:
                outcomes.append(fut.result(timeout=wait))
            except FutureTimeout:
                fut.cancel()
                outcomes.append(CallOutcome(None, f"TimeoutError: no answer within the step's "
                                                  f"{self.step_timeout_s:g} s", time.monotonic() - start, 1))
        return outcomes

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
