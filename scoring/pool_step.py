"""One step of the Ray agent pool: dispatch every (agent, view) call, collect answers, retry, enforce deadlines.

``StepRun`` is what ``RayExecutor.run`` does for one step (the rules are in ``scoring/pool.py``'s docstring):
a call starts only when its backend has a free concurrency slot and a rate-limit token; transient failures are
retried by this driver loop, so each attempt passes the limiter again and none starts past a deadline; a call
still running at its deadline is cancelled; a dead actor fails that agent's calls of the step only. It reads
and updates the executor's actors and limits, and fills ``outcomes`` (one per call, in order).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scoring.config import BackendSettings
from scoring.request import ScoreRequest
from scoring.scorer import CallOutcome, CallSpec

if TYPE_CHECKING:
    from scoring.pool import RayExecutor

# Logged under the pool's name: one logger for everything the agent pool reports.
logger = logging.getLogger("scoring.pool")

# ray.wait returns at least this often, so cancel() from another thread is noticed promptly.
POLL_S = 0.25


@dataclass
class _Call:
    """A call's state in the dispatch loop."""

    index: int
    spec: CallSpec
    settings: BackendSettings
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    not_before: float = 0.0
    first_dispatch: float | None = None
    latency_s: float = 0.0

    @property
    def agent(self) -> str:
        return self.spec.agent.name

    @property
    def backend(self) -> str:
        return self.spec.agent.backend

    def call_deadline(self) -> float:
        if self.first_dispatch is None or self.settings.timeout_s is None:
            return math.inf
        return self.first_dispatch + self.settings.timeout_s


