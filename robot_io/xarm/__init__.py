"""UFACTORY xArm (5/6/7, Lite 6) through the xArm Python SDK: `XArmRobot`, its `XArmConfig`, and the SDK's
integer return codes mapped to typed errors (`codes`)."""

from robot_io.xarm.config import XArmConfig
from robot_io.xarm.driver import XArmRobot

__all__ = ["XArmConfig", "XArmRobot"]
