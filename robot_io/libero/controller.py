"""How the LIBERO lab drives robosuite's JOINT_POSITION controller from a joint trajectory.

robosuite's controller takes one action per control period (50 ms in LIBERO): a joint delta in [-1, 1] that it
scales by `output_max` rad and adds to the *measured* joint position, then a PD law (kp, critically damped)
tracks that goal at the physics rate. The gripper action is binary: -1 opens, +1 closes. The lab resamples
the planner's path to the control period and asks for the remaining error at every period, so tracking
errors do not add up along the path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONTROL_PERIOD_S = 0.05      # LIBERO's control_freq = 20
KP = 300.0                   # measured here: 5 mm TCP tracking on a 3 s path (robosuite's default 50: 17 mm)
OUTPUT_MAX_RAD = 0.5         # the largest joint change one action may ask for (robosuite's default: 0.05)
OPEN_FRACTION = 0.95         # = sim.grasp.GRIPPER_OPEN_FRACTION (a test keeps them equal; no PyBullet import here)


@dataclass(frozen=True)
class JointPositionControllerConfig:
    """robosuite's controller config for JOINT_POSITION with the lab's gains (kp, output limits)."""

    kp: float = KP
    output_max_rad: float = OUTPUT_MAX_RAD

    def to_robosuite(self) -> dict:
        return {
            "type": "JOINT_POSITION",
            "input_max": 1,
            "input_min": -1,
            "output_max": self.output_max_rad,
            "output_min": -self.output_max_rad,
            "kp": self.kp,
            "damping_ratio": 1,
            "impedance_mode": "fixed",
            "kp_limits": [0, 300],
            "damping_ratio_limits": [0, 10],
            "qpos_limits": None,
            "interpolation": None,
            "ramp_ratio": 0.2,
        }


def resample(joint_pos_rad: np.ndarray, gripper_width_m: np.ndarray, dt_s: float,
             period_s: float = CONTROL_PERIOD_S) -> tuple[np.ndarray, np.ndarray]:
    """The path's joint positions (linear in time) and gripper widths (held) at every control period.

    Waypoint i is at time i * dt_s; the result's sample k is at (k + 1) * period_s up to the path's end, whose
    last sample is the last waypoint exactly (so a path always ends where the planner asked).
    """
    q = np.asarray(joint_pos_rad, dtype=float)
    g = np.asarray(gripper_width_m, dtype=float).reshape(-1)
    if q.ndim != 2 or len(q) == 0 or len(g) != len(q):
        raise ValueError(f"need (N, dof) joint positions and N gripper widths, got {q.shape} and {g.shape}")
    if not dt_s > 0 or not period_s > 0:
        raise ValueError(f"dt_s and period_s must be > 0, got {dt_s}, {period_s}")
    duration = (len(q) - 1) * dt_s
    n = max(1, int(np.ceil(duration / period_s - 1e-9)))
    t = np.minimum(np.arange(1, n + 1) * period_s, duration)
    t_src = np.arange(len(q)) * dt_s
    q_out = np.stack([np.interp(t, t_src, q[:, j]) for j in range(q.shape[1])], axis=1) if len(q) > 1 else \
        np.repeat(q, n, axis=0)
    # the gripper is commanded as the waypoint in force at that time (a step, not a ramp: it is binary)
    idx = np.minimum(np.floor(t / dt_s + 1e-9).astype(int), len(q) - 1)
    return q_out, g[idx]


def arm_action(q_target_rad: np.ndarray, q_measured_rad: np.ndarray,
               output_max_rad: float = OUTPUT_MAX_RAD) -> np.ndarray:
    """The normalised JOINT_POSITION action that asks for q_target from where the arm is, clipped to [-1, 1]."""
    delta = np.asarray(q_target_rad, dtype=float) - np.asarray(q_measured_rad, dtype=float)
    return np.clip(delta / output_max_rad, -1.0, 1.0)


def gripper_action(width_m: float, max_width_m: float, open_fraction: float = OPEN_FRACTION) -> float:
    """Binary: open (-1) only when the planner asks for (nearly) the full opening, otherwise close (+1).

    The planner's "keep" sends the width it measured: an object held across 49 mm must stay held, so any
    width below open_fraction of the opening means closed (the project's rule, sim.grasp's
    GRIPPER_OPEN_FRACTION)."""
    return -1.0 if width_m >= open_fraction * max_width_m else 1.0
