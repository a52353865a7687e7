"""`FrankaHand`: the Franka Hand through franky's `Gripper` (libfranka's gripper connection, its own port).

Close is a grasp (`grasp(0, speed, force, epsilon_outer=max width)`: the fingers stop on whatever is between them
and keep the force), open is `open(speed)`; `width_m()` reads the measured finger width.
"""

from __future__ import annotations

from typing import Any

from robot_io.errors import VendorError
from robot_io.gripper import Gripper

GRIPPER_KINDS = ("none", "franka_hand")


class FrankaHand(Gripper):
    def __init__(self, franky: Any, host: str, max_width_m: float, speed_mps: float, force_n: float,
                 action_timeout_s: float) -> None:
        self._franky, self.host = franky, host
        self.max_width_m, self.speed_mps, self.force_n = float(max_width_m), float(speed_mps), float(force_n)
        self.action_timeout_s = float(action_timeout_s)
        self._gripper = None

    def connect(self) -> None:
        try:
            self._gripper = self._franky.Gripper(self.host)
        except self._franky.Exception as e:
            raise VendorError(f"Franka Hand at {self.host}: {e} (is the Hand attached and enabled in Desk?)") from None

    def command(self, close: bool) -> None:
        g = self._gripper
        try:
            if close:
                # a grasp that finds nothing returns False: not an error (the planner sees the width)
                g.grasp(0.0, self.speed_mps, self.force_n, epsilon_outer=self.max_width_m)
            elif not g.open(self.speed_mps):
                raise VendorError(f"Franka Hand at {self.host}: open() did not reach the open width")
        except self._franky.Exception as e:
            raise VendorError(f"Franka Hand at {self.host}: {e}") from None

    def width_m(self) -> float:
        return float(self._gripper.width)

    def disconnect(self) -> None:
        self._gripper = None


def gripper_from_config(cfg, franky: Any, max_width_m: float) -> Gripper | None:
    """The gripper `FrankaConfig.gripper` names (None for "none")."""
    if cfg.gripper == "franka_hand":
        return FrankaHand(franky, cfg.host, max_width_m, cfg.gripper_speed_mps, cfg.gripper_force_n,
                          cfg.gripper_timeout_s)
    return None
