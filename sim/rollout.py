"""Candidate trajectories and the result of simulating one in the twin."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sim.geometry import Pose

GRIPPER_COMMANDS = ("open", "close", "keep")


@dataclass(frozen=True)
class Contact:
    a: str            # "robot" or "robot:<link>" or an object name; "held:<name>" for the grasped object
    b: str            # "table" or an object name
    distance_m: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A TCP waypoint path (world frame, after the current pose) and a gripper command at its end."""

    id: int
    waypoints: tuple[Pose, ...]
    gripper: str = "keep"
    label: str = ""

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError(f"candidate {self.id}: needs at least one waypoint")
        if self.gripper not in GRIPPER_COMMANDS:
            raise ValueError(f"candidate {self.id}: gripper {self.gripper!r}: expected one of {GRIPPER_COMMANDS}")

    @property
    def goal(self) -> Pose:
        return self.waypoints[-1]


@dataclass(frozen=True)
class Rollout:
    candidate: Candidate
    joint_path_rad: np.ndarray          # (N, dof) commanded joint positions
    gripper_width_m: np.ndarray         # (N,) commanded gripper width
    dt_s: float                         # time between commanded waypoints
    ee_path_xyz: np.ndarray             # (M, 3) TCP positions actually reached in the twin
    ee_end_pose: Pose
    contacts: tuple[Contact, ...]       # unexpected contacts (collisions)
    disturbed: tuple[str, ...]          # objects that moved although nothing should have moved them
    min_clearance_m: float
    joint_limit_margin_rad: float
    ik_error_m: float
    object_poses_after: dict[str, Pose] = field(default_factory=dict)
    grasped_after: str | None = None
    gripper_after_m: float = 0.0
    feasible: bool = True
    reason: str = ""
    probe: dict = field(default_factory=dict)
    release_drop_m: float = 0.0         # fall height of an object the gripper let go of (0 if none)

    @property
    def path_length_m(self) -> float:
        if len(self.ee_path_xyz) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.ee_path_xyz, axis=0), axis=1).sum())

    @property
    def duration_s(self) -> float:
        return float(self.dt_s * len(self.joint_path_rad))
