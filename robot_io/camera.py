"""The camera boundary: one abstract `Camera` (connect / read / disconnect), giving `CameraFrame`s.

A driver (`robot_io.realsense.RealSenseCamera`, or a robot's own cameras) reports RGB-D in the conventions
of `robot_io.observation`: uint8 RGB, float32 depth in metres (NaN = no return), intrinsics K from the device,
and `T_world_camera` from the camera's config (written by `antigrounding calibrate`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

from robot_io.observation import CameraFrame


class Camera(ABC):
    """One RGB-D camera. Use as a context manager; `read()` blocks for the next frame (with a deadline)."""

    name: str

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """True between connect() and disconnect()."""

    @abstractmethod
    def connect(self) -> None:
        """Open the device (or recording) and start streaming."""

    @abstractmethod
    def read(self) -> CameraFrame:
        """The next RGB-D frame; raises NotConnectedError before connect(), RobotError on timeout."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop streaming and release the device; a no-op when not connected."""

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.disconnect()
