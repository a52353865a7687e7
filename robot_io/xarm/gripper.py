"""`XArmGripper`: the UFACTORY xArm Gripper through the arm's own SDK connection (`set_gripper_position`).

The SDK speaks in pulses, 0 (closed) to 850 (open, 85 mm); every call returns an integer code, checked like the
arm's (`robot_io.xarm.codes`). A grasp closes to 0 and stops on the object, so the measured position is the
object's width; `width_m()` reads it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from robot_io.gripper import Gripper

GRIPPER_KINDS = ("none", "xarm_gripper")
OPEN_PULSES = 850.0


class XArmGripper(Gripper):
    def __init__(self, api: Any, check: Callable[[str, Any], Any], max_width_m: float, speed_pulses_s: float,
                 action_timeout_s: float) -> None:
        self._api, self._check = api, check
        self.max_width_m = float(max_width_m)
        self.speed_pulses_s = float(speed_pulses_s)
        self.action_timeout_s = float(action_timeout_s)
        self._metres_per_pulse = self.max_width_m / OPEN_PULSES

    def connect(self) -> None:
        api = self._api
        self._check("set_gripper_mode(0)", api.set_gripper_mode(0))
        self._check("set_gripper_enable", api.set_gripper_enable(True))

    def command(self, close: bool) -> None:
        # wait=True: the SDK returns when the fingers stopped (on the object, or at the target)
        self._check("set_gripper_position", self._api.set_gripper_position(
            0.0 if close else OPEN_PULSES, wait=True, speed=self.speed_pulses_s, timeout=self.action_timeout_s))

    def width_m(self) -> float:
        pulses = self._check("get_gripper_position", self._api.get_gripper_position())
        return max(0.0, float(pulses)) * self._metres_per_pulse


def gripper_from_config(cfg, api: Any, check: Callable[[str, Any], Any], max_width_m: float) -> Gripper | None:
    """The gripper `XArmConfig.gripper` names (None for "none")."""
    if cfg.gripper == "xarm_gripper":
        return XArmGripper(api, check, max_width_m, cfg.gripper_speed_pulses_s, cfg.gripper_timeout_s)
    return None
