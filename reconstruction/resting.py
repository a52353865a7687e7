"""Objects at rest: their stable resting poses, snapping a fit onto one, and refining only the degrees of
freedom a resting object has (x, y and the turn about the table normal; the height too when it rests on
something else) by point-to-plane Gauss-Newton. `prep` is pose.PoseEstimator's prepared model."""

from __future__ import annotations

import logging

import numpy as np
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from sim.symmetry import MeshSymmetry, named_symmetry

log = logging.getLogger(__name__)


def fills_hull(mesh: trimesh.Trimesh, surface_points: np.ndarray, spacing_m: float) -> bool:
    """Whether the mesh's surface covers its convex hull's surface (within about one sample spacing)."""
    hull_pts, _ = trimesh.sample.sample_surface(mesh.convex_hull, 400, seed=0)
    dist, _ = cKDTree(surface_points).query(hull_pts)
    return bool(np.mean(dist < max(spacing_m, 0.003)) > 0.95)


def inside_convex(hull: trimesh.Trimesh, point, tol_m: float = 1e-9) -> bool:
    """Whether a point lies inside a convex mesh (behind every face's plane)."""
    offsets = np.einsum("ij,ij->i", hull.face_normals, np.asarray(point, dtype=float) - hull.triangles[:, 0])
    return bool(np.all(offsets <= tol_m))


def stable_up_directions(mesh: trimesh.Trimesh, min_probability: float = 0.02) -> np.ndarray:
    """Object-frame unit vectors that point up when the mesh rests on a plane in a stable pose."""
    hull = mesh.convex_hull
    com = mesh.center_mass
    if not inside_convex(hull, com):
        # An open scan's volume integral can put its "centre of mass" outside the object (LIBERO's black book: 2.7 m
        # above a 14 cm book), and trimesh's walk over the hull's faces then never ends: use the solid hull's.
        log.info("centre of mass %s lies outside the mesh's convex hull; using the hull's", np.round(com, 3))
        com = hull.center_mass
    try:
        transforms, probs = trimesh.poses.compute_stable_poses(hull, center_mass=com, n_samples=1, threshold=0.0)
    except (ValueError, IndexError, np.linalg.LinAlgError) as exc:   # degenerate hull: no resting prior
        log.info("no stable poses for a mesh of %d faces (%s)", len(mesh.faces), exc)
        return np.zeros((0, 3))
    ups = [np.asarray(T)[:3, :3].T @ np.array([0.0, 0.0, 1.0]) for T, pr in zip(transforms, probs)
           if pr >= min_probability]
    return np.array(ups, dtype=float).reshape(-1, 3)


def distinct_ups(ups: np.ndarray, symmetry: str | MeshSymmetry) -> np.ndarray:
    """The stable up directions, one per class that the object's symmetry maps onto each other (a cube: one)."""
    sym = named_symmetry(symmetry) if isinstance(symmetry, str) else symmetry
    out: list[np.ndarray] = []
    for u in ups:
        if not any(sym.maps(u, v) for v in out):
            out.append(u)
    return np.array(out, dtype=float).reshape(-1, 3)


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


def hypothesis_rank(fitness: float, coverage: float, rmse_m: float, inlier_m: float, coverage_weight: float) -> float:
    """Fitness weighted by coverage, less the RMSE; no inlier at all (RMSE NaN) ranks as RMSE inlier_m: a NaN rank
    made the winner's rival NaN and its confidence 0 (a bowl on a cabinet, a hypothesis that explains none of it)."""
    rmse_m = rmse_m if np.isfinite(rmse_m) else inlier_m
    return fitness * (1.0 - coverage_weight + coverage_weight * coverage) - 0.1 * rmse_m / inlier_m


_EYE3 = np.eye(3)


