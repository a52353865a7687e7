"""Geometry and joint paths of the identification probe: an object's footprint on the table, and joint waypoints
one controller period apart built from straight TCP segments (IK in a kinematics twin) and holds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from reconstruction.identification import IdentificationMiss
from robot_io.trajectory import JointTrajectory
from sim.geometry import Pose
from sim.world import World

IK_TOL_M = 0.002             # an IK knot further than this from its target makes the probe unreachable
MAX_KNOT_JUMP_RAD = 0.5      # a larger joint change between 1 cm knots is an IK branch flip
KNOT_M = 0.01                # IK knots along a straight TCP segment (joints interpolated between them)
KNOT_RAD = 0.1
TURN_SPEED_RAD_S = 0.8       # TCP rotation speed of probe moves


@dataclass(frozen=True)
class Footprint:
    """An object's extent on the table: centre (x, y), its two horizontal body axes with the extents along
    them, and its lowest / highest z."""

    center_xy: np.ndarray
    axes_xy: tuple[np.ndarray, np.ndarray]
    extents_m: tuple[float, float]
    bottom_z: float
    top_z: float
    center_z: float
    radius_m: float


def footprint(points_obj: np.ndarray, pose: Pose) -> Footprint:
    R = pose.rotation()
    pts = np.asarray(points_obj) @ R.T + pose.position
    up = int(np.argmax(np.abs(R[2, :])))
    axes = []
    for k in range(3):
        if k == up:
            continue
        a = np.array([R[0, k], R[1, k]])
        axes.append(a / max(np.linalg.norm(a), 1e-9))
    proj = [pts[:, :2] @ a for a in axes]
    extents = tuple(float(np.ptp(s)) for s in proj)
    mids = [(s.max() + s.min()) / 2 for s in proj]
    center = mids[0] * axes[0] + mids[1] * axes[1]
    radius = float(np.max(np.linalg.norm(pts[:, :2] - center, axis=1)))
    return Footprint(center, (axes[0], axes[1]), extents, float(pts[:, 2].min()), float(pts[:, 2].max()),
                      float((pts[:, 2].min() + pts[:, 2].max()) / 2), radius)


def segment_distance(points_xy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((points_xy - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points_xy - (a + t[:, None] * ab), axis=1)


def slerp_pose(a: Pose, b: Pose, s: float) -> Pose:
    rot = Slerp([0.0, 1.0], Rotation.from_quat([a.quat_xyzw, b.quat_xyzw]))([s])
    return Pose(tuple((1 - s) * a.position + s * b.position), tuple(rot.as_quat()[0]))


def wrap(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2 * math.pi) - math.pi


def angle_rad(a: Pose, b: Pose) -> float:
    return float((Rotation.from_quat(a.quat_xyzw).inv() * Rotation.from_quat(b.quat_xyzw)).magnitude())


class PathBuilder:
    """Joint waypoints one controller period apart, built from straight TCP segments (IK in the kinematic twin)
    and holds; remembers index ranges so torque windows can be found in the trace afterwards."""

    def __init__(self, kin: World, q: np.ndarray, width_m: float, dt_s: float) -> None:
        self.kin, self.dt_s = kin, dt_s
        self.q = np.asarray(q, dtype=float)
        self.pose = kin.fk(self.q)
        self.width_m = float(width_m)
        self.rows: list[np.ndarray] = []
        self.widths: list[float] = []

    def move(self, target: Pose, speed_mps: float) -> tuple[int, int]:
        start = len(self.rows)
        dist = float(np.linalg.norm(target.position - self.pose.position))
        ang = angle_rad(self.pose, target)
        n_knots = max(1, math.ceil(dist / KNOT_M), math.ceil(ang / KNOT_RAD))
        knots = [self.q]
        q = self.q
        for k in range(1, n_knots + 1):
            goal = slerp_pose(self.pose, target, k / n_knots)
            q, err = self.kin.ik(goal, q_seed=q)
            if err > IK_TOL_M:
                raise IdentificationMiss(f"probe pose {np.round(goal.xyz, 3).tolist()} is out of reach (IK error "
                            f"{err * 1000:.1f} mm)")
            if np.max(np.abs(q - knots[-1])) > MAX_KNOT_JUMP_RAD:
                raise IdentificationMiss(f"IK jumps to another arm configuration near {np.round(goal.xyz, 3).tolist()}")
            knots.append(q)
        knots = np.asarray(knots)
        duration = max(dist / speed_mps, ang / TURN_SPEED_RAD_S, self.dt_s)
        n = max(1, math.ceil(duration / self.dt_s))
        s = np.arange(1, n + 1) / n * n_knots
        i = np.minimum(np.floor(s).astype(int), n_knots - 1)
        f = (s - i)[:, None]
        rows = knots[i] * (1 - f) + knots[i + 1] * f
        self.rows.extend(rows)
        self.widths.extend([self.width_m] * n)
        self.q, self.pose = knots[-1], target
        return start, len(self.rows)

    def hold(self, seconds: float, width_m: float | None = None) -> tuple[int, int]:
        start = len(self.rows)
        if width_m is not None:
            self.width_m = float(width_m)
        n = max(1, math.ceil(seconds / self.dt_s))
        self.rows.extend([self.q] * n)
        self.widths.extend([self.width_m] * n)
        return start, len(self.rows)

    def replay(self, rows: np.ndarray) -> tuple[int, int]:
        """Append joint waypoints exactly (e.g. to come back to the very joints of an earlier hold)."""
        start = len(self.rows)
        rows = np.asarray(rows, dtype=float)
        self.rows.extend(rows)
        self.widths.extend([self.width_m] * len(rows))
        self.q = rows[-1]
        self.pose = self.kin.fk(self.q)
        return start, len(self.rows)

    def joint_move(self, q_goal: np.ndarray, max_speed_rad_s: float = 0.5) -> tuple[int, int]:
        q_goal = np.asarray(q_goal, dtype=float)
        n = max(1, math.ceil(float(np.max(np.abs(q_goal - self.q))) / (max_speed_rad_s * self.dt_s)))
        return self.replay(self.q + (q_goal - self.q) * (np.arange(1, n + 1) / n)[:, None])

    def take(self) -> JointTrajectory:
        traj = JointTrajectory(np.asarray(self.rows), np.asarray(self.widths), self.dt_s)
        self.rows, self.widths = [], []
        return traj
