"""The sim lab's controller limits: what a commanded trajectory may do, checked like a real arm's controller.

A UR or Franka controller does not trust its client: it refuses motions that exceed joint speed or
acceleration limits, jumps, or leave the configured workspace, and it stops the arm (protective stop) when
the measured motion leaves its limits anyway. `check_command` is the first half (before any motion; the
TCP is checked along the whole interpolated path, not only at waypoints); `RuntimeMonitor` the second
(every physics step, on the lab's own physics state). The planner's `SafetyEnvelope` applies the same
rules with the same sampling, so what it sends passes here.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pybullet as p

from configs.checks import mapping
from sim.geometry import Pose
from sim.scene import RobotSpec, SceneSpec
from sim.world import World

_REL_TOL = 1e-6           # floating point slack on every limit


class TcpKinematics:
    """Forward kinematics of the robot alone, in its own PyBullet DIRECT client: q (dof,) -> TCP xyz in the world.

    Three times faster than `World.fk` (nothing to restore: no physics runs in this client), which matters
    because every commanded path is checked at a few points per waypoint, by the envelope and by the lab.
    Call `close()` when done; use it from one thread."""

    def __init__(self, robot: RobotSpec) -> None:
        self.client = p.connect(p.DIRECT)
        self.world = World.from_scene(self.client, SceneSpec(robot=robot))
        self._tcp = Pose(tuple(robot.tcp_offset_xyz))

    def xyz(self, q: np.ndarray) -> np.ndarray:
        w = self.world
        for j, v in zip(w.arm_idx, q):
            p.resetJointState(w.robot_id, j, float(v), physicsClientId=self.client)
        state = p.getLinkState(w.robot_id, w.ee_idx, computeForwardKinematics=True, physicsClientId=self.client)
        return (Pose(state[4], state[5]) @ self._tcp).position

    def close(self) -> None:
        p.disconnect(physicsClientId=self.client)


class LimitViolation(ValueError):
    """A command or the measured motion broke a controller limit: the lab refuses or stops (protective stop)."""


@dataclass(frozen=True)
class ControllerLimits:
    """The lab controller's limits (joint speed limits and the workspace box come from the robot spec).

    max_joint_step_rad: largest joint change between consecutive waypoints (and from the arm to the first);
    max_joint_accel_rad_s2: one value for every joint, or one per joint; the commanded velocity changes by
    at most this per second at every waypoint, starting from and ending at rest;
    min_dt_s / max_dt_s: bounds on the waypoint period (min_dt_s 0 means one physics step);
    max_duration_s, max_waypoints: bounds on one trajectory;
    workspace_sample_rad: the interpolated path is checked at least every this many radians of any joint;
    workspace_tol_m: how far the commanded TCP may be outside the box (sampling and rounding);
    runtime_workspace_tol_m: how far the *measured* TCP may leave the box before a protective stop;
    runtime_speed_tol: measured joint speed may exceed its limit by this fraction before a protective stop;
    reach_tol_rad: a trajectory is `completed` only when every arm joint ends this close to its last waypoint.
    """

    max_joint_step_rad: float = 0.05
    # The sim lab's default bounds what its controller accepts without slowing the planner's motions (they start
    # at half speed within one waypoint: up to ~55 rad/s^2). A real Franka allows 7.5-20 rad/s^2; its driver
    # time-parameterises motions itself.
    max_joint_accel_rad_s2: float | tuple[float, ...] = 60.0
    min_dt_s: float = 0.0
    max_dt_s: float = 5.0
    max_duration_s: float = 600.0
    max_waypoints: int = 100_000
    workspace_sample_rad: float = 0.01
    workspace_tol_m: float = 0.001
    runtime_workspace_tol_m: float = 0.01
    runtime_speed_tol: float = 0.05
    reach_tol_rad: float = 0.01

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            vals = v if isinstance(v, tuple | list) else (v,)
            if not vals or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)
                                   and x >= 0 for x in vals):
                raise ValueError(f"controller limits: field '{f.name}': expected finite numbers >= 0, got {v!r}")
        positive = ("max_joint_step_rad", "max_dt_s", "max_duration_s", "max_waypoints", "workspace_sample_rad",
                    "reach_tol_rad")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"controller limits: field '{name}': expected > 0, got {getattr(self, name)}")
        acc = self.max_joint_accel_rad_s2
        acc = tuple(float(a) for a in acc) if isinstance(acc, tuple | list) else float(acc)
        if (min(acc) if isinstance(acc, tuple) else acc) <= 0:
            raise ValueError("controller limits: field 'max_joint_accel_rad_s2': expected > 0")
        object.__setattr__(self, "max_joint_accel_rad_s2", acc)
        if self.min_dt_s > self.max_dt_s:
            raise ValueError("controller limits: min_dt_s must not exceed max_dt_s")

    def accel(self, dof: int) -> np.ndarray:
        a = self.max_joint_accel_rad_s2
        if isinstance(a, tuple):
            if len(a) != dof:
                raise ValueError(f"controller limits: max_joint_accel_rad_s2 has {len(a)} values, robot has {dof} "
                                 "joints")
            return np.asarray(a, dtype=np.float64)
        return np.full(dof, float(a))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: Any, where: str = "limits") -> ControllerLimits:
        """From a mapping (a lab spec's or the lab's hello): unknown fields get configs' one InputError (a
        ValueError), with a did-you-mean; values are checked by __post_init__."""
        mapping(d, None, where, "a mapping of controller limit fields", allowed=tuple(f.name for f in fields(cls)))
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        try:
            return cls(**kw)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


def path_samples(q_start: np.ndarray, path: np.ndarray, sample_rad: float) -> tuple[np.ndarray, np.ndarray]:
    """Points along the straight joint-space segments q_start -> path[0] -> path[1] ..., at most sample_rad
    apart in every joint (each waypoint itself included, q_start not). Returns (points, segment index)."""
    starts = np.vstack([q_start[None, :], path[:-1]])
    n = np.maximum(1, np.ceil(np.abs(path - starts).max(axis=1) / sample_rad - 1e-9).astype(np.int64))
    seg = np.repeat(np.arange(len(path)), n)
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    frac = (np.arange(int(n.sum())) - np.repeat(offsets, n) + 1) / np.repeat(n, n)
    pts = starts[seg] + frac[:, None] * (path[seg] - starts[seg])
    pts[np.cumsum(n) - 1] = path   # waypoints exactly
    return pts, seg


def velocity_changes(steps: np.ndarray) -> np.ndarray:
    """|s_k - s_(k-1)| per joint for waypoint steps s, starting from and ending at rest: (N + 1, dof)."""
    zero = np.zeros((1, steps.shape[1]))
    return np.abs(np.diff(np.vstack([zero, steps, zero]), axis=0))


def check_command(q: np.ndarray, g: np.ndarray, dt_s: float, q_now: np.ndarray, robot: RobotSpec,
                  limits: ControllerLimits, control_period_s: float,
                  fk_xyz: Callable[[np.ndarray], np.ndarray]) -> None:
    """Refuse (LimitViolation) a trajectory that a real controller would refuse; ValueError when malformed."""
    dof = robot.dof
    if q.ndim != 2 or q.shape[1] != dof or len(g) != len(q):
        raise ValueError(f"trajectory has shape {q.shape} / gripper {g.shape}, robot {robot.name} has {dof} joints")
    if len(q) > limits.max_waypoints:
        raise LimitViolation(f"{len(q)} waypoints, more than the controller's {limits.max_waypoints}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(g)) and math.isfinite(dt_s)):
        raise ValueError("trajectory contains NaN or inf")
    min_dt = max(limits.min_dt_s, control_period_s)
    if not (min_dt * (1 - _REL_TOL) <= dt_s <= limits.max_dt_s):
        raise LimitViolation(f"dt {dt_s:.6g} s is outside [{min_dt:.6g}, {limits.max_dt_s:g}] s")
    if len(q) * dt_s > limits.max_duration_s:
        raise LimitViolation(f"duration {len(q) * dt_s:.1f} s exceeds {limits.max_duration_s:g} s")
    lo, hi = np.asarray(robot.joint_lower_rad), np.asarray(robot.joint_upper_rad)
    if np.any(q < lo - _REL_TOL) or np.any(q > hi + _REL_TOL):
        i, j = np.argwhere((q < lo - _REL_TOL) | (q > hi + _REL_TOL))[0]
        raise LimitViolation(f"waypoint {i}: joint {j} at {q[i, j]:.4f} rad is outside [{lo[j]:.4f}, {hi[j]:.4f}]")
    if np.any(g < -_REL_TOL) or np.any(g > robot.gripper_max_width_m + _REL_TOL):
        raise LimitViolation(f"gripper widths must be within [0, {robot.gripper_max_width_m}] m")
    q_from = np.clip(q_now, lo, hi)
    # From the arm's position (physics stands still between motions, so the client's last status is exact),
    # clipped into the joint limits: a held joint the physics left a little past a limit may move back.
    steps = np.diff(np.vstack([q_from[None, :], q]), axis=0)
    _check_steps(steps, dt_s, robot, limits)
    pts, seg = path_samples(q_from, q, limits.workspace_sample_rad)
    box_lo = np.asarray(robot.workspace_min_xyz) - limits.workspace_tol_m
    box_hi = np.asarray(robot.workspace_max_xyz) + limits.workspace_tol_m
    for k, pt in enumerate(pts):
        xyz = np.asarray(fk_xyz(pt), dtype=np.float64)
        if np.any(xyz < box_lo) or np.any(xyz > box_hi):
            raise LimitViolation(f"the TCP would leave the workspace box on the way to waypoint {int(seg[k])}: "
                                 f"({xyz[0]:.3f}, {xyz[1]:.3f}, {xyz[2]:.3f}) m is outside "
                                 f"{tuple(robot.workspace_min_xyz)} .. {tuple(robot.workspace_max_xyz)} "
                                 f"(tolerance {limits.workspace_tol_m * 1000:.0f} mm)")


def _check_steps(steps: np.ndarray, dt_s: float, robot: RobotSpec, limits: ControllerLimits) -> None:
    mag = np.abs(steps)
    if mag.max() > limits.max_joint_step_rad * (1 + _REL_TOL):
        i, j = np.unravel_index(int(np.argmax(mag)), mag.shape)
        raise LimitViolation(f"waypoint {i}: joint {j} jumps {mag[i, j]:.4f} rad, more than the controller's "
                             f"{limits.max_joint_step_rad} rad per waypoint")
    speed = mag / dt_s
    v_max = np.asarray(robot.max_joint_speed_rad_s)
    if np.any(speed > v_max * (1 + _REL_TOL)):
        i, j = np.argwhere(speed > v_max * (1 + _REL_TOL))[0]
        raise LimitViolation(f"waypoint {i}: joint {j} would move at {speed[i, j]:.3f} rad/s, above its limit "
                             f"{v_max[j]:.3f} rad/s")
    accel = velocity_changes(steps) / dt_s ** 2
    a_max = limits.accel(robot.dof)
    if np.any(accel > a_max * (1 + _REL_TOL)):
        i, j = np.argwhere(accel > a_max * (1 + _REL_TOL))[0]
        raise LimitViolation(f"waypoint {i}: joint {j} would accelerate at {accel[i, j]:.2f} rad/s^2, above the "
                             f"controller's {a_max[j]:.2f} rad/s^2 (motions start and end at rest)")


SPEED_WINDOW_STEPS = 12   # the measured speed is the joint motion over this many physics steps (50 ms at 240 Hz)


@dataclass
class RuntimeMonitor:
    """Every physics step during a motion: the measured joint speeds and TCP against the limits.

    Speed is measured as an encoder-based controller measures it, from the joint positions over the last
    SPEED_WINDOW_STEPS physics steps: a contact impulse that kicks a joint for one step (PyBullet's fixed grasp
    constraint fighting the finger contacts does) is not a motion, a sustained overspeed is."""

    robot: RobotSpec
    limits: ControllerLimits
    period_s: float

    def __post_init__(self) -> None:
        self._v_max = np.asarray(self.robot.max_joint_speed_rad_s) * (1 + self.limits.runtime_speed_tol)
        tol = self.limits.runtime_workspace_tol_m
        self._lo = np.asarray(self.robot.workspace_min_xyz) - tol
        self._hi = np.asarray(self.robot.workspace_max_xyz) + tol
        self._q: list[np.ndarray] = []

    def reset(self, q: np.ndarray) -> None:
        """A motion starts from rest at q (the arm stood there for the whole window before)."""
        self._q = [np.asarray(q, dtype=np.float64)] * (SPEED_WINDOW_STEPS + 1)

    def check(self, q: np.ndarray, tcp_xyz: np.ndarray) -> str | None:
        """None, or the protective-stop reason."""
        self._q.append(np.asarray(q, dtype=np.float64))
        del self._q[0]
        speed = np.abs(self._q[-1] - self._q[0]) / (self.period_s * SPEED_WINDOW_STEPS)
        if np.any(speed > self._v_max):
            j = int(np.argmax(speed / self._v_max))
            return (f"protective_stop: joint {j} measured at {speed[j]:.3f} rad/s, above its limit "
                    f"{self.robot.max_joint_speed_rad_s[j]:.3f} rad/s")
        if np.any(tcp_xyz < self._lo) or np.any(tcp_xyz > self._hi):
            return (f"protective_stop: TCP measured at ({tcp_xyz[0]:.3f}, {tcp_xyz[1]:.3f}, {tcp_xyz[2]:.3f}) m, "
                    f"outside the workspace box by more than {self.limits.runtime_workspace_tol_m * 1000:.0f} mm")
        return None