def turn_about(up: np.ndarray, angles_rad) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by angles_rad (any shape) about the unit axis `up` (Rodrigues; no scipy
    object per call: these run inside the Gauss-Newton loops)."""
    a = np.asarray(angles_rad, dtype=float)
    ux, uy, uz = float(up[0]), float(up[1]), float(up[2])
    K = np.array([[0.0, -uz, uy], [uz, 0.0, -ux], [-uy, ux, 0.0]])
    KK = np.array([[-uy * uy - uz * uz, ux * uy, ux * uz], [ux * uy, -ux * ux - uz * uz, uy * uz],
                   [ux * uz, uy * uz, -ux * ux - uy * uy]])          # K @ K for a unit axis
    s, c = np.sin(a)[..., None, None], np.cos(a)[..., None, None]
    return _EYE3 + s * K + (1.0 - c) * KK


def planar_icp(prep, pts_world: np.ndarray, T_wo: np.ndarray, up: np.ndarray, fix_height: bool,
               max_corr_m: float, iterations: int = 12, max_points: int = 400, sparse: bool = False) -> np.ndarray:
    """Point-to-plane Gauss-Newton over translation and the rotation about `up` (the tilt stays as given).

    fix_height keeps the translation in the plane normal to `up` (the object stands on the table). Three or four
    parameters need far fewer points than a large object (the tray) offers: at most max_points are used (400
    average the depth noise down well below a millimetre; 1000 cost twice the time for no measured gain).
    sparse: match against the model's sparse samples (a coarse, cheaper pass).
    """
    return planar_icp_many(prep, pts_world, np.asarray(T_wo, dtype=float)[None], up, fix_height, max_corr_m,
                           iterations, max_points, sparse)[0]


def planar_icp_many(prep, pts_world: np.ndarray, Ts_wo: np.ndarray, up: np.ndarray, fix_height: bool,
                    max_corr_m: float, iterations: int = 12, max_points: int = 400, sparse: bool = False
                    ) -> np.ndarray:
    """planar_icp of several starting poses Ts_wo (h, 4, 4) of one model in one point set at once: one KD-tree
    query and one batched 3x3 / 4x4 solve per iteration for all of them (the resting hypotheses of an object are
    a dozen such fits). Each pose stops on its own, as planar_icp alone would; returns (h, 4, 4)."""
    tree, surface, normals = ((prep.sparse_tree, prep.points, prep.normals) if sparse else
                              (prep.tree, prep.dense_points, prep.dense_normals))
    if len(pts_world) > max_points:
        pts_world = pts_world[np.random.default_rng(0).choice(len(pts_world), max_points, replace=False)]
    up = np.asarray(up, dtype=float)
    T = np.array(Ts_wo, dtype=float, copy=True)
    h, m = len(T), len(pts_world)
    # in-plane basis (e1, e2) and up: translations along them, rotation about up through the model centre
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(up, e1)
    axes = np.array([e1, e2] if fix_height else [e1, e2, up])            # (k, 3)
    k = len(axes) + 1
    active = np.ones(h, dtype=bool)
    for _ in range(iterations):
        a_idx = np.flatnonzero(active)
        if len(a_idx) == 0:
            break
        R, t = T[a_idx, :3, :3], T[a_idx, :3, 3]                         # (a, 3, 3), (a, 3)
        local = np.einsum("amj,ajk->amk", pts_world[None] - t[:, None], R)  # (p - t) @ R per pose
        dist, idx = tree.query(local.reshape(-1, 3), distance_upper_bound=max_corr_m)
        ok = np.isfinite(dist).reshape(len(a_idx), m)
        idx = np.where(ok, idx.reshape(len(a_idx), m), 0)
        enough = ok.sum(axis=1) >= 6
        q = np.einsum("amj,akj->amk", surface[idx], R) + t[:, None]       # model points in the world
        n = np.einsum("amj,akj->amk", normals[idx], R)
        c = np.einsum("akj,j->ak", R, prep.center) + t                    # model centre in the world
        w = ok.astype(float)
        r = np.einsum("amj,amj->am", n, pts_world[None] - q) * w
        arm = q - c[:, None]
        # n . (up x arm) = arm . (n x up): the rotation column
        n_x_up = np.stack([n[..., 1] * up[2] - n[..., 2] * up[1], n[..., 2] * up[0] - n[..., 0] * up[2],
                           n[..., 0] * up[1] - n[..., 1] * up[0]], axis=-1)
        rot_col = np.einsum("amj,amj->am", arm, n_x_up)
        J = np.concatenate([n @ axes.T, rot_col[..., None]], axis=2) * w[..., None]   # (a, m, k)
        H = np.einsum("ami,amj->aij", J, J) + 1e-9 * np.eye(k)
        x = np.linalg.solve(H, np.einsum("ami,am->ai", J, r)[..., None])[..., 0]   # (a, k)
        dR = turn_about(up, x[:, -1])
        shift = x[:, :-1] @ axes
        new_R = dR @ R
        new_t = np.einsum("aij,aj->ai", dR, t - c) + c + shift
        upd = a_idx[enough]
        T[upd, :3, :3] = new_R[enough]
        T[upd, :3, 3] = new_t[enough]
        done = ~enough | ((np.linalg.norm(shift, axis=1) < 1e-5) & (np.abs(x[:, -1]) < 1e-5))
        active[a_idx[done]] = False
    return T


def lean_direction(prep, pts_world: np.ndarray, T_wo: np.ndarray, up: np.ndarray, table_d: float,
                   scene_points: np.ndarray, contact_m: float, min_points: int) -> np.ndarray | None:
    """The horizontal unit direction towards something the object at T_wo touches (other points above the table,
    within contact_m of the model's surface and not the object's own), or None when nothing is there to lean on."""
    if len(scene_points) == 0 or len(pts_world) == 0:
        return None
    R, t = T_wo[:3, :3], T_wo[:3, 3]
    near, _ = prep.tree.query((scene_points - t) @ R, distance_upper_bound=contact_m)
    cand = scene_points[np.isfinite(near) & (scene_points @ up + table_d > contact_m)]
    if len(cand) < min_points:
        return None
    own, _ = cKDTree(pts_world).query(cand, distance_upper_bound=contact_m / 2)
    other = cand[~np.isfinite(own)]
    if len(other) < min_points:
        return None
    d = other.mean(axis=0) - (R @ prep.center + t)
    d -= (d @ up) * up
    n = float(np.linalg.norm(d))
    return None if n < 1e-6 else d / n


def leaning_poses(prep, T_wo: np.ndarray, up: np.ndarray, direction: np.ndarray, angles_deg) -> np.ndarray:
    """T_wo tilted towards `direction` (horizontal) by each angle, about the model's centre: (k, 4, 4)."""
    axis = np.cross(up, direction)         # turning about up x d by +angle moves up towards d
    c = T_wo[:3, :3] @ prep.center + T_wo[:3, 3]
    out = np.repeat(T_wo[None], len(angles_deg), axis=0).astype(float)
    for i, R in enumerate(turn_about(axis / np.linalg.norm(axis), np.radians(np.asarray(angles_deg, dtype=float)))):
        out[i, :3, :3] = R @ T_wo[:3, :3]
        out[i, :3, 3] = R @ (T_wo[:3, 3] - c) + c
    return out
