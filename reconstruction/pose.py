"""6D pose of known objects: color-picked candidate clusters, global registration, ICP, verification.

Registration runs from the observed cluster (source) to the model surface (target): every observed point
should lie on the model, while most of the model is unseen, so this direction is not biased by the hidden
faces. Hypotheses come from FPFH + RANSAC global registration and, because objects rest on the table or in
the gripper, from yaw-only rotations (upright, and aligned with the TCP when the cluster is in the hand).
All are refined by point-to-plane ICP, ranked by fitness and inlier RMSE, and the best few are checked
against the depth images: a model surface that the cameras see through contradicts the hypothesis.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
import trimesh
from scipy.spatial.transform import Rotation

from reconstruction.fusion import PointSet, transform, voxel_downsample
from reconstruction.models import ObjectModel
from reconstruction.segmentation import NEUTRAL, Cluster

log = logging.getLogger(__name__)
reg = o3d.pipelines.registration

# Rotation about z that maps a symmetric object onto itself: yaw hypotheses need only span this.
_YAW_PERIOD_DEG = {"none": 360.0, "box": 180.0, "cube": 90.0, "square": 90.0, "cylinder": 360.0}


@dataclass(frozen=True)
class PoseConfig:
    voxel_min_m: float = 0.004          # registration voxel: diameter / voxel_per_diameter, clamped
    voxel_max_m: float = 0.01
    voxel_per_diameter: float = 25.0
    yaw_step_deg: float = 22.5          # spacing of the yaw hypotheses
    yaw_steps_max: int = 12             # objects without symmetry get at most this many
    ransac_max_iterations: int = 4000    # global registration is one hypothesis among several: kept cheap
    ransac_confidence: float = 0.99
    feature_voxel_factor: float = 1.5   # FPFH on a sparser copy of the cluster (speed)
    coarse_corr_m: float = 0.02         # first ICP pass, wide capture
    inlier_m: float = 0.005             # fitness threshold (at least one voxel)
    n_refine: int = 2                   # hypotheses refined finely and checked against the images
    rest_height_m: float = 0.03         # a cluster reaching below this rests on the table
    in_hand_m: float = 0.08             # a cluster centred this close to the TCP may be held
    visibility_tol_m: float = 0.01      # depth disagreement that counts as seeing through the model
    min_points: int = 15                # fewer registration points than this: not attempted
    max_candidates: int = 3             # clusters tried per object
    good_fitness: float = 0.8           # a candidate cluster fitting this well ends the search
    seed: int = 0


@dataclass(frozen=True)
class PoseResult:
    """T_world_object (4, 4) of the model; fitness = inlier fraction x (1 - contradiction)."""

    T_world_object: np.ndarray
    fitness: float
    icp_fitness: float
    rmse_m: float
    coverage: float          # supported fraction of the model surface the cameras should see
    contradiction: float     # fraction of it the cameras see through
    source: str              # which hypothesis won: "global", "yaw", "tcp"
    n_points: int            # observed points of the object
    cluster: Cluster | None = field(default=None, compare=False)


@dataclass(frozen=True, eq=False)
class DepthView:
    """One camera's depth (robot removed) for checking hypotheses against what was seen."""

    depth_m: np.ndarray
    K: np.ndarray
    T_camera_world: np.ndarray
    origin: np.ndarray

    @classmethod
    def from_frame(cls, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray) -> DepthView:
        T = np.asarray(T_world_camera, dtype=float)
        return cls(depth_m, np.asarray(K, dtype=float), np.linalg.inv(T), T[:3, 3].copy())


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
        pc = pts @ v.T_camera_world[:3, :3].T + v.T_camera_world[:3, 3]
        z = pc[:, 2]
        front = z > 1e-3
        pc, z = pc[front], z[front]
        u = np.round(v.K[0, 0] * pc[:, 0] / z + v.K[0, 2]).astype(np.int64)
        w = np.round(v.K[1, 1] * pc[:, 1] / z + v.K[1, 2]).astype(np.int64)
        H, W = v.depth_m.shape
        inside = (u >= 0) & (u < W) & (w >= 0) & (w < H)
        obs = v.depth_m[w[inside], u[inside]]
        z = z[inside]
        ok = np.isfinite(obs)
        obs, z = obs[ok], z[ok]
        total += len(z)
        supported += int(np.count_nonzero(np.abs(obs - z) <= tol_m))
        contradicted += int(np.count_nonzero(obs > z + tol_m))
    if total == 0:
        return 0.0, 0.0, 0
    return supported / total, contradicted / total, total


@dataclass(frozen=True, eq=False)
class _Prepared:
    voxel_m: float
    sparse: o3d.geometry.PointCloud      # ~one sample per voxel, with FPFH: global registration
    fpfh: reg.Feature
    dense: o3d.geometry.PointCloud       # denser samples: ICP target and fitness (no sparse-sampling bias)
    points: np.ndarray                   # sparse samples and their normals: the visibility check
    normals: np.ndarray
    center: np.ndarray
    bottom_z: float


