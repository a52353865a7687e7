"""Scoring configuration (configs/scoring/*.yaml): dimension weights, lambda_C, the agent ensemble, the views,
and optionally per-backend settings and pool settings.

File format::

    weights: {safety: 0.25, task_alignment: 0.45, efficiency: 0.1, feasibility: 0.2}  # every dimension, >= 0
    lambda_C: 0.5                  # disagreement penalty in C_v = q_v / (1 + lambda_C * sigma_v), >= 0
    agents:                        # at least one; names unique
      - {name: simjudge-0, backend: simjudge, model: rollout-metrics, params: {noise_std: 0.0}}
    views: [front, top, side]      # virtual views the planner renders and the agents are asked about
    backends:                      # optional: backend name -> settings
      openai:
        base_url: http://127.0.0.1:8000/v1   # any other key: a constructor argument of the backend
        timeout_s: 60              # per-call deadline in the pool (all attempts); null = none
        max_retries: 2             # retries of transient failures (429, 5xx, connection errors)
        backoff_s: 1.0             # first retry's wait; doubles per retry ...
        max_backoff_s: 30.0        # ... up to this (a server's Retry-After may ask for more)
        jitter: 0.5                # fraction of each wait drawn at random
        max_concurrency: 4         # calls of this backend in flight at once; null = no limit
        requests_per_minute: 60    # token bucket; null = no limit
        burst: 1                   # tokens saved up (default: one second's worth, at least 1)
    pool:                          # optional
      step_timeout_s: 180          # deadline for all calls of one scoring step; null = none

The pool keys above are read by the executors and are not passed to the backend's constructor, except that
``timeout_s`` is also given to a constructor that takes a ``timeout_s`` argument (so the HTTP client gives up
when the pool does). API keys never belong here: a key named like one (api_key, key, token, secret, ...)
anywhere in the file is rejected, as are credentials inside a URL; backends read ANTHROPIC_API_KEY /
OPENAI_API_KEY from the environment. So ``repr`` and ``to_dict`` of a config are safe to log.

Weights are kept as written (fusion scales them to sum 1). Every error is a ConfigError naming the file,
the field and what was expected; unknown keys, dimensions and backends get a did-you-mean.
"""

from __future__ import annotations

import inspect
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import configs
from scoring.backend import AgentConfig, Backend, backend_class
from scoring.errors import AgentParamError, BackendError, ConfigError, UnknownBackendError, did_you_mean
from scoring.fusion import normalize_weights
from scoring.retry import RetryPolicy
from scoring.schema import DIMENSIONS

TOP_LEVEL_KEYS = ("weights", "lambda_C", "agents", "views", "backends", "pool")
REQUIRED_KEYS = ("weights", "lambda_C", "agents", "views")
AGENT_KEYS = ("name", "backend", "model", "params")
POOL_SETTING_KEYS = (
    "timeout_s",
    "max_retries",
    "backoff_s",
    "max_backoff_s",
    "jitter",
    "max_concurrency",
    "requests_per_minute",
    "burst",
)
POOL_KEYS = ("step_timeout_s",)

