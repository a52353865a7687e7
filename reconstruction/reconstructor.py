"""Observation -> SceneEstimate, once per MPC step, from the cameras and the arm state only (never truth).

Stages (each timed): frames checked for units and pose (checks); robot pixels removed by rendering the arm at
its measured joints (robot_mask); flying pixels dropped and the frames back-projected into one world-frame
cloud (fusion); the table plane fitted and everything within the table's measured depth noise of it removed
(table); the rest voxelised (voxel) and segmented by geometry and color (segment); each named object posed
against its CAD model (pose); what no model explains meshed as convex obstacles (unknown).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from reconstruction.appearance import look_for, look_rank, model_appearance
from reconstruction.assignment import assign_best_first
from reconstruction.candidates import candidate_clusters
from reconstruction.checks import check_frame
from reconstruction.clutter import UnknownMesher, UnknownObject
from reconstruction.config import ReconConfig
from reconstruction.depth_views import DepthView, seen_through
from reconstruction.estimate import EstimatedObject, Issue, SceneEstimate
from reconstruction.fusion import Fuser, PointSet, jump_edges, voxel_downsample
from reconstruction.models import ObjectModel
from reconstruction.pose import PoseEstimator, PoseResult
from reconstruction.repeatable import one_thread
from reconstruction.robot_filter import RobotFilter
from reconstruction.segmentation import (
    NEUTRAL,
    Cluster,
    ColorDbscanSegmenter,
    SegmentationContext,
    Segmenter,
    TablePlane,
    color_labels,
    dbscan,
    fit_table_plane,
    table_noise_per_m2,
)
from reconstruction.split import explained_part, leftover_clusters
from reconstruction.supports import split_oversized
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.scene import RobotSpec

if TYPE_CHECKING:
    from robot_io.observation import Observation

log = logging.getLogger(__name__)


def color_hint(model: ObjectModel) -> tuple[float, float, float] | None:
    """The colour to find the object by: the task's hint when it is chromatic (a grey hint tells nothing), else
    the model's own distinctive colour when it has one, else None (found by shape)."""
    if model.rgba is not None:
        return tuple(model.rgba[:3]) if model.chromatic else None
    return model_appearance(model.urdf, model.scale).hint()


