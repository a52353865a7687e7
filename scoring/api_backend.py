"""What the two HTTP API backends share: a lazily built client that is never pickled, and closing it.

The client holds an HTTP connection pool and the API key, so a backend sent to a Ray actor travels without
it and builds its own there (reading the key from that process's environment). An injected client (tests,
custom transports) belongs to the caller: it is neither rebuilt nor closed here.
"""

from __future__ import annotations

import logging
import threading
from abc import abstractmethod
from typing import Any

from scoring.backend import Backend

logger = logging.getLogger(__name__)


class ApiClientBackend(Backend):
    """A Backend that talks to an HTTP API through a client object built on first use."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._owns_client = client is None
        self._lock = threading.Lock()

    @abstractmethod
    def _make_client(self) -> Any:
        """Build the library's client (imports the library; reads the key from the environment)."""

    def _scrub(self, text: str) -> str:
        """The text with any secret this backend knows replaced; subclasses add theirs."""
        return text

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def warm_up(self) -> None:
        """Import the client library and build the client now (about 2-3 s), not in the first call."""
        self._get_client()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock")
        if self._owns_client:
            state["_client"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        if not self._owns_client:
            return  # an injected client belongs to the caller
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as err:  # closing must not fail a shutdown; the reason is logged
                logger.debug("%s client close failed: %s", self.name, self._scrub(str(err)))
