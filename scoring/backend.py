"""The one interface every answer source implements, the agent description, and the backend registry.

A backend turns one (request, view, agent) into the raw text of an answer; it does not parse it. The
scorer runs every backend's text through ``schema.parse_answer``, so a VLM, a stub and ``simjudge`` are
judged by the same rules. One backend instance may serve several agents: per-agent settings (model,
temperature, simjudge noise) travel in ``AgentConfig`` with each call, per-backend settings (endpoint,
client, rate limit) go to the constructor through ``make_backend(name, **kwargs)``.

Registry entries are either a Backend subclass or a ``"module:Class"`` string resolved on first use, so a
backend with heavy optional dependencies (transformers, an API client) is imported only when an agent uses it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from scoring.errors import BackendError, UnknownBackendError, did_you_mean

if TYPE_CHECKING:
    from scoring.request import ScoreRequest, ViewImage


@dataclass(frozen=True)
class AgentConfig:
    """One scoring agent: a name (unique in the ensemble), the backend that answers for it, its model, and
    backend-specific per-agent parameters (e.g. simjudge ``noise_std`` / ``seed``, an API ``temperature``)."""

    name: str
    backend: str
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"AgentConfig.name: expected a non-empty string, got {self.name!r}")
        if not isinstance(self.backend, str) or not self.backend.strip():
            raise ValueError(
                f"AgentConfig {self.name!r}.backend: expected a non-empty string, got {self.backend!r}"
            )
        if not isinstance(self.model, str):
            raise ValueError(f"AgentConfig {self.name!r}.model: expected a string, got {self.model!r}")
        if not isinstance(self.params, Mapping) or not all(isinstance(k, str) for k in self.params):
            raise ValueError(f"AgentConfig {self.name!r}.params: expected a mapping with string keys")
        # A private copy: the dataclass is frozen, and a caller mutating its dict must not change the agent.
        # (A plain dict, not a MappingProxy, so the config can be pickled to pool workers.)
        object.__setattr__(self, "params", dict(self.params))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "backend": self.backend, "model": self.model, "params": dict(self.params)}


class Backend(ABC):
    """Answers one (agent, view) question with raw text (JSON per schema.ANSWER_SCHEMA, ideally).

    Implementations raise BackendError (or any exception) when they cannot answer; the scorer records the
    failure for that call and leaves the agent out of the fusion for that view.
    """

    name: ClassVar[str] = "backend"

    @classmethod
    def check_agent_params(cls, params: Mapping[str, Any]) -> None:
        """Raise AgentParamError(param, problem) for unusable per-agent params. Default: accept all."""
        return None

    @abstractmethod
    def answer(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str:
        """The raw answer text for this view of the request, as the agent's model would write it."""

    def warm_up(self) -> None:
        """Do the slow one-time setup now (client imports, a model load) instead of in the first call. The agent
        pool calls it when an agent's actor starts. Default: nothing to do."""
        return None

    def cache_key(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str | None:
        """A stable key for the answer cache, or None when answers must not be cached (default).

        VLM backends return a hash of (backend name, model, prompt hash, image hash, decoding parameters):
        whatever changes the answer must change the key. Never include an API key or an endpoint secret.
        """
        return None

    def close(self) -> None:
        """Release clients, sessions or models. Default: nothing to release."""
        return None


BackendEntry = type[Backend] | str

BACKENDS: dict[str, BackendEntry] = {
    "simjudge": "scoring.simjudge:SimJudgeBackend",
    "anthropic": "scoring.anthropic_backend:AnthropicBackend",
    "openai": "scoring.openai_backend:OpenAIBackend",
    "transformers": "scoring.transformers_backend:TransformersBackend",
}


def register_backend(name: str, entry: BackendEntry) -> None:
    """Register a backend class (or a lazy 'module:Class' path) under a new ``name``."""
    if name in BACKENDS:
        raise ValueError(f"backend {name!r} is already registered")
    BACKENDS[name] = entry


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass registered under ``name`` (UnknownBackendError with a did-you-mean otherwise)."""
    try:
        entry = BACKENDS[name]
    except KeyError:
        raise UnknownBackendError(None, "backend", f"a registered backend ({', '.join(sorted(BACKENDS))})", name,
                                  secret=True, hint=did_you_mean(name, tuple(BACKENDS))) from None
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        try:
            entry = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise BackendError(
                f"backend {name!r} is registered as {BACKENDS[name]!r} but cannot be loaded: {err}"
            ) from err
    if not (isinstance(entry, type) and issubclass(entry, Backend)):
        raise BackendError(f"backend {name!r} is registered as {entry!r}, which is not a Backend subclass")
    return entry


def make_backend(name: str, **kwargs: Any) -> Backend:
    """Build the backend registered under ``name`` with its constructor settings."""
    return backend_class(name)(**kwargs)
