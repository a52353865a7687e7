"""Trajectory scoring with an ensemble of agents (VLMs or the rollout-metric judge ``simjudge``).

A ``ScoreRequest`` (instruction, candidate ids, rendered views, optional rollout evidence) goes to a
``Scorer``, which asks every agent about every view through its ``Backend``, validates each answer against
``ANSWER_SCHEMA``, and fuses the valid ones into S_j (``fusion.fuse``, DESIGN.md "Scoring, precisely").
This package imports nothing else from the project.
"""

from scoring.backend import BACKENDS, AgentConfig, Backend, backend_class, make_backend, register_backend
from scoring.config import ScoringConfig, load_scoring_config, scoring_config_from_dict
from scoring.errors import (
    AgentParamError,
    AnswerError,
    BackendError,
    ConfigError,
    ScoringError,
    UnknownBackendError,
)
from scoring.fusion import FusionResult, fuse, normalize_weights
from scoring.request import CandidateEvidence, ScoreRequest, ViewImage
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
    "AnswerError",
    "Backend",
    "BackendError",
    "CallExecutor",
    "CallOutcome",
    "CallRecord",
    "CallSpec",
    "CandidateEvidence",
    "ConfigError",
    "FusionResult",
    "ScoreRequest",
    "ScoreTable",
    "Scorer",
    "ScoringConfig",
    "ScoringError",
    "SerialExecutor",
    "SimJudgeBackend",
    "UnknownBackendError",
    "ViewImage",
    "answer_schema",
    "backend_class",
    "fuse",
    "load_scoring_config",
    "make_backend",
    "normalize_weights",
    "parse_answer",
    "register_backend",
    "scoring_config_from_dict",
]
