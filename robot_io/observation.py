"""What a robot reports in one `observe()`: RGB-D camera frames and the arm's state.

Frames follow OpenCV conventions: `K` is the 3x3 pinhole intrinsics matrix and `T_world_camera` maps
points from the optical frame (x right, y down, z forward) into the world frame. `depth_m` is metric
z-depth along the optical axis, NaN where the sensor had no return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_io.protocol import ndarray_from_msg, ndarray_to_msg


def _field(msg: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(msg, dict) or key not in msg:
        raise ValueError(f"{where}: message has no field {key!r}")
    return msg[key]


@dataclass(frozen=True, eq=False)
class CameraFrame:
    """One RGB-D frame: rgb uint8 (H, W, 3), depth_m float32 (H, W), K (3, 3), T_world_camera (4, 4)."""

    name: str
    rgb: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray
    T_world_camera: np.ndarray

    def __post_init__(self) -> None:
        where = f"CameraFrame {self.name!r}"
        rgb = np.asarray(self.rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{where}: rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        depth = np.asarray(self.depth_m, dtype=np.float32)
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"{where}: depth_m must be (H, W) = {rgb.shape[:2]}, got {depth.shape}")
        K = np.array(self.K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)):
            raise ValueError(f"{where}: K must be a finite (3, 3) matrix, got shape {K.shape}")
        T = np.array(self.T_world_camera, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"{where}: T_world_camera must be a finite (4, 4) matrix, got shape {T.shape}")
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "rgb", rgb)
        object.__setattr__(self, "depth_m", depth)
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "T_world_camera", T)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    def to_msg(self) -> dict[str, Any]:
        """msgpack-safe dict (arrays as raw bytes + dtype + shape)."""
        return {
            "name": self.name,
            "rgb": ndarray_to_msg(self.rgb),
            "depth_m": ndarray_to_msg(self.depth_m),
            "K": ndarray_to_msg(self.K),
            "T_world_camera": ndarray_to_msg(self.T_world_camera),
        }

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> CameraFrame:
        where = "CameraFrame message"
        return cls(
            name=_field(msg, "name", where),
            rgb=ndarray_from_msg(_field(msg, "rgb", where)),
            depth_m=ndarray_from_msg(_field(msg, "depth_m", where)),
            K=ndarray_from_msg(_field(msg, "K", where)),
            T_world_camera=ndarray_from_msg(_field(msg, "T_world_camera", where)),
        )


@dataclass(frozen=True, eq=False)
class Observation:
    """Camera frames plus arm state: joint_pos_rad (dof,), gripper_width_m, T_world_tcp (4, 4), stamp_s.

    stamp_s is the capture time in seconds on the driver's clock (the sim lab uses Unix time).
    """

    frames: tuple[CameraFrame, ...]
    joint_pos_rad: np.ndarray
    gripper_width_m: float
    T_world_tcp: np.ndarray
    stamp_s: float

    def __post_init__(self) -> None:
        frames = tuple(self.frames)
        if not all(isinstance(f, CameraFrame) for f in frames):
            raise ValueError("Observation.frames: expected CameraFrame items")
        names = [f.name for f in frames]
        if len(set(names)) != len(names):
            raise ValueError(f"Observation.frames: camera names must be unique, got {names}")
        q = np.array(self.joint_pos_rad, dtype=np.float64)
        if q.ndim != 1:
            raise ValueError(f"Observation.joint_pos_rad: expected shape (dof,), got {q.shape}")
        T = np.array(self.T_world_tcp, dtype=np.float64)
        if T.shape != (4, 4):
            raise ValueError(f"Observation.T_world_tcp: expected shape (4, 4), got {T.shape}")
        q.setflags(write=False)
        T.setflags(write=False)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "joint_pos_rad", q)
        object.__setattr__(self, "T_world_tcp", T)
        object.__setattr__(self, "gripper_width_m", float(self.gripper_width_m))
        object.__setattr__(self, "stamp_s", float(self.stamp_s))

    def frame(self, name: str) -> CameraFrame:
        """The frame of camera `name` (KeyError lists the cameras there are)."""
        for f in self.frames:
            if f.name == name:
                return f
        raise KeyError(f"no camera frame {name!r}; cameras: {[f.name for f in self.frames]}")

    def to_msg(self) -> dict[str, Any]:
        """msgpack-safe dict (arrays as raw bytes + dtype + shape)."""
        return {
            "frames": [f.to_msg() for f in self.frames],
            "joint_pos_rad": ndarray_to_msg(self.joint_pos_rad),
            "gripper_width_m": self.gripper_width_m,
            "T_world_tcp": ndarray_to_msg(self.T_world_tcp),
            "stamp_s": self.stamp_s,
        }

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> Observation:
        where = "Observation message"
        frames = _field(msg, "frames", where)
        if not isinstance(frames, list | tuple):
            raise TypeError(f"{where}: 'frames' must be a list")
        return cls(
            frames=tuple(CameraFrame.from_msg(f) for f in frames),
            joint_pos_rad=ndarray_from_msg(_field(msg, "joint_pos_rad", where)),
            gripper_width_m=_field(msg, "gripper_width_m", where),
            T_world_tcp=ndarray_from_msg(_field(msg, "T_world_tcp", where)),
            stamp_s=_field(msg, "stamp_s", where),
        )
