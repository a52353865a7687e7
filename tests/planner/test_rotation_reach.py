"""The rotation module only answers turns the arm can make (stand_block_upright's regression): the twin's evidence
is cut to turns whose path plans within the rollout's IK tolerance, in place or nearer the arm's base."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from planner.rotation import (
    RotationConfig,
    reachable_turns,
    rotation_candidates,
    rotation_key,
    tried_turns,
    turn_spot,
    turn_spots,
    world_rotation,
)
from planner.task import load_task
from scoring.request import ViewImage
from scoring.rotation_question import RotationAnswer, RotationRequest, twin_answer
from sim.geometry import Pose
from sim.rollout import Candidate
from sim.world import private_world
from tests.fakes.stub_server import png_bytes

DOWN = Rotation.from_euler("x", 180, degrees=True).as_matrix()
LYING = Rotation.from_euler("y", 90, degrees=True).as_matrix()   # the block's long axis along world x
GOAL = {"on_end": "b"}
CFG = RotationConfig()


@pytest.fixture(scope="module")
def world():
    with private_world(load_task("stand_block_upright").lab.scene) as w:
        yield w


def _pose_arm(world, xyz) -> Pose:
    q, err = world.ik(Pose(xyz, tuple(Rotation.from_matrix(DOWN).as_quat())))
    assert err < 1e-3
    world.set_joint_pos(q)
    return world.tcp_pose()


def _answer(evidence, now_deg: float) -> RotationAnswer:
    views = (ViewImage("front", png_bytes(), 96, 72),)
    return twin_answer(RotationRequest("stand it up", "turn", "b", views, now_deg, 7.5, tuple(evidence)))


def _turn_rollout(world, tcp, answer: RotationAnswer, spot):
    R = world_rotation(answer, tcp.rotation(), LYING)
    base = [Candidate(0, (tcp,), "open", label="stay and open"), Candidate(1, (tcp,), "keep", label="line")]
    turn = rotation_candidates(base, tcp, R, np.random.default_rng(0), CFG, True, 2, False, turn_at=spot)[0]
    return turn, world.rollout(turn)


def test_an_unreachable_best_turn_is_left_out_and_the_answer_is_a_turn_the_arm_makes(world):
    tcp = _pose_arm(world, (0.5, 0.0, 0.15))
    now = 90.0
    tried = tried_turns(GOAL, "b", tcp.rotation(), LYING)
    before = _answer(tried, now)   # the whole grid: a quarter turn that points the hand back at the arm's base
    turn, roll = _turn_rollout(world, tcp, before, turn_spots(world, tcp, CFG)[0])
    assert before.angle_deg == 90.0 and turn.label == "turn in place"
    assert not roll.feasible and roll.reason.startswith("IK error")
    evidence, spots = reachable_turns(world, tcp, LYING, tried, now, CFG)
    assert 0 < len(evidence) <= CFG.max_reachable and len(evidence) < len(tried)
    assert all(e.error_deg < now - 1.0 for e in evidence)
    after = _answer(evidence, now)
    assert after != before and after.angle_deg == 90.0   # the other quarter turn: as good, and reachable
    spot = spots[rotation_key(world_rotation(after, tcp.rotation(), LYING))]
    turn, roll = _turn_rollout(world, tcp, after, spot)
    assert roll.feasible and roll.ik_error_m <= CFG.max_ik_error_m, roll.reason
    got = roll.ee_end_pose.rotation()
    want = world_rotation(after, tcp.rotation(), LYING) @ tcp.rotation()
    assert np.degrees(np.arccos(np.clip((np.trace(got.T @ want) - 1) / 2, -1, 1))) < 2.0


def test_far_out_a_turn_is_made_nearer_the_base(world):
    tcp = _pose_arm(world, (0.6, -0.1, 0.15))
    spots = turn_spots(world, tcp, CFG)
    assert len(spots) == 2 and np.linalg.norm(spots[1][:2]) == pytest.approx(CFG.turn_reach_m)
    tried = tried_turns(GOAL, "b", tcp.rotation(), LYING)
    evidence, found = reachable_turns(world, tcp, LYING, tried, 90.0, CFG)
    assert evidence, "no quarter turn reachable even nearer the base"
    answer = _answer(evidence, 90.0)
    spot = found[rotation_key(world_rotation(answer, tcp.rotation(), LYING))]
    assert spot is not None and np.allclose(spot, spots[1])   # 0.61 m out, no quarter turn is reachable in place
    turn, roll = _turn_rollout(world, tcp, answer, spot)
    assert turn.label == "turn nearer the base" and roll.feasible, roll.reason
    assert np.allclose(roll.ee_end_pose.position, spot, atol=0.01)


def test_no_turn_is_checked_when_nothing_improves_or_nothing_is_asked(world):
    tcp = _pose_arm(world, (0.5, 0.0, 0.15))
    tried = tried_turns(GOAL, "b", tcp.rotation(), np.eye(3))   # standing already: error 0
    assert reachable_turns(world, tcp, np.eye(3), tried, 0.0, CFG) == ((), {})
    assert reachable_turns(world, tcp, np.eye(3), (), None, CFG) == ((), {})
    assert turn_spot(world, tcp, np.eye(3), CFG) is not None   # no turn at all: in place, trivially


def test_the_reach_settings_are_validated():
    for bad in ({"max_reachable": 0}, {"max_ik_error_m": 0.0}, {"turn_reach_m": -0.1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RotationConfig(**bad)
