"""`URConfig`: how `URRobot` talks to one UR controller (defaults in ur5e.yaml next to this file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot_io.driver_config import load_driver_config, require_positive, require_range
from robot_io.envelope import EnvelopeConfig

DEFAULT_CONFIG = Path(__file__).with_name("ur5e.yaml")


@dataclass(frozen=True)
class URConfig:
    """host: the controller's IP; robot: a configs/robots name or YAML path (limits, workspace, kinematics).

    rtde_frequency_hz: RTDE output rate (500 on e-Series, 125 on CB3); servo_rate_hz: servoJ stream rate;
    servo_lookahead_s / servo_gain: servoJ's smoothing (UR's ranges 0.03-0.2 s, 100-2000);
    move_speed_rad_s / move_accel_rad_s2: moveJ leading-axis speed and acceleration (small, for checks);
    stop_decel_rad_s2: stopJ deceleration; watchdog_min_hz: the controller stops the program when the
    driver's inputs arrive slower than this during a motion; watchdog_idle_min_hz: the same between motions
    (armed on connect; low, because the planner's computing can starve the kick thread of the GIL);
    stale_after_s: state older than this (no new controller timestamp) means the link is gone;
    call_timeout_s: deadline of one vendor call;
    settle_tol_rad / settle_timeout_s: after the last waypoint, hold it until every joint is this close;
    gripper: "none" or "digital_out" (a gripper switched by standard digital output `gripper_digital_out`, 0-7,
    through RTDE; `gripper_close_level` is the level that closes it; the driver waits `gripper_action_s` for the
    fingers and reports `gripper_closed_width_m` while closed, since there is no width feedback).
    """

    host: str = "192.168.1.10"
    robot: str = "ur5e"
    rtde_frequency_hz: float = 500.0
    servo_rate_hz: float = 125.0
    servo_lookahead_s: float = 0.1
    servo_gain: float = 300.0
    move_speed_rad_s: float = 0.3
    move_accel_rad_s2: float = 0.5
    stop_decel_rad_s2: float = 2.0
    watchdog_min_hz: float = 10.0
    watchdog_idle_min_hz: float = 0.2
    stale_after_s: float = 0.1
    call_timeout_s: float = 0.5
    settle_tol_rad: float = 2e-4
    settle_timeout_s: float = 3.0
    gripper: str = "none"
    gripper_digital_out: int = 0
    gripper_close_level: bool = True
    gripper_action_s: float = 0.5
    gripper_closed_width_m: float = 0.0
    envelope: EnvelopeConfig = field(default_factory=lambda: EnvelopeConfig(speed_scale=0.25))

    def __post_init__(self) -> None:
        require_positive(self, "rtde_frequency_hz", "servo_rate_hz", "move_speed_rad_s", "move_accel_rad_s2",
                         "stop_decel_rad_s2", "watchdog_min_hz", "stale_after_s", "call_timeout_s", "settle_tol_rad",
                         "settle_timeout_s")
        require_range(self, "servo_lookahead_s", 0.03, 0.2, lo_open=False, note="(UR's range)")
        require_range(self, "servo_gain", 100, 2000, lo_open=False, note="(UR's range)")
        if self.gripper not in ("none", "digital_out"):
            raise ValueError(f"URConfig.gripper must be 'none' or 'digital_out', got {self.gripper!r}")
        if not 0 <= self.gripper_digital_out <= 7:
            raise ValueError(f"URConfig.gripper_digital_out must be a standard digital output 0-7, got "
                             f"{self.gripper_digital_out}")
        require_range(self, "gripper_action_s", 0, 10, lo_open=False, note="s")
        require_range(self, "gripper_closed_width_m", 0, lo_open=False)
        require_range(self, "watchdog_idle_min_hz", 0, self.watchdog_min_hz, note="(watchdog_min_hz)")
        if self.stale_after_s < 2.0 / self.rtde_frequency_hz:
            raise ValueError(f"URConfig.stale_after_s={self.stale_after_s} is shorter than two RTDE periods")

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides) -> URConfig:
        """From a YAML file (default: ur5e.yaml next to this module), with non-None keyword overrides."""
        return load_driver_config(cls, path if path is not None else DEFAULT_CONFIG, **overrides)
