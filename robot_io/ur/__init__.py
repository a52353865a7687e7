"""Universal Robots (CB3 / e-Series) through SDU's ur_rtde client: `URRobot` and its `URConfig`."""

from robot_io.ur.config import URConfig
from robot_io.ur.driver import URRobot

__all__ = ["URConfig", "URRobot"]
