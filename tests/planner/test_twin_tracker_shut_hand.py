"""A fit between fingers shut on nothing is the fingers' own points (LIBERO-Spatial 7@1: the black bowl's model
fitted the shut black fingers in the air for six steps after the bowl slipped out, and every candidate hit it in
the twin). The real TwinTracker over a real PyBullet twin, fed scripted SceneEstimates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import configs
from planner.twin_tracker import TwinTracker
from reconstruction.estimate import EstimatedObject
from robot_io.observation import Observation
from sim.geometry import Pose
from sim.grasp import HELD_MIN_WIDTH_M
from sim.scene import RobotSpec
from tests.planner.test_twin_tracker_identity import PLATE, ScriptedReconstructor, _estimate, _models

A, B = (0.60, 0.20, 0.0), (0.45, -0.15, 0.0)
HAND = (0.40, 0.05, 0.25)
AT_HAND = (0.40, 0.05, 0.20)


@pytest.fixture
def robot() -> RobotSpec:
    return RobotSpec.from_yaml(str(configs.find("robots", "panda_libero")))


def _obs(robot: RobotSpec, width_m: float, hand=HAND) -> Observation:
    T = np.eye(4)
    T[:3, 3] = hand
    return Observation((), np.asarray(robot.home_joint_pos_rad, float), width_m, T, 0.0)


def _at_hand():
    est = _estimate({"bowl_1": AT_HAND, "bowl_2": B, "plate_1": PLATE})
    est.objects["bowl_1"] = dataclasses.replace(est.objects["bowl_1"], held=True)
    return est


def _two_steps(robot, width_m):
    steps = [_estimate({"bowl_1": A, "bowl_2": B, "plate_1": PLATE}), _at_hand()]
    tracker = TwinTracker(robot, ScriptedReconstructor(steps), _models(), settle_steps=0)
    try:
        tracker.update(_obs(robot, robot.gripper_max_width_m))
        world, summary = tracker.update(_obs(robot, width_m))
        return world.object_pose("bowl_1").xyz, summary, tracker.held_name
    finally:
        tracker.close()


def test_a_fit_between_fingers_shut_on_nothing_is_not_the_object(robot):
    xyz, summary, held = _two_steps(robot, HELD_MIN_WIDTH_M - 0.004)
    assert held is None
    assert summary["objects"]["bowl_1"]["status"] == "low_confidence"
    assert any("shut on nothing" in i["message"] for i in summary["issues"])
    assert xyz[:2] == pytest.approx(A[:2], abs=1e-3)      # where it was last seen, not in the air at the hand


def test_the_same_fit_between_fingers_stopped_on_something_is_held(robot):
    xyz, summary, held = _two_steps(robot, 0.03)
    assert held == "bowl_1" and summary["objects"]["bowl_1"]["status"] == "ok"
    assert np.linalg.norm(np.asarray(xyz) - np.asarray(AT_HAND)) < 0.02


def test_nothing_changes_for_an_open_hand(robot):
    from planner.twin_tracker import at_shut_hand
    est = _estimate({"bowl_1": A, "bowl_2": B, "plate_1": PLATE})
    assert at_shut_hand(est) is est
    est.objects["bowl_2"] = EstimatedObject("bowl_2", Pose(B), 0.9, False)
    assert at_shut_hand(est) is est