def even_samples(mesh: trimesh.Trimesh, spacing_m: float, seed: int = 0, max_points: int = 20000
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Surface samples about spacing_m apart (one random sample kept per voxel), with their exact face normals.

    Averaging per voxel would cancel normals on thin double-sided walls, so a real sample is kept.
    """
    n = int(np.clip(8.0 * mesh.area / spacing_m**2, 500, 20 * max_points))
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=seed)
    keys = np.floor(pts / spacing_m).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    if len(first) > max_points:
        first = np.random.default_rng(seed).choice(first, max_points, replace=False)
    first = np.sort(first)
    return np.ascontiguousarray(pts[first]), np.ascontiguousarray(np.asarray(mesh.face_normals)[face[first]])


def _cloud(points: np.ndarray, normals: np.ndarray) -> o3d.geometry.PointCloud:
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    pc.normals = o3d.utility.Vector3dVector(np.ascontiguousarray(normals, dtype=np.float64))
    return pc


def _rz(deg: float) -> np.ndarray:
    return Rotation.from_euler("z", deg, degrees=True).as_matrix()


def _hybrid(radius: float, max_nn: int) -> o3d.geometry.KDTreeSearchParamHybrid:
    return o3d.geometry.KDTreeSearchParamHybrid(radius=float(radius), max_nn=int(max_nn))


class PoseEstimator:
    """Pose of one known model in one cluster of observed points; keeps the models' registration data."""

    def __init__(self, config: PoseConfig | None = None) -> None:
        self.config = config or PoseConfig()
        self._prepared: dict[tuple, _Prepared] = {}

    def prepare(self, model: ObjectModel) -> _Prepared:
        key = (model.urdf, model.scale)
        prep = self._prepared.get(key)
        if prep is not None:
            return prep
        cfg = self.config
        geom = model.geometry
        voxel = float(np.clip(geom.diameter / cfg.voxel_per_diameter, cfg.voxel_min_m, cfg.voxel_max_m))
        pts, normals = even_samples(geom.mesh, voxel, cfg.seed)
        sparse = _cloud(pts, normals)
        fpfh = reg.compute_fpfh_feature(sparse, _hybrid(5 * voxel, 100))
        dense_pts, dense_normals = even_samples(geom.mesh, float(np.clip(voxel / 2, 0.0025, 0.005)), cfg.seed)
        prep = _Prepared(voxel, sparse, fpfh, _cloud(dense_pts, dense_normals), pts, normals,
                         geom.bounds.mean(axis=0), float(geom.bounds[0, 2]))
        self._prepared[key] = prep
        return prep

    # ------------------------------------------------------------------ hypotheses
    def _yaws(self, model: ObjectModel) -> np.ndarray:
        period = _YAW_PERIOD_DEG.get(model.symmetry, 360.0)
        if model.symmetry == "cylinder":
            return np.zeros(1)
        n = int(min(self.config.yaw_steps_max, max(1, round(period / self.config.yaw_step_deg))))
        return np.arange(n) * period / n

    def _prior_hypotheses(self, model: ObjectModel, prep: _Prepared, pts: np.ndarray,
                          T_world_tcp: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
        cfg = self.config
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        center = (lo + hi) / 2.0
        resting = lo[2] < cfg.rest_height_m
        out = []
        for yaw in self._yaws(model):
            R = _rz(yaw)
            T = np.eye(4)
            T[:3, :3] = R
            T[:3, 3] = center - R @ prep.center
            if resting:
                T[2, 3] = -prep.bottom_z  # upright on the table
            out.append(("yaw", T))
        if T_world_tcp is not None and np.linalg.norm(pts.mean(axis=0) - T_world_tcp[:3, 3]) < cfg.in_hand_m:
            for yaw in self._yaws(model):
                R = T_world_tcp[:3, :3] @ _rz(yaw)
                T = np.eye(4)
                T[:3, :3] = R
                T[:3, 3] = center - R @ prep.center
                out.append(("tcp", T))
        return out

    def _global(self, src: o3d.geometry.PointCloud, prep: _Prepared) -> np.ndarray | None:
        """FPFH + RANSAC: T_model_scene, or None when it found nothing."""
        cfg = self.config
        voxel = prep.voxel_m
        if cfg.feature_voxel_factor > 1.0:
            src = src.voxel_down_sample(cfg.feature_voxel_factor * voxel)
            src.normalize_normals()
        if len(src.points) < 3 * cfg.min_points // 2:
            return None
        src_fpfh = reg.compute_fpfh_feature(src, _hybrid(5 * voxel, 100))
        dist = 1.5 * voxel
        result = reg.registration_ransac_based_on_feature_matching(
            src, prep.sparse, src_fpfh, prep.fpfh, False, dist,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
            reg.RANSACConvergenceCriteria(cfg.ransac_max_iterations, cfg.ransac_confidence))
        if result.fitness <= 0:
            return None
        return np.asarray(result.transformation)

    # ------------------------------------------------------------------ estimation
    def source_cloud(self, points: PointSet, voxel_m: float) -> o3d.geometry.PointCloud:
        """Cluster points at registration density, normals oriented towards the cameras that saw them."""
        down = voxel_downsample(points, voxel_m) if voxel_m > 1e-9 else points
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(down.points)))
        pc.estimate_normals(_hybrid(2.5 * voxel_m, 30))
        n = np.asarray(pc.normals)
        flip = np.einsum("ij,ij->i", n, down.view_origins - down.points) < 0
        n[flip] *= -1.0
        pc.normals = o3d.utility.Vector3dVector(n)
        return pc

    def estimate(self, model: ObjectModel, cluster: Cluster, views: list[DepthView] | None = None,
                 T_world_tcp: np.ndarray | None = None) -> PoseResult | None:
        cfg = self.config
        prep = self.prepare(model)
        src = self.source_cloud(cluster.points, prep.voxel_m)
        n_src = len(src.points)
        if n_src < cfg.min_points:
            return None
        pts = np.asarray(src.points)
        o3d.utility.random.seed(cfg.seed)
        hyps = [(name, np.linalg.inv(T)) for name, T in self._prior_hypotheses(model, prep, pts, T_world_tcp)]
        T_glob = self._global(src, prep)
        if T_glob is not None:
            hyps.append(("global", T_glob))
        p2l = reg.TransformationEstimationPointToPlane()
        inlier = max(cfg.inlier_m, prep.voxel_m)
        coarse = max(cfg.coarse_corr_m, 2 * prep.voxel_m)
        scored = []
        # Coarse pass against the sparse model (cheap), fine pass against the dense one for the best few.
        for name, T_ms in hyps:
            r = reg.registration_icp(src, prep.sparse, coarse, T_ms, p2l, reg.ICPConvergenceCriteria(max_iteration=15))
            ev = reg.evaluate_registration(src, prep.sparse, 1.5 * inlier, r.transformation)
            scored.append((ev.fitness - 0.1 * ev.inlier_rmse / inlier, name, np.asarray(r.transformation)))
        scored.sort(key=lambda s: s[0], reverse=True)
        best = None
        for _, name, T_ms in scored[: cfg.n_refine]:
            r = reg.registration_icp(src, prep.dense, inlier, T_ms, p2l, reg.ICPConvergenceCriteria(max_iteration=30))
            T_ms = np.asarray(r.transformation)
            # the ICP result's own fitness and RMSE are those at its final transformation and distance
            fit, rmse = float(r.fitness), float(r.inlier_rmse)
            T_wo = np.linalg.inv(T_ms)
            coverage, contradiction = 1.0, 0.0
            if views:
                pw = transform(T_wo, prep.points)
                nw = prep.normals @ T_wo[:3, :3].T
                coverage, contradiction, _ = visibility(pw, nw, views, cfg.visibility_tol_m)
            fitness = fit * (1.0 - contradiction)
            rank = fitness - 0.1 * rmse / inlier
            if best is None or rank > best[0]:
                best = (rank, PoseResult(T_wo, fitness, fit, rmse, coverage, contradiction, name, len(cluster),
                                         cluster))
        return None if best is None else best[1]


