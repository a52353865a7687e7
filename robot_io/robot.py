"""The hardware boundary: one abstract `Robot` class (LeRobot style) and its typed errors.

Everything above `robot_io` talks to an arm only through this interface, so the sim lab
(`robot_io.sim_robot.SimRobot`) and a vendor driver are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Self

import numpy as np

from robot_io.envelope import SafetyEnvelope
from robot_io.errors import ConnectionLostError, NotConnectedError, RobotError, SafetyRejected
from robot_io.observation import JointStateTrace, Observation
from robot_io.trajectory import JointTrajectory

__all__ = [
    "ConnectionLostError",
    "ExecuteReport",
    "NotConnectedError",
    "Robot",
    "RobotError",
    "SafetyRejected",
]


@dataclass(frozen=True, eq=False)
class ExecuteReport:
    """What `Robot.execute` actually did.

    `sent` is the trajectory after the safety envelope (clamped, bridged, subdivided, slowed, truncated),
    which is what the arm was commanded to follow; `notes` says what the envelope changed and why.
    `completed` is True only when the arm reached the last waypoint of `sent`: every joint of
    `final_joint_pos_rad` within `reach_tol_rad` of it (None: the driver states no tolerance, and then
    completed is its word alone). Otherwise `stopped_reason` says why not (for the sim lab: "stop",
    "watchdog", "control_lost", "shutdown", "protective_stop: ...", "not_reached: ..." or "error: ...").
    """

    sent: JointTrajectory
    notes: tuple[str, ...]
    completed: bool
    stopped_reason: str | None
    final_joint_pos_rad: np.ndarray
    reach_tol_rad: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))
        q = np.array(self.final_joint_pos_rad, dtype=np.float64).reshape(-1)
        q.setflags(write=False)
        object.__setattr__(self, "final_joint_pos_rad", q)
        if self.completed and self.stopped_reason is not None:
            raise ValueError(f"ExecuteReport: completed=True but stopped_reason={self.stopped_reason!r}")
        if self.completed and self.reach_tol_rad is not None:
            err = float(np.max(np.abs(q - self.sent.joint_pos_rad[-1])))
            if not err <= self.reach_tol_rad:
                raise ValueError(f"ExecuteReport: completed=True but a joint ended {err:.4f} rad from the last "
                                 f"waypoint (tolerance {self.reach_tol_rad} rad)")


class Robot(ABC):
    """One arm with its cameras: connect / observe / execute / stop / disconnect.

    Use it as a context manager (`with SimRobot(...) as robot:`): `__enter__` connects and `__exit__`
    disconnects. `disconnect()` must be safe to call twice and after a lost connection, because it is
    what releases resources. Methods that need the link raise `NotConnectedError` before `connect()`
    and `ConnectionLostError` when the link dies.
    """

    # The safety envelope `execute` filters every trajectory through (None: not connected yet, or a driver
    # whose controller enforces its limits itself). Callers may check a plan against it before sending.
    envelope: SafetyEnvelope | None = None

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """True while the link is up (False before connect, after disconnect and after a lost link)."""

    @abstractmethod
    def connect(self) -> None:
        """Open the link to the arm and its cameras."""

    @abstractmethod
    def observe(self) -> Observation:
        """Camera frames (RGB-D with intrinsics and pose), joint state, TCP pose and gripper width."""

    @abstractmethod
    def execute(self, traj: JointTrajectory, *, exact: bool = False) -> ExecuteReport:
        """Filter `traj` through the safety envelope, run it, block until done; report what was sent.

        exact=True: the motion must run as planned (e.g. a probe whose torque trace is read by waypoint): the
        envelope may only bridge from the current state to the first waypoint; a trajectory it would clamp,
        resample or cut short raises SafetyRejected before anything moves (`envelope.require_unchanged`).
        """

    @abstractmethod
    def stop(self) -> None:
        """Abort any motion in progress and hold the arm where it is."""

    @abstractmethod
    def disconnect(self) -> None:
        """Close the link and release resources; a no-op when not connected."""

    def last_trace(self) -> JointStateTrace | None:
        """The joint states (positions, measured torques) recorded during the last `execute`, or None.

        Optional: drivers that stream the arm's state while it moves (libfranka, UR RTDE, the sim lab)
        override it; the default answers None ("not recorded"), which callers must accept.
        """
        return None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.disconnect()
