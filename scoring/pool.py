"""The agent pool: every agent is a Ray actor, and all (agent, view) calls of a step are in flight together.

``RayExecutor`` is a ``CallExecutor``: ``Scorer`` hands it the calls of one step and gets one outcome per
call back, in order, whatever happened. Per call:

- Each agent is one threaded actor (``num_cpus=0``: the work is waiting on a server or a model) that builds
  its own backend from (backend name, constructor kwargs) inside the actor, so a local model loads in the
  actor process, not in the planner's. Its ``max_concurrency`` covers every view at once.
- The driver dispatches: a call starts only when its backend has a free concurrency slot and a rate-limit
  token (``limits.py``), so one backend's budget never holds up another backend's calls.
- Deadlines: ``timeout_s`` per call (from its first dispatch, covering retries and their waits) and
  ``step_timeout_s`` for the whole step. A call still running at its deadline is cancelled with
  ``ray.cancel`` and recorded as ``TimeoutError: timed out after X s``. (A running thread in an actor cannot
  be interrupted; the backend client's own timeout, set from timeout_s, ends it.)
- Retries of transient failures (429, 5xx, connection errors; ``retry.py``) are scheduled by the driver, so
  each attempt passes the rate limiter again and no retry starts past a deadline.
- A dead actor (killed, crashed, its node lost) turns that agent's calls of the step into errors
  (``RayActorError: agent actor died: ...``); the other agents' calls complete, so M' = M - 1. A replacement
  actor is started (logged) as soon as the step ends, and serves from the next step on.

Ray is started locally with small resources unless ``address`` names a cluster. API keys never travel as
arguments: backends read ANTHROPIC_API_KEY / OPENAI_API_KEY from the environment inside the actor. Local
actors inherit the environment of the process that started Ray, as it was when Ray started; on a cluster,
setting the variables on the nodes (or through a runtime_env the user passes to ``ray.init`` themselves) is
the user's business, and this module never logs them.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scoring.backend import BACKENDS, AgentConfig, Backend, backend_class
from scoring.config import BackendSettings, ScoringConfig
from scoring.limits import ConcurrencyLimit, RateLimiter
from scoring.ray_reaper import RayReaper, ray_process_ids
from scoring.request import ScoreRequest
from scoring.retry import format_error
from scoring.scorer import CallExecutor, CallOutcome, CallSpec

logger = logging.getLogger(__name__)

BackendFactory = Callable[[], Backend]

# ray.wait returns at least this often, so cancel() from another thread is noticed promptly.
POLL_S = 0.25


class AgentWorker:
    """The body of one agent's actor: builds the backend once, answers calls, never raises for a call.

    ``spec`` is a zero-argument factory, or a (registry entry, BackendSettings) pair where the entry is a
    ``"module:Class"`` string or a Backend class. A backend that defines ``warm_up()`` has it called here, so
    slow setup (importing a client library, loading a model) happens while the actor starts, not in the first
    call's time budget. A backend that cannot be built or warmed up is not fatal for the actor: every call
    answers with that error (a missing API key must read as such, not as a dead actor).
    """

    def __init__(self, agent_name: str, backend_name: str, spec: Any) -> None:
        self.agent_name = agent_name
        self.backend_name = backend_name
        self.backend: Backend | None = None
        self.build_error: str | None = None
        start = time.perf_counter()
        try:
            backend = _build_backend(backend_name, spec)
            warm_up = getattr(backend, "warm_up", None)
            if callable(warm_up):
                warm_up()
            self.backend = backend
        except Exception as err:  # reported with every call instead of killing the actor
            self.build_error = f"cannot build backend {backend_name!r}: {format_error(err)}"
        self.build_s = time.perf_counter() - start

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "build_s": self.build_s, "build_error": self.build_error}

    def answer(self, request: ScoreRequest, view_name: str, agent: AgentConfig) -> dict[str, Any]:
        """One attempt: {"text"} or {"error", "transient", "retry_after_s"}, with its latency and the warnings
        the backend logged meanwhile (the driver re-logs them: actor output does not reach the driver)."""
        if self.backend is None:
            return {"error": f"BackendError: {self.build_error}", "transient": False, "latency_s": 0.0}
        with _CapturedWarnings() as captured:
            result = self._attempt(request, view_name, agent)
        if captured.messages:
            result["logs"] = captured.messages
        return result

    def _attempt(self, request: ScoreRequest, view_name: str, agent: AgentConfig) -> dict[str, Any]:
        from scoring.errors import BackendError, TransientBackendError

        assert self.backend is not None
        start = time.perf_counter()
        try:
            text = self.backend.answer(request, request.view(view_name), agent)
            if not isinstance(text, str):
                raise BackendError(f"backend {self.backend.name!r} returned {type(text).__name__}, expected str")
        except TransientBackendError as err:
            return {
                "error": format_error(err),
                "transient": True,
                "retry_after_s": err.retry_after_s,
                "latency_s": time.perf_counter() - start,
            }
        except Exception as err:  # the driver records it for this call; the actor lives on
            return {"error": format_error(err), "transient": False, "latency_s": time.perf_counter() - start}
        return {"text": text, "latency_s": time.perf_counter() - start}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class _CapturedWarnings(logging.Handler):
    """Collects WARNING+ records of the ``scoring`` loggers emitted by this thread (an actor runs several calls
    at once, one per thread)."""

    MAX_MESSAGES = 20

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and len(self.messages) < self.MAX_MESSAGES:
            self.messages.append(f"{record.name}: {record.getMessage()}")

    def __enter__(self) -> _CapturedWarnings:
        logging.getLogger("scoring").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("scoring").removeHandler(self)


def _build_backend(backend_name: str, spec: Any) -> Backend:
    if not isinstance(spec, tuple):
        backend = spec()
    else:
        entry, settings = spec
        if isinstance(entry, str):
            # Registered lazily by name: resolve it here, in the actor, so heavy imports happen here.
            if BACKENDS.get(backend_name) != entry:
                BACKENDS[backend_name] = entry
            cls = backend_class(backend_name)
        else:
            cls = entry
        backend = cls(**settings.constructor_kwargs(cls))
    if not isinstance(backend, Backend):
        raise TypeError(f"factory for backend {backend_name!r} made {type(backend).__name__}, not a Backend")
    return backend


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


class RayExecutor(CallExecutor):
    """Runs a step's calls on one Ray actor per agent, all in flight together (see the module docstring).

    settings: BackendSettings per backend name (constructor kwargs, timeout, retries, limits); a backend
    without an entry gets the defaults. factories: backend name -> zero-argument callable building the
    backend inside the actor (instead of the registry); it is pickled to the actor, so it must not close over
    a secret. address: a Ray cluster to connect to (None: start a local Ray, or use one this process already
    started). num_cpus: CPUs of a local Ray (default 1; actors take none). step_timeout_s: deadline of one
    ``run``. actor_max_concurrency: calls one actor runs at once (threads). actor_start_timeout_s: how long to
    wait for a new actor to build its backend before its calls fail.
    """

    def __init__(
        self,
        settings: Mapping[str, BackendSettings] | None = None,
        *,
        factories: Mapping[str, BackendFactory] | None = None,
        address: str | None = None,
        num_cpus: int | None = None,
        step_timeout_s: float | None = None,
        actor_max_concurrency: int = 16,
        actor_start_timeout_s: float = 300.0,
        rng: random.Random | None = None,
    ) -> None:
        if actor_max_concurrency < 1:
            raise ValueError(f"actor_max_concurrency: expected an integer >= 1, got {actor_max_concurrency!r}")
        if step_timeout_s is not None and not step_timeout_s > 0:
            raise ValueError(f"step_timeout_s: expected a number > 0 or None, got {step_timeout_s!r}")
        self.settings = dict(settings or {})
        self.factories = dict(factories or {})
        self.address = address
        self.num_cpus = num_cpus
        self.step_timeout_s = step_timeout_s
        self.actor_max_concurrency = actor_max_concurrency
        self.actor_start_timeout_s = actor_start_timeout_s
        self._rng = rng or random.Random()
        self._actors: dict[str, tuple[str, Any]] = {}  # agent name -> (backend name, actor handle)
        self._died: dict[str, str] = {}  # agent name -> why its last actor died (for the re-creation log)
        self._starting: dict[str, tuple[Any, float]] = {}  # agent name -> (ready ref, monotonic creation time)
        self._concurrency: dict[str, ConcurrencyLimit] = {}
        self._rates: dict[str, RateLimiter] = {}
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._starter: threading.Thread | None = None
        self._views_per_step = 0
        self._owns_ray = False
        self._reaper = RayReaper()
        self._ray_started = False
        self.ray_startup_s: float | None = None
        self.last_actor_startup_s: float | None = None
        self._closed = False

    @classmethod
    def from_config(cls, config: ScoringConfig, **kwargs: Any) -> RayExecutor:
        """An executor with the config's backend settings and step timeout (kwargs as for the constructor)."""
        kwargs.setdefault("step_timeout_s", config.pool.step_timeout_s)
        return cls(config.backends, **kwargs)

    # -- Ray and actors -------------------------------------------------------------------------------------

    def _ensure_ray(self) -> None:
        if self._closed:
            raise RuntimeError("RayExecutor is closed")
        if self._ray_started:
            return
        import ray

        start = time.perf_counter()
        if ray.is_initialized():
            self._owns_ray = False
        else:
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.WARNING,
                "ignore_reinit_error": True,
            }
            if self.address is None:
                # A local Ray: actors need no CPU, one CPU is for Ray's own tasks. A small object store keeps
                # startup quick; requests are a few PNGs.
                options["num_cpus"] = 1 if self.num_cpus is None else self.num_cpus
                options["object_store_memory"] = 256 * 1024 * 1024
                self._owns_ray = True
            else:
                options["address"] = self.address
                # Connected, not started: close() stops this executor's actors and leaves Ray alone.
                self._owns_ray = False
            ray.init(**options)
            if self._owns_ray:
                # Ray's agents outlive a killed driver; the reaper ends them (scoring/ray_reaper.py).
                self._reaper.start()
                self._reaper.watch(ray_process_ids())
        self.ray_startup_s = time.perf_counter() - start
        self._ray_started = True
        logger.info("ray ready in %.2f s (%s)", self.ray_startup_s, self.address or "local")

    def _settings(self, backend: str) -> BackendSettings:
        return self.settings.get(backend) or BackendSettings()

    def _spec(self, backend: str) -> Any:
        if backend in self.factories:
            return self.factories[backend]
        entry = BACKENDS.get(backend)
        if entry is None:
            backend_class(backend)  # raises UnknownBackendError with a did-you-mean
        return (entry, self._settings(backend))

    def start(self, agents: Sequence[AgentConfig]) -> None:
        """Start Ray and the agents' actors now (else the first ``run`` does), waiting until they are ready.
        Raises when Ray cannot start or an actor does not come up, so a run fails before its first step."""
        self._ensure_ray()
        import ray

        self._create_actors(agents)
        waiting = {self._starting[a.name][0]: a.name for a in agents if a.name in self._starting}
        if not waiting:
            return
        start = time.perf_counter()
        ready, not_ready = ray.wait(list(waiting), num_returns=len(waiting), timeout=self.actor_start_timeout_s)
        failed = []
        for ref in ready:
            why = self._started(waiting[ref])
            if why is not None:
                failed.append(f"agent {waiting[ref]!r}: {why}")
        for ref in not_ready:
            self._kill(waiting[ref])
            failed.append(f"agent {waiting[ref]!r}: actor did not start within {self.actor_start_timeout_s:g} s")
        self.last_actor_startup_s = time.perf_counter() - start
        logger.info("%d agent actor(s) ready in %.2f s", len(waiting) - len(failed), self.last_actor_startup_s)
        if failed:
            raise RuntimeError("; ".join(failed))

    def start_in_background(self, agents: Sequence[AgentConfig]) -> None:
        """Start Ray here, then the agents' actors in a thread, so building their backends (seconds: client
        imports, model loads) overlaps the caller's own setup; the next ``run`` waits for it. A failure is
        logged and the next ``run`` tries again. Ray itself starts in the calling thread: ``ray.init`` from
        another thread hangs (Ray 2.60)."""
        self._ensure_ray()

        def target() -> None:
            try:
                self.start(agents)
            except Exception as err:  # the next run() retries and records per-call errors if it fails again
                logger.warning("starting the agent pool in the background failed: %s", format_error(err))

        self._starter = threading.Thread(target=target, name="agent-pool-start", daemon=True)
        self._starter.start()

    def _wait_for_starter(self) -> None:
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.join()

    @property
    def actors(self) -> dict[str, Any]:
        """Agent name -> its live actor handle (for diagnosis and tests)."""
        with self._lock:
            return {name: handle for name, (_, handle) in self._actors.items()}

    def _create_actors(self, agents: Sequence[AgentConfig]) -> None:
        """Create the actors that are missing (or serve another backend); they start in the background."""
        import ray

        for agent in agents:
            with self._lock:
                current = self._actors.get(agent.name)
            if current is not None and current[0] == agent.backend:
                continue
            if current is not None:  # the agent's backend changed: its old actor answers for the wrong one
                self._kill(agent.name)
            if agent.name in self._died:
                logger.info("re-creating the actor of agent %r (it died: %s)", agent.name, self._died.pop(agent.name))
            # Threads enough for every view of a step at once (and then some for abandoned calls still running).
            threads = max(self.actor_max_concurrency, 2 * self._views_per_step)
            actor_cls = ray.remote(AgentWorker).options(num_cpus=0, max_concurrency=threads, max_restarts=0)
            handle = actor_cls.remote(agent.name, agent.backend, self._spec(agent.backend))
            with self._lock:
                self._actors[agent.name] = (agent.backend, handle)
            self._starting[agent.name] = (handle.ready.remote(), time.monotonic())

    def _started(self, agent: str) -> str | None:
        """Take note that the agent's actor finished starting; the reason it cannot serve, or None."""
        import ray

        ref, _ = self._starting.pop(agent)
        try:
            info = ray.get(ref)
        except ray.exceptions.RayError as err:
            why = f"agent actor failed to start: {_first_line(err)}"
            self._forget(agent, why)
            return why
        if info["build_error"]:  # the actor serves, answering every call with this error
            logger.warning("agent %r: %s", agent, info["build_error"])
        return None

    def _forget(self, agent: str, why: str) -> None:
        """Drop a dead (or unreachable) actor so the next step starts a new one; kill it in case it lingers."""
        with self._lock:
            known = agent in self._actors
        if known:
            self._kill(agent)
            self._died[agent] = why

    def _kill(self, agent: str) -> None:
        import ray

        with self._lock:
            entry = self._actors.pop(agent, None)
        self._starting.pop(agent, None)
        if entry is not None:
            try:
                ray.kill(entry[1])
            except Exception as err:  # already gone: nothing left to stop
                logger.debug("ray.kill of agent %r: %s", agent, err)

    def _limits(self, backend: str) -> tuple[ConcurrencyLimit | None, RateLimiter | None]:
        settings = self._settings(backend)
        if settings.max_concurrency is not None and backend not in self._concurrency:
            self._concurrency[backend] = ConcurrencyLimit(settings.max_concurrency, name=backend)
        if settings.requests_per_minute is not None and backend not in self._rates:
            self._rates[backend] = RateLimiter(settings.requests_per_minute, settings.burst, name=backend)
        return self._concurrency.get(backend), self._rates.get(backend)

    # -- one step ---------------------------------------------------------------------------------------------

    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        """One outcome per call, in order. ``backends`` (the driver's instances) is not used: each actor has
        its own. Never raises for a call; a pool failure (Ray cannot start, the cluster is lost) fails the
        calls that had no outcome yet, with the reason."""
        outcomes: list[CallOutcome | None] = [None] * len(calls)
        self._wait_for_starter()
        with self._run_lock:  # one step at a time; cancel() may come from another thread
            try:
                self._run_step(request, calls, outcomes)
            except Exception as err:  # the scorer's contract: every call gets an outcome, the planner holds
                logger.exception("agent pool failure; the calls without an answer fail")
                message = f"pool failure: {format_error(err)}"
                for i, outcome in enumerate(outcomes):
                    if outcome is None:
                        outcomes[i] = CallOutcome(None, message, 0.0, 0)
        return [o if o is not None else CallOutcome(None, "RuntimeError: no outcome", 0.0, 0) for o in outcomes]

    def _run_step(self, request: ScoreRequest, calls: Sequence[CallSpec], outcomes: list[CallOutcome | None]) -> None:
        import ray

        self._ensure_ray()
        self._cancel.clear()
        step_start = time.monotonic()
        step_deadline = math.inf if self.step_timeout_s is None else step_start + self.step_timeout_s

        agents = list({c.agent.name: c.agent for c in calls}.values())
        self._views_per_step = max(self._views_per_step, len({c.view.name for c in calls}))
        self._create_actors(agents)
        # Calls of an agent whose actor is still starting (building its backend, loading a model) wait for it,
        # while the other agents' calls go ahead; an actor still starting at the step deadline is kept.
        starting = {self._starting[a.name][0]: a.name for a in agents if a.name in self._starting}
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

        pending = [_Call(i, spec, self._settings(spec.agent.backend)) for i, spec in enumerate(calls)]
        in_flight: dict[Any, _Call] = {}
        try:
            while pending or in_flight:
                now = time.monotonic()
                if self._cancel.is_set():
                    for ref, call in list(in_flight.items()):
                        self._abandon(ref, call, in_flight)
                        fail(call, "CancelledError: the step was cancelled")
                    for call in pending:
                        fail(call, "CancelledError: the step was cancelled before this call started")
                    break
                wake = step_deadline
                waiting: list[_Call] = []
                for name in set(starting.values()):
                    created = self._starting[name][1]
                    if now >= created + self.actor_start_timeout_s:
                        dead[name] = f"agent actor did not start within {self.actor_start_timeout_s:g} s"
                        self._kill(name)
                        starting = {r: n for r, n in starting.items() if n != name}
                    else:
                        wake = min(wake, created + self.actor_start_timeout_s)
                starting_names = set(starting.values())
                for call in pending:
                    if call.agent in dead:
                        fail(call, dead[call.agent])
                    elif call.agent in starting_names:
                        if now >= step_deadline:
                            since_s = now - self._starting[call.agent][1]
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
                        why = self._started(name)
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
                            fail(call, f"TimeoutError: timed out at the step deadline of {self.step_timeout_s:g} s")
        finally:
            for ref, call in list(in_flight.items()):  # only on an unexpected exception: leave nothing running
                self._abandon(ref, call, in_flight)
        # Start replacements for actors that died now, so they are (nearly) up when the next step comes.
        self._create_actors([a for a in agents if a.name in self._died])

    def _attempt_deadline(self, call: _Call, step_deadline: float) -> float:
        return min(call.call_deadline(), step_deadline)

    def _dispatch(
        self, call: _Call, request_ref: Any, in_flight: dict[Any, _Call], now: float
    ) -> tuple[bool, float | None]:
        """Start one attempt if the backend's budget allows. (False, seconds until a rate-limit token) or
        (False, None) when waiting for a concurrency slot; (True, None) when started."""
        concurrency, rate = self._limits(call.backend)
        if concurrency is not None and not concurrency.try_acquire():
            return False, None
        if rate is not None:
            wait_s = rate.try_acquire()
            if wait_s > 0.0:
                if concurrency is not None:
                    concurrency.release()
                return False, wait_s
        with self._lock:
            handle = self._actors[call.agent][1]
        ref = handle.answer.remote(request_ref, call.spec.view.name, call.spec.agent)
        call.attempts += 1
        if call.first_dispatch is None:
            call.first_dispatch = now
        in_flight[ref] = call
        return True, None

    def _release(self, call: _Call) -> None:
        concurrency, _ = self._limits(call.backend)
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
            fail(call, f"TimeoutError: not started before the step deadline of {self.step_timeout_s:g} s "
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
            why = f"RayActorError: agent actor died: agent {call.agent!r}: {_first_line(err)}"
            if call.agent not in dead:
                logger.warning("agent %r: its actor died mid-step; its calls of this step fail", call.agent)
                dead[call.agent] = why
                self._forget(call.agent, _first_line(err))
            fail(call, dead[call.agent])
            return
        except ray.exceptions.TaskCancelledError:
            fail(call, "CancelledError: the call was cancelled")
            return
        except ray.exceptions.RayError as err:
            fail(call, f"{type(err).__name__}: {_first_line(err)}")
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
        delay = policy.delay_s(call.attempts, result.get("retry_after_s"), self._rng)
        if now + delay >= self._attempt_deadline(call, step_deadline):
            message = call.errors.pop()
            fail(call, f"{message} (after {call.attempts} attempts; a retry in {delay:.2f} s would pass the deadline)")
            return
        logger.info("agent %r view %r: transient failure (%s); retry %d in %.2f s", call.agent,
                    call.spec.view.name, result["error"], call.attempts, delay)
        call.not_before = now + delay
        pending.append(call)

    # -- stopping -----------------------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Abandon the step in progress: in-flight calls are cancelled, the rest fail as cancelled."""
        self._cancel.set()

    def close(self) -> None:
        """Cancel what is in flight, stop the actors, and shut down Ray if this executor started it (a Ray
        that was already running, or a cluster at ``address``, is left as it was)."""
        if self._closed:
            return
        self._cancel.set()
        self._wait_for_starter()
        if self._ray_started:
            import ray

            with self._lock:
                agents = list(self._actors)
                handles = [h for _, h in self._actors.values()]
            try:
                if handles:
                    ray.wait([h.close.remote() for h in handles], num_returns=len(handles), timeout=5.0)
            except Exception as err:  # an actor that cannot close its backend is killed below anyway
                logger.debug("closing agent backends: %s", err)
            for agent in agents:
                self._kill(agent)
            if self._owns_ray and ray.is_initialized():
                ray.shutdown()
        self._reaper.stop()
        self._closed = True


def _first_line(err: BaseException) -> str:
    """Ray's error texts run over many lines (tracebacks, pids); the first line says what happened."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
