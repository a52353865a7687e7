"""Fixtures for the vendor-driver tests (their `hardware_sim` marker is declared in pyproject.toml)."""

from __future__ import annotations

import importlib.util

import pytest


def require(module: str, extra: str) -> None:
    """Skip (with the install line) when a vendor client library is missing."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed: pip install -e '.[{extra}]'", allow_module_level=True)


def when(condition, action, timeout_s: float = 30.0, period_s: float = 0.01):
    """Start a thread that calls action() once condition() holds (or after timeout_s): faults injected mid-motion
    are triggered by the motion itself, not by a wall-clock guess that a loaded machine can miss."""
    import threading
    import time

    def run() -> None:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(period_s)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t
