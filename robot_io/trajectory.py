"""`JointTrajectory`: joint-space waypoints at a fixed time step, the unit of motion sent to an arm."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_io.protocol import ndarray_from_msg, ndarray_to_msg
from sim.rollout import Rollout


@dataclass(frozen=True, eq=False)
class JointTrajectory:
    """Waypoints `joint_pos_rad` (N, dof) reached one every `dt_s` seconds, with a gripper width per waypoint.

    The first waypoint is reached `dt_s` after the start (the current joint state is not part of the
    trajectory). `gripper_width_m` may be given as a scalar, which is held for all waypoints.

    Only the structure is checked here (shapes, N >= 1, numeric types). Values (NaN, limits, speeds)
    are judged by `robot_io.envelope.SafetyEnvelope`, the one gate before hardware, so that a bad plan
    is reported there as `SafetyRejected` rather than failing somewhere upstream.
    """

    joint_pos_rad: np.ndarray
    gripper_width_m: np.ndarray
    dt_s: float

    def __post_init__(self) -> None:
        q = np.array(self.joint_pos_rad, dtype=np.float64)
        if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] < 1:
            raise ValueError(
                f"JointTrajectory.joint_pos_rad: expected shape (N>=1, dof>=1), got {q.shape}"
            )
        g = np.array(self.gripper_width_m, dtype=np.float64)
        if g.ndim == 0:
            g = np.full(q.shape[0], float(g))
        if g.shape != (q.shape[0],):
            raise ValueError(
                f"JointTrajectory.gripper_width_m: expected a scalar or shape ({q.shape[0]},) "
                f"(one per waypoint), got {g.shape}"
            )
        if isinstance(self.dt_s, bool) or not isinstance(self.dt_s, numbers.Real):
            raise TypeError(f"JointTrajectory.dt_s: expected a number of seconds, got {self.dt_s!r}")
        q.setflags(write=False)
        g.setflags(write=False)
        object.__setattr__(self, "joint_pos_rad", q)
        object.__setattr__(self, "gripper_width_m", g)
        object.__setattr__(self, "dt_s", float(self.dt_s))

    @property
    def n_waypoints(self) -> int:
        return int(self.joint_pos_rad.shape[0])

    @property
    def dof(self) -> int:
        return int(self.joint_pos_rad.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_waypoints * self.dt_s

    def to_msg(self) -> dict[str, Any]:
        """msgpack-safe dict (arrays as raw bytes + dtype + shape)."""
        return {
            "joint_pos_rad": ndarray_to_msg(self.joint_pos_rad),
            "gripper_width_m": ndarray_to_msg(self.gripper_width_m),
            "dt_s": self.dt_s,
        }

    @classmethod
    def from_rollout(cls, rollout: Rollout) -> JointTrajectory:
        """The joint path a twin rollout planned (commanded joints and gripper widths, its waypoint period)."""
        return cls(rollout.joint_path_rad, rollout.gripper_width_m, rollout.dt_s)

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> JointTrajectory:
        try:
            return cls(
                joint_pos_rad=ndarray_from_msg(msg["joint_pos_rad"]),
                gripper_width_m=ndarray_from_msg(msg["gripper_width_m"]),
                dt_s=msg["dt_s"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"JointTrajectory message: missing or malformed field: {e}") from e
