"""Fixtures for the vendor-driver tests (their `hardware_sim` marker is declared in pyproject.toml)."""

from __future__ import annotations

import importlib.util

import pytest


def require(module: str, extra: str) -> None:
    """Skip (with the install line) when a vendor client library is missing."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed: pip install -e '.[{extra}]'", allow_module_level=True)
