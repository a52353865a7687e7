"""A pinch across a wall thinner than the held rule's HELD_MIN_WIDTH_M (LIBERO's bowl rim): the real TwinTracker
over a real PyBullet twin, fed scripted estimates and the rollout's expected hold, as planner.mpc does."""

from __future__ import annotations

import numpy as np
import pybullet_data
import pytest

import configs
from planner.twin_tracker import TwinTracker
from reconstruction.estimate import EstimatedObject, SceneEstimate
from reconstruction.models import ObjectModel
from robot_io.observation import Observation
from sim.geometry import Pose
from sim.grasp import ExpectedHold, Held
from sim.scene import RobotSpec

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"
TCP = (0.5, 0.0, 0.03)
BOWL = (0.5, 0.055, 0.025)   # its centre 55 mm from the TCP: a rim pinch


class Scripted:
    def __init__(self, n: int) -> None:
        self.n = n

    def update(self, obs: Observation) -> SceneEstimate:
        return SceneEstimate({"bowl": EstimatedObject("bowl", Pose(BOWL), 0.9, True, 500, 0.002, 0.8,
                                                      confidence=0.9)})


@pytest.fixture
def robot() -> RobotSpec:
    return RobotSpec.from_yaml(str(configs.find("robots", "panda_libero")))


def _obs(robot: RobotSpec, width_m: float) -> Observation:
    T = np.eye(4)
    T[:3, 3] = TCP
    return Observation((), np.asarray(robot.home_joint_pos_rad, float), width_m, T, 0.0)


def _expected(width_m: float = 0.014) -> ExpectedHold:
    return ExpectedHold(Held("bowl", Pose(TCP).inverse() @ Pose(BOWL)), width_m)


@pytest.mark.parametrize("widths, held", [
    ((0.0078, 0.0062), ["bowl", "bowl"]),    # LIBERO: 7.8 mm at the grasp, 6.2 mm lifted: held throughout
    ((0.0085, 0.0042), ["bowl", "bowl"]),    # 9@0: 8.5 mm at the grasp, 4.2 mm hanging (LIBERO: grasped at 3.9)
    ((0.0078, 0.0020), ["bowl", None]),      # then shut on nothing (LIBERO reads 1.0-2.2 mm)
    ((0.0056,), [None]),                     # too near shut for a fresh grasp
    ((0.0030,), [None]),
])
def test_a_thin_wall_pinch_stays_held_while_the_fingers_read_over_3_mm(robot, widths, held):
    tracker = TwinTracker(robot, Scripted(len(widths)), {"bowl": ObjectModel("bowl", CUBE)}, settle_steps=0)
    try:
        got = []
        for k, w in enumerate(widths):
            tracker.update(_obs(robot, w), _expected() if k == 0 else None)
            got.append(tracker.held_name)
        assert got == held
    finally:
        tracker.close()


def test_a_thin_width_is_held_only_where_the_twin_expected_a_hold(robot):
    tracker = TwinTracker(robot, Scripted(1), {"bowl": ObjectModel("bowl", CUBE)}, settle_steps=0)
    try:
        tracker.update(_obs(robot, 0.0075), None)                        # no rollout left anything in the hand
        assert tracker.held_name is None
        tracker.update(_obs(robot, 0.0062), _expected(width_m=0.014))   # too near shut for a fresh grasp
        assert tracker.held_name is None
        tracker.update(_obs(robot, 0.0075), _expected(width_m=0.014))   # the twin's fingers stop wider: held
        assert tracker.held_name == "bowl"
    finally:
        tracker.close()
