"""The cameras' depth images as evidence about a hypothesis: which model points they see, and whether they see
through where something is supposed to be."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class DepthView:
    """One camera's depth (robot removed) for checking hypotheses against what was seen; with its color image and
    robot mask, for the silhouette refinement."""

    depth_m: np.ndarray
    K: np.ndarray
    T_camera_world: np.ndarray
    origin: np.ndarray
    rgb: np.ndarray | None = None
    robot: np.ndarray | None = None      # bool (H, W): the arm's pixels

    @classmethod
    def from_frame(cls, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray, rgb: np.ndarray | None = None,
                   robot: np.ndarray | None = None) -> DepthView:
        T = np.asarray(T_world_camera, dtype=float)
        return cls(depth_m, np.asarray(K, dtype=float), np.linalg.inv(T), T[:3, 3].copy(), rgb, robot)


def _depth_in_view(v: DepthView, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the points in front of camera v that project inside its image: their depth z along the optical
    axis, and the depth the camera measured at their pixel (NaN where it has no return)."""
    pc = points_world @ v.T_camera_world[:3, :3].T + v.T_camera_world[:3, 3]
    z = pc[:, 2]
    front = z > 1e-3
    pc, z = pc[front], z[front]
    u = np.round(v.K[0, 0] * pc[:, 0] / z + v.K[0, 2]).astype(np.int64)
    w = np.round(v.K[1, 1] * pc[:, 1] / z + v.K[1, 2]).astype(np.int64)
    H, W = v.depth_m.shape
    inside = (u >= 0) & (u < W) & (w >= 0) & (w < H)
    return z[inside], v.depth_m[w[inside], u[inside]]


def visibility(points_world: np.ndarray, normals_world: np.ndarray, views: list[DepthView],
               tol_m: float) -> tuple[float, float, int]:
    """(supported, contradicted) fractions of the model points the cameras should see, and how many those are.

    A point faces a camera when its normal points at it. Observed depth within tol: supported; clearly
    behind it (the camera sees through the model): contradicted; in front: occluded (neither). Pixels with
    no depth (dropout, robot) are left out.
    """
    supported = contradicted = total = 0
    for v in views:
        facing = np.einsum("ij,ij->i", normals_world, v.origin - points_world) > 0
        pts = points_world[facing]
        if len(pts) == 0:
            continue
        z, obs = _depth_in_view(v, pts)
        ok = np.isfinite(obs)
        obs, z = obs[ok], z[ok]
        total += len(z)
        supported += int(np.count_nonzero(np.abs(obs - z) <= tol_m))
        contradicted += int(np.count_nonzero(obs > z + tol_m))
    if total == 0:
        return 0.0, 0.0, 0
    return supported / total, contradicted / total, total


def seen_through(points_world: np.ndarray, views: list[DepthView], tol_m: float) -> tuple[float, int]:
    """The fraction of (point, camera) pairs where the camera's depth lies more than tol_m beyond the point (the
    camera sees through it: nothing is there), among the pairs where the point is in view with a return."""
    through = total = 0
    for v in views:
        z, obs = _depth_in_view(v, points_world)
        ok = np.isfinite(obs)
        total += int(np.count_nonzero(ok))
        through += int(np.count_nonzero(obs[ok] > z[ok] + tol_m))
    return (through / total if total else 0.0), total
