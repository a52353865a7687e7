"""The run directory: an append-only, crash-safe step log, the images agents saw, and report.html.

steps.jsonl gets one JSON object per line, flushed and fsync'ed as it is written, so a reader can open the
log after kill -9 at any moment (read_records skips a torn last line). Images are written next to it before
the line that refers to them. Nothing here ever holds an API key: records are built from planner data only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any

import numpy as np

LOG_NAME = "steps.jsonl"
HEADER_NAME = "run.json"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    return obj


def atomic_write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunLog:
    """One run directory. Use `RunLog.create(root, task_name)`."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        self._log = open(os.path.join(path, LOG_NAME), "a", encoding="utf-8")

    @classmethod
    def create(cls, root: str, task_name: str, seed: int) -> RunLog:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", task_name)
        base = os.path.join(root, f"{stamp}-{safe}-s{seed}")
        path, k = base, 1
        while os.path.exists(path):
            k += 1
            path = f"{base}-{k}"
        return cls(path)

    def write_header(self, header: dict) -> None:
        atomic_write(os.path.join(self.path, HEADER_NAME), json.dumps(_jsonable(header), indent=2).encode())

    def append(self, record: dict) -> None:
        line = json.dumps(_jsonable(record), separators=(",", ":"))
        self._log.write(line + "\n")
        self._log.flush()
        os.fsync(self._log.fileno())

    def save_image(self, step: int, name: str, png: bytes) -> str:
        """Write a PNG under step_NNN/ and return its path relative to the run directory."""
        rel = os.path.join(f"step_{step:03d}", f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png")
        full = os.path.join(self.path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        atomic_write(full, png)
        return rel

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()


def read_header(run_dir: str) -> dict:
    try:
        with open(os.path.join(run_dir, HEADER_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def read_records(run_dir: str) -> list[dict]:
    """All complete records of a run's log; a torn last line (the process died mid-write) is skipped."""
    out = []
    try:
        with open(os.path.join(run_dir, LOG_NAME), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return out