# ---------------------------------------------------------------------------------------------- assignment
def _group_by_proximity(clusters: list[Cluster], max_gap_m: float) -> list[list[Cluster]]:
    """Same-color clusters whose centroids are within max_gap_m of each other (an occluded object may split)."""
    groups: list[list[Cluster]] = []
    for c in sorted(clusters, key=len, reverse=True):
        for g in groups:
            if np.linalg.norm(g[0].centroid - c.centroid) < max_gap_m:
                g.append(c)
                break
        else:
            groups.append([c])
    return groups


def _merge(group: list[Cluster]) -> Cluster:
    if len(group) == 1:
        return group[0]
    return Cluster(PointSet.concatenate([c.points for c in group]), group[0].label)


def candidate_clusters(model: ObjectModel, label: int, clusters: list[Cluster], used: set[int],
                       max_candidates: int) -> list[tuple[Cluster, list[int]]]:
    """Clusters that could be this model: same color label (chromatic) or a compatible size (neutral)."""
    geom = model.geometry
    diameter, max_extent = geom.diameter, float(geom.extent.max())
    free = [(i, c) for i, c in enumerate(clusters) if i not in used]
    if label != NEUTRAL:
        same = [(i, c) for i, c in free if c.label == label]
        index_of = {id(c): i for i, c in same}
        out = []
        for g in _group_by_proximity([c for _, c in same], diameter):
            merged = _merge(g)
            if float(np.linalg.norm(merged.extent)) <= 1.5 * diameter + 0.02:
                out.append((merged, [index_of[id(c)] for c in g]))
        return out[:max_candidates]
    out = []
    for i, c in free:
        span = float(np.linalg.norm(c.extent))
        if c.label == NEUTRAL and 0.4 * max_extent <= span <= 1.5 * diameter + 0.03:
            out.append((c, [i]))
    # Closest in size first: a tray-sized cluster before a pebble.
    out.sort(key=lambda ci: abs(float(np.linalg.norm(ci[0].extent)) - diameter))
    return out[:max_candidates]
