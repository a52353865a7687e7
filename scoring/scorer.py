"""The scorer: ask every agent about every view, parse the answers, fuse them, and keep a record of each call.

``Scorer.score(request)`` never raises because of a failing call: each (agent, view) call is timed and
caught on its own (``CallRecord.error`` holds ``"ExceptionType: message"``), answers that break the schema
are recorded with their raw text, and only valid answers reach ``fusion.fuse``. An agent whose calls all
failed is left out of M'. If nothing valid comes back, ``ScoreTable.S`` is empty, ``error`` says why, and
``best()`` returns None, so the planner holds the robot still.

How the calls run is the executor's business (``CallExecutor``): ``SerialExecutor`` runs them one after the
other in this process; a pool executor (Ray actors, calls in flight together) plugs in behind the same
``run`` method without changing the scorer.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scoring.backend import AgentConfig, Backend, make_backend
from scoring.config import ScoringConfig
from scoring.errors import AnswerError
from scoring.fusion import FusionResult, fuse
from scoring.request import ScoreRequest, ViewImage
from scoring.schema import Answer, parse_answer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallSpec:
    """One question to run: this agent about this view (of the request passed alongside)."""

    agent: AgentConfig
    view: ViewImage


@dataclass(frozen=True)
class CallOutcome:
    """What one call produced: raw text, or the error as 'ExceptionType: message'; and its duration."""

    raw_text: str | None
    error: str | None
    latency_s: float


def format_error(err: BaseException) -> str:
    """'ExceptionType: message', the form CallRecord.error uses."""
    return f"{type(err).__name__}: {err}"


def run_call(request: ScoreRequest, call: CallSpec, backend: Backend) -> CallOutcome:
    """Run one backend call, timed; any Exception becomes an error outcome instead of propagating."""
    start = time.perf_counter()
    try:
        text = backend.answer(request, call.view, call.agent)
        if not isinstance(text, str):
            raise TypeError(f"backend {backend.name!r} returned {type(text).__name__}, expected str")
    except Exception as err:  # one failing agent must not stop the others; the record keeps the reason
        return CallOutcome(raw_text=None, error=format_error(err), latency_s=time.perf_counter() - start)
    return CallOutcome(raw_text=text, error=None, latency_s=time.perf_counter() - start)


class CallExecutor(ABC):
    """Runs a batch of (agent, view) calls; one outcome per call, in order; never raises for a call."""

    @abstractmethod
    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        """``backends`` maps AgentConfig.backend to an instance; a remote pool may use its own instead."""

    def close(self) -> None:
        """Release workers. Default: nothing to release (the serial executor holds none)."""
        return None


class SerialExecutor(CallExecutor):
    """Runs the calls one after another in the calling thread."""

    def run(
        self, request: ScoreRequest, calls: Sequence[CallSpec], backends: Mapping[str, Backend]
    ) -> list[CallOutcome]:
        return [run_call(request, call, backends[call.agent.backend]) for call in calls]


@dataclass(frozen=True)
class CallRecord:
    """One (agent, view) call as it happened: who answered, with which backend and model, what it said."""

    agent: str
    view: str
    backend: str
    model: str
    raw_text: str | None
    parsed: dict[str, Any] | None
    error: str | None
    latency_s: float

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
        }


@dataclass(frozen=True)
class ScoreTable:
    """Result of one Scorer.score(): fused S_j, how it was fused, and every call made."""

    S: dict[int, float]
    fusion: FusionResult
    calls: tuple[CallRecord, ...]
    M_prime: int
    error: str | None = None

    @property
    def view_confidence(self) -> dict[str, float]:
        """C'_v: normalised view confidence per answered view."""
        return dict(self.fusion.C_norm)

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
            "fusion": self.fusion.to_dict(),
            "calls": [c.to_dict() for c in self.calls],
        }


class Scorer:
    """Scores a ScoreRequest with an ensemble of agents.

    agents: the ensemble (None: ``config.agents``). backends: instances by backend name, for injected
    clients and tests; agents whose backend is not in it get ``make_backend(agent.backend)``, built once per
    name. executor: how calls run (default SerialExecutor).
    """

    def __init__(
        self,
        agents: Sequence[AgentConfig] | None,
        config: ScoringConfig,
        backends: Mapping[str, Backend] | None = None,
        executor: CallExecutor | None = None,
    ) -> None:
        self.agents: tuple[AgentConfig, ...] = tuple(config.agents if agents is None else agents)
        if not self.agents:
            raise ValueError("Scorer: expected at least one agent")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"Scorer: agent names must be unique, got {names}")
        self.config = config
        self.executor = executor or SerialExecutor()
        self.backends: dict[str, Backend] = {}
        for name, backend in (backends or {}).items():
            if not isinstance(backend, Backend):
                raise ValueError(f"Scorer: backends[{name!r}] is {type(backend).__name__}, not a Backend")
            self.backends[name] = backend
        self._owned: list[Backend] = []  # built here, so closed here; injected ones belong to the caller
        for agent in self.agents:
            if agent.backend not in self.backends:
                self.backends[agent.backend] = make_backend(agent.backend)
                self._owned.append(self.backends[agent.backend])

    @classmethod
    def from_config(
        cls,
        config: ScoringConfig,
        backends: Mapping[str, Backend] | None = None,
        executor: CallExecutor | None = None,
    ) -> Scorer:
        return cls(None, config, backends=backends, executor=executor)

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
        outcomes = self.executor.run(request, calls, self.backends)
        if len(outcomes) != len(calls):
            raise RuntimeError(
                f"{type(self.executor).__name__} returned {len(outcomes)} outcomes for {len(calls)} calls"
            )

        records: list[CallRecord] = []
        answers: dict[str, dict[str, Answer]] = {}
        for call, outcome in zip(calls, outcomes, strict=True):
            parsed: Answer | None = None
            error = outcome.error
            if error is None:
                try:
                    parsed = parse_answer(outcome.raw_text or "", request.candidate_ids)
                except AnswerError as err:
                    error = format_error(err)
            if parsed is not None:
                answers.setdefault(call.agent.name, {})[call.view.name] = parsed
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
        return ScoreTable(
            S=fusion.S, fusion=fusion, calls=tuple(records), M_prime=fusion.M_prime, error=error
        )

    def close(self) -> None:
        """Close the executor and the backends this scorer built (injected ones are the caller's to close)."""
        self.executor.close()
        for backend in self._owned:
            backend.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
