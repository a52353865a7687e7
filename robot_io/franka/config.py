"""`FrankaConfig`: how `FrankaRobot` talks to one FR3 (defaults in fr3.yaml next to this file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot_io.driver_config import load_driver_config, require_positive, require_range
from robot_io.envelope import EnvelopeConfig

DEFAULT_CONFIG = Path(__file__).with_name("fr3.yaml")


@dataclass(frozen=True)
class FrankaConfig:
    """host: the FCI IP; robot: a configs/robots name or path; relative_dynamics_factor: franky's (Ruckig's)
    scaling of the FR3's velocity/acceleration/jerk limits, in (0, 1]; realtime: demand a PREEMPT_RT kernel
    (libfranka's requirement; false only for simulators); call_timeout_s: deadline of one franky call;
    stale_after_s: state whose robot time has not moved for this long means the link is gone;
    settle_*: see robot_io/franka/driver.py; gripper: "franka_hand" (franky's Gripper: close = a grasp at
    `gripper_force_n`, open at `gripper_speed_mps`, `gripper_timeout_s` per command) or "none"."""

    host: str = "172.16.0.2"
    robot: str = "fr3"
    relative_dynamics_factor: float = 0.1
    realtime: bool = True
    call_timeout_s: float = 1.0
    stale_after_s: float = 0.1
    settle_tol_rad: float = 5e-4
    settle_timeout_s: float = 3.0
    settle_corrections: int = 3
    settle_max_offset_rad: float = 0.005
    settle_still_rad_s: float = 0.0005
    gripper: str = "franka_hand"
    gripper_speed_mps: float = 0.05
    gripper_force_n: float = 20.0
    gripper_timeout_s: float = 5.0
    envelope: EnvelopeConfig = field(default_factory=lambda: EnvelopeConfig(speed_scale=0.25))

    def __post_init__(self) -> None:
        require_range(self, "relative_dynamics_factor", 0, 1)
        require_positive(self, "call_timeout_s", "stale_after_s", "settle_tol_rad", "settle_timeout_s",
                         "settle_max_offset_rad", "settle_still_rad_s")
        if self.gripper not in ("none", "franka_hand"):
            raise ValueError(f"FrankaConfig.gripper must be 'franka_hand' or 'none', got {self.gripper!r}")
        require_range(self, "gripper_speed_mps", 0, 0.2, note="(the Hand's range)")
        require_range(self, "gripper_force_n", 0, 140, note="N (the Hand's range)")
        require_positive(self, "gripper_timeout_s")
        if self.settle_corrections < 0:
            raise ValueError(f"FrankaConfig.settle_corrections must be >= 0, got {self.settle_corrections}")

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> FrankaConfig:
        return load_driver_config(cls, path if path is not None else DEFAULT_CONFIG, **overrides)
