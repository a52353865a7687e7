"""Trajectory scoring with an ensemble of agents (VLMs or the rollout-metric judge ``simjudge``).

A ``ScoreRequest`` (instruction, candidate ids, rendered views, optional rollout evidence) goes to a
``Scorer``, which asks every agent about every view through its ``Backend``, validates each answer against
``ANSWER_SCHEMA``, and fuses the valid ones into S_j (``fusion.fuse``, DESIGN.md "Scoring, precisely").
How the calls run is a ``CallExecutor``: ``SerialExecutor`` in this process, or ``RayExecutor`` (one Ray actor
per agent, calls in flight together, per-backend limits, timeouts, retries on transient failures). An
``AnswerCache`` (SQLite) keeps valid answers by the backend's cache key. This package imports nothing else from
the project; ``ray`` is imported only when a RayExecutor starts.
"""

from scoring.backend import BACKENDS, AgentConfig, Backend, backend_class, make_backend, register_backend
from scoring.cache import AnswerCache
from scoring.config import (
    BackendSettings,
    PoolSettings,
    ScoringConfig,
    load_scoring_config,
    scoring_config_from_dict,
)
from scoring.errors import (
    AgentParamError,
    AnswerError,
    BackendError,
    ConfigError,
    RefusalError,
    ScoringError,
    TransientBackendError,
    UnknownBackendError,
)
from scoring.fusion import FusionResult, fuse, normalize_weights
from scoring.limits import ConcurrencyLimit, LimitTimeout, RateLimiter
from scoring.pool import RayExecutor
from scoring.request import CandidateEvidence, ScoreRequest, ViewImage
from scoring.retry import RetryPolicy, call_with_retries
from scoring.schema import ANSWER_SCHEMA, DIMENSIONS, Answer, answer_schema, parse_answer
from scoring.scorer import CallExecutor, CallOutcome, CallRecord, CallSpec, Scorer, ScoreTable, SerialExecutor
from scoring.simjudge import SimJudgeBackend

__all__ = [
    "ANSWER_SCHEMA",
    "BACKENDS",
    "DIMENSIONS",
    "AgentConfig",
    "AgentParamError",
    "Answer",
    "AnswerCache",
    "AnswerError",
    "Backend",
    "BackendError",
    "BackendSettings",
    "CallExecutor",
    "CallOutcome",
    "CallRecord",
    "CallSpec",
    "CandidateEvidence",
    "ConcurrencyLimit",
    "ConfigError",
    "FusionResult",
    "LimitTimeout",
    "PoolSettings",
    "RateLimiter",
    "RayExecutor",
    "RefusalError",
    "RetryPolicy",
    "ScoreRequest",
    "ScoreTable",
    "Scorer",
    "ScoringConfig",
    "ScoringError",
    "SerialExecutor",
    "SimJudgeBackend",
    "TransientBackendError",
    "UnknownBackendError",
    "ViewImage",
    "answer_schema",
    "backend_class",
    "call_with_retries",
    "fuse",
    "load_scoring_config",
    "make_backend",
    "normalize_weights",
    "parse_answer",
    "register_backend",
    "scoring_config_from_dict",
]
