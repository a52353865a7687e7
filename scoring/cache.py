"""The answer cache: raw answer text of calls that parsed valid, keyed by the backend's ``cache_key``.

A backend composes its key from whatever changes its answer (backend, model, prompt hash, image hashes,
decoding parameters) and never from a secret; the cache treats keys as opaque strings. Only answers that
passed ``schema.parse_answer`` are stored (the scorer decides), never errors. SQLite in WAL mode with a busy
timeout, one connection per thread, so several threads and processes (parallel runs, a replay next to a live
run) can share one file.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    answer TEXT NOT NULL,
    backend TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
)
"""


class AnswerCache:
    """SQLite-backed map cache key -> raw answer text, with hit/miss counters for this instance."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout_s: float = 30.0) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        self.busy_timeout_s = float(busy_timeout_s)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self.hits = 0
        self.misses = 0
        self.puts = 0
        conn = self._conn()
        # WAL lets readers go on while a writer commits; it is a property of the file, set once.
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            logger.warning("answer cache %s: journal mode is %s, not WAL (shared file system?)", self.path, mode)
        conn.execute(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError(f"answer cache {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as err:
                raise OSError(f"answer cache {self.path}: cannot open: {err}") from err
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def get(self, key: str) -> str | None:
        """The stored answer for ``key`` (counts a hit), or None (counts a miss)."""
        row = self._conn().execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        with self._lock:
            if row is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if row is None else str(row[0])

    def put(self, key: str, answer: str, *, backend: str = "", model: str = "") -> None:
        """Store (or replace) the answer for ``key``; the caller stores only answers that parsed valid."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"AnswerCache.put: expected a non-empty string key, got {key!r}")
        if not isinstance(answer, str):
            raise ValueError(f"AnswerCache.put: expected answer text, got {type(answer).__name__}")
        self._conn().execute(
            "INSERT OR REPLACE INTO answers (key, answer, backend, model, created_at) VALUES (?, ?, ?, ?, ?)",
            (key, answer, backend, model, time.time()),
        )
        with self._lock:
            self.puts += 1

    def delete(self, key: str) -> bool:
        """Drop one entry (e.g. a stored answer that no longer parses); True when there was one."""
        cursor = self._conn().execute("DELETE FROM answers WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def created_at(self, key: str) -> float | None:
        """When the entry was stored (UNIX seconds), or None."""
        row = self._conn().execute("SELECT created_at FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else float(row[0])

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return self._conn().execute("SELECT 1 FROM answers WHERE key = ?", (key,)).fetchone() is not None

    def stats(self) -> dict[str, Any]:
        """Counters of this instance (lookups = hits + misses) and the file's path."""
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "path": self.path,
                "hits": self.hits,
                "misses": self.misses,
                "lookups": lookups,
                "hit_rate": (self.hits / lookups) if lookups else None,
                "puts": self.puts,
            }

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._closed = True
        for conn in connections:
            conn.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnswerCache({self.path!r})"
