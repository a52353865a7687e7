"""Scoring configuration (configs/scoring/*.yaml): dimension weights, lambda_C, the agent ensemble, the views.

File format::

    weights: {safety: 0.25, task_alignment: 0.45, efficiency: 0.1, feasibility: 0.2}  # every dimension, >= 0
    lambda_C: 0.5                  # disagreement penalty in C_v = q_v / (1 + lambda_C * sigma_v), >= 0
    agents:                        # at least one; names unique
      - {name: simjudge-0, backend: simjudge, model: rollout-metrics, params: {noise_std: 0.0}}
    views: [front, top, side]      # virtual views the planner renders and the agents are asked about

Weights are kept as written (fusion scales them to sum 1). Every error is a ConfigError naming the file,
the field and what was expected; unknown keys, dimensions and backends get a did-you-mean.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from scoring.backend import AgentConfig, backend_class
from scoring.errors import AgentParamError, BackendError, ConfigError, did_you_mean
from scoring.fusion import normalize_weights
from scoring.schema import DIMENSIONS

TOP_LEVEL_KEYS = ("weights", "lambda_C", "agents", "views")
AGENT_KEYS = ("name", "backend", "model", "params")


@dataclass(frozen=True)
class ScoringConfig:
    """Validated scoring settings (ValueError on bad values; load_scoring_config adds file and field)."""

    weights: dict[str, float]
    lambda_C: float
    agents: tuple[AgentConfig, ...]
    views: tuple[str, ...]

    def __post_init__(self) -> None:
        normalize_weights(self.weights)  # raises ValueError naming the bad dimension
        object.__setattr__(self, "weights", {k: float(self.weights[k]) for k in DIMENSIONS})
        lam = self.lambda_C
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda_C: expected a number >= 0, got {lam!r}")
        object.__setattr__(self, "lambda_C", float(lam))
        agents = tuple(self.agents)
        if not agents:
            raise ValueError("agents: expected at least one agent")
        for agent in agents:
            if not isinstance(agent, AgentConfig):
                raise ValueError(f"agents: expected AgentConfig, got {type(agent).__name__}")
        names = [a.name for a in agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agents: agent names must be unique, repeated: {', '.join(duplicates)}")
        views = tuple(self.views)
        if not views or not all(isinstance(v, str) and v for v in views):
            raise ValueError(f"views: expected a non-empty list of view names, got {list(views)!r}")
        if len(set(views)) != len(views):
            raise ValueError(f"views: view names must be unique, got {list(views)}")
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "views", views)

    @property
    def normalized_weights(self) -> dict[str, float]:
        """The weights scaled to sum 1, as fusion uses them."""
        return normalize_weights(self.weights)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict in the file's shape (scoring_config_from_dict(to_dict()) gives it back)."""
        return {
            "weights": dict(self.weights),
            "lambda_C": self.lambda_C,
            "agents": [a.to_dict() for a in self.agents],
            "views": list(self.views),
        }


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _reject_unknown(mapping: Mapping[str, Any], known: tuple[str, ...], source: str, prefix: str) -> None:
    for key in mapping:
        if key not in known:
            field_name = f"{prefix}{key}"
            raise ConfigError(f"{source}: field '{field_name}': unknown key{did_you_mean(str(key), known)}")


def scoring_config_from_dict(data: Any, source: str = "<scoring config>") -> ScoringConfig:
    """ScoringConfig from parsed YAML/JSON; ConfigError('<source>: field ...: expected ..., got ...')."""

    def fail(field_name: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"{source}: field '{field_name}': expected {expected}, got {value!r}")

    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(TOP_LEVEL_KEYS)}, got {data!r}")
    _reject_unknown(data, TOP_LEVEL_KEYS, source, "")
    for key in TOP_LEVEL_KEYS:
        if key not in data:
            raise ConfigError(f"{source}: field '{key}': missing (required)")

    weights = data["weights"]
    if not isinstance(weights, Mapping):
        raise fail("weights", f"a mapping of {', '.join(DIMENSIONS)} to numbers", weights)
    for key, value in weights.items():
        if key not in DIMENSIONS:
            raise ConfigError(
                f"{source}: field 'weights.{key}': unknown dimension{did_you_mean(str(key), DIMENSIONS)}"
            )
        if not _is_number(value) or value < 0:
            raise fail(f"weights.{key}", "a number >= 0", value)
    for key in DIMENSIONS:
        if key not in weights:
            raise ConfigError(f"{source}: field 'weights.{key}': missing (write 0 to ignore this dimension)")
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{source}: field 'weights': all weights are zero; at least one must be > 0")

    lam = data["lambda_C"]
    if not _is_number(lam) or lam < 0:
        raise fail("lambda_C", "a number >= 0", lam)

    raw_agents = data["agents"]
    if not isinstance(raw_agents, list) or not raw_agents:
        raise fail("agents", "a non-empty list of {name, backend, model, params}", raw_agents)
    agents = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_agents):
        where = f"agents[{index}]"
        if not isinstance(raw, Mapping):
            raise fail(where, "a mapping with name, backend, model, params", raw)
        _reject_unknown(raw, AGENT_KEYS, source, f"{where}.")
        for key in ("name", "backend"):
            if key not in raw:
                raise ConfigError(f"{source}: field '{where}.{key}': missing (required)")
            if not isinstance(raw[key], str) or not raw[key].strip():
                raise fail(f"{where}.{key}", "a non-empty string", raw[key])
        name = raw["name"]
        if name in seen:
            raise ConfigError(f"{source}: field '{where}.name': agent name {name!r} is used twice")
        seen.add(name)
        model = raw.get("model", "")
        if not isinstance(model, str):
            raise fail(f"{where}.model", "a string", model)
        params = raw.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise fail(f"{where}.params", "a mapping of parameter names to values", params)
        try:
            cls = backend_class(raw["backend"])
        except BackendError as err:
            raise ConfigError(f"{source}: field '{where}.backend': {err}") from None
        try:
            cls.check_agent_params(params)
        except AgentParamError as err:
            raise ConfigError(f"{source}: field '{where}.params.{err.param}': {err.problem}") from None
        agents.append(AgentConfig(name=name, backend=raw["backend"], model=model, params=dict(params)))

    views = data["views"]
    if not isinstance(views, list) or not views:
        raise fail("views", "a non-empty list of view names", views)
    for index, view in enumerate(views):
        if not isinstance(view, str) or not view.strip():
            raise fail(f"views[{index}]", "a non-empty string", view)
    if len(set(views)) != len(views):
        raise fail("views", "unique view names", views)

    try:
        return ScoringConfig(
            weights=dict(weights), lambda_C=float(lam), agents=tuple(agents), views=tuple(views)
        )
    except ValueError as err:  # everything is checked above; this keeps the file name on any slip
        raise ConfigError(f"{source}: {err}") from None


def load_scoring_config(path: str | os.PathLike[str]) -> ScoringConfig:
    """Read and validate a scoring YAML file (ConfigError names the file and the field)."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{source}: cannot read: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{source}: not valid YAML: {err}") from None
    return scoring_config_from_dict(data, source=source)
