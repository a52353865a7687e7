"""RGB-D frames -> colored point clouds in the world frame (back-projection, crop, voxel downsampling).

Each point also carries the position of the camera that saw it ("view origin"): a visible surface always
faces the camera that saw it, which fixes the sign of the normals that feature matching needs.

For speed the per-pixel work is a multiply-add on cached world-frame rays (from sim.camera.backproject of
a unit depth image), kept as flat float32 coordinate arrays; arrays of points are only built for the
pixels a caller selects (the table sample for the plane fit, the points above the table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import open3d as o3d
from scipy import ndimage

from sim.camera import backproject


@dataclass(frozen=True, eq=False)
class PointSet:
    """Points (N, 3) world frame, colors (N, 3) in [0, 1], view_origins (N, 3) world camera positions."""

    points: np.ndarray
    colors: np.ndarray
    view_origins: np.ndarray

    def __len__(self) -> int:
        return int(len(self.points))

    def subset(self, index) -> PointSet:
        return PointSet(self.points[index], self.colors[index], self.view_origins[index])

    @classmethod
    def empty(cls) -> PointSet:
        z = np.zeros((0, 3))
        return cls(z, z.copy(), z.copy())

    @classmethod
    def concatenate(cls, sets) -> PointSet:
        sets = [s for s in sets if len(s)]
        if not sets:
            return cls.empty()
        if len(sets) == 1:
            return sets[0]
        return cls(np.concatenate([s.points for s in sets]), np.concatenate([s.colors for s in sets]),
                   np.concatenate([s.view_origins for s in sets]))

    def to_o3d(self) -> o3d.geometry.PointCloud:
        pc = o3d.geometry.PointCloud()
        pc.points = o3d.utility.Vector3dVector(np.ascontiguousarray(self.points, dtype=np.float64))
        pc.colors = o3d.utility.Vector3dVector(np.ascontiguousarray(self.colors, dtype=np.float64))
        return pc


def transform(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """T (4, 4) applied to (N, 3) points, written out per axis.

    An (N, 3) @ (3, 3) product goes to multi-threaded BLAS, whose spinning threads cost 2-4x more than
    this on a busy 2-core machine.
    """
    x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
    return np.stack([T[i, 0] * x + T[i, 1] * y + T[i, 2] * z + T[i, 3] for i in range(3)], axis=1)


@dataclass(frozen=True, eq=False)
class FramePoints:
    """One frame in the world frame, per pixel: x, y, z (H*W,) float32 (NaN = no return); ok = a return
    inside the crop box."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    ok: np.ndarray
    rgb: np.ndarray          # (H*W, 3) uint8
    origin: np.ndarray       # (3,) camera position

    def select(self, mask: np.ndarray | None = None, stride: int = 1) -> PointSet:
        """The points where ok (and mask), every stride-th of them."""
        keep = self.ok if mask is None else (self.ok & mask)
        idx = np.flatnonzero(keep)
        if stride > 1:
            idx = idx[::stride]
        pts = np.stack([self.x[idx], self.y[idx], self.z[idx]], axis=1).astype(np.float64)
        colors = self.rgb[idx].astype(np.float64) / 255.0
        return PointSet(pts, colors, np.broadcast_to(self.origin, pts.shape))


def jump_edges(depth_m: np.ndarray, jump_per_m: float) -> np.ndarray:
    """Pixels with a neighbour (3x3) nearer by more than jump_per_m * z: the far side of a depth discontinuity.

    Stereo and time-of-flight sensors return "flying pixels" there, depths mixed from the fore- and the
    background that belong to no surface; the far side of a silhouette is dropped with them. The near side
    (an object's outline) is kept: its pixels have no nearer neighbour. The threshold grows with z like a
    pixel's footprint, so it keeps surfaces up to ~75 degrees from facing the camera at jump_per_m = 0.012.
    """
    d = np.where(np.isfinite(depth_m), depth_m, np.inf).astype(np.float32)
    nearest = ndimage.minimum_filter(d, size=3, mode="nearest")
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d - nearest > np.float32(jump_per_m) * d)


class Fuser:
    """Back-projects frames into the world frame and crops them; caches each camera's world rays.

    edge_jump_per_m > 0 drops the far side of depth discontinuities (flying pixels): see jump_edges.
    """

    def __init__(self, crop_min, crop_max, edge_jump_per_m: float = 0.0) -> None:
        self.crop_min = np.asarray(crop_min, dtype=np.float64).reshape(3)
        self.crop_max = np.asarray(crop_max, dtype=np.float64).reshape(3)
        if np.any(self.crop_min >= self.crop_max):
            raise ValueError(f"crop box {self.crop_min} .. {self.crop_max} is empty")
        self.edge_jump_per_m = float(edge_jump_per_m)
        self._rays: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def prepare(self, shape, K, T_world_camera) -> None:
        """Compute a camera's world rays now rather than in its first frame."""
        self._world_rays(tuple(shape), np.asarray(K, dtype=np.float64), np.asarray(T_world_camera, dtype=np.float64))

    def _world_rays(self, shape, K: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (tuple(shape), K.tobytes(), T.tobytes())
        rays = self._rays.get(key)
        if rays is None:
            cam_rays = backproject(np.ones(shape), K)   # camera-frame rays with unit z-depth
            world = cam_rays @ T[:3, :3].T
            rays = tuple(np.ascontiguousarray(world[:, i], dtype=np.float32) for i in range(3))
            if len(self._rays) > 16:
                self._rays.clear()
            self._rays[key] = rays
        return rays

    def frame(self, depth_m: np.ndarray, rgb: np.ndarray, K, T_world_camera) -> FramePoints:
        K = np.asarray(K, dtype=np.float64)
        T = np.asarray(T_world_camera, dtype=np.float64)
        depth_m = np.asarray(depth_m, dtype=np.float32)
        if self.edge_jump_per_m > 0:
            depth_m = np.where(jump_edges(depth_m, self.edge_jump_per_m), np.float32(np.nan), depth_m)
        d = depth_m.reshape(-1)
        rx, ry, rz = self._world_rays(depth_m.shape, K, T)
        t = T[:3, 3].astype(np.float32)
        x, y, z = rx * d + t[0], ry * d + t[1], rz * d + t[2]
        lo, hi = self.crop_min, self.crop_max
        with np.errstate(invalid="ignore"):  # NaN compares False: no return is outside every box
            ok = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])
        return FramePoints(x, y, z, ok, np.asarray(rgb, dtype=np.uint8).reshape(-1, 3), T[:3, 3].copy())

    def frames(self, frames, depths) -> list[FramePoints]:
        """depths[i] replaces frames[i].depth_m (e.g. with the robot's pixels masked out)."""
        return [self.frame(d, f.rgb, f.K, f.T_world_camera) for f, d in zip(frames, depths)]


def fuse_frames(frames, depths, crop_min, crop_max, edge_jump_per_m: float = 0.0) -> PointSet:
    """All frames' points inside the crop box in one set (no downsampling)."""
    fuser = Fuser(crop_min, crop_max, edge_jump_per_m)
    return PointSet.concatenate([fp.select() for fp in fuser.frames(frames, depths)])


def voxel_downsample(points: PointSet, voxel_m: float) -> PointSet:
    """Average points, colors and view origins per voxel (open3d; view origins ride in the normals channel)."""
    if len(points) == 0:
        return points
    pc = points.to_o3d()
    pc.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(points.view_origins, dtype=np.float64))
    down = pc.voxel_down_sample(float(voxel_m))
    return PointSet(np.asarray(down.points), np.asarray(down.colors), np.asarray(down.normals))
