"""The safety envelope: the last gate between a plan and the arm.

`SafetyEnvelope.filter(traj, q_now)` is a pure function of its inputs (plus the injected forward
kinematics): it never talks to hardware. It returns what may be sent and a note for every change, so
the caller can report "what was actually sent" (LeRobot's `send_action` contract). Rules, in order:

1. anything non-finite or of the wrong shape -> SafetyRejected (nothing is guessed);
2. joints clamped into [joint_lower_rad, joint_upper_rad], gripper widths into [0, gripper_max_width_m];
3. the first waypoint is bridged from q_now and every segment is subdivided so that no joint moves more
   than `max_joint_step_rad` between consecutive waypoints (inserted points hold the previous gripper
   width, so a gripper command takes effect on arrival at its own waypoint, never early);
4. the path is truncated before the first waypoint on whose way the TCP leaves the workspace box (shrunk by
   `workspace_margin_m`), checked along the interpolated path every `workspace_sample_rad` of joint motion
   (the lab controller checks the same points); if that is the very first waypoint -> SafetyRejected;
5. dt is stretched so that no joint exceeds `speed_scale * max_joint_speed_rad_s`, nor, when
   `max_joint_accel_rad_s2` is set, that acceleration at any waypoint (motions start and end at rest), and
   rounded up to whole controller periods when `control_period_s` is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_io.errors import SafetyRejected
from robot_io.lab_limits import path_samples, velocity_changes
from robot_io.trajectory import JointTrajectory
from sim.scene import RobotSpec

# Slack for floating point when comparing a step with its limit, so an exact multiple of the step does
# not produce an extra waypoint.
_EPS = 1e-9


@dataclass(frozen=True)
class EnvelopeConfig:
    """max_joint_step_rad: largest joint motion between two waypoints; speed_scale: fraction of each
    joint's speed limit the arm may use; workspace_margin_m: how far inside the robot's workspace box the
    TCP must stay; max_waypoints: refuse paths longer than this after subdivision;
    control_period_s: when set, dt is rounded *up* to a whole number of controller periods, because a
    controller that rounds dt to its period (the sim lab steps physics at 240 Hz) would otherwise run a
    stretched dt slightly faster than the speed rule allows; max_joint_accel_rad_s2: one value or one per
    joint (None: no acceleration rule; SimRobot takes the lab controller's); workspace_sample_rad: the
    interpolated path's TCP is checked at least this often (radians of any joint)."""

    max_joint_step_rad: float = 0.05
    speed_scale: float = 0.5
    workspace_margin_m: float = 0.0
    max_waypoints: int = 100_000
    control_period_s: float | None = None
    max_joint_accel_rad_s2: float | tuple[float, ...] | None = None
    workspace_sample_rad: float = 0.01

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_joint_step_rad) and self.max_joint_step_rad > 0):
            raise ValueError(f"EnvelopeConfig.max_joint_step_rad must be > 0, got {self.max_joint_step_rad}")
        if not (math.isfinite(self.speed_scale) and 0 < self.speed_scale <= 1):
            raise ValueError(f"EnvelopeConfig.speed_scale must be in (0, 1], got {self.speed_scale}")
        if not (math.isfinite(self.workspace_margin_m) and self.workspace_margin_m >= 0):
            raise ValueError(f"EnvelopeConfig.workspace_margin_m must be >= 0, got {self.workspace_margin_m}")
        if self.max_waypoints < 1:
            raise ValueError(f"EnvelopeConfig.max_waypoints must be >= 1, got {self.max_waypoints}")
        if self.control_period_s is not None and not (
            math.isfinite(self.control_period_s) and self.control_period_s > 0
        ):
            raise ValueError(
                f"EnvelopeConfig.control_period_s must be > 0 or None, got {self.control_period_s}"
            )
        acc = self.max_joint_accel_rad_s2
        if acc is not None:
            vals = np.atleast_1d(np.asarray(acc, dtype=np.float64))
            if vals.ndim != 1 or not np.all(np.isfinite(vals)) or np.any(vals <= 0):
                raise ValueError(f"EnvelopeConfig.max_joint_accel_rad_s2 must be > 0 or None, got {acc}")
        if not (math.isfinite(self.workspace_sample_rad) and self.workspace_sample_rad > 0):
            raise ValueError(f"EnvelopeConfig.workspace_sample_rad must be > 0, got {self.workspace_sample_rad}")


