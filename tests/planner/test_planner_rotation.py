"""The rotation module: answers to world rotations, the twin's evidence, the tilted candidates, and the twin's
IK reaching the tilted orientations they carry (tolerances from the geometry: IK converges to 1 mm)."""

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner.rotation import (
    RotationConfig,
    axis_world,
    rotation_candidates,
    tried_turns,
    turned,
    world_rotation,
)
from planner.task import load_task
from scoring.request import ViewImage
from scoring.rotation_question import NO_TURN, RotationAnswer, RotationRequest, twin_answer
from sim.geometry import Pose
from sim.rollout import Candidate
from sim.world import private_world
from tests.fakes.stub_server import png_bytes

DOWN = np.diag([1.0, -1.0, -1.0])   # the panda's TCP pointing down: x forward, z down


def angle_deg(Ra, Rb) -> float:
    return math.degrees(Rotation.from_matrix(np.asarray(Ra).T @ np.asarray(Rb)).magnitude())


def test_a_positive_quarter_turn_about_the_gripper_x_axis_follows_the_right_hand_rule():
    R = world_rotation(RotationAnswer("gripper", "x", "positive", 90.0), DOWN, np.eye(3))
    # about +x: y -> z and z -> -y; the downward fingers (z = -world z) turn to point along +world y
    assert np.allclose(R @ DOWN[:, 2], [0, 1, 0], atol=1e-12)
    assert np.allclose(axis_world(DOWN, "z", "negative"), [0, 0, 1])
    assert np.allclose(world_rotation(NO_TURN, DOWN, np.eye(3)), np.eye(3))
    # a turn about the object's axes uses the object's frame, not the gripper's
    R_obj = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    R2 = world_rotation(RotationAnswer("object", "x", "negative", 30.0), DOWN, R_obj)
    assert np.allclose(Rotation.from_matrix(R2).as_rotvec(), -math.radians(30) * R_obj[:, 0])


def test_turning_about_a_pivot_keeps_the_pivot_and_rotates_the_offset():
    pose = Pose((0.5, 0.0, 0.2), tuple(Rotation.from_matrix(DOWN).as_quat()))
    R = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    out = turned(pose, R, pivot_world=(0.5, 0.0, 0.1))
    assert np.allclose(out.position, [0.6, 0.0, 0.1], atol=1e-12)
    assert angle_deg(out.rotation(), R @ DOWN) < 1e-6


def test_the_twin_evidence_finds_a_quarter_turn_for_a_standing_block_to_lie_on_its_side():
    pred = {"all": [{"grasped": "b"}, {"on_side": "b"}]}
    evidence = tried_turns(pred, "b", DOWN, np.eye(3))
    assert len(evidence) == 2 * 3 * 2 * 7
    best = min(e.error_deg for e in evidence)
    assert best == pytest.approx(0.0, abs=1e-6)
    views = (ViewImage("front", png_bytes(), 96, 72),)
    answer = twin_answer(RotationRequest("lay it down", "turn", "b", views, 90.0, 7.5, evidence))
    assert answer.angle_deg == 90.0 and answer.axis in ("x", "y")    # about z (a yaw) never tips it
    assert tried_turns({"grasped": "b"}, "b", DOWN, np.eye(3)) == ()   # no orientation asked: no evidence
    # a lying block (its z along world x) stands up on either end after a quarter turn about a horizontal axis
    lying = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    stand = tried_turns({"on_end": "b"}, "b", DOWN, lying)
    ends = {(e.frame, e.axis, e.direction) for e in stand if e.error_deg < 1e-6}
    assert all(e.angle_deg == 90.0 for e in stand if e.error_deg < 1e-6) and len(ends) == 4
    assert all(axis != "z" or frame == "object" for frame, axis, _ in ends)


def base_candidates() -> list[Candidate]:
    down = tuple(Rotation.from_matrix(DOWN).as_quat())
    return [Candidate(0, (Pose((0.45, 0.0, 0.3), down),), "open", label="stay and open")] + [
        Candidate(i, (Pose((0.4 + 0.02 * i, 0.05, 0.1), down),), "keep", label="line") for i in range(1, 6)]


def test_tilted_candidates_carry_the_turn_keep_the_tilt_and_explore_with_unique_ids():
    tcp = Pose((0.45, 0.0, 0.3), tuple(Rotation.from_matrix(DOWN).as_quat()))
    R = world_rotation(RotationAnswer("gripper", "y", "negative", 90.0), DOWN, np.eye(3))
    cfg = RotationConfig(n_turned=3, n_kept=2, n_explore=4)
    out = rotation_candidates(base_candidates(), tcp, R, np.random.default_rng(0), cfg, True, 6, True)
    assert [c.id for c in out] == list(range(6, 6 + 3 + 2 + 4))
    turns, kept, tilts = out[:3], out[3:5], out[5:]
    for c in turns:
        assert angle_deg(c.goal.rotation(), R @ DOWN) < 1e-6 and c.goal.position[2] >= cfg.turn_min_z_m
    assert angle_deg(turns[0].waypoints[0].rotation(), R @ DOWN) == pytest.approx(45.0, abs=1e-6)  # half way
    assert kept[0].gripper == "close" and kept[0].goal == tcp   # stays, tilted as it is, and closes
    for c in tilts:
        tilt = angle_deg(c.goal.rotation(), DOWN)
        assert cfg.explore_min_deg - 1e-6 <= tilt <= cfg.explore_max_deg + 1e-6
        z_tool = c.goal.rotation()[:, 2]   # a tilt or a roll: the turn axis is horizontal, the tool leaves vertical
        assert math.degrees(math.acos(-z_tool[2])) == pytest.approx(tilt, abs=1e-6)
    none = rotation_candidates(base_candidates(), tcp, np.eye(3), np.random.default_rng(0), cfg, False, 6, True)
    # the orientation is right: every sampler move is offered at the current tilt, nothing turns or explores
    assert [c.label for c in none] == ["stay tilted and close"] + ["keep tilt"] * 5
    assert {tuple(c.goal.position) for c in none[1:]} == {tuple(c.goal.position) for c in base_candidates()[1:]}
    # with the held object's lowest point 10 cm up: down by 3 and 6 cm, and by 9.5 cm (0.5 cm above the table),
    # where the gripper opens; straight down, at the current orientation
    low = rotation_candidates(base_candidates(), tcp, np.eye(3), np.random.default_rng(0), cfg, False, 6, False, 0.1)
    lowered = [c for c in low if c.label.startswith("lower")]
    assert [round(tcp.position[2] - c.goal.position[2], 6) for c in lowered] == [0.03, 0.06, 0.095]
    assert [c.gripper for c in lowered] == ["keep", "keep", "open"]
    assert all(np.allclose(c.goal.position[:2], tcp.position[:2]) and c.goal.rotation() is not None
               and angle_deg(c.goal.rotation(), DOWN) < 1e-6 for c in lowered)


def test_the_twin_ik_reaches_a_tilted_tool_orientation():
    task = load_task("stand_block_upright").lab
    with private_world(task.scene) as world:
        tcp = world.tcp_pose()
        for answer in (RotationAnswer("gripper", "x", "positive", 90.0),
                       RotationAnswer("gripper", "y", "negative", 60.0)):
            R = world_rotation(answer, tcp.rotation(), np.eye(3))
            target = turned(Pose((0.5, 0.1, 0.2), tcp.quat_xyzw), R)
            q, err_m = world.ik(target)
            assert err_m < 1e-3
            assert angle_deg(world.fk(q).rotation(), target.rotation()) < 0.5
