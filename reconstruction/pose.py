"""6D pose of known objects: color-picked candidate clusters, global registration, ICP, verification.

Registration runs from the observed cluster (source) to the model surface (target): every observed point
should lie on the model, while most of the model is unseen, so this direction is not biased by the hidden
faces. Hypotheses come from FPFH + RANSAC global registration and, because objects rest on the table or in
the gripper, from yaw-only rotations (upright, and aligned with the TCP when the cluster is in the hand).
All are refined by point-to-plane ICP, ranked by fitness, coverage and inlier RMSE, and the best few are
checked against the depth images: a model surface that the cameras see through contradicts the hypothesis.
Symmetry (per catalog asset) limits the yaw hypotheses to one period (90 deg for a cube, one for a cylinder).
In an MPC loop the last step's pose is tried first (tracking); the search runs only when it no longer fits.

Objects at rest lie in one of their stable poses (trimesh.poses.compute_stable_poses on the model). A fit
within a few degrees of one is snapped to it, set down on the table if it nearly touches it, and refined
in the remaining degrees of freedom (x, y and yaw; z too when it rests on something else) by a constrained
point-to-plane Gauss-Newton; it is kept only if it explains the points about as well as the free fit. On
noisy depth this removes most of the tilt error, the largest one a few hundred noisy points leave. A resting
chromatic object then has x, y and yaw refined on its color outline in every image (silhouette.py).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np
import open3d as o3d

from reconstruction.depth_views import DepthView, visibility
from reconstruction.fusion import PointSet, transform, voxel_downsample
from reconstruction.models import ObjectModel
from reconstruction.pose_model import PreparedModel, hybrid, prepare_model
from reconstruction.repeatable import rounded_transform
from reconstruction.resting import (
    _align,
    fit_quality,
    hypothesis_rank,
    lean_direction,
    leaning_poses,
    planar_icp,
    planar_icp_many,
    turn_about,
)
from reconstruction.segmentation import Cluster
from reconstruction.silhouette import SilhouetteConfig, refine_on_silhouettes
from sim.geometry import rotation_error_deg
from sim.symmetry import MeshSymmetry

log = logging.getLogger(__name__)
reg = o3d.pipelines.registration


@dataclass(frozen=True)
class PoseConfig:
    voxel_min_m: float = 0.004          # registration voxel: diameter / voxel_per_diameter, clamped
    voxel_max_m: float = 0.01
    voxel_per_diameter: float = 25.0
    yaw_step_deg: float = 22.5          # spacing of the yaw hypotheses
    yaw_steps_max: int = 12             # objects without symmetry get at most this many
    ransac_max_iterations: int = 4000    # global registration is one hypothesis among several: kept cheap
    ransac_confidence: float = 0.99
    skip_global_score: float = 0.9     # a prior hypothesis whose coarse score reaches this: no global registration
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
    rest_snap_deg: float = 8.0          # a fit this close to a stable resting pose is snapped to it
    rest_contact_m: float = 0.012       # ... and set down on the table when its lowest point is this close
    rest_min_fitness_ratio: float = 0.94  # the constrained fit is kept if it explains this much of the free one
    rest_yaws_kept: int = 3             # per stable resting pose, the yaws (of yaw_steps) that look best are fitted
    yaws_kept: int = 4                  # free (6-DoF) fits from the upright yaws of a resting cluster: the best-looking
    # tilts towards (> 0) or away from what a resting object touches; off: measured not to help (docs/perception.md)
    lean_deg: tuple[float, ...] = ()
    lean_margin: float = 0.02           # ... and how much better a leaning fit must rank than the stable pose
    lean_contact_m: float = 0.01        # other points this close to the model's surface: something it touches
    coverage_weight: float = 0.2        # hypotheses rank by fitness x (1 - w + w x coverage) - rmse term
    silhouette: SilhouetteConfig = field(default_factory=SilhouetteConfig)   # resting, chromatic, convex objects
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("voxel_min_m", "voxel_max_m", "voxel_per_diameter", "yaw_step_deg", "inlier_m",
                     "coarse_corr_m", "visibility_tol_m", "rest_contact_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PoseConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.voxel_min_m > self.voxel_max_m:
            raise ValueError("PoseConfig: voxel_min_m must be <= voxel_max_m")
        for name in ("rest_min_fitness_ratio", "coverage_weight", "good_fitness", "ransac_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PoseConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        if min(self.n_refine, self.max_candidates, self.rest_yaws_kept, self.yaws_kept) < 1 or self.min_points < 3:
            raise ValueError("PoseConfig: n_refine, max_candidates, rest_yaws_kept and yaws_kept must be >= 1, "
                             "min_points >= 3")


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
    resting: str = ""        # "table": snapped to a stable pose on the table; "support": on something else
    rival: float = 0.0       # rank of the best clearly different hypothesis / the winner's (near 1: ambiguous)


def clearly_different(T_a: np.ndarray, T_b: np.ndarray, symmetry: str | MeshSymmetry, t_m: float = 0.02,
                      r_deg: float = 20.0) -> bool:
    """Two poses of one object that would not both count as right: over t_m apart or r_deg turned (symmetry-aware;
    a MeshSymmetry turns about its centre, so its translation is compared after the turn)."""
    if isinstance(symmetry, str):
        return bool(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3]) > t_m
                    or rotation_error_deg(T_a[:3, :3], T_b[:3, :3], symmetry) > r_deg)
    dt, dr = symmetry.pose_error(T_a, T_b)
    return bool(dt > t_m or dr > r_deg)


def _rz(deg: float) -> np.ndarray:
    return turn_about(np.array([0.0, 0.0, 1.0]), np.radians(deg))


class PoseEstimator:
    """Pose of one known model in one cluster of observed points; keeps the models' registration data."""

    def __init__(self, config: PoseConfig | None = None) -> None:
        self.config = config or PoseConfig()
        self._prepared: dict[tuple, PreparedModel] = {}

    def prepare(self, model: ObjectModel) -> PreparedModel:
        key = (model.urdf, model.scale, model.symmetry)
        prep = self._prepared.get(key)
        if prep is not None:
            return prep
        prep = prepare_model(model, self.config.voxel_min_m, self.config.voxel_max_m,
                             self.config.voxel_per_diameter, self.config.seed)
        self._prepared[key] = prep
        return prep

    # ------------------------------------------------------------------ hypotheses
    def _yaws(self, model: ObjectModel, up_object: np.ndarray | None = None) -> np.ndarray:
        """Yaw hypotheses (deg) about the world's up for a pose whose object-frame direction up_object (default
        the object's z) points up: one period of the symmetry's turns about it (none: a solid of revolution)."""
        order = self.prepare(model).symmetry.turn_order(np.array([0.0, 0.0, 1.0]) if up_object is None
                                                       else up_object)
        if not np.isfinite(order):
            return np.zeros(1)
        period = 360.0 / max(1.0, order)
        n = int(min(self.config.yaw_steps_max, max(1, round(period / self.config.yaw_step_deg))))
        return np.arange(n) * period / n

    def _prior_hypotheses(self, model: ObjectModel, prep: PreparedModel, pts: np.ndarray,
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
        if resting and len(out) > cfg.yaws_kept:
            # a free ICP per yaw is the costliest prior: only the yaws that look best before any fitting are fitted
            sub = self._look_points(pts)
            out = [out[i] for i in np.argsort([self._look(prep, sub, T) for _, T in out], kind="stable")]
            out = out[:cfg.yaws_kept]
        if T_world_tcp is not None and np.linalg.norm(pts.mean(axis=0) - T_world_tcp[:3, 3]) < cfg.in_hand_m:
            for yaw in self._yaws(model):
                R = T_world_tcp[:3, :3] @ _rz(yaw)
                T = np.eye(4)
                T[:3, :3] = R
                T[:3, 3] = center - R @ prep.center
                out.append(("tcp", T))
        return out

    def _rest_hypotheses(self, model: ObjectModel, prep: PreparedModel, pts: np.ndarray, up: np.ndarray,
                         table_d: float) -> list[tuple[str, np.ndarray]]:
        """For a cluster standing on the table: the model in each stable resting pose (upright, on its side, upside
        down) whose height matches the cluster's, at every yaw of one symmetry period, set down on the table."""
        if prep.rest_ups is None or len(prep.rest_ups) == 0:
            return []
        heights = pts @ up + table_d
        if heights.min() > self.config.rest_height_m:
            return []
        h_cluster = float(np.quantile(heights, 0.97))     # depth noise and flying pixels stretch the maximum
        poses = []
        for u in prep.rest_ups:
            R0 = _align(u, up)
            z = (prep.hull_vertices @ R0.T) @ up
            poses.append((abs(float(z.max() - z.min()) - h_cluster), u, R0))
        poses.sort(key=lambda hp: hp[0])
        tol = max(0.01, 0.2 * h_cluster)
        chosen = [(u, R0) for dh, u, R0 in poses[:4] if dh < tol] or [poses[0][1:]]
        center = (pts.min(axis=0) + pts.max(axis=0)) / 2.0
        sub = self._look_points(pts)
        out = []
        for u, R0 in chosen:
            per_pose = []
            for yaw in self._yaws(model, u):
                R = turn_about(up, np.radians(yaw)) @ R0
                T = np.eye(4)
                T[:3, :3] = R
                T[:3, 3] = center - R @ prep.center
                T[:3, 3] -= (self._lowest(prep, T, up) + table_d) * up
                per_pose.append((self._look(prep, sub, T), T))
            per_pose.sort(key=lambda ct: ct[0])
            out += [("rest", T) for _, T in per_pose[:self.config.rest_yaws_kept]]
        return out

    @staticmethod
    def _look_points(pts: np.ndarray) -> np.ndarray:
        return pts[np.random.default_rng(0).choice(len(pts), min(len(pts), 150), replace=False)]

    def _look(self, prep: PreparedModel, sub: np.ndarray, T_wo: np.ndarray) -> float:
        """A cheap look at a pose before any fitting: mean distance (capped) of _look_points to the sparse model."""
        cap = max(self.config.coarse_corr_m, 2 * prep.voxel_m)
        dist, _ = prep.sparse_tree.query((sub - T_wo[:3, 3]) @ T_wo[:3, :3], distance_upper_bound=cap)
        return float(np.mean(np.minimum(dist, cap)))

    def _global(self, src: o3d.geometry.PointCloud, prep: PreparedModel) -> np.ndarray | None:
        """FPFH + RANSAC: T_model_scene, or None when it found nothing."""
        cfg = self.config
        voxel = prep.voxel_m
        if cfg.feature_voxel_factor > 1.0:
            src = src.voxel_down_sample(cfg.feature_voxel_factor * voxel)
            src.normalize_normals()
        if len(src.points) < 3 * cfg.min_points // 2:
            return None
        src_fpfh = reg.compute_fpfh_feature(src, hybrid(5 * voxel, 100))
        dist = 1.5 * voxel
        result = reg.registration_ransac_based_on_feature_matching(
            src, prep.sparse, src_fpfh, prep.fpfh, False, dist,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9), reg.CorrespondenceCheckerBasedOnDistance(dist)],
            reg.RANSACConvergenceCriteria(cfg.ransac_max_iterations, cfg.ransac_confidence))
        if result.fitness <= 0:
            return None
        return rounded_transform(result.transformation)

    # ------------------------------------------------------------------ estimation
    def source_cloud(self, points: PointSet, voxel_m: float) -> o3d.geometry.PointCloud:
        """Cluster points at registration density, normals oriented towards the cameras that saw them."""
        down = voxel_downsample(points, voxel_m) if voxel_m > 1e-9 else points
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(down.points)))
        pc.estimate_normals(hybrid(2.5 * voxel_m, 30))
        n = np.asarray(pc.normals)
        flip = np.einsum("ij,ij->i", n, down.view_origins - down.points) < 0
        n[flip] *= -1.0
        pc.normals = o3d.utility.Vector3dVector(n)
        return pc

    def estimate(self, model: ObjectModel, cluster: Cluster, views: list[DepthView] | None = None,
                 T_world_tcp: np.ndarray | None = None, table_normal: np.ndarray | None = None,
                 table_d: float | None = None, color_mask=None, T_prior: np.ndarray | None = None,
                 scene_points: np.ndarray | None = None) -> PoseResult | None:
        """Best pose of the model in the cluster, or None when it has too few points to try.

        table_normal, table_d: the fitted table plane n . x + d = 0 (default z = 0), for the resting snap.
        color_mask: (h, w, 3) uint8 -> bool mask of the object's color; given (and views with rgb), a resting
        object whose outline is convex gets x, y and yaw refined on its color outlines (silhouette.py).
        T_prior: where the object was last found (tracking): tried first, and when it still fits well
        (good_fitness) the global search is skipped, which is what keeps an MPC step cheap.
        scene_points: (n, 3) all points above the table: an object resting on the table next to something it
        touches may lean on it (_lean).
        """
        cfg = self.config
        prep = self.prepare(model)
        src = self.source_cloud(cluster.points, prep.voxel_m)
        if len(src.points) < cfg.min_points:
            return None
        pts = np.asarray(src.points)
        o3d.utility.random.seed(cfg.seed)
        up = np.array([0.0, 0.0, 1.0]) if table_normal is None else np.asarray(table_normal, dtype=float)
        d = 0.0 if table_d is None else float(table_d)
        held = T_world_tcp is not None and np.linalg.norm(pts.mean(axis=0) - T_world_tcp[:3, 3]) < cfg.in_hand_m
        ctx = (prep, src, pts, views, up, d, held, len(cluster), cluster, prep.symmetry)
        best = None
        if T_prior is not None:
            best = self._refine(ctx, self._coarse(ctx, [("track", np.linalg.inv(T_prior))]), 1)
            if best is not None and best[1].fitness < cfg.good_fitness:
                best = None
        if best is None:
            prior = self._prior_hypotheses(model, prep, pts, T_world_tcp)
            if not held:
                prior += self._rest_hypotheses(model, prep, pts, up, d)
            hyps = [(name, np.linalg.inv(T)) for name, T in prior]
            if T_prior is not None:
                hyps.append(("track", np.linalg.inv(T_prior)))
            scored = self._coarse(ctx, hyps)
            # global registration (FPFH + RANSAC, the costliest hypothesis) only when no prior one already fits
            if max((sc[0] for sc in scored), default=0.0) < cfg.skip_global_score:
                T_glob = self._global(src, prep)
                if T_glob is not None:
                    scored += self._coarse(ctx, [("global", T_glob)])
            best = self._refine(ctx, scored, cfg.n_refine)
        if best is None:
            return None
        result = best[1]
        if result.resting == "table" and scene_points is not None and cfg.lean_deg:
            result = self._lean(prep, pts, result, up, d, views, np.asarray(scene_points, dtype=float))
        if (result.resting and color_mask is not None and views and prep.convex_outline
                and cfg.silhouette.enabled):
            result = self._silhouette(prep, pts, result, up, views, color_mask, self._inlier(prep))
        return result

    def _rank(self, prep: PreparedModel, fit: float, coverage: float, contradiction: float, rmse: float) -> float:
        """How the hypotheses of one object are ranked: fitness (less what the cameras see through), coverage, RMSE."""
        w, inlier = self.config.coverage_weight, self._inlier(prep)
        return fit * (1.0 - contradiction) * (1.0 - w + w * coverage) - 0.1 * rmse / inlier

    def _lean(self, prep: PreparedModel, pts: np.ndarray, res: PoseResult, up: np.ndarray, table_d: float, views,
              scene_points: np.ndarray) -> PoseResult:
        """An object snapped to a stable pose on the table, touching something: the stable pose tilted towards what
        it touches (lean_deg), fitted in x, y and yaw with its lowest point on the table, replaces it when it ranks
        better by lean_margin (a lean must be shown by the points; a free-standing object keeps its stable pose)."""
        cfg = self.config
        inlier = self._inlier(prep)
        direction = lean_direction(prep, pts, res.T_world_object, up, table_d, scene_points, cfg.lean_contact_m,
                                   cfg.min_points)
        if direction is None:
            return res
        Ts = planar_icp_many(prep, pts, leaning_poses(prep, res.T_world_object, up, direction, cfg.lean_deg), up,
                             fix_height=True, max_corr_m=inlier)
        base = self._rank(prep, res.icp_fitness, res.coverage, res.contradiction, res.rmse_m)
        best, best_rank = res, base + cfg.lean_margin
        for T in Ts:
            T[:3, 3] -= (self._lowest(prep, T, up) + table_d) * up
            fit, rmse = fit_quality(prep, pts, T, inlier)
            coverage, contradiction = 1.0, 0.0
            if views:
                coverage, contradiction, _ = visibility(transform(T, prep.points), prep.normals @ T[:3, :3].T, views,
                                                        cfg.visibility_tol_m)
            rank = self._rank(prep, fit, coverage, contradiction, rmse)
            if rank > best_rank:
                best, best_rank = dataclasses.replace(res, T_world_object=T, fitness=fit * (1.0 - contradiction),
                                                      icp_fitness=fit, rmse_m=rmse, coverage=coverage,
                                                      contradiction=contradiction, resting="leaning"), rank
        return best

    def _inlier(self, prep: PreparedModel) -> float:
        return max(self.config.inlier_m, prep.voxel_m)

    def _coarse(self, ctx, hyps: list[tuple[str, np.ndarray]]) -> list[tuple[float, str, np.ndarray]]:
        """Coarse ICP of every hypothesis (T_model_scene) against the sparse model: [(score, name, T_model_scene)]."""
        cfg = self.config
        prep, src, pts, views, up, d, held, n_points, cluster, symmetry = ctx
        p2l = reg.TransformationEstimationPointToPlane()
        inlier = self._inlier(prep)
        coarse = max(cfg.coarse_corr_m, 2 * prep.voxel_m)
        scored = []
        # a resting pose keeps its tilt: only x, y and yaw are fitted, all resting hypotheses in one batch
        rest = [i for i, (name, _) in enumerate(hyps) if name == "rest"]
        rest_fit = {}
        if rest:
            Ts_wo = planar_icp_many(prep, pts, np.linalg.inv(np.array([hyps[i][1] for i in rest])), up,
                                    fix_height=True, max_corr_m=coarse, iterations=6, max_points=200, sparse=True)
            rest_fit = dict(zip(rest, np.linalg.inv(Ts_wo)))
        for i, (name, T_ms) in enumerate(hyps):
            if name == "rest":
                T_new = rest_fit[i]
            else:
                T_new = reg.registration_icp(src, prep.sparse, coarse, T_ms, p2l,
                                             reg.ICPConvergenceCriteria(max_iteration=15)).transformation
            T_new = rounded_transform(T_new)   # threaded ICP sums differ in the last bits (repeatable.py)
            ev = reg.evaluate_registration(src, prep.sparse, 1.5 * inlier, T_new)
            scored.append((round(ev.fitness - 0.1 * ev.inlier_rmse / inlier, 9), name, T_new))
        return scored

    def _refine(self, ctx, scored: list[tuple[float, str, np.ndarray]], n_refine: int
                ) -> tuple[float, PoseResult] | None:
        """For the best n_refine coarse fits (_coarse) a fine ICP against the dense model, the resting snap and the
        check against the images; the best (rank, result)."""
        cfg = self.config
        prep, src, pts, views, up, d, held, n_points, cluster, symmetry = ctx
        p2l = reg.TransformationEstimationPointToPlane()
        inlier = self._inlier(prep)
        scored = sorted(scored, key=lambda s: s[0], reverse=True)
        chosen = scored[:n_refine]
        # the best free fit and the best fit in each resting pose (upright, on a side, upside down) are all refined:
        # a few noisy points rank them wrongly at the coarse stage, the image check below can tell them apart
        ups = []
        for sc in scored:
            if sc[1] == "rest":
                u = np.linalg.inv(sc[2])[:3, :3].T @ up       # the object-frame direction pointing up
                if any(float(u @ v) > 0.95 for v in ups):
                    continue
                ups.append(u)
            elif any(c[1] != "rest" for c in chosen):
                continue
            if all(sc is not c for c in chosen):
                chosen.append(sc)
        ranked: list[tuple[float, PoseResult]] = []
        rest = [i for i, c in enumerate(chosen) if c[1] == "rest"]
        rest_fit = {}
        if rest:
            rest_fit = dict(zip(rest, planar_icp_many(prep, pts, np.linalg.inv(np.array([chosen[i][2] for i in rest])),
                                                      up, fix_height=True, max_corr_m=inlier)))
        for i, (_, name, T_ms) in enumerate(chosen):
            resting = ""
            if name == "rest":
                T_wo = rest_fit[i]
                T_wo[:3, 3] -= (self._lowest(prep, T_wo, up) + d) * up
                fit, rmse = fit_quality(prep, pts, T_wo, inlier)
                resting = "table"
            else:
                r = reg.registration_icp(src, prep.dense, inlier, T_ms, p2l,
                                         reg.ICPConvergenceCriteria(max_iteration=30))
                T_wo = rounded_transform(np.linalg.inv(rounded_transform(r.transformation)))
                fit, rmse = fit_quality(prep, pts, T_wo, inlier)
            if not held and not resting:
                snapped = self._rest_refine(prep, pts, T_wo, up, d, inlier)
                if snapped is not None:
                    T_rest, resting = snapped
                    fit_r, rmse_r = fit_quality(prep, pts, T_rest, inlier)
                    if fit_r >= cfg.rest_min_fitness_ratio * fit:
                        T_wo, fit, rmse = T_rest, fit_r, rmse_r
                    else:
                        resting = ""
            coverage, contradiction = 1.0, 0.0
            if views:
                pw = transform(T_wo, prep.points)
                nw = prep.normals @ T_wo[:3, :3].T
                coverage, contradiction, _ = visibility(pw, nw, views, cfg.visibility_tol_m)
            fitness = fit * (1.0 - contradiction)
            rank = hypothesis_rank(fitness, coverage, rmse, inlier, cfg.coverage_weight)
            ranked.append((rank, PoseResult(T_wo, fitness, fit, rmse, coverage, contradiction, name, n_points,
                                             cluster, resting)))
        if not ranked:
            return None
        rank, best = max(ranked, key=lambda r: r[0])
        rivals = [r for r, res in ranked if clearly_different(res.T_world_object, best.T_world_object, symmetry)]
        if rivals and rank > 0:
            best = dataclasses.replace(best, rival=float(np.clip(max(rivals) / rank, 0.0, 1.0)))
        return rank, best

    def _silhouette(self, prep: PreparedModel, pts: np.ndarray, res: PoseResult, up: np.ndarray, views, color_mask,
                    inlier: float) -> PoseResult:
        cfg = self.config
        out = refine_on_silhouettes(prep.hull_vertices, res.T_world_object, up, views, color_mask, cfg.silhouette)
        if out is None:
            return res
        T_wo, info = out
        fit, rmse = fit_quality(prep, pts, T_wo, inlier)
        if fit < 0.9 * res.icp_fitness:      # the outline and the depth disagree: keep the depth's answer
            log.debug("silhouette pose rejected: depth fitness %.2f -> %.2f (%s)", res.icp_fitness, fit, info)
            return res
        pw = transform(T_wo, prep.points)
        nw = prep.normals @ T_wo[:3, :3].T
        coverage, contradiction, _ = visibility(pw, nw, views, cfg.visibility_tol_m)
        return dataclasses.replace(res, T_world_object=T_wo, fitness=fit * (1.0 - contradiction), icp_fitness=fit,
                                   rmse_m=rmse, coverage=coverage, contradiction=contradiction,
                                   source=res.source + "+silhouette")

    # ------------------------------------------------------------------ resting objects
    def _rest_refine(self, prep: PreparedModel, pts: np.ndarray, T_wo: np.ndarray, up: np.ndarray, table_d: float,
                     inlier_m: float) -> tuple[np.ndarray, str] | None:
        """Snap a fit near a stable pose onto it and refine the free degrees of freedom; None if not near one."""
        cfg = self.config
        R = T_wo[:3, :3]
        if len(prep.stable_ups) == 0:
            return None
        cos = prep.stable_ups @ (R.T @ up)
        k = int(np.argmax(cos))
        if np.degrees(np.arccos(np.clip(cos[k], -1.0, 1.0))) > cfg.rest_snap_deg:
            return None
        R_new = _align(R @ prep.stable_ups[k], up) @ R
        c_world = R @ prep.center + T_wo[:3, 3]
        T = np.eye(4)
        T[:3, :3] = R_new
        T[:3, 3] = c_world - R_new @ prep.center
        gap = self._lowest(prep, T, up) + table_d      # signed height of the lowest point above the table
        on_table = abs(gap) < cfg.rest_contact_m
        if on_table:
            T[:3, 3] -= gap * up
        T = planar_icp(prep, pts, T, up, fix_height=on_table, max_corr_m=2.0 * inlier_m)
        T = planar_icp(prep, pts, T, up, fix_height=on_table, max_corr_m=inlier_m)
        if on_table:
            T[:3, 3] -= (self._lowest(prep, T, up) + table_d) * up
        return T, "table" if on_table else "support"

    @staticmethod
    def _lowest(prep: PreparedModel, T: np.ndarray, up: np.ndarray) -> float:
        """min over the model of up . x in the world (up . x + d is the height above the table plane)."""
        return float(np.min((prep.hull_vertices @ T[:3, :3].T + T[:3, 3]) @ up))
