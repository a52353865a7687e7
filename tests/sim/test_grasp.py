"""The one held-object rule (sim.grasp): its observation side (track_held) and its physics side, the same
thresholds in both."""

import numpy as np

from sim.geometry import Pose
from sim.grasp import (
    GRIPPER_OPEN_FRACTION,
    HELD_MAX_DIST_M,
    HELD_MIN_WIDTH_M,
    HELD_SLIP_M,
    ExpectedHold,
    Held,
    grasp_width_plausible,
    holds_by_contact,
    may_hold,
    releases,
    track_held,
)

MAX_W = 0.08
TCP = Pose.from_xyz_rpy_deg((0.5, 0.0, 0.2), (180, 0, 30))


def test_only_a_closed_gripper_that_stopped_on_something_may_hold():
    assert may_hold(0.05, MAX_W)
    assert not may_hold(GRIPPER_OPEN_FRACTION * MAX_W, MAX_W)          # open
    assert not may_hold(HELD_MIN_WIDTH_M / 2, MAX_W)                   # shut on nothing


def test_tracking_takes_the_nearest_object_and_carries_it_rigidly():
    near = TCP @ Pose((0.0, 0.0, 0.01))
    seen = {"red": near, "blue": Pose((0.5, 0.0, 0.2 - HELD_MAX_DIST_M - 0.01))}
    held, why = track_held(None, 0.05, MAX_W, TCP, seen)
    assert held.name == "red" and why == ""
    np.testing.assert_allclose(held.pose(TCP).matrix(), near.matrix(), atol=1e-9)
    # the hand moved and turned: the object goes with it; hidden from the cameras it stays held
    moved = Pose.from_xyz_rpy_deg((0.3, 0.2, 0.3), (180, 0, -40))
    again, _ = track_held(held, 0.05, MAX_W, moved, {})
    assert again == held
    np.testing.assert_allclose(again.pose(moved).matrix(), (moved @ held.T_tcp_obj).matrix(), atol=1e-9)
    # seen farther than the slip tolerance from where the hand would carry it: dropped, with the reason
    off = Pose(tuple(held.pose(moved).position + (0.0, HELD_SLIP_M + 0.005, 0.0)))
    lost, why = track_held(held, 0.05, MAX_W, moved, {"red": off})
    assert lost is None and "red is seen" in why
    # an opened hand holds nothing; nothing near the hand: nothing held
    assert track_held(held, MAX_W, MAX_W, TCP, seen) == (None, "")
    assert track_held(None, 0.05, MAX_W, TCP, {"blue": seen["blue"]}) == (None, "")


def test_a_grasp_the_cameras_cannot_see_is_held_where_the_twin_left_it():
    """LIBERO-Object's pudding box: the hand closed on it at the width the twin predicted, but the flat box
    under the hand was found by no camera; it is held where the rollout left it in the hand."""
    in_hand = Pose((0.0, 0.0, 0.012))
    expected = ExpectedHold(Held("pudding", in_hand), width_m=0.048)
    neighbour = {"soup": TCP @ Pose((0.0, 0.04, 0.0))}          # another object near the hand
    held, why = track_held(None, 0.0467, MAX_W, TCP, neighbour, expected)
    assert held == expected.held and why == ""
    # a doubtful fit of its name far away (on another object) does not stop it either
    far = {"pudding": Pose((0.2, -0.1, 0.04))}
    assert track_held(None, 0.0467, MAX_W, TCP, far, expected, doubtful={"pudding"})[0] == expected.held
    # seen near the hand: held where the cameras see it
    seen_near = TCP @ Pose((0.0, 0.0, 0.02))
    held, _ = track_held(None, 0.0467, MAX_W, TCP, {"pudding": seen_near}, expected)
    np.testing.assert_allclose(held.pose(TCP).matrix(), seen_near.matrix(), atol=1e-9)


def test_a_rim_pinch_is_held_where_the_cameras_see_it_beside_the_hand():
    """A pinch across a bowl's rim holds the bowl's origin 55 mm from the TCP, beyond HELD_MAX_DIST_M: seen where
    the rollout left it in the hand, it is held there."""
    in_hand = Pose((0.0, 0.055, 0.0))
    expected = ExpectedHold(Held("bowl", in_hand), width_m=0.014)
    seen = TCP @ Pose((0.0, 0.055 + HELD_SLIP_M / 2, 0.0))
    assert np.linalg.norm(seen.position - TCP.position) > HELD_MAX_DIST_M
    held, _ = track_held(None, 0.014, MAX_W, TCP, {"bowl": seen}, expected)
    np.testing.assert_allclose(held.pose(TCP).matrix(), seen.matrix(), atol=1e-9)
    # farther from where the rollout left it than the slip tolerance: the pinch missed
    beside = TCP @ Pose((0.0, 0.055 + 2 * HELD_SLIP_M, 0.0))
    assert track_held(None, 0.014, MAX_W, TCP, {"bowl": beside}, expected) == (None, "")


def test_an_expected_grasp_that_did_not_happen_is_not_believed():
    expected = ExpectedHold(Held("pudding", Pose((0.0, 0.0, 0.012))), width_m=0.048)
    # the fingers stopped far from the twin's width: something else, or nothing, is between them
    assert track_held(None, 0.048 + 0.02, MAX_W, TCP, {}, expected) == (None, "")
    # the cameras confidently see it where it stood, away from the hand: the grasp missed
    still_there = {"pudding": Pose((0.7, 0.2, 0.015))}
    assert track_held(None, 0.0467, MAX_W, TCP, still_there, expected) == (None, "")
    # shut on nothing
    assert track_held(None, HELD_MIN_WIDTH_M / 2, MAX_W, TCP, {}, expected) == (None, "")


def test_only_a_confident_fit_elsewhere_drops_a_held_object():
    held = Held("red", Pose((0.0, 0.0, 0.01)))
    away = {"red": Pose(tuple(held.pose(TCP).position + (0.0, HELD_SLIP_M + 0.05, 0.0)))}
    assert track_held(held, 0.05, MAX_W, TCP, away, doubtful={"red"}) == (held, "")
    assert track_held(held, 0.05, MAX_W, TCP, away)[0] is None


def test_the_physics_side_needs_two_fingers_deep_enough_on_a_closing_gripper():
    assert holds_by_contact(0.05, 0.0, MAX_W, 2, tcp_z_m=0.02, object_top_z_m=0.05)
    assert not holds_by_contact(0.05, 0.0, MAX_W, 1, 0.02, 0.05)               # one finger
    assert not holds_by_contact(0.05, 0.0, MAX_W, 2, 0.045, 0.05)              # pinching the top edge
    assert not holds_by_contact(0.05, 0.06, MAX_W, 2, 0.02, 0.05)              # opening
    assert not holds_by_contact(0.079, 0.0, MAX_W, 2, 0.02, 0.05)              # still wide open
    assert releases(0.05, 0.08) and not releases(0.05, 0.052)


def test_a_grasp_width_is_plausible_only_near_the_object_width():
    assert grasp_width_plausible(0.05, 0.05, MAX_W)
    assert not grasp_width_plausible(0.01, 0.05, MAX_W)                         # closed through it
    assert not grasp_width_plausible(0.078, 0.05, MAX_W)                        # never closed on it
    assert isinstance(Held("a", Pose()).pose(TCP), Pose)