class SafetyEnvelope:
    """Filter joint trajectories against one robot's limits and workspace.

    `fk_xyz(q)` maps joint positions (dof,) to the TCP position (3,) in the world frame, metres; it is
    injected so the envelope needs no physics engine of its own (SimRobot passes a kinematics-only twin).
    """

    def __init__(
        self,
        robot: RobotSpec,
        fk_xyz: Callable[[np.ndarray], np.ndarray],
        config: EnvelopeConfig | None = None,
    ) -> None:
        self.robot = robot
        self.fk_xyz = fk_xyz
        self.config = config or EnvelopeConfig()
        self._lower = np.asarray(robot.joint_lower_rad, dtype=np.float64)
        self._upper = np.asarray(robot.joint_upper_rad, dtype=np.float64)
        self._speed = np.asarray(robot.max_joint_speed_rad_s, dtype=np.float64)
        if np.any(self._speed <= 0):
            raise ValueError(f"robot '{robot.name}': every max_joint_speed_rad_s must be > 0")
        m = self.config.workspace_margin_m
        self.box_min_xyz = np.asarray(robot.workspace_min_xyz, dtype=np.float64) + m
        self.box_max_xyz = np.asarray(robot.workspace_max_xyz, dtype=np.float64) - m
        if np.any(self.box_min_xyz >= self.box_max_xyz):
            raise ValueError(
                f"workspace_margin_m={m} leaves no workspace inside robot '{robot.name}''s box "
                f"{robot.workspace_min_xyz} .. {robot.workspace_max_xyz}"
            )

    @property
    def dof(self) -> int:
        return len(self.robot.arm_joints)

    def filter(
        self,
        traj: JointTrajectory,
        q_now: np.ndarray,
        gripper_now_m: float | None = None,
    ) -> tuple[JointTrajectory, list[str]]:
        """Return (trajectory that may be sent, notes on every change). Raises SafetyRejected.

        `gripper_now_m` is the current gripper width, held while bridging from q_now to the first
        waypoint; when unknown the first waypoint's width is used.
        """
        cfg = self.config
        notes: list[str] = []
        q_in, g_in, dt = self._check(traj, q_now, gripper_now_m)
        q_now = np.asarray(q_now, dtype=np.float64)

        # Rule 2: clamp into the joint limits and the gripper range.
        q = np.clip(q_in, self._lower, self._upper)
        over = np.abs(q - q_in)
        if np.any(over > 0):
            rows = np.flatnonzero(np.any(over > 0, axis=1))
            j = int(np.argmax(over.max(axis=0)))
            notes.append(
                f"clamped {rows.size} of {len(q)} waypoint(s) to the joint limits "
                f"(worst: joint {j} by {over[:, j].max():.3f} rad)"
            )
        g = np.clip(g_in, 0.0, self.robot.gripper_max_width_m)
        if np.any(g != g_in):
            notes.append(
                f"clamped the gripper width of {int(np.sum(g != g_in))} waypoint(s) "
                f"to [0, {self.robot.gripper_max_width_m:.3f}] m"
            )
        g_start = float(np.clip(gripper_now_m, 0.0, self.robot.gripper_max_width_m)) \
            if gripper_now_m is not None else float(g[0])

        # Rule 3: bridge from q_now and subdivide every segment to at most max_joint_step_rad per joint.
        starts = np.vstack([q_now[None, :], q[:-1]])
        gaps = np.abs(q - starts).max(axis=1)
        n_sub = np.maximum(1, np.ceil(gaps / cfg.max_joint_step_rad - _EPS).astype(np.int64))
        total = int(n_sub.sum())
        if total > cfg.max_waypoints:
            raise SafetyRejected(
                f"trajectory needs {total} waypoints at {cfg.max_joint_step_rad} rad per step, "
                f"more than max_waypoints={cfg.max_waypoints}"
            )
        q_out = np.empty((total, self.dof))
        g_out = np.empty(total)
        k = 0
        g_prev = g_start
        for i in range(len(q)):
            n = int(n_sub[i])
            frac = (np.arange(1, n + 1, dtype=np.float64) / n)[:, None]
            q_out[k:k + n] = starts[i] + frac * (q[i] - starts[i])
            q_out[k + n - 1] = q[i]  # exact, not start + 1.0 * delta
            g_out[k:k + n - 1] = g_prev
            g_out[k + n - 1] = g[i]
            g_prev = g[i]
            k += n
        # q_now itself may sit slightly outside the limits (physics overshoot); keep bridged points inside.
        q_out = np.clip(q_out, self._lower, self._upper)
        if n_sub[0] > 1:
            notes.append(
                f"bridged from the current joint state to the first waypoint with {n_sub[0] - 1} extra "
                f"waypoint(s) (largest joint gap {gaps[0]:.3f} rad)"
            )
        later = n_sub[1:]
        if np.any(later > 1):
            notes.append(
                f"subdivided {int(np.sum(later > 1))} segment(s) with {int(np.sum(later - 1))} extra "
                f"waypoint(s) so no joint moves more than {cfg.max_joint_step_rad} rad per waypoint"
            )

        # Rule 4: truncate before the first waypoint on whose way the TCP leaves the workspace box.
        pts, seg = path_samples(np.clip(q_now, self._lower, self._upper), q_out, cfg.workspace_sample_rad)
        for k in range(len(pts)):
            xyz = np.asarray(self.fk_xyz(pts[k]), dtype=np.float64).reshape(-1)
            if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
                raise SafetyRejected(
                    f"forward kinematics gave {xyz!r} on the way to waypoint {int(seg[k])}; cannot check the "
                    f"workspace"
                )
            if np.any(xyz < self.box_min_xyz - _EPS) or np.any(xyz > self.box_max_xyz + _EPS):
                i = int(seg[k])
                where = (
                    f"TCP at ({xyz[0]:.3f}, {xyz[1]:.3f}, {xyz[2]:.3f}) m is outside the workspace box "
                    f"{tuple(round(float(v), 3) for v in self.box_min_xyz)} .. "
                    f"{tuple(round(float(v), 3) for v in self.box_max_xyz)}"
                )
                if i == 0:
                    raise SafetyRejected(f"nothing to send: on the way to the first waypoint the {where}")
                notes.append(f"truncated at waypoint {i} of {total}: on its way the {where}; sending the {i} "
                             f"before it")
                q_out, g_out = q_out[:i], g_out[:i]
                break

        # Rule 5: stretch dt so the fastest joint stays within speed_scale of its limit.
        prev = np.vstack([q_now[None, :], q_out[:-1]])
        step = np.abs(q_out - prev).max(axis=0)
        dt_needed = float(np.max(step / (cfg.speed_scale * self._speed)))
        if dt_needed > dt * (1 + _EPS):
            notes.append(
                f"stretched dt from {dt:.4f} s to {dt_needed:.4f} s so no joint exceeds "
                f"{cfg.speed_scale:.0%} of its speed limit"
            )
            dt = dt_needed
        if cfg.max_joint_accel_rad_s2 is not None:
            # |v_k - v_(k-1)| / dt <= a with v = step / dt: dt >= sqrt(step change / a), from and to rest.
            a_max = np.broadcast_to(np.asarray(cfg.max_joint_accel_rad_s2, dtype=np.float64), (self.dof,))
            steps = np.diff(np.vstack([np.clip(q_now, self._lower, self._upper)[None, :], q_out]), axis=0)
            dt_acc = float(np.sqrt(np.max(velocity_changes(steps) / a_max)))
            if dt_acc > dt * (1 + _EPS):
                notes.append(f"stretched dt from {dt:.4f} s to {dt_acc:.4f} s so no joint accelerates faster "
                             f"than the controller allows")
                dt = dt_acc
        period = cfg.control_period_s
        if period is not None:
            n_periods = max(1, math.ceil(dt / period - 1e-6))
            if abs(n_periods * period - dt) > 1e-9:
                notes.append(
                    f"rounded dt up to {n_periods * period:.4f} s ({n_periods} controller period(s) of "
                    f"{period:.4f} s)"
                )
            dt = n_periods * period
        return JointTrajectory(q_out, g_out, dt), notes

    def _check(
        self, traj: JointTrajectory, q_now: np.ndarray, gripper_now_m: float | None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        if not isinstance(traj, JointTrajectory):
            raise SafetyRejected(f"expected a JointTrajectory, got {type(traj).__name__}")
        q, g, dt = traj.joint_pos_rad, traj.gripper_width_m, traj.dt_s
        if q.shape[1] != self.dof:
            raise SafetyRejected(
                f"trajectory has {q.shape[1]} joints per waypoint, robot '{self.robot.name}' has {self.dof}"
            )
        q_now = np.asarray(q_now)
        if q_now.shape != (self.dof,):
            raise SafetyRejected(f"current joint state has shape {q_now.shape}, expected ({self.dof},)")
        bad = []
        if not np.all(np.isfinite(q)):
            bad.append(f"joint_pos_rad at waypoint(s) {np.flatnonzero(~np.isfinite(q).all(axis=1)).tolist()}")
        if not np.all(np.isfinite(g)):
            bad.append(f"gripper_width_m at waypoint(s) {np.flatnonzero(~np.isfinite(g)).tolist()}")
        if not math.isfinite(dt):
            bad.append("dt_s")
        if not np.all(np.isfinite(q_now)):
            bad.append("current joint state")
        if gripper_now_m is not None and not math.isfinite(gripper_now_m):
            bad.append("current gripper width")
        if bad:
            raise SafetyRejected("non-finite values (NaN/inf) in " + "; ".join(bad))
        if dt <= 0:
            raise SafetyRejected(f"dt_s must be > 0, got {dt}")
        return q, g, dt


def require_unchanged(traj: JointTrajectory, sent: JointTrajectory, notes: list[str]) -> int:
    """For a motion that must run exactly as planned (a probe whose torque windows are found by waypoint index):
    the envelope may bridge from the current state to its first waypoint and nothing else. Returns the index in
    `sent` of traj's first waypoint; raises SafetyRejected when the envelope would cut it short or change it."""
    cut = [n for n in notes if n.startswith("truncated")]
    if cut:
        raise SafetyRejected(f"it would cut the motion short: {cut[0]}")
    offset = sent.n_waypoints - traj.n_waypoints
    if offset < 0 or not np.allclose(sent.joint_pos_rad[offset:], traj.joint_pos_rad, atol=1e-6):
        raise SafetyRejected("it would change the motion (clamp or resample it): "
                             + ("; ".join(notes) or "waypoints differ"))
    return offset
