"""One EGL twin per test module for the render tests (building a Panda world costs ~0.3-0.9 s)."""

import os
import sys

import pybullet as p
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from render_demo_scene import build_world, panda  # noqa: E402


@pytest.fixture(scope="module")
def twin():
    client = p.connect(p.DIRECT)
    try:
        yield build_world(client, panda(), fast_render=True)
    finally:
        p.disconnect(client)
