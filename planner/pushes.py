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
MIN_PUSH_TCP_Z_M = 0.015          # lower, the fingertips drag on the table


@dataclass(frozen=True)
class PushConfig:
    push_m: float = 0.06           # how far the target is to move
    gaps_m: tuple[float, ...] = (0.01, 0.025)   # free space tried between the finger and the target before the push
    height_m: float = 0.015        # TCP height above the target's bottom while pushing (low: no tipping)
    n_dirs: int = 8
    offsets: tuple[float, ...] = (0.0, -0.5, 0.5)   # contact points across the pushed side, fractions of its half
    lift_m: float = 0.05


@dataclass(frozen=True)
class PushMove:
    waypoints: tuple[Pose, ...]
    direction: np.ndarray          # unit push direction (world, horizontal)
    regrasp: bool                  # whether the move ends at a grasp of the pushed target
    label: str
    push_m: float = 0.0            # how far the target is predicted to move


def push_moves(finder: GraspFinder, tcp_now: Pose, gripper_width_m: float, config: PushConfig,
               limit: int = 4) -> list[PushMove]:
    """Free pushes of the finder's object, best first (those after which a free grasp exists first)."""
    geo = finder.geo
    lo, hi = geo.bounds
    z = float(lo[2] + min(config.height_m, 0.5 * (hi[2] - lo[2])))
    z = max(z, MIN_PUSH_TCP_Z_M)
    open_fingers = gripper_width_m > 2 * FINGER_HALF_THICKNESS_M
    moves: list[tuple[float, PushMove]] = []
    for k in range(config.n_dirs):
        psi = geo.yaw_rad + 2 * math.pi * k / config.n_dirs
        d = np.array([math.cos(psi), math.sin(psi), 0.0])
        perp = np.array([-d[1], d[0], 0.0])
        half = max(0.0, min(geo.support_m(perp), geo.support_m(-perp)) - FINGER_HALF_THICKNESS_M)
        for frac in config.offsets:
            for gap in config.gaps_m:   # the finger is wider above its pad: further back where it does not fit
                move = _push(finder, tcp_now, d, psi, perp * frac * half, z, gap, open_fingers, gripper_width_m,
                             config)
                if move is not None:
                    moves.append(move)
                    break
    moves.sort(key=lambda m: -m[0])
    out: list[PushMove] = []
    for i, (_, move) in enumerate(moves[:limit]):   # the dearer regrasp only for the two best pushes
        if open_fingers and i < 2:
            grasp = _regrasp(finder, move)
            if grasp is not None:
                out.append(grasp)
        out.append(move)
    out.sort(key=lambda m: not m.regrasp)
    return out[:limit]


def _regrasp(finder: GraspFinder, move: PushMove) -> PushMove | None:
    """The push followed by a grasp where the target is predicted to stop, when one is free there."""
    end = move.waypoints[-2]
    grasps = finder.shifted(move.direction * move.push_m).free_grasps(end, 1)
    if not grasps:
        return None
    g = grasps[0]
    lift = Pose(tuple(end.position + UP * (g.pregrasp.position[2] - end.position[2])), end.quat_xyzw)
    return PushMove((*move.waypoints[:-1], lift, g.pregrasp, g.tcp), move.direction, True,
                    move.label + ", grasp", move.push_m)


def _push(finder: GraspFinder, tcp_now: Pose, d: np.ndarray, psi: float, across: np.ndarray, z: float,
          gap: float, open_fingers: bool, gripper_width_m: float, config: PushConfig
          ) -> tuple[float, PushMove] | None:
    """The push along d with the finger `across` from the centre line, ranked by its clearance, or None if the
    finger cannot get down beside the object there."""
    geo = finder.geo
    hi = geo.bounds[1]
    c = geo.center + across
    back = geo.support_m(-d) + gap + FINGER_HALF_THICKNESS_M
    lead = np.array([c[0], c[1], z]) - d * back
    start_xyz = lead - d * (gripper_width_m / 2.0 if open_fingers else 0.0)
    tcp = tcp_pose(start_xyz, d, -UP, finder.finger_axis)
    above = Pose(tuple(start_xyz + UP * (hi[2] - z + config.lift_m)), tcp.quat_xyzw)
    c_above, err_a, q = clearance_at(finder.world, above, ("table",))
    if err_a > finder.config.max_ik_error_m or c_above < finder.config.min_free_m:
        return None
    c_start, err_s, _ = clearance_at(finder.world, tcp, ("table",), q)
    if err_s > finder.config.max_ik_error_m or c_start < finder.config.min_free_m:
        return None
    end = Pose(tuple(start_xyz + d * (config.push_m + gap)), tcp.quat_xyzw)
    # at the end the target has moved on ahead of the finger: it does not count there, the neighbours do
    c_end, err_e, _ = clearance_at(finder.world, end, (geo.name, "table"), q)
    if err_e > finder.config.max_ik_error_m or c_end < finder.config.min_free_m:
        return None
    lift_end = Pose(tuple(end.position + UP * (hi[2] - z + config.lift_m)), end.quat_xyzw)
    return min(c_above, c_start, c_end), PushMove((above, tcp, end, lift_end), d, False,
                                           f"push {math.degrees(psi) % 360:.0f} deg", config.push_m)
