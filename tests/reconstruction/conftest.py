"""Fixtures the reconstruction tests share: the robot and the lab's three cameras (from the shipped configs)."""

import pytest

from tests.fakes.recon_scenes import lab_cameras, robot_spec


@pytest.fixture(scope="module")
def robot():
    return robot_spec()


@pytest.fixture(scope="module")
def cams():
    return lab_cameras()
