"""The body of one agent's Ray actor (``AgentWorker``): it builds its backend inside the actor and answers calls.

``scoring.pool.RayExecutor`` starts one such actor per agent and dispatches every (agent, view) call of a step
to it. The actor never raises for a call: an answer is ``{"text"}`` or ``{"error", "transient",
"retry_after_s"}``, with its latency and the warnings the backend logged meanwhile (actor output does not reach
the driver, so the driver re-logs them).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from scoring.backend import BACKENDS, AgentConfig, Backend, backend_class
from scoring.request import ScoreRequest
from scoring.retry import format_error


class AgentWorker:
    """The body of one agent's actor: builds the backend once, answers calls, never raises for a call.

    ``spec`` is a zero-argument factory, or a (registry entry, BackendSettings) pair where the entry is a
    ``"module:Class"`` string or a Backend class. A backend that defines ``warm_up()`` has it called here, so
    slow setup (importing a client library, loading a model) happens while the actor starts, not in the first
    call's time budget. A backend that cannot be built or warmed up is not fatal for the actor: every call
    answers with that error (a missing API key must read as such, not as a dead actor).
    """

    def __init__(self, agent_name: str, backend_name: str, spec: Any) -> None:
        self.agent_name = agent_name
        self.backend_name = backend_name
        self.backend: Backend | None = None
        self.build_error: str | None = None
        start = time.perf_counter()
        try:
            backend = _build_backend(backend_name, spec)
            warm_up = getattr(backend, "warm_up", None)
            if callable(warm_up):
                warm_up()
            self.backend = backend
        except Exception as err:  # reported with every call instead of killing the actor
            self.build_error = f"cannot build backend {backend_name!r}: {format_error(err)}"
        self.build_s = time.perf_counter() - start

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "build_s": self.build_s, "build_error": self.build_error}

    def answer(self, request: ScoreRequest, view_name: str, agent: AgentConfig) -> dict[str, Any]:
        """One attempt: {"text"} or {"error", "transient", "retry_after_s"}, with its latency and the warnings
        the backend logged meanwhile (the driver re-logs them: actor output does not reach the driver)."""
        if self.backend is None:
            return {"error": f"BackendError: {self.build_error}", "transient": False, "latency_s": 0.0}
        with _CapturedWarnings() as captured:
            result = self._attempt(request, view_name, agent)
        if captured.messages:
            result["logs"] = captured.messages
        return result

    def _attempt(self, request: ScoreRequest, view_name: str, agent: AgentConfig) -> dict[str, Any]:
        from scoring.errors import BackendError, TransientBackendError

        assert self.backend is not None
        start = time.perf_counter()
        try:
            text = self.backend.answer(request, request.view(view_name), agent)
            if not isinstance(text, str):
                raise BackendError(f"backend {self.backend.name!r} returned {type(text).__name__}, expected str")
        except TransientBackendError as err:
            return {
                "error": format_error(err),
                "transient": True,
                "retry_after_s": err.retry_after_s,
                "latency_s": time.perf_counter() - start,
            }
        except Exception as err:  # the driver records it for this call; the actor lives on
            return {"error": format_error(err), "transient": False, "latency_s": time.perf_counter() - start}
        return {"text": text, "latency_s": time.perf_counter() - start}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


class _CapturedWarnings(logging.Handler):
    """Collects WARNING+ records of the ``scoring`` loggers emitted by this thread (an actor runs several calls
    at once, one per thread)."""

    MAX_MESSAGES = 20

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread and len(self.messages) < self.MAX_MESSAGES:
            self.messages.append(f"{record.name}: {record.getMessage()}")

    def __enter__(self) -> _CapturedWarnings:
        logging.getLogger("scoring").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("scoring").removeHandler(self)


def _build_backend(backend_name: str, spec: Any) -> Backend:
    if not isinstance(spec, tuple):
        backend = spec()
    else:
        entry, settings = spec
        if isinstance(entry, str):
            # Registered lazily by name: resolve it here, in the actor, so heavy imports happen here.
            if BACKENDS.get(backend_name) != entry:
                BACKENDS[backend_name] = entry
            cls = backend_class(backend_name)
        else:
            cls = entry
        backend = cls(**settings.constructor_kwargs(cls))
    if not isinstance(backend, Backend):
        raise TypeError(f"factory for backend {backend_name!r} made {type(backend).__name__}, not a Backend")
    return backend
