"""A bowl resting tilted (LIBERO-Spatial task 5: on the ramekin's rim) is pinched along its own axis, on the high
side of its rim first, and pybullet_data's Panda closes both fingers on its wall there."""

from __future__ import annotations

import numpy as np

from planner.rim_grasps import RimGraspConfig, rim_grasps, world_mesh
from sim.geometry import Pose
from tests.planner.test_rim_grasps import FINGER_AXIS_TCP, _twin_hold, flared_bowl

TILT_DEG = 20.0
ALONG_AXIS = RimGraspConfig(max_tilt_deg=30.0)


def _tilted() -> Pose:
    return Pose.from_xyz_rpy_deg((0.5, 0.1, 0.03), (TILT_DEG, 0.0, 0.0))


def _off_axis_deg(grasp, T: Pose) -> float:
    """The angle between the grasp's approach (the TCP's z) and the way down the bowl's axis."""
    approach = grasp.tcp.rotation()[:, 2]
    return float(np.degrees(np.arccos(np.clip(-(approach @ T.rotation()[:, 2]), -1.0, 1.0))))


def test_a_tilted_bowl_is_pinched_along_its_axis_high_side_first():
    T = _tilted()
    grasps = rim_grasps("bowl", flared_bowl(), T, FINGER_AXIS_TCP, n_dirs=12, config=ALONG_AXIS)
    assert len(grasps) >= 8
    assert max(_off_axis_deg(g, T) for g in grasps) < 0.5
    heights = [g.tcp.position[2] for g in grasps]
    assert heights[0] >= max(heights) - 1e-3             # the highest pinch of the rim ranks first
    pre = np.asarray(grasps[0].pregrasp.position) - np.asarray(grasps[0].tcp.position)
    assert float(pre @ T.rotation()[:, 2]) > 0.06 - 1e-6  # the pre-grasp stands back along the axis
    # leaning more than max_tilt_deg (the default: 0): the world's vertical, as for an upright bowl
    steep = rim_grasps("bowl", flared_bowl(), T, FINGER_AXIS_TCP, n_dirs=12,
                       config=RimGraspConfig(max_tilt_deg=TILT_DEG - 5.0))
    assert steep and min(_off_axis_deg(g, T) for g in steep) > TILT_DEG - 0.5
    default = rim_grasps("bowl", flared_bowl(), T, FINGER_AXIS_TCP, n_dirs=12)
    assert default and min(_off_axis_deg(g, T) for g in default) > TILT_DEG - 0.5


def test_the_tilted_pinch_closes_both_fingers_on_the_wall_in_pybullet(tmp_path):
    T = _tilted()
    mesh = flared_bowl()
    grasp = rim_grasps("bowl", mesh, T, FINGER_AXIS_TCP, n_dirs=12, config=ALONG_AXIS)[0]
    before, left, right, gap_m = _twin_hold(world_mesh(mesh, T), grasp, tmp_path)
    assert before == 0          # the open fingers straddle the tilted wall without touching it
    assert left > 0 and right > 0
    assert gap_m > 0.005        # stopped on the wall, not closed through it
