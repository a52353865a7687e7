"""Static reach checks in a World: would the arm, posed by IK at a TCP pose, clear everything else there?

Used to tell whether a grasp's approach is free in the twin before a candidate is built from it (a rollout is
~100x dearer). The arm is restored afterwards; no physics runs.
"""

from __future__ import annotations

import numpy as np
import pybullet as p

from sim.geometry import Pose
from sim.world import World


def clearance_at(world: World, tcp: Pose, ignore: tuple[str, ...] = (), q_seed=None,
                 max_distance_m: float = 0.05) -> tuple[float, float, np.ndarray]:
    """(smallest distance from the arm and what it holds to the objects and table not in `ignore`, IK position
    error, joint positions) with the arm at the IK solution for `tcp` and the fingers as they are now."""
    q, err = world.ik(tcp, q_seed=q_seed)
    with world._kinematic_probe():
        world._reset_arm(q)
        clearance = world.min_clearance_m(max_distance_m, ignore=ignore)
    return clearance, err, q


def finger_axis_tcp(world: World) -> np.ndarray:
    """Unit vector, in the TCP frame, along which the two fingers close (from the first finger to the second)."""
    a, b = (np.asarray(p.getLinkState(world.robot_id, j, computeForwardKinematics=True,
                                      physicsClientId=world.client)[4]) for j in world.finger_idx[:2])
    axis = world.tcp_pose().rotation().T @ (b - a)
    n = float(np.linalg.norm(axis))
    if n < 1e-6:   # fingers shut: fall back to the TCP's y axis, the convention of parallel grippers' URDFs
        return np.array([0.0, 1.0, 0.0])
    return axis / n
