"""`XArmConfig`: how `XArmRobot` talks to one xArm control box (defaults in xarm6.yaml next to this file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot_io.driver_config import load_driver_config, require_positive, require_range
from robot_io.envelope import EnvelopeConfig

DEFAULT_CONFIG = Path(__file__).with_name("xarm6.yaml")


@dataclass(frozen=True)
class XArmConfig:
    """host: the control box's IP; robot: a configs/robots name or YAML path (limits, workspace, kinematics).

    servo_rate_hz: rate of the servo-mode (mode 1) `set_servo_angle_j` stream used by execute(); the controller
    ignores that call's speed, so the driver paces targets itself (envelope speed cap per tick);
    move_speed_rad_s / move_accel_rad_s2: position-mode (mode 0) `set_servo_angle` speed for move_joints();
    mode_switch_wait_s: pause after set_mode + set_state(0); call_timeout_s: deadline of one SDK call;
    stale_after_s: during a motion, no successful joint reply for this long means the link is gone;
    settle_tol_rad / settle_timeout_s: after the last target, wait until every joint is this close;
    gripper: "none" or "xarm_gripper" (the xArm Gripper on the arm's SDK connection, moved at
    `gripper_speed_pulses_s`, 850 pulses = fully open; `gripper_timeout_s` is the deadline of one open or close).
    """

    host: str = "192.168.1.185"
    robot: str = "xarm6"
    servo_rate_hz: float = 100.0
    move_speed_rad_s: float = 0.2
    move_accel_rad_s2: float = 1.0
    mode_switch_wait_s: float = 0.1
    call_timeout_s: float = 0.5
    stale_after_s: float = 0.3
    settle_tol_rad: float = 5e-4
    settle_timeout_s: float = 3.0
    gripper: str = "none"
    gripper_speed_pulses_s: float = 1500.0
    gripper_timeout_s: float = 5.0
    envelope: EnvelopeConfig = field(default_factory=lambda: EnvelopeConfig(speed_scale=0.25))

    def __post_init__(self) -> None:
        require_positive(self, "servo_rate_hz", "move_speed_rad_s", "move_accel_rad_s2", "call_timeout_s",
                         "stale_after_s", "settle_tol_rad", "settle_timeout_s")
        require_range(self, "mode_switch_wait_s", 0, lo_open=False)
        if self.gripper not in ("none", "xarm_gripper"):
            raise ValueError(f"XArmConfig.gripper must be 'none' or 'xarm_gripper', got {self.gripper!r}")
        require_range(self, "gripper_speed_pulses_s", 0, 5000)
        require_positive(self, "gripper_timeout_s")
        require_range(self, "servo_rate_hz", 0, 250, note="(the controller's servo-mode rate)")
        if self.stale_after_s < 2.0 / self.servo_rate_hz:
            raise ValueError(f"XArmConfig.stale_after_s={self.stale_after_s} is shorter than two servo periods")

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> XArmConfig:
        """From a YAML file (default: xarm6.yaml next to this module), with non-None keyword overrides."""
        return load_driver_config(cls, path if path is not None else DEFAULT_CONFIG, **overrides)
