"""One EGL twin per test module for the render tests (building a Panda world costs ~0.3-0.9 s)."""

import pybullet as p
import pytest

from tests.fakes.demo_scene import build_world, panda


@pytest.fixture(scope="module")
def twin():
    client = p.connect(p.DIRECT)
    try:
        yield build_world(client, panda(), fast_render=True)
    finally:
        p.disconnect(client)
