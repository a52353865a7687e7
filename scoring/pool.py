"""The agent pool: every agent is a Ray actor, and all (agent, view) calls of a step are in flight together.

``RayExecutor`` is a ``CallExecutor``: ``Scorer`` hands it the calls of one step and gets one outcome per
call back, in order, whatever happened. This file holds Ray's start and the actors' lifecycle; the actor's
body is ``scoring/agent_actor.py`` and one step's dispatch loop is ``scoring/pool_step.py``. Per call:

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
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scoring.agent_actor import AgentWorker
from scoring.backend import BACKENDS, AgentConfig, Backend, backend_class
from scoring.config import BackendSettings, ScoringConfig
from scoring.limits import ConcurrencyLimit, RateLimiter
from scoring.pool_step import StepRun, first_line
from scoring.ray_reaper import RayReaper, ray_process_ids
from scoring.request import ScoreRequest
from scoring.retry import format_error
from scoring.scorer import CallExecutor, CallOutcome, CallSpec

logger = logging.getLogger(__name__)

BackendFactory = Callable[[], Backend]


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
            why = f"agent actor failed to start: {first_line(err)}"
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
        StepRun(self, request, calls, outcomes).run()


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
