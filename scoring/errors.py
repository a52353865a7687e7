"""Exception types of the scoring package and the did-you-mean hint their messages use.

In one place so every module can raise them without import cycles.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest choice, or "; choose from a, b" when nothing is close."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; choose from {', '.join(sorted(choices))}" if choices else ""


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


class UnknownBackendError(BackendError, ValueError):
    """make_backend() was asked for a name that is not registered."""


class AgentParamError(ScoringError, ValueError):
    """A per-agent parameter is unknown to its backend or has a bad value."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param
        self.problem = problem


class ConfigError(ScoringError, ValueError):
    """A scoring config file is malformed; the message names the file, the field and what was expected."""
