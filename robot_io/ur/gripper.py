"""`URDigitalOutGripper`: a gripper switched by one of the UR controller's standard digital outputs, through RTDE
(ur_rtde's `RTDEIOInterface`).

This is how most UR cells wire a pneumatic gripper (a valve), a vacuum ejector, or an electric gripper in its
digital I/O mode. There is no width feedback: `width_m()` is what the last command implies (closed:
`gripper_closed_width_m`, open: the robot's maximum width), so the planner's grasp check sees the command, not the
fingers. A gripper with its own protocol (a Robotiq over the tool's RS-485, a URCap) is given to `URRobot` as an
object with the `robot_io.gripper.Gripper` interface instead.
"""

from __future__ import annotations

from robot_io.errors import RobotError, VendorError
from robot_io.gripper import Gripper

GRIPPER_KINDS = ("none", "digital_out")


class URDigitalOutGripper(Gripper):
    measured = False

    def __init__(self, host: str, pin: int, close_level: bool, closed_width_m: float, max_width_m: float,
                 settle_s: float) -> None:
        self.host, self.pin, self.close_level = host, int(pin), bool(close_level)
        self.closed_width_m, self.max_width_m, self.settle_s = float(closed_width_m), float(max_width_m), settle_s
        self.action_timeout_s = 1.0
        self._io = None
        self._closed: bool | None = None

    def __repr__(self) -> str:
        return f"URDigitalOutGripper(DO{self.pin} at {self.host}, close level {int(self.close_level)})"

    def connect(self) -> None:
        try:
            import rtde_io
        except ImportError as e:
            raise RobotError(f"the UR gripper needs ur_rtde: pip install 'antigrounding[ur]' ({e})") from None
        try:
            self._io = rtde_io.RTDEIOInterface(self.host)
        except RuntimeError as e:
            raise VendorError(f"UR controller at {self.host}: the RTDE I/O interface (gripper on DO{self.pin}) did "
                              f"not connect: {e}") from None

    def command(self, close: bool) -> None:
        level = self.close_level if close else not self.close_level
        if not self._io.setStandardDigitalOut(self.pin, level):
            raise VendorError(f"UR controller at {self.host}: setStandardDigitalOut({self.pin}, {level}) was refused")
        self._closed = close

    def width_m(self) -> float:
        return self.closed_width_m if self._closed else self.max_width_m

    def disconnect(self) -> None:
        io, self._io = self._io, None
        if io is not None:
            io.disconnect()


def gripper_from_config(cfg, max_width_m: float) -> Gripper | None:
    """The gripper `URConfig.gripper` names (None for "none")."""
    if cfg.gripper == "digital_out":
        return URDigitalOutGripper(cfg.host, cfg.gripper_digital_out, cfg.gripper_close_level,
                                   cfg.gripper_closed_width_m, max_width_m, cfg.gripper_action_s)
    return None
