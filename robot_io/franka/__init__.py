"""Franka Research 3 through the franky client: `FrankaRobot` and its `FrankaConfig`."""

from robot_io.franka.config import FrankaConfig
from robot_io.franka.driver import FrankaRobot

__all__ = ["FrankaConfig", "FrankaRobot"]
