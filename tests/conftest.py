"""Shared fixtures: a PyBullet DIRECT client per test and the shipped robot configs."""

import os

import pybullet as p
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def client():
    cid = p.connect(p.DIRECT)
    yield cid
    p.disconnect(cid)


@pytest.fixture(scope="session")
def panda_spec():
    from sim.scene import RobotSpec

    return RobotSpec.from_yaml(os.path.join(REPO, "configs", "robots", "panda.yaml"))
