"""Objects at rest: their stable resting poses, snapping a fit onto one, and refining only the degrees of
freedom a resting object has (x, y and the turn about the table normal; the height too when it rests on
something else) by point-to-plane Gauss-Newton. `prep` is pose.PoseEstimator's prepared model."""

from __future__ import annotations

import logging

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

log = logging.getLogger(__name__)


def fills_hull(mesh: trimesh.Trimesh, surface_points: np.ndarray, spacing_m: float) -> bool:
    """Whether the mesh's surface covers its convex hull's surface (within about one sample spacing)."""
    hull_pts, _ = trimesh.sample.sample_surface(mesh.convex_hull, 400, seed=0)
    dist, _ = cKDTree(surface_points).query(hull_pts)
    return bool(np.mean(dist < max(spacing_m, 0.003)) > 0.95)


def stable_up_directions(mesh: trimesh.Trimesh, min_probability: float = 0.02) -> np.ndarray:
    """Object-frame unit vectors that point up when the mesh rests on a plane in a stable pose."""
    try:
        transforms, probs = trimesh.poses.compute_stable_poses(mesh, n_samples=1, threshold=0.0)
    except (ValueError, IndexError, np.linalg.LinAlgError) as exc:   # degenerate hull: no resting prior
        log.info("no stable poses for a mesh of %d faces (%s)", len(mesh.faces), exc)
        return np.zeros((0, 3))
    ups = [np.asarray(T)[:3, :3].T @ np.array([0.0, 0.0, 1.0]) for T, pr in zip(transforms, probs)
           if pr >= min_probability]
    return np.array(ups, dtype=float).reshape(-1, 3)


def _align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a onto unit vector b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = float(np.linalg.norm(axis)), float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * perp / np.linalg.norm(perp)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def fit_quality(prep, pts_world: np.ndarray, T_wo: np.ndarray, inlier_m: float) -> tuple[float, float]:
    """(fraction of the observed points within inlier_m of the dense model surface, their RMSE)."""
    R, t = T_wo[:3, :3], T_wo[:3, 3]
    dist, _ = prep.tree.query((pts_world - t) @ R, distance_upper_bound=inlier_m)
    ok = np.isfinite(dist)
    if not ok.any():
        return 0.0, float("nan")
    return float(ok.mean()), float(np.sqrt(np.mean(dist[ok] ** 2)))


def planar_icp(prep, pts_world: np.ndarray, T_wo: np.ndarray, up: np.ndarray, fix_height: bool,
               max_corr_m: float, iterations: int = 12, max_points: int = 400, sparse: bool = False) -> np.ndarray:
    """Point-to-plane Gauss-Newton over translation and the rotation about `up` (the tilt stays as given).

    fix_height keeps the translation in the plane normal to `up` (the object stands on the table). Three or four
    parameters need far fewer points than a large object (the tray) offers: at most max_points are used (400
    average the depth noise down well below a millimetre; 1000 cost twice the time for no measured gain).
    sparse: match against the model's sparse samples (a coarse, cheaper pass).
    """
    tree, surface, normals = ((prep.sparse_tree, prep.points, prep.normals) if sparse else
                              (prep.tree, prep.dense_points, prep.dense_normals))
    if len(pts_world) > max_points:
        pts_world = pts_world[np.random.default_rng(0).choice(len(pts_world), max_points, replace=False)]
    T = T_wo.copy()
    # in-plane basis (e1, e2) and up: translations along them, rotation about up through the model centre
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    axes = [e1, e2] if fix_height else [e1, e2, up]
    for _ in range(iterations):
        R, t = T[:3, :3], T[:3, 3]
        dist, idx = tree.query((pts_world - t) @ R, distance_upper_bound=max_corr_m)
        ok = np.isfinite(dist)
        if np.count_nonzero(ok) < 6:
            break
        q = surface[idx[ok]] @ R.T + t
        n = normals[idx[ok]] @ R.T
        s = pts_world[ok]
        c = R @ prep.center + t
        r = np.einsum("ij,ij->i", n, s - q)
        J = np.column_stack([n @ a for a in axes] + [np.einsum("ij,ij->i", n, np.cross(up, q - c))])
        H = J.T @ J + 1e-9 * np.eye(J.shape[1])
        x = np.linalg.solve(H, J.T @ r)
        dR = Rotation.from_rotvec(up * x[-1]).as_matrix()
        shift = sum(xi * a for xi, a in zip(x[:-1], axes))
        T_new = np.eye(4)
        T_new[:3, :3] = dR @ R
        T_new[:3, 3] = dR @ (t - c) + c + shift
        T = T_new
        if np.linalg.norm(shift) < 1e-5 and abs(x[-1]) < 1e-5:
            break
    return T
