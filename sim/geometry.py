"""Rigid transforms: the `Pose` type and symmetry-aware rotation error."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

# Named symmetry groups, all in the object's own frame about its origin: cube (24 rotations), box (half turns about
# x, y, z), square (quarter turns about z: a tray), square_prism (square plus the half turns about x and y),
# cylinder (any turn about z), sphere (any rotation). sim/symmetry.py infers one from a mesh.
SYMMETRIES = ("none", "cube", "box", "square", "square_prism", "cylinder", "sphere")


@dataclass(frozen=True)
class Pose:
    """A rigid transform: position in metres and unit quaternion (x, y, z, w), PyBullet's order."""

    xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat_xyzw: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        # Plain-float arithmetic: poses are built thousands of times per MPC step.
        xyz = tuple(float(v) for v in self.xyz)
        quat = tuple(float(v) for v in self.quat_xyzw)
        if len(xyz) != 3 or len(quat) != 4:
            raise ValueError(f"Pose needs 3 xyz and 4 quaternion values, got {self.xyz!r}, {self.quat_xyzw!r}")
        if not all(math.isfinite(v) for v in xyz + quat):
            raise ValueError(f"Pose has a non-finite value: {self.xyz!r}, {self.quat_xyzw!r}")
        norm = math.sqrt(sum(v * v for v in quat))
        if norm < 1e-9:
            raise ValueError("Pose quaternion has zero norm")
        object.__setattr__(self, "xyz", xyz)
        object.__setattr__(self, "quat_xyzw", tuple(v / norm for v in quat))

    @classmethod
    def identity(cls) -> Pose:
        return cls()

    @classmethod
    def from_xyz_rpy_deg(cls, xyz, rpy_deg=(0.0, 0.0, 0.0)) -> Pose:
        quat = Rotation.from_euler("xyz", rpy_deg, degrees=True).as_quat()
        return cls(tuple(xyz), tuple(quat))

    @classmethod
    def from_matrix(cls, T) -> Pose:
        T = np.asarray(T, dtype=float).reshape(4, 4)
        return cls(tuple(T[:3, 3]), tuple(Rotation.from_matrix(T[:3, :3]).as_quat()))

    def rotation(self) -> np.ndarray:
        return Rotation.from_quat(self.quat_xyzw).as_matrix()

    def matrix(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.rotation()
        T[:3, 3] = self.xyz
        return T

    def rpy_deg(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in Rotation.from_quat(self.quat_xyzw).as_euler("xyz", degrees=True))

    def inverse(self) -> Pose:
        x, y, z, w = self.quat_xyzw
        q_inv = (-x, -y, -z, w)
        t = _quat_rotate(q_inv, self.xyz)
        return Pose((-t[0], -t[1], -t[2]), q_inv)

    def __matmul__(self, other: Pose) -> Pose:
        t = _quat_rotate(self.quat_xyzw, other.xyz)
        xyz = (self.xyz[0] + t[0], self.xyz[1] + t[1], self.xyz[2] + t[2])
        return Pose(xyz, _quat_mul(self.quat_xyzw, other.quat_xyzw))

    @property
    def position(self) -> np.ndarray:
        return np.asarray(self.xyz)

    def to_dict(self) -> dict:
        return {"xyz": list(self.xyz), "quat_xyzw": list(self.quat_xyzw)}

    @classmethod
    def from_dict(cls, d: dict) -> Pose:
        if "quat_xyzw" in d:
            return cls(tuple(d["xyz"]), tuple(d["quat_xyzw"]))
        return cls.from_xyz_rpy_deg(d["xyz"], d.get("rpy_deg", (0.0, 0.0, 0.0)))


def _quat_mul(a, b) -> tuple[float, float, float, float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz)


def _quat_rotate(q, v) -> tuple[float, float, float]:
    x, y, z, w = q
    vx, vy, vz = v
    # v' = v + 2w (u x v) + 2 u x (u x v), u = (x, y, z)
    cx, cy, cz = y * vz - z * vy, z * vx - x * vz, x * vy - y * vx
    ccx, ccy, ccz = y * cz - z * cy, z * cx - x * cz, x * cy - y * cx
    return (vx + 2 * (w * cx + ccx), vy + 2 * (w * cy + ccy), vz + 2 * (w * cz + ccz))


def transform_points(T, pts) -> np.ndarray:
    """Apply a 4x4 transform to (N, 3) points."""
    T = np.asarray(T, dtype=float)
    pts = np.asarray(pts, dtype=float).reshape(-1, 3)
    return pts @ T[:3, :3].T + T[:3, 3]


def _symmetry_group(symmetry: str) -> list[np.ndarray]:
    if symmetry == "none":
        return [np.eye(3)]
    if symmetry in ("cube", "box"):
        mats = []
        for perm in itertools.permutations(range(3)):
            for signs in itertools.product((1, -1), repeat=3):
                R = np.zeros((3, 3))
                for row, (col, sign) in enumerate(zip(perm, signs)):
                    R[row, col] = sign
                if np.linalg.det(R) > 0 and (symmetry == "cube" or perm == (0, 1, 2)):
                    mats.append(R)
        return mats  # cube: 24 proper rotations; box: the 4 half-turns about its own axes
    if symmetry in ("square", "square_prism"):  # a square tray: quarter turns about its own z axis
        quarter = [np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
                   for a in np.radians([0, 90, 180, 270])]
        if symmetry == "square":
            return quarter
        flip = np.diag([1.0, -1.0, -1.0])   # a square prism also turns over: a half turn about x
        return quarter + [R @ flip for R in quarter]
    raise ValueError(f"unknown symmetry {symmetry!r}; expected one of {SYMMETRIES}")


def symmetry_group(symmetry: str) -> list[np.ndarray]:
    """The finite group of a named symmetry as 3x3 matrices ('cylinder' and 'sphere': their finite part, the
    identity; their continuous part is handled by rotation_error_deg)."""
    if symmetry in ("cylinder", "sphere"):
        return [np.eye(3)]
    return _symmetry_group(symmetry)


def rotation_error_deg(R_a, R_b, symmetry: str = "none") -> float:
    """Geodesic angle between two rotations, minimised over the object's symmetry group.

    'cylinder' means symmetric about the object's z axis, so only the tilt of that axis counts.
    """
    R_a = np.asarray(R_a, dtype=float).reshape(3, 3)
    R_b = np.asarray(R_b, dtype=float).reshape(3, 3)
    if symmetry == "sphere":
        return 0.0
    if symmetry == "cylinder":
        cos = float(np.clip(R_a[:, 2] @ R_b[:, 2], -1.0, 1.0))
        return float(np.degrees(np.arccos(cos)))
    best = 180.0
    for S in _symmetry_group(symmetry):
        R_rel = R_a.T @ R_b @ S
        cos = float(np.clip((np.trace(R_rel) - 1.0) / 2.0, -1.0, 1.0))
        best = min(best, float(np.degrees(np.arccos(cos))))
    return best
