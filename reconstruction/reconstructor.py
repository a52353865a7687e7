"""Observation -> SceneEstimate, once per MPC step, from the cameras and the arm state only (never truth).

Stages (each timed): robot pixels removed by rendering the arm at its measured joints; frames fused into
one cloud; table plane fitted and removed; the rest voxelised, segmented by geometry and color; each named
object posed against its CAD model; what no model explains becomes convex-hull clutter.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from reconstruction.clutter import hull_object
from reconstruction.config import ReconConfig
from reconstruction.estimate import EstimatedObject, SceneEstimate
from reconstruction.fusion import Fuser, PointSet, voxel_downsample
from reconstruction.models import ObjectModel
from reconstruction.pose import DepthView, PoseEstimator, PoseResult, candidate_clusters
from reconstruction.robot_filter import RobotFilter
from reconstruction.segmentation import (
    ColorDbscanSegmenter,
    Segmenter,
    dbscan,
    fit_table_plane,
)
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.scene import RobotSpec

if TYPE_CHECKING:
    from robot_io.observation import Observation

log = logging.getLogger(__name__)


class Reconstructor:
    """Rebuilds the table scene each step. Owns a private PyBullet client (the robot only); close() it.

    models: object name (as the task names it) -> its catalog model. cameras: the lab cameras, optional;
    given, the robot renderer is warmed up for them at construction. client: an empty PyBullet client to
    render the robot in (else one is created and closed here). segmenter: replaces the color + DBSCAN one.
    """

    def __init__(self, models: dict[str, ObjectModel], robot: RobotSpec,
                 cameras: list[CameraSpec] | tuple[CameraSpec, ...] | None = None,
                 config: ReconConfig | None = None, client: int | None = None,
                 segmenter: Segmenter | None = None) -> None:
        self.config = config or ReconConfig()
        for name, model in models.items():
            if not isinstance(model, ObjectModel):
                raise TypeError(f"Reconstructor: model for '{name}' is a {type(model).__name__}, not an ObjectModel")
        self.models = dict(models)
        self.robot = robot
        self.cameras = tuple(cameras or ())
        cfg = self.config
        if cfg.crop_min_xyz is not None:
            self.crop_min, self.crop_max = np.asarray(cfg.crop_min_xyz), np.asarray(cfg.crop_max_xyz)
        else:
            margin = np.array([cfg.crop_margin_m, cfg.crop_margin_m, cfg.crop_margin_m])
            self.crop_min = np.asarray(robot.workspace_min_xyz) - margin
            self.crop_min[2] = min(-0.02, robot.workspace_min_xyz[2])   # keep the table: the plane fit needs it
            self.crop_max = np.asarray(robot.workspace_max_xyz) + margin
        self.fuser = Fuser(self.crop_min, self.crop_max)
        self.segmenter = segmenter or ColorDbscanSegmenter(
            [m.rgba[:3] for m in self.models.values()], eps_m=cfg.cluster_eps_m, min_points=cfg.cluster_min_points,
            min_cluster_points=cfg.min_cluster_points, max_color_dist=cfg.max_color_dist)
        self.pose_estimator = PoseEstimator(cfg.pose)
        for model in self.models.values():
            self.pose_estimator.prepare(model)  # model sampling and features once, not in the first step
        self._last_pose: dict[str, Pose] = {}
        self.robot_filter = RobotFilter(robot, client, depth_tol_m=cfg.robot_depth_tol_m,
                                        dilate_px=cfg.robot_dilate_px, proxy=cfg.robot_proxy,
                                        renderer=cfg.robot_renderer, downscale=cfg.robot_render_downscale)
        try:
            if cfg.warm_up:
                for cam in self.cameras:
                    self.fuser.prepare((cam.height, cam.width), cam.K, cam.T_world_camera_matrix)
                    self.robot_filter.mask(np.ones((cam.height, cam.width), np.float32), cam.K,
                                           cam.T_world_camera_matrix, cam.name)
        except Exception:
            self.robot_filter.close()
            raise

    def close(self) -> None:
        self.robot_filter.close()

    def __enter__(self) -> Reconstructor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ one step
    def update(self, obs: Observation) -> SceneEstimate:
        """obs: robot_io.observation.Observation (frames with K and T_world_camera, joint and gripper state)."""
        cfg = self.config
        timings: dict[str, float] = {}
        notes: list[str] = []
        t_start = t = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal t
            now = time.perf_counter()
            timings[stage] = now - t
            t = now

        frames = tuple(obs.frames)
        if not frames:
            raise ValueError("Reconstructor.update: the observation has no camera frames")
        depths = self.robot_filter.masked_depths(frames, obs.joint_pos_rad, obs.gripper_width_m)
        lap("robot_mask")
        per_frame = self.fuser.frames(frames, depths)
        lap("fusion")
        # The plane is fitted on a sparse sample of the points near z = 0; only the points above it are
        # ever gathered at full resolution (the table is most of every image).
        band = cfg.table_max_offset_m + 0.01
        with np.errstate(invalid="ignore"):
            low = PointSet.concatenate([fp.select(np.abs(fp.z) < band, stride=cfg.table_sample_stride)
                                        for fp in per_frame])
            table = fit_table_plane(low.points, cfg.table_max_tilt_deg, cfg.table_max_offset_m, cfg.table_inlier_m,
                                    band_m=band)
            if table.note:
                notes.append(table.note)
            above = PointSet.concatenate([
                fp.select(table.signed_distance_xyz(fp.x, fp.y, fp.z) > cfg.table_clearance_m) for fp in per_frame])
        lap("table")
        points = voxel_downsample(above, cfg.voxel_m)
        lap("voxel")
        clusters = self.segmenter.segment(points)
        lap("segment")
        views = [DepthView.from_frame(d, f.K, f.T_world_camera) for f, d in zip(frames, depths)]
        T_world_tcp = np.asarray(obs.T_world_tcp, dtype=float)
        results = self._pose_objects(clusters, views, T_world_tcp, notes)
        objects = {}
        for name in self.models:
            res = results.get(name)
            objects[name] = self._estimated(name, res, obs, T_world_tcp, notes)
        lap("pose")
        closed = obs.gripper_width_m < self.robot.gripper_max_width_m - cfg.held_max_gap_m
        unknown = self._unknown(points, objects, notes, T_world_tcp[:3, 3] if closed else None)
        lap("unknown")
        timings["total"] = time.perf_counter() - t_start
        log.debug("reconstruction timings %s", {k: round(v, 4) for k, v in timings.items()})
        return SceneEstimate(objects=objects, unknown=tuple(unknown), timings_s=timings, notes=tuple(notes),
                             table=table)

    # ------------------------------------------------------------------ named objects
    def _label(self, model: ObjectModel) -> int:
        if isinstance(self.segmenter, ColorDbscanSegmenter) and model.chromatic:
            return self.segmenter.label_of(model.rgba[:3])
        return -1

    def _pose_objects(self, clusters, views, T_world_tcp, notes) -> dict[str, PoseResult]:
        cfg = self.config
        used: set[int] = set()
        results: dict[str, PoseResult] = {}
        # Objects with a distinctive color first: their clusters are unambiguous; the neutral ones
        # (matched by size and shape) then choose among what is left.
        order = sorted(self.models, key=lambda n: (not self.models[n].chromatic, n))
        for name in order:
            model = self.models[name]
            cands = candidate_clusters(model, self._label(model), clusters, used, cfg.pose.max_candidates)
            if not cands:
                notes.append(f"'{name}': no candidate cluster ({'color' if model.chromatic else 'size'} match)")
                continue
            best, best_idx = None, None
            for cluster, idx in cands:
                res = self.pose_estimator.estimate(model, cluster, views, T_world_tcp)
                if res is not None and (best is None or res.fitness > best.fitness):
                    best, best_idx = res, idx
                if best is not None and best.fitness >= cfg.pose.good_fitness:
                    break
            if best is None:
                notes.append(f"'{name}': too few points to register")
                continue
            results[name] = best
            if best.fitness >= cfg.min_fitness:
                used.update(best_idx)
        return results

    def _estimated(self, name: str, res: PoseResult | None, obs, T_world_tcp, notes) -> EstimatedObject:
        cfg = self.config
        if res is None or res.fitness < cfg.min_fitness:
            if res is not None:
                notes.append(f"'{name}': best match fitness {res.fitness:.2f} < {cfg.min_fitness}; not found")
            pose = self._last_pose.get(name, Pose.identity())
            return EstimatedObject(name, pose, 0.0 if res is None else res.fitness, False,
                                   0 if res is None else res.n_points)
        pose = Pose.from_matrix(res.T_world_object)
        self._last_pose[name] = pose
        model = self.models[name]
        gap = np.linalg.norm(res.T_world_object[:3, 3] - T_world_tcp[:3, 3])
        closed = obs.gripper_width_m < self.robot.gripper_max_width_m - cfg.held_max_gap_m
        held = bool(closed and gap < max(0.03, 0.5 * model.geometry.diameter))
        if held and res.fitness < 0.8:
            notes.append(f"'{name}': held, partly hidden by the fingers (fitness {res.fitness:.2f})")
        return EstimatedObject(name, pose, res.fitness, True, res.n_points, res.rmse_m, res.coverage, held,
                               res.source)

    # ------------------------------------------------------------------ clutter
    def _unknown(self, points: PointSet, objects: dict[str, EstimatedObject], notes,
                 closed_tcp_xyz: np.ndarray | None) -> list:
        cfg = self.config
        if len(points) == 0:
            return []
        keep = np.ones(len(points), dtype=bool)
        surfaces = []
        for name, est in objects.items():
            if est.found:
                T = est.pose.matrix()
                surfaces.append(self.models[name].points @ T[:3, :3].T + T[:3, 3])
        if surfaces:
            dist, _ = cKDTree(np.concatenate(surfaces)).query(points.points, distance_upper_bound=cfg.explain_m)
            keep = ~np.isfinite(dist)
        rest = points.subset(keep)
        if len(rest) < cfg.clutter_min_points:
            return []
        ids = dbscan(rest.points, cfg.cluster_eps_m, cfg.cluster_min_points)
        out = []
        for k in range(ids.max(initial=-1) + 1):
            members = np.flatnonzero(ids == k)
            if len(members) < cfg.clutter_min_points:
                continue
            spec = hull_object(f"clutter_{len(out)}", rest.subset(members), cfg.clutter_rest_height_m)
            if spec is None:
                notes.append(f"unknown cluster of {len(members)} points is too flat for a hull; skipped")
                continue
            if closed_tcp_xyz is not None and np.linalg.norm(np.asarray(spec.pose.xyz) - closed_tcp_xyz) < 0.05:
                notes.append(f"{spec.name}: an unknown object between the closed fingers (held?); kept as a fixed "
                             "obstacle")
            out.append(spec)
        return out
