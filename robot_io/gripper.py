"""The gripper boundary of a vendor driver: one abstract `Gripper` (open / close, width), and `NoGripper`.

A planned `JointTrajectory` carries a gripper width per waypoint; the twin only ever plans "open" (the robot's
maximum width) or "close" (0, the fingers stop on whatever is between them). A vendor driver therefore turns
widths into a binary command with the same rule the twin uses (`sim.grasp.gripper_closed`) and calls
`Gripper.command(close)` where that state changes along the path. The gripper reports the width it measures,
or, for grippers without feedback (a valve on a digital output), the width its last command implies
(`measured` says which).

Vendor grippers live next to their arm: `robot_io.ur.gripper` (RTDE standard digital output),
`robot_io.franka.gripper` (franky's Franka Hand), `robot_io.xarm.gripper` (the xArm gripper through the SDK).
Any object with this interface can be handed to a driver (`URRobot(cfg, gripper=MyGripper())`): that is the
hook for a gripper the shipped drivers do not know.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sim.grasp import gripper_closed


class Gripper(ABC):
    """One gripper. Calls block until the fingers stopped (the driver runs them with a deadline)."""

    max_width_m: float
    measured: bool = True            # False: width_m() is implied by the last command, not measured
    action_timeout_s: float = 5.0    # deadline the driver gives one command

    def connect(self) -> None:  # noqa: B027 - optional: most grippers ride on the arm's link
        """Open the gripper's own link (if it has one)."""

    def disconnect(self) -> None:  # noqa: B027 - optional, as connect
        """Close it; a no-op when not connected."""

    @abstractmethod
    def command(self, close: bool) -> None:
        """Close (grasp whatever is between the fingers) or open fully; returns when the fingers stopped."""

    @abstractmethod
    def width_m(self) -> float:
        """Current opening in metres."""

    def is_closed(self) -> bool:
        return gripper_closed(self.width_m(), self.max_width_m)


class NoGripper(Gripper):
    """No gripper configured: commands are refused by the driver's report notes, never sent; reads as open."""

    measured = False

    def __init__(self, max_width_m: float) -> None:
        self.max_width_m = float(max_width_m)

    def command(self, close: bool) -> None:  # the driver never calls it (see VendorRobot._grip)
        raise NotImplementedError("no gripper is configured")

    def width_m(self) -> float:
        return self.max_width_m


def wants_closed(width_m: float, max_width_m: float) -> bool:
    """The binary command a planned width stands for (the twin's own rule)."""
    return gripper_closed(float(width_m), max_width_m)
