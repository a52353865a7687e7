"""Exception types of the scoring package and the did-you-mean hint their messages use.

In one place so every module can raise them without import cycles.
"""

from __future__ import annotations

import configs
from configs import did_you_mean

__all__ = ["did_you_mean", "ScoringError", "AnswerError", "RefusalError", "BackendError", "TransientBackendError",
           "UnknownBackendError", "MissingKeyError", "AgentParamError", "ConfigError"]


class ScoringError(Exception):
    """Base class of every error the scoring package raises on purpose."""


class AnswerError(ScoringError, ValueError):
    """An agent's answer does not match ANSWER_SCHEMA or names candidates that are not in the request."""


class RefusalError(AnswerError):
    """The agent declined to answer ("I'm sorry, but I can't help with that"), so there is nothing to parse."""


class BackendError(ScoringError, RuntimeError):
    """A backend could not produce an answer (missing input, bad agent parameters, transport failure)."""


class TransientBackendError(BackendError):
    """A failure worth retrying: HTTP 429, a 5xx, or a connection error (never a timeout or a 4xx).

    retry_after_s: the server's Retry-After, when it sent one; the retry loop waits at least that long.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UnknownBackendError(BackendError, configs.InputError):
    """make_backend() was asked for a name that is not registered (bad input: a config or --scorer)."""

    __init__ = configs.InputError.__init__      # RuntimeError's would come first in the MRO
    __reduce__ = configs.InputError.__reduce__


class MissingKeyError(BackendError, configs.InputError):
    """A backend's API key is not in the environment (bad input: the environment variable names the field)."""

    __init__ = configs.InputError.__init__
    __reduce__ = configs.InputError.__reduce__


class AgentParamError(ScoringError, ValueError):
    """A per-agent parameter is unknown to its backend or has a bad value."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem


class ConfigError(ScoringError, configs.InputError):
    """A scoring config file or prompt template is malformed: file, field, expected, got (never echoed: a
    scoring config may hold a credential under an unexpected key)."""