class Reconstructor:
    """Rebuilds the table scene each step. Owns a private PyBullet client (the robot only); close() it.

    models: object name (as the task names it) -> its catalog model. cameras: the lab cameras, optional;
    given, the robot renderer is warmed up for them at construction. client: an empty PyBullet client to
    render the robot in (else one is created and closed here). segmenter: replaces the color + DBSCAN one
    (for example ProjectedMaskSegmenter around a learned image segmenter).
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
        # A colour to look for per object: the task's hint, else the model's own distinctive colour (appearance.py)
        self.color_hints = {name: color_hint(m) for name, m in self.models.items()}
        # A textured model's print, to tell same-shape look-alikes apart in the assignment (appearance.look_rank)
        self.looks = {name: look_for(m) for name, m in self.models.items()}
        # the largest segment a named object can be (candidates.candidate_clusters' size window)
        self._largest_candidate_m = max((1.5 * m.geometry.diameter + 0.03 for m in self.models.values()), default=0.0)
        self.segmenter = segmenter or ColorDbscanSegmenter(
            [h for h in self.color_hints.values() if h is not None], eps_m=cfg.cluster_eps_m,
            min_points=cfg.cluster_min_points,
            min_cluster_points=cfg.min_cluster_points, max_color_dist=cfg.max_color_dist)
        self.pose_estimator = PoseEstimator(cfg.pose)
        for model in self.models.values():
            self.pose_estimator.prepare(model)  # model sampling and features once, not in the first step
        self.mesher = UnknownMesher(cfg.clutter)
        self._last_pose: dict[str, Pose] = {}
        self.remembered: dict[str, Pose] = {}   # where the caller's twin keeps each object (see remember)
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
    def remember(self, poses: dict[str, Pose]) -> None:
        """Where the caller's twin keeps its objects (the planner's memory). An object not found this step is
        kept there by the twin, so its points there are not an unknown obstacle: left in one (LIBERO-Spatial task
        9: the bowl on the cabinet, fitted doubtfully, merged into the cabinet's obstacle), the remembered bowl
        was pushed up onto its own points, 5 cm too high, and every grasp lifted it through the obstacle."""
        self.remembered = dict(poses)

    def update(self, obs: Observation) -> SceneEstimate:
        """obs: robot_io.observation.Observation (frames with K and T_world_camera, joint and gripper state).

        Raises checks.FrameError for a frame whose units or pose cannot be right; a frame that is only useless
        this time (no depth, looking away) is skipped and reported as a 'camera' issue.
        """
        with one_thread():      # Open3D's threads make the same observation give different fits (repeatable.py)
            return self._update(obs)

    def _update(self, obs: Observation) -> SceneEstimate:
        cfg = self.config
        timings: dict[str, float] = {}
        notes: list[str] = []
        issues: list[Issue] = []
        t_start = t = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal t
            now = time.perf_counter()
            timings[stage] = now - t
            t = now

        frames = tuple(obs.frames)
        if not frames:
            raise ValueError("Reconstructor.update: the observation has no camera frames")
        checks = [check_frame(f.name, f.depth_m, f.K, f.T_world_camera, self.crop_min, self.crop_max) for f in frames]
        for c in checks:
            if c.issue:
                notes.append(c.issue)
                if not c.usable:
                    issues.append(Issue("camera", c.name, c.issue))
        frames = tuple(f for f, c in zip(frames, checks) if c.usable)
        if not frames:
            issues.append(Issue("camera", "", "no usable camera frame: nothing can be reconstructed this step"))
        lap("checks")
        robot_masks = self.robot_filter.masks(frames, obs.joint_pos_rad, obs.gripper_width_m)
        depths = [np.where(m, np.float32(np.nan), np.asarray(f.depth_m, dtype=np.float32))
                  for f, m in zip(frames, robot_masks)]
        lap("robot_mask")
        if cfg.edge_jump_per_m > 0:
            depths = [np.where(jump_edges(d, cfg.edge_jump_per_m), np.float32(np.nan), d) for d in depths]
        per_frame = self.fuser.frames(frames, depths)
        lap("fusion")
        table, clear, low = self._split_at_table(per_frame, notes, issues)
        lap("table")
        points = voxel_downsample(clear, cfg.voxel_m)
        low = voxel_downsample(low, cfg.voxel_m)
        lap("voxel")
        context = SegmentationContext(tuple(frames), tuple(depths), table)
        clusters = self.segmenter.segment(points, context)
        if cfg.supports is not None:
            # an object standing on a cabinet is one segment with it, too large to be any named object: cut at the
            # support's top (a segment a model could be is left whole: a bowl nested in a plate is fitted as before)
            clusters = split_oversized(clusters, self._largest_candidate_m, cfg.cluster_eps_m, cfg.cluster_min_points,
                                       cfg.min_cluster_points, cfg.supports)
        lap("segment")
        views = [DepthView.from_frame(d, f.K, f.T_world_camera, f.rgb, m)
                 for f, d, m in zip(frames, depths, robot_masks)]
        T_world_tcp = np.asarray(obs.T_world_tcp, dtype=float)
        closed = obs.gripper_width_m < self.robot.gripper_max_width_m - cfg.held_max_gap_m
        reasons: dict[str, str] = {}
        # Only closed fingers can hold something: with an open gripper every object is posed as resting, also
        # the one the fingers are about to close on (that is when its yaw matters most).
        results = self._pose_objects(clusters, low, views, T_world_tcp if closed else None, reasons, table,
                                     points.points)
        objects = {name: self._estimated(name, results.get(name), obs, T_world_tcp, reasons, notes, issues)
                   for name in self.models}
        lap("pose")
        clutter = self._unknown(points, objects, table, views, notes, issues,
                                T_world_tcp[:3, 3] if closed else None)
        lap("unknown")
        timings["total"] = time.perf_counter() - t_start
        log.debug("reconstruction timings %s", {k: round(v, 4) for k, v in timings.items()})
        return SceneEstimate(objects=objects, unknown=tuple(p for c in clutter for p in c.parts), timings_s=timings,
                             notes=tuple(notes), table=table, clutter=tuple(clutter), issues=tuple(issues),
                             cameras_used=tuple(f.name for f in frames))

    # ------------------------------------------------------------------ table
    def _split_at_table(self, per_frame, notes, issues) -> tuple[TablePlane, PointSet, PointSet]:
        """Fit the table; return it, the points clearly above it, and the low ones (above table_clearance_m
        but within the table's noise): those only help pose objects already found among the clear ones."""
        cfg = self.config
        # The plane is fitted on a sparse sample of the points near z = 0; only the points above it are
        # ever gathered at full resolution (the table is most of every image).
        band = cfg.table_max_offset_m + 0.01
        with np.errstate(invalid="ignore"):
            lows = [fp.select(np.abs(fp.z) < band, stride=cfg.table_sample_stride) for fp in per_frame]
            table = fit_table_plane(PointSet.concatenate(lows).points, cfg.table_max_tilt_deg,
                                    cfg.table_max_offset_m, cfg.table_inlier_m, band_m=band)
            if table.note:
                notes.append(table.note)
                if per_frame:
                    issues.append(Issue("table", "", table.note))
            clear, low = [], []
            for fp, lp in zip(per_frame, lows):
                # Table noise must not become objects: a point is clear of the table only beyond
                # table_clearance_sigma times this camera's measured table noise at the point's range.
                noise = table_noise_per_m2(table, lp.points, fp.origin)
                r2 = (fp.x - fp.origin[0]) ** 2 + (fp.y - fp.origin[1]) ** 2 + (fp.z - fp.origin[2]) ** 2
                clearance = np.maximum(np.float32(cfg.table_clearance_m),
                                       np.float32(cfg.table_clearance_sigma * noise) * r2)
                height = table.signed_distance_xyz(fp.x, fp.y, fp.z)
                clear.append(fp.select(height > clearance))
                low.append(fp.select((height > cfg.table_clearance_m) & (height <= clearance)))
        return table, PointSet.concatenate(clear), PointSet.concatenate(low)

    # ------------------------------------------------------------------ named objects
    def _label(self, name: str) -> int:
        if isinstance(self.segmenter, ColorDbscanSegmenter) and self.color_hints[name] is not None:
            return self.segmenter.label_of(self.color_hints[name])
        return NEUTRAL

    def _color_mask(self, name: str):
        """image window (h, w, 3) uint8 -> mask of the model's color label, or None when color cannot tell."""
        label = self._label(name)
        if label == NEUTRAL:
            return None
        refs, max_dist = self.segmenter.references, self.segmenter.max_color_dist

        def mask(rgb: np.ndarray) -> np.ndarray:
            h, w = rgb.shape[:2]
            labels = color_labels(rgb.reshape(-1, 3).astype(np.float64) / 255.0, refs, max_dist)
            return (labels == label).reshape(h, w)

        return mask

    def _with_low_points(self, cluster: Cluster, low: PointSet, low_labels: np.ndarray | None) -> Cluster:
        """The cluster plus the low points (near the table, within its noise) under its footprint: the bottom
        of an object's sides, which the table cut removed, still helps its pose."""
        if len(low) == 0:
            return cluster
        lo, hi = cluster.bounds
        margin = 0.005 if cluster.label != NEUTRAL else 0.0
        xy = low.points[:, :2]
        inside = np.all((xy >= lo[:2] - margin) & (xy <= hi[:2] + margin), axis=1)
        if low_labels is not None:
            inside &= low_labels == cluster.label
        if not inside.any():
            return cluster
        return Cluster(PointSet.concatenate([cluster.points, low.subset(inside)]), cluster.label)

    def _pose_objects(self, clusters, low: PointSet, views, T_world_tcp, reasons, table,
                      scene_xyz: np.ndarray) -> dict[str, PoseResult]:
        cfg = self.config
        low_labels = None
        if isinstance(self.segmenter, ColorDbscanSegmenter) and len(low):
            low_labels = color_labels(low.colors, self.segmenter.references, self.segmenter.max_color_dist)

        def candidates(name: str, used: set[int]):
            return candidate_clusters(self.models[name], self._label(name), clusters, used, cfg.pose.max_candidates)

        def estimate_in(name: str, cluster: Cluster) -> PoseResult | None:
            model = self.models[name]
            cluster = self._with_low_points(cluster, low, low_labels)
            last = self._last_pose.get(name) if cfg.track else None
            prior = None
            if last is not None and np.linalg.norm(cluster.centroid - last.position) < model.geometry.diameter:
                prior = last.matrix()
            return self.pose_estimator.estimate(model, cluster, views, T_world_tcp, np.asarray(table.normal),
                                                table.d, self._color_mask(name), prior, scene_xyz)

        parents: dict[int, Cluster] = {}    # id(result) -> the whole segment, for a result fitted in a part of it

        def estimate(name: str, cluster: Cluster) -> PoseResult | None:
            # A segment that holds more than this model (two same-colour objects touching) fits it only partly:
            # the part the fit explains is fitted again on its own.
            res = estimate_in(name, cluster)
            if res is None or res.fitness >= cfg.pose.good_fitness:
                return res
            part = explained_part(self.pose_estimator, self.models[name], res, cfg.min_cluster_points)
            if part is None:
                return res
            again = estimate_in(name, part)
            if again is None or again.fitness <= res.fitness:
                return res
            parents[id(again)] = cluster
            return again

        rank = lambda name, res: look_rank(self.looks[name], res, cfg.voxel_m)   # noqa: E731
        for name in self.models:
            if not candidates(name, set()):
                match = "size" if self.color_hints[name] is None else "color"
                reasons[name] = f"no candidate cluster ({match} match)"
        results, why = assign_best_first([n for n in self.models if n not in reasons], candidates, estimate,
                                         cfg.min_fitness, cfg.pose.good_fitness, rank=rank)
        for name, reason in why.items():
            reasons.setdefault(name, reason)
        for name, other in one_instance_twice(self.models, results, cfg.min_fitness):
            # two identical models fitted into two parts of one instance (a dark bowl split in halves), while the
            # other instance hides in a neighbour's segment (LIBERO-Spatial's second bowl merged with the plate
            # it touches): the weaker fit is dropped and looked for again in what the found objects leave over
            del results[name]
            reasons[name] = f"fitted onto the instance '{other}' already explains"
        missing = [n for n in self.models if n not in results or results[n].fitness < cfg.min_fitness]
        if missing and results:
            # what the found objects leave unexplained of their segments: another object touching them
            leftovers = leftover_clusters(self.pose_estimator, self.models, results, parents, cfg.explain_m,
                                          cfg.cluster_eps_m, cfg.cluster_min_points, cfg.min_cluster_points)

            def leftover_candidates(name: str, used: set[int]):
                return candidate_clusters(self.models[name], self._label(name), leftovers, used,
                                          cfg.pose.max_candidates)

            more, _ = assign_best_first(missing, leftover_candidates, estimate, cfg.min_fitness,
                                        cfg.pose.good_fitness, rank=rank)
            for name, res in more.items():
                if res.fitness >= cfg.min_fitness and (name not in results
                                                       or res.fitness > results[name].fitness):
                    results[name] = res
                    reasons.pop(name, None)
        return results

    def _estimated(self, name: str, res: PoseResult | None, obs, T_world_tcp, reasons, notes,
                   issues) -> EstimatedObject:
        cfg = self.config
        if res is None or res.fitness < cfg.min_fitness:
            why = reasons.get(name, "not seen")
            if res is not None:
                why = f"best match fitness {res.fitness:.2f} < min_fitness {cfg.min_fitness}"
            message = f"'{name}': not found ({why})"
            notes.append(message)
            issues.append(Issue("missing", name, message))
            pose = self._last_pose.get(name, Pose.identity())
            return EstimatedObject(name, pose, 0.0 if res is None else res.fitness, False,
                                   0 if res is None else res.n_points)
        pose = Pose.from_matrix(res.T_world_object)
        self._last_pose[name] = pose
        model = self.models[name]
        gap = np.linalg.norm(res.T_world_object[:3, 3] - T_world_tcp[:3, 3])
        closed = obs.gripper_width_m < self.robot.gripper_max_width_m - cfg.held_max_gap_m
        held = bool(closed and gap < max(0.03, 0.5 * model.geometry.diameter))
        confidence = float(res.fitness * min(1.0, res.coverage / cfg.full_coverage))
        # a clearly different pose (another resting face, another turn) that explains the points nearly as well:
        # the data cannot tell them apart, whatever the winner's own fit
        ambiguity = min(1.0, max(0.0, (1.0 - res.rival) / max(1e-9, 1.0 - cfg.ambiguous_rival)))
        confidence *= ambiguity
        if held and res.fitness < 0.8:
            notes.append(f"'{name}': held, partly hidden by the fingers (fitness {res.fitness:.2f})")
        elif confidence < cfg.low_confidence:
            rival = f", a clearly different pose ranks {res.rival:.0%} of it" if ambiguity < 1.0 else ""
            message = (f"'{name}': low confidence {confidence:.2f} (fitness {res.fitness:.2f}, coverage "
                       f"{res.coverage:.2f}, {res.n_points} points{rival}); the pose may be wrong")
            notes.append(message)
            issues.append(Issue("low_confidence", name, message))
        return EstimatedObject(name, pose, res.fitness, True, res.n_points, res.rmse_m, res.coverage, held,
                               res.source, confidence, res.resting, res.rival)

    # ------------------------------------------------------------------ clutter
    def _unknown(self, points: PointSet, objects: dict[str, EstimatedObject], table: TablePlane, views, notes,
                 issues, closed_tcp_xyz: np.ndarray | None) -> list[UnknownObject]:
        cfg = self.config
        if len(points) == 0:
            return []
        keep = np.ones(len(points), dtype=bool)
        def surface(name: str, pose) -> np.ndarray:
            # the dense registration samples (<= 5 mm apart): the catalog's 3000 samples leave gaps of ~1 cm on a
            # large model (the tray), where its own points would look unexplained
            T = pose.matrix()
            return self.pose_estimator.prepare(self.models[name]).dense_points @ T[:3, :3].T + T[:3, 3]

        surfaces = [surface(name, est.pose) for name, est in objects.items() if est.found]
        forbidden = np.concatenate(surfaces) if surfaces else None
        surfaces += [surface(name, pose) for name, pose in self.remembered.items()
                     if name in self.models and not (name in objects and objects[name].found)]
        if surfaces:
            # the points of found objects and of the remembered ones not found are explained; only the found
            # ones' columns are cut out of an obstacle (a remembered pose is good to a few millimetres only)
            dist, _ = cKDTree(np.concatenate(surfaces)).query(points.points, distance_upper_bound=cfg.explain_m)
            keep = ~np.isfinite(dist)
        rest = points.subset(keep)
        if len(rest) < cfg.clutter_min_points:
            return []
        ids = dbscan(rest.points, cfg.cluster_eps_m, cfg.cluster_min_points)
        groups = [np.flatnonzero(ids == k) for k in range(ids.max(initial=-1) + 1)]
        groups = [g for g in groups if len(g) >= cfg.clutter_min_points]
        # named in a stable order (by position on a 2 cm grid), so an unchanged obstacle keeps its name
        groups.sort(key=lambda g: tuple(np.round(rest.points[g, :2].mean(axis=0) / 0.02).astype(int)))
        out = []
        for members in groups:
            # A phantom (a blob of table noise, flying pixels one camera saw) is seen through by the others;
            # a real object is not: it hides what is behind it.
            through, n_checked = seen_through(rest.points[members], views, cfg.phantom_tol_m)
            if n_checked >= cfg.clutter_min_points and through > cfg.phantom_max_seen_through:
                notes.append(f"unknown cluster of {len(members)} points at "
                             f"{np.round(rest.points[members].mean(axis=0), 3).tolist()}: the other cameras see "
                             f"through {through:.0%} of it; dropped as a phantom")
                continue
            obj = self.mesher.mesh(f"clutter_{len(out)}", rest.subset(members), table, forbidden)
            if obj is None:
                notes.append(f"unknown cluster of {len(members)} points is too flat for an obstacle; skipped")
                continue
            if closed_tcp_xyz is not None and np.linalg.norm(np.asarray(obj.centroid) - closed_tcp_xyz) < 0.05:
                message = (f"{obj.name}: an unknown object between the closed fingers (held?); kept as a fixed "
                           "obstacle")
                notes.append(message)
                issues.append(Issue("held_unknown", obj.name, message))
            out.append(obj)
        return out


def one_instance_twice(models: dict, results: dict, min_fitness: float) -> list[tuple[str, str]]:
    """(weaker, stronger) name pairs of identical models (same URDF, scale and colour hint: the sim lab's red and
    blue blocks are two models) whose fits stand with their footprint centres closer than half the footprint's
    width and overlap in height: one object cannot be two instances (two stacked ones do not overlap). By fitness."""
    found = sorted((n for n, r in results.items() if r is not None and r.fitness >= min_fitness),
                   key=lambda n: -results[n].fitness)
    kept: list[tuple[str, tuple, np.ndarray, float]] = []
    out = []
    for name in found:
        m = models[name]
        lo, hi = np.asarray(m.geometry.bounds, float)
        centre = results[name].T_world_object @ np.append(0.5 * (lo + hi), 1.0)
        key = (m.urdf, m.scale, m.rgba)
        twin = next((k for k in kept if k[1] == key and np.linalg.norm((k[2] - centre)[:2]) < k[3]
                     and abs(k[2][2] - centre[2]) < 0.5 * float(hi[2] - lo[2])), None)
        if twin is not None:
            out.append((name, twin[0]))
        else:
            kept.append((name, key, centre, 0.5 * float(min(hi[:2] - lo[:2]))))
    return out
