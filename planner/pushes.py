"""Push moves for hard starts: a target pressed against its neighbours so that no antipodal grasp is free.

A finger goes down beside the target, on the side away from the push, and moves it sideways along a direction
in which nothing stands, so that a grasp becomes possible. With the fingers open, the leading finger pushes (the
fingers are lined up with the push) and the move ends with a grasp at the target's predicted new place, so the
twin can tell whether the whole manoeuvre works; with the fingers shut, the pair pushes and lifts away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planner.grasps import UP, GraspFinder, tcp_pose
from sim.geometry import Pose
from sim.reach import clearance_at

FINGER_HALF_THICKNESS_M = 0.012   # from a finger's centre line to its outer face (Panda pads, with margin)


@dataclass(frozen=True)
class PushConfig:
    push_m: float = 0.05           # how far the finger moves once beside the target
    gap_m: float = 0.01            # free space between the finger and the target before the push
    height_m: float = 0.015        # TCP height above the target's bottom while pushing (low: no tipping)
    n_dirs: int = 8
    lift_m: float = 0.05


@dataclass(frozen=True)
class PushMove:
    waypoints: tuple[Pose, ...]
    direction: np.ndarray          # unit push direction (world, horizontal)
    regrasp: bool                  # whether the move ends at a grasp of the pushed target
    label: str


def push_moves(finder: GraspFinder, tcp_now: Pose, gripper_width_m: float, config: PushConfig,
               limit: int = 4) -> list[PushMove]:
    """Free pushes of the finder's object, best first (those after which a free grasp exists first)."""
    geo = finder.geo
    lo, hi = geo.bounds
    c = geo.center
    z = float(lo[2] + min(config.height_m, 0.5 * (hi[2] - lo[2])))
    z = max(z, finder.config.grasp_min_height_m)
    open_fingers = gripper_width_m > 2 * FINGER_HALF_THICKNESS_M
    moves: list[tuple[float, PushMove]] = []
    for k in range(config.n_dirs):
        psi = geo.yaw_rad + 2 * math.pi * k / config.n_dirs
        d = np.array([math.cos(psi), math.sin(psi), 0.0])
        back = geo.support_m(-d) + config.gap_m + FINGER_HALF_THICKNESS_M
        lead = np.array([c[0], c[1], z]) - d * back
        start_xyz = lead - d * (gripper_width_m / 2.0 if open_fingers else 0.0)
        tcp = tcp_pose(start_xyz, d, -UP, finder.finger_axis)
        above = Pose(tuple(start_xyz + UP * (hi[2] - z + config.lift_m)), tcp.quat_xyzw)
        c_above, err_a, q = clearance_at(finder.world, above, ("table",))
        if err_a > finder.config.max_ik_error_m or c_above < finder.config.min_free_m:
            continue
        c_start, err_s, _ = clearance_at(finder.world, tcp, ("table",), q)
        if err_s > finder.config.max_ik_error_m or c_start < finder.config.min_free_m:
            continue
        end = Pose(tuple(start_xyz + d * config.push_m), tcp.quat_xyzw)
        moved = d * (config.push_m - config.gap_m)
        path = [above, tcp, end]
        regrasp = None
        if open_fingers:
            shifted = finder.shifted(moved)
            grasps = shifted.free_grasps(end, 1)
            if grasps:
                g = grasps[0]
                lift = Pose(tuple(end.position + UP * (g.pregrasp.position[2] - end.position[2])), end.quat_xyzw)
                regrasp = [lift, g.pregrasp, g.tcp]
        score = min(c_above, c_start) + (1.0 if regrasp else 0.0)
        if regrasp:
            moves.append((score, PushMove(tuple(path + regrasp), d, True, f"push {math.degrees(psi):.0f} deg, grasp")))
        lift_end = Pose(tuple(end.position + UP * (hi[2] - z + config.lift_m)), end.quat_xyzw)
        moves.append((score - 0.5, PushMove((*path, lift_end), d, False, f"push {math.degrees(psi):.0f} deg")))
    moves.sort(key=lambda m: -m[0])
    return [m for _, m in moves[:limit]]