MAX_AGENTS = 32
_NOTHING = configs.Said("nothing")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
KEYS_FROM_ENVIRONMENT = "keys come from the environment: ANTHROPIC_API_KEY / OPENAI_API_KEY"
_SECRET_NAMES = frozenset(
    {
        "api_key",
        "apikey",
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "authorization",
        "access_token",
        "auth_token",
        "bearer_token",
        "client_secret",
        "x_api_key",
    }
)
_URL_WITH_CREDENTIALS = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#@\s]+@")
# A value shaped like a vendor credential, wherever it sits (a key pasted under a field that is not named like one).
_CREDENTIAL_VALUE = re.compile(r"^\s*(bearer\s+)?(sk-|sk_|rk_|xai-|gsk_|hf_|ghp_|gho_|github_pat_|glpat-|AKIA|AIza)"
                               r"[A-Za-z0-9_\-]{12,}", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """True for a setting name that would hold a credential (api_key, token, x-api-key, openai_api_key, ...)."""
    norm = name.strip().lower().replace("-", "_")
    return norm in _SECRET_NAMES or norm.endswith(("_api_key", "_apikey", "_secret", "_password", "_token"))


def find_secret(data: Any, where: str = "") -> str | None:
    """The field path of the first credential-like key or URL-with-credentials in nested data, or None."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            shown = configs.safe_key(key)
            path = f"{where}.{shown}" if where else shown
            if isinstance(key, str) and (is_secret_name(key) or _CREDENTIAL_VALUE.match(key)):
                return path
            found = find_secret(value, path)
            if found:
                return found
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            found = find_secret(value, f"{where}[{index}]")
            if found:
                return found
    elif isinstance(data, str) and (_URL_WITH_CREDENTIALS.match(data) or _CREDENTIAL_VALUE.match(data)):
        return where or "(top level)"
    return None


def _secret_message(path: str) -> str:
    # The value is never echoed: it may be a real key.
    return f"field '{path}': credentials must not be written in a config file; {KEYS_FROM_ENVIRONMENT}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class BackendSettings:
    """Settings of one backend: constructor kwargs for ``make_backend`` and the pool's budget for its calls.

    See the module docstring for the meaning of each field. ``kwargs`` must not hold credentials (ValueError).
    """

    kwargs: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = 120.0
    max_retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    jitter: float = 0.5
    max_concurrency: int | None = None
    requests_per_minute: float | None = None
    burst: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise ValueError("BackendSettings.kwargs: expected a mapping with string keys")
        secret = find_secret(dict(self.kwargs), "kwargs")
        if secret:
            raise ValueError(f"BackendSettings: {_secret_message(secret)}")
        clash = sorted(set(self.kwargs) & set(POOL_SETTING_KEYS))
        if clash:
            raise ValueError(f"BackendSettings.kwargs: {clash[0]!r} is a pool setting, give it as a field")
        object.__setattr__(self, "kwargs", dict(self.kwargs))
        if self.timeout_s is not None:
            if not _is_number(self.timeout_s) or self.timeout_s <= 0:
                raise ValueError(f"timeout_s: expected a number > 0 (seconds) or null, got {self.timeout_s!r}")
            object.__setattr__(self, "timeout_s", float(self.timeout_s))
        policy = self.retry_policy()  # validates max_retries, backoff_s, max_backoff_s, jitter
        object.__setattr__(self, "backoff_s", policy.backoff_s)
        object.__setattr__(self, "max_backoff_s", policy.max_backoff_s)
        object.__setattr__(self, "jitter", policy.jitter)
        if self.max_concurrency is not None and (not _is_int(self.max_concurrency) or self.max_concurrency < 1):
            raise ValueError(f"max_concurrency: expected an integer >= 1 or null, got {self.max_concurrency!r}")
        rpm = self.requests_per_minute
        if rpm is not None:
            if not _is_number(rpm) or rpm <= 0:
                raise ValueError(f"requests_per_minute: expected a number > 0 or null, got {rpm!r}")
            object.__setattr__(self, "requests_per_minute", float(rpm))
        if self.burst is not None:
            if not _is_number(self.burst) or self.burst < 1:
                raise ValueError(f"burst: expected a number >= 1 or null, got {self.burst!r}")
            if rpm is None:
                raise ValueError("burst: only meaningful with requests_per_minute")
            object.__setattr__(self, "burst", float(self.burst))

    def retry_policy(self) -> RetryPolicy:
        try:
            return RetryPolicy(
                max_retries=self.max_retries,
                backoff_s=self.backoff_s,
                max_backoff_s=self.max_backoff_s,
                jitter=self.jitter,
            )
        except ValueError as err:
            raise ValueError(str(err).removeprefix("RetryPolicy.")) from None

    def constructor_kwargs(self, cls: type[Backend]) -> dict[str, Any]:
        """The kwargs for ``cls(...)``: ``kwargs``, plus ``timeout_s`` when the constructor takes it."""
        out = dict(self.kwargs)
        if self.timeout_s is not None and "timeout_s" not in out and _accepts(cls, "timeout_s"):
            out["timeout_s"] = self.timeout_s
        return out

    def to_dict(self) -> dict[str, Any]:
        """The file's flat shape: constructor kwargs and pool settings side by side."""
        out = dict(self.kwargs)
        for key in POOL_SETTING_KEYS:
            out[key] = getattr(self, key)
        return out


DEFAULT_BACKEND_SETTINGS = BackendSettings()


def _accepts(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes a keyword argument ``name`` (explicitly, or through **kwargs)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _constructor_params(cls: type) -> tuple[str, ...] | None:
    """Keyword names ``cls(...)`` takes, or None when it takes **kwargs (anything goes)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(name for name, p in params.items() if p.kind in kinds)


@dataclass(frozen=True)
class PoolSettings:
    """Settings of the call pool as a whole. step_timeout_s: deadline for all calls of one step (None: none)."""

    step_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.step_timeout_s is not None:
            if not _is_number(self.step_timeout_s) or self.step_timeout_s <= 0:
                raise ValueError(
                    f"step_timeout_s: expected a number > 0 (seconds) or null, got {self.step_timeout_s!r}"
                )
            object.__setattr__(self, "step_timeout_s", float(self.step_timeout_s))

    def to_dict(self) -> dict[str, Any]:
        return {"step_timeout_s": self.step_timeout_s}


@dataclass(frozen=True)
class ScoringConfig:
    """Validated scoring settings (ValueError on bad values; load_scoring_config adds file and field)."""

    weights: dict[str, float]
    lambda_C: float
    agents: tuple[AgentConfig, ...]
    views: tuple[str, ...]
    backends: dict[str, BackendSettings] = field(default_factory=dict)
    pool: PoolSettings = field(default_factory=PoolSettings)

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
            secret = find_secret(agent.params, f"agents.{agent.name}.params")
            if secret:
                raise ValueError(_secret_message(secret))
        names = [a.name for a in agents]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"agents: agent names must be unique, repeated: {', '.join(duplicates)}")
        views = tuple(self.views)
        if not views or not all(isinstance(v, str) and v for v in views):
            raise ValueError(f"views: expected a non-empty list of view names, got {list(views)!r}")
        if len(set(views)) != len(views):
            raise ValueError(f"views: view names must be unique, got {list(views)}")
        if not isinstance(self.backends, Mapping):
            raise ValueError(f"backends: expected a mapping of backend name to BackendSettings, got {self.backends!r}")
        for name, settings in self.backends.items():
            if not isinstance(name, str) or not isinstance(settings, BackendSettings):
                raise ValueError(f"backends[{name!r}]: expected BackendSettings, got {type(settings).__name__}")
        if not isinstance(self.pool, PoolSettings):
            raise ValueError(f"pool: expected PoolSettings, got {type(self.pool).__name__}")
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "views", views)
        object.__setattr__(self, "backends", dict(self.backends))

    @property
    def normalized_weights(self) -> dict[str, float]:
        """The weights scaled to sum 1, as fusion uses them."""
        return normalize_weights(self.weights)

    def backend_settings(self, name: str) -> BackendSettings:
        """The settings of backend ``name`` (the defaults when the file has none for it)."""
        return self.backends.get(name, DEFAULT_BACKEND_SETTINGS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict in the file's shape (scoring_config_from_dict(to_dict()) gives it back)."""
        return {
            "weights": dict(self.weights),
            "lambda_C": self.lambda_C,
            "agents": [a.to_dict() for a in self.agents],
            "views": list(self.views),
            "backends": {name: s.to_dict() for name, s in self.backends.items()},
            "pool": self.pool.to_dict(),
        }


def _reject_unknown(mapping: Mapping[str, Any], known: tuple[str, ...], source: str, prefix: str) -> None:
    for key in mapping:
        if key not in known:
            raise ConfigError(source, f"{prefix}{configs.safe_key(key)}", f"one of the keys {', '.join(known)}",
                              configs.Said("an unknown key"), hint=did_you_mean(str(key), known))


def _from_value_error(err: ValueError, source: str, prefix: str, raw: Mapping[str, Any]) -> ConfigError:
    """A settings class's ValueError ("field: expected ..., got VALUE") as a ConfigError that does not echo."""
    field_name, _, rest = str(err).partition(":")
    expected = rest.split(", got ")[0].strip().removeprefix("expected ")
    got = raw[field_name] if field_name in raw else configs.Said("another field's value")
    return ConfigError(source, f"{prefix}{field_name}", expected or "a valid value", got, secret=True)


def scoring_config_from_dict(data: Any, source: str = "<scoring config>") -> ScoringConfig:
    """ScoringConfig from parsed YAML/JSON; ConfigError(file, field, expected, got) that never shows a value:
    a scoring config is where a credential would be pasted, under any key."""

    def fail(field_name: str, expected: str, value: Any = _NOTHING) -> ConfigError:
        return ConfigError(source, field_name, expected, value, secret=True)

    if not isinstance(data, Mapping):
        raise fail("", f"a mapping with keys {', '.join(REQUIRED_KEYS)}", data)
    # First, before any message could name a key or a value: no credentials anywhere in the file.
    secret = find_secret(data)
    if secret:
        raise ConfigError(source, secret, f"no credential in a config file ({KEYS_FROM_ENVIRONMENT})",
                          configs.Said("a credential-like key or value (not shown)"))
    _reject_unknown(data, TOP_LEVEL_KEYS, source, "")
    for key in REQUIRED_KEYS:
        if key not in data:
            raise fail(key, "this field (required)")

    weights = data["weights"]
    if not isinstance(weights, Mapping):
        raise fail("weights", f"a mapping of {', '.join(DIMENSIONS)} to numbers", weights)
    _reject_unknown(weights, DIMENSIONS, source, "weights.")
    for key, value in weights.items():
        if not _is_number(value) or not 0 <= value <= 1e6:
            raise fail(f"weights.{key}", "a finite number in [0, 1e6]", value)
    for key in DIMENSIONS:
        if key not in weights:
            raise fail(f"weights.{key}", "a weight (write 0 to ignore this dimension)")
    if sum(weights.values()) <= 0:
        raise fail("weights", "at least one weight > 0", configs.Said("all zero"))

    lam = data["lambda_C"]
    if not _is_number(lam) or not 0 <= lam <= 1e6:
        raise fail("lambda_C", "a finite number in [0, 1e6]", lam)

    raw_agents = data["agents"]
    if not isinstance(raw_agents, list) or not 0 < len(raw_agents) <= MAX_AGENTS:
        raise fail("agents", f"a list of 1 to {MAX_AGENTS} {{name, backend, model, params}}", raw_agents)
    agents = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_agents):
        where = f"agents[{index}]"
        if not isinstance(raw, Mapping):
            raise fail(where, "a mapping with name, backend, model, params", raw)
        _reject_unknown(raw, AGENT_KEYS, source, f"{where}.")
        for key in ("name", "backend"):
            if key not in raw:
                raise fail(f"{where}.{key}", "this field (required)")
        name = raw["name"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise fail(f"{where}.name", "a name of 1 to 40 letters, digits, '_', '-', '.'", name)
        if name in seen:
            raise fail(f"{where}.name", "a name not used by another agent", name)
        seen.add(name)
        model = raw.get("model", "")
        if not isinstance(model, str) or len(model) > 200:
            raise fail(f"{where}.model", "a model name (a string of at most 200 characters)", model)
        params = raw.get("params") or {}
        if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
            raise fail(f"{where}.params", "a mapping of parameter names to values", params)
        try:
            cls = backend_class(raw["backend"]) if isinstance(raw["backend"], str) else None
        except UnknownBackendError as err:
            raise ConfigError(source, f"{where}.backend", err.expected, raw["backend"], secret=True,
                              hint=err.hint) from None
        except BackendError as err:
            raise fail(f"{where}.backend", f"a backend that loads ({err})", raw["backend"]) from None
        if cls is None:
            raise fail(f"{where}.backend", "a backend name", raw["backend"])
        try:
            cls.check_agent_params(params)
        except AgentParamError as err:
            field_name = f"{where}.params.{configs.safe_key(err.param)}"
            expected = err.problem.split(", got ")[0].removeprefix("expected ")
            raise ConfigError(source, field_name, expected, params.get(err.param, configs.Said("(see above)")),
                              secret=True) from None
        agents.append(AgentConfig(name=name, backend=raw["backend"], model=model, params=dict(params)))

    views = data["views"]
    if not isinstance(views, list) or not 0 < len(views) <= 32:
        raise fail("views", "a list of 1 to 32 view names", views)
    for index, view in enumerate(views):
        if not isinstance(view, str) or not _NAME.match(view):
            raise fail(f"views[{index}]", "a view name of 1 to 40 letters, digits, '_', '-', '.'", view)
    if len(set(views)) != len(views):
        raise fail("views", "unique view names", views)

    backends = _backends_from_dict(data.get("backends"), source)
    pool = _pool_from_dict(data.get("pool"), source)

    try:
        return ScoringConfig(
            weights=dict(weights),
            lambda_C=float(lam),
            agents=tuple(agents),
            views=tuple(views),
            backends=backends,
            pool=pool,
        )
    except ValueError as err:  # everything is checked above; this keeps the file name on any slip
        raise _from_value_error(err, source, "", data) from None


def _backends_from_dict(raw: Any, source: str) -> dict[str, BackendSettings]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "backends", "a mapping of backend name to settings", raw, secret=True)
    out: dict[str, BackendSettings] = {}
    for name, entry in raw.items():
        where = f"backends.{configs.safe_key(name)}"
        try:
            cls = backend_class(str(name))
        except UnknownBackendError as err:
            raise ConfigError(source, where, err.expected, name, secret=True, hint=err.hint) from None
        except BackendError as err:
            raise ConfigError(source, where, f"a backend that loads ({err})", name, secret=True) from None
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping) or not all(isinstance(k, str) for k in entry):
            raise ConfigError(source, where, "a mapping of constructor arguments and pool settings "
                              f"({', '.join(POOL_SETTING_KEYS)})", entry, secret=True)
        kwargs = {k: v for k, v in entry.items() if k not in POOL_SETTING_KEYS}
        known = _constructor_params(cls)
        if known is not None:
            for key in kwargs:
                if key not in known:
                    choices = tuple(known) + POOL_SETTING_KEYS
                    raise ConfigError(source, f"{where}.{configs.safe_key(key)}",
                                      f"a constructor argument of {cls.__name__} or a pool setting",
                                      configs.Said("an unknown key"), hint=did_you_mean(key, choices))
        pool_fields = {k: entry[k] for k in POOL_SETTING_KEYS if k in entry}
        try:
            out[str(name)] = BackendSettings(kwargs=kwargs, **pool_fields)
        except ValueError as err:
            raise _from_value_error(err, source, f"{where}.", entry) from None
    return out


def _pool_from_dict(raw: Any, source: str) -> PoolSettings:
    if raw is None:
        return PoolSettings()
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "pool", f"a mapping with {', '.join(POOL_KEYS)}", raw, secret=True)
    _reject_unknown(raw, POOL_KEYS, source, "pool.")
    try:
        return PoolSettings(**dict(raw))
    except ValueError as err:
        raise _from_value_error(err, source, "pool.", raw) from None


def load_scoring_config(path: str | os.PathLike[str]) -> ScoringConfig:
    """Read and validate a scoring YAML file strictly (ConfigError names the file and the field)."""
    source = os.fspath(path)
    try:
        data = configs.read_yaml(source, "scoring config")
    except configs.InputError as err:
        raise ConfigError(err.file, err.field, err.expected, *(() if err.got is None else (configs.Said(err.got),)),
                          hint=err.hint) from None
    return scoring_config_from_dict(data, source=source)
