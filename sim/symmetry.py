"""Symmetry of a rigid object inferred from its surface: the rotations that map the mesh onto itself.

A candidate rotation about the surface's area centroid is accepted when every sampled surface point, rotated,
lands on the surface again (point-to-plane distance to the nearest sample, within a tolerance). Candidates are
turns of order 2..12 and "any angle" (a solid of revolution) about the object's own axes, the surface's
principal axes and its dominant face normals; the accepted ones generate a finite group, plus continuous axes
(one: a solid of revolution; two or more: a sphere). The result names the largest group of sim.geometry's
SYMMETRIES the mesh has in its own frame (what a catalog entry would declare), and keeps the whole group for
symmetry-aware errors (centre included, so a flip about an off-origin centre is not counted as a translation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from sim.geometry import SYMMETRIES, symmetry_group

_ORDERS = (12, 8, 6, 5, 4, 3, 2)            # turn orders tried about each candidate axis, largest first
_FREE_ANGLES_DEG = (17.0, 53.0, 127.0)      # turns that only a solid of revolution survives
_MAX_GROUP = 64


def _axis_angle(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(axis, dtype=float) * angle_rad).as_matrix()


def _angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


@dataclass(frozen=True, eq=False)
class MeshSymmetry:
    """kind: the largest named group (sim.geometry.SYMMETRIES) the mesh has about its frame's origin and axes.
    rotations: the finite group found (object frame, about `center`), identity first. axes: continuous symmetry
    axes (object frame, unit): one for a solid of revolution, two or more for a sphere."""

    kind: str
    rotations: tuple[np.ndarray, ...]
    axes: tuple[np.ndarray, ...]
    center: np.ndarray

    @property
    def order(self) -> float:
        return math.inf if self.axes else float(len(self.rotations))

    def _nearest(self, R_est: np.ndarray, R_true: np.ndarray) -> tuple[float, np.ndarray]:
        """(angle deg, R_alt): the symmetric equivalent R_alt of R_true closest to R_est."""
        if len(self.axes) >= 2:
            return 0.0, R_est.copy()
        best = (math.inf, R_true)
        for g in self.rotations:
            R_alt = R_true @ g
            if self.axes:
                a = self.axes[0]
                M = R_alt.T @ R_est     # the turn about a closest to M: maximise trace(Rot(a, t)^T M)
                A = np.trace(M) - a @ M @ a
                ax = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
                B = np.trace(ax.T @ M)
                R_alt = R_alt @ _axis_angle(a, math.atan2(B, A))
            err = _angle_deg(R_alt.T @ R_est)
            if err < best[0]:
                best = (err, R_alt)
        return best

    def turn_order(self, u, tol_deg: float = 3.0) -> float:
        """How many turns about the object-frame direction u map the mesh onto itself (inf: any turn)."""
        u = np.asarray(u, dtype=float) / max(float(np.linalg.norm(u)), 1e-12)
        cos = math.cos(math.radians(tol_deg))
        if len(self.axes) >= 2 or (self.axes and abs(float(self.axes[0] @ u)) > cos):
            return math.inf
        if self.axes:   # the finite part is the identity and perhaps one flip of the axis: a half turn about u
            return 2.0 if len(self.rotations) > 1 and abs(float(self.axes[0] @ u)) < 1.0 - cos else 1.0
        return float(sum(1 for g in self.rotations if float((g @ u) @ u) > cos))

    def maps(self, u, v, tol_deg: float = 3.0) -> bool:
        """Does a symmetry turn the object-frame direction u onto v (two resting faces that look the same)?"""
        u = np.asarray(u, dtype=float) / max(float(np.linalg.norm(u)), 1e-12)
        v = np.asarray(v, dtype=float) / max(float(np.linalg.norm(v)), 1e-12)
        if len(self.axes) >= 2:
            return True
        tol = math.radians(tol_deg)
        if self.axes:   # turns about the axis keep the angle to it
            a = self.axes[0]
            return any(abs(math.acos(np.clip((g @ u) @ a, -1, 1)) - math.acos(np.clip(v @ a, -1, 1))) < tol
                       for g in self.rotations)
        return any(float((g @ u) @ v) > math.cos(tol) for g in self.rotations)

    def rotation_error_deg(self, R_est, R_true) -> float:
        return self._nearest(np.asarray(R_est, float)[:3, :3], np.asarray(R_true, float)[:3, :3])[0]

    def pose_error(self, T_est, T_true) -> tuple[float, float]:
        """(translation m, rotation deg) to the symmetric equivalent of T_true nearest T_est in rotation; the
        equivalent turns about `center`, so the origin of an off-centre frame moves with it."""
        T_est, T_true = np.asarray(T_est, float), np.asarray(T_true, float)
        err, R_alt = self._nearest(T_est[:3, :3], T_true[:3, :3])
        t_alt = T_true[:3, 3] + T_true[:3, :3] @ self.center - R_alt @ self.center
        return float(np.linalg.norm(T_est[:3, 3] - t_alt)), err


def _dominant_normals(normals: np.ndarray, n_dirs: int = 3, cone_deg: float = 10.0) -> list[np.ndarray]:
    """Directions most surface normals share (up to sign): the face normals of a box-like mesh."""
    out: list[np.ndarray] = []
    left = np.asarray(normals, float)
    cos = math.cos(math.radians(cone_deg))
    rng = np.random.default_rng(0)
    for _ in range(n_dirs):
        if len(left) < 10:
            break
        probe = left[rng.choice(len(left), min(200, len(left)), replace=False)]
        support = (np.abs(probe @ left.T) > cos).sum(axis=1)
        k = int(np.argmax(support))
        if support[k] < 0.05 * len(normals):
            break
        members = left[np.abs(left @ probe[k]) > cos]
        members = members * np.sign(members @ probe[k])[:, None]
        d = members.mean(axis=0)
        out.append(d / np.linalg.norm(d))
        left = left[np.abs(left @ probe[k]) <= cos]
    return out


class _Matcher:
    """Does a rotation about the centroid map the sampled surface onto itself?"""

    def __init__(self, points: np.ndarray, normals: np.ndarray, tol_m: float, n_test: int, seed: int,
                 center: np.ndarray | None) -> None:
        self.center = points.mean(axis=0) if center is None else np.asarray(center, dtype=float).reshape(3)
        self.X = points - self.center
        self.N = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        self.tree = cKDTree(self.X)
        idx = np.random.default_rng(seed).choice(len(points), min(n_test, len(points)), replace=False)
        self.Xs, self.Ns = self.X[idx], self.N[idx]
        spacing = float(np.median(self.tree.query(self.Xs, k=2)[0][:, 1]))
        self.tol = float(tol_m)
        self.reach = max(3.0 * spacing, 2.0 * tol_m)

    def fits(self, R: np.ndarray) -> bool:
        # most candidate turns fail on a few points: try a hundred before all of them
        return self._fits(R, self.Xs[:100], self.Ns[:100]) and self._fits(R, self.Xs, self.Ns)

    def _fits(self, R: np.ndarray, Xs: np.ndarray, Ns: np.ndarray) -> bool:
        Y = Xs @ R.T
        NY = Ns @ R.T
        d, i = self.tree.query(Y, k=4)
        # point-to-plane distance to the nearest of 4 neighbours whose normal agrees (up to sign: mesh
        # winding is not always consistent); too far or no agreeing normal: the euclidean distance
        plane = np.abs(np.einsum("ikj,ikj->ik", Y[:, None, :] - self.X[i], self.N[i]))
        agree = np.abs(np.einsum("ij,ikj->ik", NY, self.N[i])) > 0.8
        err = np.where(agree & (d < self.reach), plane, d).min(axis=1)
        return bool(np.quantile(err, 0.95) < self.tol and err.mean() < 0.5 * self.tol)


def _close_group(generators: list[np.ndarray]) -> list[np.ndarray]:
    group = [np.eye(3)]
    frontier = [np.eye(3)]
    while frontier and len(group) < _MAX_GROUP:
        new = []
        for A in frontier:
            for G in generators:
                C = G @ A
                if all(np.abs(C - B).max() > 1e-2 for B in group):
                    group.append(C)
                    new.append(C)
        frontier = new
    return group


def _contains(group: list[np.ndarray], S: np.ndarray) -> bool:
    return any(np.abs(S - g).max() < 0.05 for g in group)


def infer_symmetry(points, normals, tol_m: float | None = None, center=None, n_test: int = 500,
                   seed: int = 0) -> MeshSymmetry:
    """The symmetry of a surface given as sampled points (N, 3) and their normals, object frame.

    tol_m: how far a rotated surface may land from the surface (default 1% of the diameter, at least 1 mm).
    center: the surface's area centroid (every symmetry axis passes through it); default the points' mean,
    which random samples only approximate (mesh_symmetry passes the exact one).
    """
    points = np.asarray(points, dtype=float).reshape(-1, 3)
    normals = np.asarray(normals, dtype=float).reshape(-1, 3)
    if len(points) < 20 or len(points) != len(normals):
        raise ValueError(f"infer_symmetry: need >= 20 points with one normal each, got {len(points)} and "
                         f"{len(normals)}")
    diameter = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
    tol = float(tol_m) if tol_m is not None else max(0.001, 0.01 * diameter)
    m = _Matcher(points, normals, tol, n_test, seed, center)
    _, vecs = np.linalg.eigh(m.X.T @ m.X)
    candidates = [np.eye(3)[k] for k in range(3)] + [vecs[:, k] for k in range(3)] + _dominant_normals(m.N)
    axes: list[np.ndarray] = []
    for a in candidates:
        a = a / np.linalg.norm(a)
        if all(abs(a @ b) < 0.995 for b in axes):
            axes.append(a)
    continuous: list[np.ndarray] = []
    generators: list[np.ndarray] = []
    for a in axes:
        if all(m.fits(_axis_angle(a, math.radians(t))) for t in _FREE_ANGLES_DEG):
            continuous.append(a)
            generators.append(_axis_angle(a, math.pi))   # finite stand-in for the closure below
            continue
        for n in _ORDERS:
            R = _axis_angle(a, 2 * math.pi / n)
            if m.fits(R):
                generators.append(R)
                break
    group = _close_group(generators)
    c = m.center
    if len(continuous) >= 2:
        return MeshSymmetry(_named(group, continuous, c, tol), (np.eye(3),), tuple(continuous[:2]), c)
    if continuous:
        a = continuous[0]
        # the finite part: the identity and, for a solid that also turns over (a closed cylinder), one flip of the
        # axis; with the turns about the axis they make the whole group
        flips = [g for g in group if (g @ a) @ a < -0.99]
        return MeshSymmetry(_named(group, continuous, c, tol), (np.eye(3), *flips[:1]), (a,), c)
    return MeshSymmetry(_named(group, continuous, c, tol), tuple(group), (), c)


def _named(group: list[np.ndarray], continuous: list[np.ndarray], center: np.ndarray, tol: float) -> str:
    """The largest named symmetry whose every rotation (about the frame's origin) is in the found group."""
    def about_origin(S: np.ndarray) -> bool:
        return float(np.linalg.norm(center - S @ center)) < tol

    if len(continuous) >= 2:
        return "sphere" if float(np.linalg.norm(center)) < tol else "none"
    z = np.array([0.0, 0.0, 1.0])
    if continuous and abs(continuous[0] @ z) > 0.995 and float(np.linalg.norm(center[:2])) < tol:
        return "cylinder"
    for kind in ("cube", "square_prism", "square", "box"):
        if all(_contains(group, S) and about_origin(S) for S in symmetry_group(kind)):
            return kind
    return "none"


def named_symmetry(kind: str) -> MeshSymmetry:
    """A declared symmetry as a MeshSymmetry about the frame's origin (for the same error functions)."""
    if kind not in SYMMETRIES:
        raise ValueError(f"unknown symmetry {kind!r}; expected one of {SYMMETRIES}")
    axes: tuple[np.ndarray, ...] = ()
    if kind == "cylinder":
        axes = (np.array([0.0, 0.0, 1.0]),)
    elif kind == "sphere":
        axes = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    return MeshSymmetry(kind, tuple(symmetry_group(kind)), axes, np.zeros(3))


def mesh_symmetry(mesh, n_points: int = 3000, tol_m: float | None = None, seed: int = 0) -> MeshSymmetry:
    """infer_symmetry on a trimesh.Trimesh: surface samples, their face normals and the exact area centroid."""
    import trimesh  # only here: the rest of sim does not need it

    pts, face = trimesh.sample.sample_surface(mesh, n_points, seed=seed)
    areas = np.asarray(mesh.area_faces, dtype=float)
    center = (np.asarray(mesh.triangles_center) * areas[:, None]).sum(axis=0) / max(float(areas.sum()), 1e-12)
    return infer_symmetry(pts, np.asarray(mesh.face_normals)[face], tol_m=tol_m, center=center, seed=seed)
