"""Fixtures for the vendor-driver tests, and the `hardware_sim` marker they carry."""

from __future__ import annotations

import importlib.util

import pytest


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "hardware_sim: drives a real vendor client (ur_rtde, franky, xArm SDK, pyrealsense2) against a simulator, "
        "fake controller or recording; skipped when that vendor's extra is not installed",
    )


def require(module: str, extra: str) -> None:
    """Skip (with the install line) when a vendor client library is missing."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed: pip install -e '.[{extra}]'", allow_module_level=True)