class StepRun:
    """The calls of one step on ``pool``'s actors; ``run()`` fills ``outcomes`` (index-aligned with ``calls``)."""

    def __init__(self, pool: RayExecutor, request: ScoreRequest, calls: Sequence[CallSpec],
                 outcomes: list[CallOutcome | None]) -> None:
        self.pool = pool
        self.request = request
        self.calls = calls
        self.outcomes = outcomes

    def run(self) -> None:
        request, calls, outcomes = self.request, self.calls, self.outcomes
        import ray

        self.pool._ensure_ray()
        self.pool._cancel.clear()
        step_start = time.monotonic()
        step_deadline = math.inf if self.pool.step_timeout_s is None else step_start + self.pool.step_timeout_s

        agents = list({c.agent.name: c.agent for c in calls}.values())
        self.pool._views_per_step = max(self.pool._views_per_step, len({c.view.name for c in calls}))
        self.pool._create_actors(agents)
        # Calls of an agent whose actor is still starting (building its backend, loading a model) wait for it,
        # while the other agents' calls go ahead; an actor still starting at the step deadline is kept.
        starting = {self.pool._starting[a.name][0]: a.name for a in agents if a.name in self.pool._starting}
        dead: dict[str, str] = {}
        request_ref = ray.put(request)  # one copy of the images for every call, not one per call

        def finish(call: _Call, text: str | None, error: str | None) -> None:
            outcomes[call.index] = CallOutcome(
                raw_text=text,
                error=error,
                latency_s=call.latency_s,
                attempts=call.attempts,
                attempt_errors=tuple(call.errors[:-1] if error is not None else call.errors),
            )

        def fail(call: _Call, message: str) -> None:
            call.errors.append(message)
            finish(call, None, message)

        pending = [_Call(i, spec, self.pool._settings(spec.agent.backend)) for i, spec in enumerate(calls)]
        in_flight: dict[Any, _Call] = {}
        try:
            while pending or in_flight:
                now = time.monotonic()
                if self.pool._cancel.is_set():
                    for ref, call in list(in_flight.items()):
                        self._abandon(ref, call, in_flight)
                        fail(call, "CancelledError: the step was cancelled")
                    for call in pending:
                        fail(call, "CancelledError: the step was cancelled before this call started")
                    break
                wake = step_deadline
                waiting: list[_Call] = []
                for name in set(starting.values()):
                    created = self.pool._starting[name][1]
                    if now >= created + self.pool.actor_start_timeout_s:
                        dead[name] = f"agent actor did not start within {self.pool.actor_start_timeout_s:g} s"
                        self.pool._kill(name)
                        starting = {r: n for r, n in starting.items() if n != name}
                    else:
                        wake = min(wake, created + self.pool.actor_start_timeout_s)
                starting_names = set(starting.values())
                for call in pending:
                    if call.agent in dead:
                        fail(call, dead[call.agent])
                    elif call.agent in starting_names:
                        if now >= step_deadline:
                            since_s = now - self.pool._starting[call.agent][1]
                            fail(call, f"agent actor still starting ({since_s:.1f} s so far; kept for the next step)")
                        else:
                            waiting.append(call)
                    elif now >= step_deadline or now >= call.call_deadline():
                        self._give_up(call, fail)
                    elif call.not_before > now:
                        wake = min(wake, call.not_before)
                        waiting.append(call)
                    else:
                        started, budget_in_s = self._dispatch(call, request_ref, in_flight, now)
                        if not started:
                            if budget_in_s is not None:  # else: a slot frees when a call completes
                                wake = min(wake, now + budget_in_s)
                            waiting.append(call)
                pending = waiting
                if not pending and not in_flight:
                    break
                for call in in_flight.values():
                    wake = min(wake, self._attempt_deadline(call, step_deadline))
                timeout = min(POLL_S, max(0.0, wake - time.monotonic()))
                refs = list(in_flight) + list(starting)
                if not refs:
                    time.sleep(timeout)
                    continue
                ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
                if ready:  # collect everything that is done by now, not just the first
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    if ref in starting:
                        name = starting.pop(ref)
                        why = self.pool._started(name)
                        if why is not None:
                            dead[name] = why
                        continue
                    call = in_flight.pop(ref)
                    self._release(call)
                    call.latency_s = time.monotonic() - (call.first_dispatch or now)
                    self._collect(ref, call, dead, pending, finish, fail, step_deadline)
                now = time.monotonic()
                for ref, call in list(in_flight.items()):
                    if now >= self._attempt_deadline(call, step_deadline):
                        self._abandon(ref, call, in_flight)
                        call.latency_s = now - (call.first_dispatch or now)
                        if call.call_deadline() <= step_deadline:
                            fail(call, f"TimeoutError: timed out after {call.settings.timeout_s:g} s")
                        else:
                            step_s = self.pool.step_timeout_s
                            fail(call, f"TimeoutError: timed out at the step deadline of {step_s:g} s")
        finally:
            for ref, call in list(in_flight.items()):  # only on an unexpected exception: leave nothing running
                self._abandon(ref, call, in_flight)
        # Start replacements for actors that died now, so they are (nearly) up when the next step comes.
        self.pool._create_actors([a for a in agents if a.name in self.pool._died])

    def _attempt_deadline(self, call: _Call, step_deadline: float) -> float:
        return min(call.call_deadline(), step_deadline)

    def _dispatch(
        self, call: _Call, request_ref: Any, in_flight: dict[Any, _Call], now: float
    ) -> tuple[bool, float | None]:
        """Start one attempt if the backend's budget allows. (False, seconds until a rate-limit token) or
        (False, None) when waiting for a concurrency slot; (True, None) when started."""
        concurrency, rate = self.pool._limits(call.backend)
        if concurrency is not None and not concurrency.try_acquire():
            return False, None
        if rate is not None:
            wait_s = rate.try_acquire()
            if wait_s > 0.0:
                if concurrency is not None:
                    concurrency.release()
                return False, wait_s
        with self.pool._lock:
            handle = self.pool._actors[call.agent][1]
        ref = handle.answer.remote(request_ref, call.spec.view.name, call.spec.agent)
        call.attempts += 1
        if call.first_dispatch is None:
            call.first_dispatch = now
        in_flight[ref] = call
        return True, None

    def _release(self, call: _Call) -> None:
        concurrency, _ = self.pool._limits(call.backend)
        if concurrency is not None:
            concurrency.release()

    def _abandon(self, ref: Any, call: _Call, in_flight: dict[Any, _Call]) -> None:
        import ray

        if in_flight.pop(ref, None) is None:
            return
        self._release(call)
        try:
            ray.cancel(ref)
        except Exception as err:  # the task may have finished or its actor died meanwhile
            logger.debug("ray.cancel: %s", err)

    def _give_up(self, call: _Call, fail: Callable[[_Call, str], None]) -> None:
        if call.attempts == 0:
            fail(call, f"TimeoutError: not started before the step deadline of {self.pool.step_timeout_s:g} s "
                       f"(waiting for backend {call.backend!r} budget)")
        else:
            last = call.errors.pop() if call.errors else "no answer"
            fail(call, f"{last} (after {call.attempts} attempts; no retry before the deadline)")

    def _collect(
        self,
        ref: Any,
        call: _Call,
        dead: dict[str, str],
        pending: list[_Call],
        finish: Callable[[_Call, str | None, str | None], None],
        fail: Callable[[_Call, str], None],
        step_deadline: float,
    ) -> None:
        import ray

        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as err:
            why = f"RayActorError: agent actor died: agent {call.agent!r}: {first_line(err)}"
            if call.agent not in dead:
                logger.warning("agent %r: its actor died mid-step; its calls of this step fail", call.agent)
                dead[call.agent] = why
                self.pool._forget(call.agent, first_line(err))
            fail(call, dead[call.agent])
            return
        except ray.exceptions.TaskCancelledError:
            fail(call, "CancelledError: the call was cancelled")
            return
        except ray.exceptions.RayError as err:
            fail(call, f"{type(err).__name__}: {first_line(err)}")
            return
        for message in result.get("logs", ()):
            logger.warning("agent %r view %r (in its actor): %s", call.agent, call.spec.view.name, message)
        if "text" in result:
            finish(call, result["text"], None)
            return
        call.errors.append(result["error"])
        policy = call.settings.retry_policy()
        if not result.get("transient") or call.attempts > policy.max_retries:
            message = call.errors.pop()
            fail(call, message if call.attempts == 1 else f"{message} (after {call.attempts} attempts)")
            return
        now = time.monotonic()
        delay = policy.delay_s(call.attempts, result.get("retry_after_s"), self.pool._rng)
        if now + delay >= self._attempt_deadline(call, step_deadline):
            message = call.errors.pop()
            fail(call, f"{message} (after {call.attempts} attempts; a retry in {delay:.2f} s would pass the deadline)")
            return
        logger.info("agent %r view %r: transient failure (%s); retry %d in %.2f s", call.agent,
                    call.spec.view.name, result["error"], call.attempts, delay)
        call.not_before = now + delay
        pending.append(call)

    # -- stopping -----------------------------------------------------------------------------------------------


def first_line(err: BaseException) -> str:
    """Ray's error texts run over many lines (tracebacks, pids); the first line says what happened."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
