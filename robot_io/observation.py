"""What a robot reports: RGB-D camera frames and the arm's state in one `observe()`, and the joint states it
measured during a motion (`JointStateTrace`).

Frames follow OpenCV conventions: `K` is the 3x3 pinhole intrinsics matrix and `T_world_camera` maps
points from the optical frame (x right, y down, z forward) into the world frame. `depth_m` is metric
z-depth along the optical axis, NaN where the sensor had no return.

Joint efforts are the *measured* joint torques in N m (Franka `tau_J`, UR joint torques estimated from
currents, the sim lab's applied motor torques): they include gravity and any load, sign as the motor
applies them. Drivers without torque sensing leave them None.
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
    joint_effort_nm (dof,) is the measured joint torque, or None when the driver has no torque sensing.
    """

    frames: tuple[CameraFrame, ...]
    joint_pos_rad: np.ndarray
    gripper_width_m: float
    T_world_tcp: np.ndarray
    stamp_s: float
    joint_effort_nm: np.ndarray | None = None

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
        effort = None
        if self.joint_effort_nm is not None:
            effort = np.array(self.joint_effort_nm, dtype=np.float64)
            if effort.shape != q.shape:
                raise ValueError(f"Observation.joint_effort_nm: expected shape {q.shape} (one per joint) or None, "
                                 f"got {effort.shape}")
            effort.setflags(write=False)
        q.setflags(write=False)
        T.setflags(write=False)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "joint_pos_rad", q)
        object.__setattr__(self, "T_world_tcp", T)
        object.__setattr__(self, "gripper_width_m", float(self.gripper_width_m))
        object.__setattr__(self, "stamp_s", float(self.stamp_s))
        object.__setattr__(self, "joint_effort_nm", effort)

    def frame(self, name: str) -> CameraFrame:
        """The frame of camera `name` (KeyError lists the cameras there are)."""
        for f in self.frames:
            if f.name == name:
                return f
        raise KeyError(f"no camera frame {name!r}; cameras: {[f.name for f in self.frames]}")

    def to_msg(self) -> dict[str, Any]:
        """msgpack-safe dict (arrays as raw bytes + dtype + shape); joint_effort_nm only when measured."""
        msg = {
            "frames": [f.to_msg() for f in self.frames],
            "joint_pos_rad": ndarray_to_msg(self.joint_pos_rad),
            "gripper_width_m": self.gripper_width_m,
            "T_world_tcp": ndarray_to_msg(self.T_world_tcp),
            "stamp_s": self.stamp_s,
        }
        if self.joint_effort_nm is not None:
            msg["joint_effort_nm"] = ndarray_to_msg(self.joint_effort_nm)
        return msg

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> Observation:
        where = "Observation message"
        frames = _field(msg, "frames", where)
        if not isinstance(frames, list | tuple):
            raise TypeError(f"{where}: 'frames' must be a list")
        effort = msg.get("joint_effort_nm")   # absent from drivers (and older labs) without torque sensing
        return cls(
            frames=tuple(CameraFrame.from_msg(f) for f in frames),
            joint_pos_rad=ndarray_from_msg(_field(msg, "joint_pos_rad", where)),
            gripper_width_m=_field(msg, "gripper_width_m", where),
            T_world_tcp=ndarray_from_msg(_field(msg, "T_world_tcp", where)),
            stamp_s=_field(msg, "stamp_s", where),
            joint_effort_nm=None if effort is None else ndarray_from_msg(effort),
        )


@dataclass(frozen=True, eq=False)
class JointStateTrace:
    """Joint states measured while a trajectory ran, one sample per controller period.

    t_s (N,): seconds since the motion started (the driver's controller clock); joint_pos_rad and
    joint_effort_nm (N, dof); gripper_width_m (N,). Real arms stream this (libfranka's robot state at 1 kHz,
    UR RTDE output recipes); the sim lab records every physics step.
    """

    t_s: np.ndarray
    joint_pos_rad: np.ndarray
    joint_effort_nm: np.ndarray
    gripper_width_m: np.ndarray

    def __post_init__(self) -> None:
        t = np.array(self.t_s, dtype=np.float64).reshape(-1)
        n = len(t)
        q = np.array(self.joint_pos_rad, dtype=np.float64)
        tau = np.array(self.joint_effort_nm, dtype=np.float64)
        g = np.array(self.gripper_width_m, dtype=np.float64).reshape(-1)
        if q.ndim != 2 or q.shape[0] != n:
            raise ValueError(f"JointStateTrace.joint_pos_rad: expected shape ({n}, dof), got {q.shape}")
        if tau.shape != q.shape:
            raise ValueError(f"JointStateTrace.joint_effort_nm: expected shape {q.shape}, got {tau.shape}")
        if g.shape != (n,):
            raise ValueError(f"JointStateTrace.gripper_width_m: expected shape ({n},), got {g.shape}")
        if n > 1 and np.any(np.diff(t) <= 0):
            raise ValueError("JointStateTrace.t_s: expected strictly increasing times")
        for name, a in (("t_s", t), ("joint_pos_rad", q), ("joint_effort_nm", tau), ("gripper_width_m", g)):
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def n_samples(self) -> int:
        return int(len(self.t_s))

    def to_msg(self) -> dict[str, Any]:
        """msgpack-safe dict (arrays as raw bytes + dtype + shape)."""
        return {
            "t_s": ndarray_to_msg(self.t_s),
            "joint_pos_rad": ndarray_to_msg(self.joint_pos_rad),
            "joint_effort_nm": ndarray_to_msg(self.joint_effort_nm),
            "gripper_width_m": ndarray_to_msg(self.gripper_width_m),
        }

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> JointStateTrace:
        where = "JointStateTrace message"
        return cls(**{k: ndarray_from_msg(_field(msg, k, where))
                      for k in ("t_s", "joint_pos_rad", "joint_effort_nm", "gripper_width_m")})
