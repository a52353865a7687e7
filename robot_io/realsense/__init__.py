"""Intel RealSense RGB-D cameras (live or a recorded file) via pyrealsense2: `RealSenseCamera`, `RealSenseConfig`."""

from robot_io.realsense.camera import RealSenseCamera
from robot_io.realsense.config import RealSenseConfig

__all__ = ["RealSenseCamera", "RealSenseConfig"]
