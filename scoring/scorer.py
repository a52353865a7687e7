"""The scorer: ask every agent about every view, parse the answers, fuse them, and keep a record of each call.

``Scorer.score(request)`` never raises because of a failing call: each (agent, view) call is timed and
caught on its own (``CallRecord.error`` holds ``"ExceptionType: message"``), answers that break the schema
are recorded with their raw text, and only valid answers reach ``fusion.fuse``. An agent whose calls all
failed is left out of M'. If nothing valid comes back, ``ScoreTable.S`` is empty, ``error`` says why, and
``best()`` returns None, so the planner holds the robot still.

How the calls run is the executor's business (``CallExecutor``): ``SerialExecutor`` runs them one after the
other in this process (retries and rate limits per backend, no preemptive timeout); ``pool.RayExecutor``
runs them as Ray actors, all in flight together, behind the same ``run`` method.

With an ``AnswerCache``, the scorer looks up every call's ``Backend.cache_key`` in this process first and
sends only the misses to the executor; answers that parse valid are stored, errors never are.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.backend import AgentConfig, Backend, backend_class
from scoring.cache import AnswerCache
from scoring.config import BackendSettings, ScoringConfig
from scoring.errors import AnswerError, BackendError
from scoring.fusion import FusionResult, fuse
from scoring.limits import RateLimiter
from scoring.request import ScoreRequest, ViewImage
from scoring.retry import NO_RETRY, AttemptLog, RetryPolicy, call_with_retries, format_error
from scoring.schema import Answer, parse_answer

logger = logging.getLogger(__name__)

__all__ = [
    "CallExecutor",
    "CallOutcome",
    "CallRecord",
    "CallSpec",
    "ScoreTable",
    "Scorer",
    "SerialExecutor",
    "format_error",
    "run_call",
]


@dataclass(frozen=True)
class CallSpec:
    """One question to run: this agent about this view (of the request passed alongside)."""

    agent: AgentConfig
    view: ViewImage


@dataclass(frozen=True)
class CallOutcome:
    """What one call produced: raw text, or the error as 'ExceptionType: message'; and its duration.

    attempts: backend calls made (0 for an answer from the cache, or a call that never started).
    attempt_errors: the errors of the failed attempts, in order. cached: the text came from the AnswerCache.
    """

    raw_text: str | None
    error: str | None
    latency_s: float
    attempts: int = 1
    attempt_errors: tuple[str, ...] = ()
    cached: bool = False


def run_call(
    request: ScoreRequest,
    call: CallSpec,
    backend: Backend,
    policy: RetryPolicy = NO_RETRY,
    *,
    deadline: float | None = None,
    sleep: Any = time.sleep,
) -> CallOutcome:
    """Run one backend call, timed, retried on transient failures per ``policy`` until ``deadline``
    (``time.monotonic()`` seconds); any Exception becomes an error outcome instead of propagating."""
    start = time.perf_counter()
    log = AttemptLog()

    def attempt() -> str:
        text = backend.answer(request, call.view, call.agent)
        if not isinstance(text, str):
            raise TypeError(f"backend {backend.name!r} returned {type(text).__name__}, expected str")
        return text

    try:
        text = call_with_retries(attempt, policy, deadline=deadline, sleep=sleep, log=log)
    except Exception as err:  # one failing agent must not stop the others; the record keeps the reason
        error = format_error(err)
        if log.attempts > 1:
            error += f" (after {log.attempts} attempts)"
        if log.gave_up:
            error += f"; {log.gave_up}"
        return CallOutcome(None, error, time.perf_counter() - start, log.attempts, tuple(log.errors))
    return CallOutcome(text, None, time.perf_counter() - start, log.attempts, tuple(log.errors))


class CallExecutor(ABC):
    """Runs a batch of (agent, view) calls; one outcome per call, in order; never raises for a call."""

    @abstractmethod
    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        """``backends`` maps AgentConfig.backend to an instance; a remote pool may use its own instead."""

    def cancel(self) -> None:
        """Abandon the calls of a step in progress, if the executor can. Default: nothing to cancel."""
        return None

    def close(self) -> None:
        """Release workers. Default: nothing to release (the serial executor holds none)."""
        return None


class SerialExecutor(CallExecutor):
    """Runs the calls one after another in the calling thread.

    settings: per-backend BackendSettings (retries, requests_per_minute); a backend without an entry gets the
    defaults. timeout_s bounds retries and rate-limit waits but cannot stop a call that hangs: that is the
    backend client's own timeout (``BackendSettings.constructor_kwargs`` passes timeout_s to it).
    step_timeout_s: calls not started when it has passed are recorded as errors without being made.
    """

    def __init__(
        self, settings: Mapping[str, BackendSettings] | None = None, step_timeout_s: float | None = None
    ) -> None:
        self.settings = dict(settings or {})
        self.step_timeout_s = step_timeout_s
        self._limiters: dict[str, RateLimiter] = {}

    def _settings(self, backend: str) -> BackendSettings:
        return self.settings.get(backend) or BackendSettings()

    def _limiter(self, backend: str) -> RateLimiter | None:
        settings = self._settings(backend)
        if settings.requests_per_minute is None:
            return None
        if backend not in self._limiters:
            self._limiters[backend] = RateLimiter(settings.requests_per_minute, settings.burst, name=backend)
        return self._limiters[backend]

    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        step_deadline = None if self.step_timeout_s is None else time.monotonic() + self.step_timeout_s
        outcomes = []
        for call in calls:
            name = call.agent.backend
            settings = self._settings(name)
            now = time.monotonic()
            deadline = None if settings.timeout_s is None else now + settings.timeout_s
            if step_deadline is not None:
                if now >= step_deadline:
                    outcomes.append(
                        CallOutcome(None, f"not started: step deadline of {self.step_timeout_s:g} s passed", 0.0, 0)
                    )
                    continue
                deadline = step_deadline if deadline is None else min(deadline, step_deadline)
            limiter = self._limiter(name)
            if limiter is not None:
                start = time.perf_counter()
                try:
                    limiter.acquire(deadline)
                except BackendError as err:
                    outcomes.append(CallOutcome(None, format_error(err), time.perf_counter() - start, 0))
                    continue
            outcomes.append(run_call(request, call, backends[name], settings.retry_policy(), deadline=deadline))
        return outcomes


@dataclass(frozen=True)
class CallRecord:
    """One (agent, view) call as it happened: who answered, with which backend and model, what it said.

    cached: the answer came from the answer cache (no backend call). attempts: backend calls made (retries
    included). attempt_errors: errors of the failed attempts before the last, for diagnosis.
    """

    agent: str
    view: str
    backend: str
    model: str
    raw_text: str | None
    parsed: dict[str, Any] | None
    error: str | None
    latency_s: float
    cached: bool = False
    attempts: int = 1
    attempt_errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.parsed is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "view": self.view,
            "backend": self.backend,
            "model": self.model,
            "raw_text": self.raw_text,
            "parsed": self.parsed,
            "error": self.error,
            "latency_s": self.latency_s,
            "cached": self.cached,
            "attempts": self.attempts,
            "attempt_errors": list(self.attempt_errors),
        }


@dataclass(frozen=True)
class ScoreTable:
    """Result of one Scorer.score(): fused S_j, how it was fused, and every call made.

    cache_lookups: calls whose key was looked up in the answer cache; cache_hits: those answered from it.
    """

    S: dict[int, float]
    fusion: FusionResult
    calls: tuple[CallRecord, ...]
    M_prime: int
    error: str | None = None
    cache_hits: int = 0
    cache_lookups: int = 0

    @property
    def view_confidence(self) -> dict[str, float]:
        """C'_v: normalised view confidence per answered view."""
        return dict(self.fusion.C_norm)

    @property
    def cache_hit_rate(self) -> float | None:
        """cache_hits / cache_lookups, or None when nothing was looked up."""
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None

    def best(self, feasible_ids: Iterable[int] | None = None) -> int | None:
        """The id with the highest S among those that are scored and feasible (all scored ids when None).

        Ties go to the lowest id, so the choice is deterministic. None when no feasible id is scored.
        """
        pool = set(self.S) if feasible_ids is None else {int(j) for j in feasible_ids} & set(self.S)
        if not pool:
            return None
        return max(sorted(pool), key=lambda j: self.S[j])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict for the run log (raw answer text included; candidate ids as string keys)."""
        return {
            "S": {str(j): s for j, s in self.S.items()},
            "M_prime": self.M_prime,
            "error": self.error,
            "cache_hits": self.cache_hits,
            "cache_lookups": self.cache_lookups,
            "fusion": self.fusion.to_dict(),
            "calls": [c.to_dict() for c in self.calls],
        }


class Scorer:
    """Scores a ScoreRequest with an ensemble of agents.

    agents: the ensemble (None: ``config.agents``). backends: instances by backend name, for injected
    clients and tests; agents whose backend is not in it get ``make_backend(agent.backend, **kwargs)`` with the
    constructor kwargs of ``config.backends``, built once per name (lazy backends make this cheap: a VLM
    backend needs its client only to answer, not for ``cache_key``). executor: how calls run (default a
    SerialExecutor with the config's backend settings); the scorer closes it. cache: an AnswerCache (the
    caller's to close) or a path to open one (closed with the scorer); None = no cache.
    """

    def __init__(
        self,
        agents: Sequence[AgentConfig] | None,
        config: ScoringConfig,
        backends: Mapping[str, Backend] | None = None,
        executor: CallExecutor | None = None,
        cache: AnswerCache | str | os.PathLike[str] | None = None,
    ) -> None:
        self.agents: tuple[AgentConfig, ...] = tuple(config.agents if agents is None else agents)
        if not self.agents:
            raise ValueError("Scorer: expected at least one agent")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"Scorer: agent names must be unique, got {names}")
        self.config = config
        self.executor = executor or SerialExecutor(config.backends, config.pool.step_timeout_s)
        self.backends: dict[str, Backend] = {}
        for name, backend in (backends or {}).items():
            if not isinstance(backend, Backend):
                raise ValueError(f"Scorer: backends[{name!r}] is {type(backend).__name__}, not a Backend")
            self.backends[name] = backend
        self._owned: list[Backend] = []  # built here, so closed here; injected ones belong to the caller
        for agent in self.agents:
            if agent.backend not in self.backends:
                cls = backend_class(agent.backend)
                kwargs = config.backend_settings(agent.backend).constructor_kwargs(cls)
                self.backends[agent.backend] = cls(**kwargs)
                self._owned.append(self.backends[agent.backend])
        self._owns_cache = cache is not None and not isinstance(cache, AnswerCache)
        self.cache: AnswerCache | None = (
            cache if isinstance(cache, AnswerCache) or cache is None else AnswerCache(cache)
        )

    @classmethod
    def from_config(
        cls,
        config: ScoringConfig,
        backends: Mapping[str, Backend] | None = None,
        executor: CallExecutor | None = None,
        cache: AnswerCache | str | os.PathLike[str] | None = None,
    ) -> Scorer:
        return cls(None, config, backends=backends, executor=executor, cache=cache)

    def _lookup(self, request: ScoreRequest, call: CallSpec) -> tuple[str | None, CallOutcome | None]:
        """(cache key or None, the cached outcome on a valid hit or None)."""
        assert self.cache is not None
        backend = self.backends[call.agent.backend]
        try:
            key = backend.cache_key(request, call.view, call.agent)
        except Exception as err:  # a key that cannot be computed only costs the cache, not the call
            logger.warning("cache_key of backend %s failed (%s); calling it uncached", backend.name, err)
            return None, None
        if key is None:
            return None, None
        start = time.perf_counter()
        try:
            text = self.cache.get(key)
        except sqlite3.Error as err:
            logger.warning("answer cache %s: lookup failed (%s); calling the backend", self.cache.path, err)
            return key, None
        if text is None:
            return key, None
        try:
            parse_answer(text, request.candidate_ids)
        except AnswerError as err:  # stored under an older schema or parser; ask again rather than fail
            logger.warning("answer cache: dropping an entry that no longer parses (%s)", err)
            try:
                self.cache.delete(key)
            except sqlite3.Error as db_err:
                logger.warning("answer cache %s: delete failed (%s)", self.cache.path, db_err)
            return key, None
        return key, CallOutcome(text, None, time.perf_counter() - start, attempts=0, cached=True)

    def score(self, request: ScoreRequest) -> ScoreTable:
        """Ask every agent about every view of the request, then fuse the valid answers."""
        view_names = [v.name for v in request.views]
        if list(self.config.views) != view_names:
            logger.warning(
                "scoring request views %s differ from the configured views %s; scoring the request's views",
                view_names,
                list(self.config.views),
            )
        calls = [CallSpec(agent, view) for agent in self.agents for view in request.views]
        keys: list[str | None] = [None] * len(calls)
        outcomes: list[CallOutcome | None] = [None] * len(calls)
        if self.cache is not None:
            for index, call in enumerate(calls):
                keys[index], outcomes[index] = self._lookup(request, call)
        misses = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if misses:
            ran = self.executor.run(request, [calls[i] for i in misses], self.backends)
            if len(ran) != len(misses):
                raise RuntimeError(
                    f"{type(self.executor).__name__} returned {len(ran)} outcomes for {len(misses)} calls"
                )
            for index, outcome in zip(misses, ran, strict=True):
                outcomes[index] = outcome

        records: list[CallRecord] = []
        answers: dict[str, dict[str, Answer]] = {}
        for call, outcome, key in zip(calls, outcomes, keys, strict=True):
            assert outcome is not None
            parsed: Answer | None = None
            error = outcome.error
            if error is None:
                try:
                    parsed = parse_answer(outcome.raw_text or "", request.candidate_ids)
                except AnswerError as err:
                    error = format_error(err)
            if parsed is not None:
                answers.setdefault(call.agent.name, {})[call.view.name] = parsed
                if key is not None and not outcome.cached and self.cache is not None:
                    try:
                        self.cache.put(
                            key, outcome.raw_text or "", backend=call.agent.backend, model=call.agent.model
                        )
                    except sqlite3.Error as err:
                        logger.warning("answer cache %s: store failed (%s)", self.cache.path, err)
            else:
                logger.warning(
                    "agent %r (backend %s, model %r) on view %r failed: %s",
                    call.agent.name,
                    call.agent.backend,
                    call.agent.model,
                    call.view.name,
                    error,
                )
            records.append(
                CallRecord(
                    agent=call.agent.name,
                    view=call.view.name,
                    backend=call.agent.backend,
                    model=call.agent.model,
                    raw_text=outcome.raw_text,
                    parsed=None if parsed is None else parsed.to_dict(),
                    error=error,
                    latency_s=outcome.latency_s,
                    cached=outcome.cached,
                    attempts=outcome.attempts,
                    attempt_errors=outcome.attempt_errors,
                )
            )

        fusion = fuse(answers, self.config.weights, self.config.lambda_C, request.candidate_ids)
        error = None
        if not answers:
            failed = [r for r in records if r.error]
            first = failed[0]
            error = (
                f"all {len(records)} agent calls failed; first: agent '{first.agent}' "
                f"view '{first.view}': {first.error}"
            )
        elif not fusion.S:
            error = "no candidate was scored by any valid answer: " + "; ".join(fusion.notes)
        lookups = sum(1 for k in keys if k is not None)
        hits = sum(1 for o in outcomes if o is not None and o.cached)
        return ScoreTable(
            S=fusion.S,
            fusion=fusion,
            calls=tuple(records),
            M_prime=fusion.M_prime,
            error=error,
            cache_hits=hits,
            cache_lookups=lookups,
        )

    def cancel(self) -> None:
        """Abandon the calls in flight (from another thread, e.g. when the planner stops)."""
        self.executor.cancel()

    def close(self) -> None:
        """Close the executor, the backends this scorer built and a cache it opened (injected ones are the
        caller's to close)."""
        self.executor.close()
        for backend in self._owned:
            backend.close()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
