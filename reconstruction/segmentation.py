"""Table plane removal and object segmentation (Euclidean clusters, split by color).

`Segmenter` is the interface every segmenter implements: fused object points (table removed) plus the camera
frames they came from -> clusters. `ColorDbscanSegmenter` is the geometric one: points are first labelled by
which known object color they match (or none), then each label is clustered on its own with DBSCAN, so
touching objects of different colors come apart. A learned, image-based segmenter (instance masks per
camera) plugs in through `ImageSegmenter` + `ProjectedMaskSegmenter`, which projects the fused points into
each camera's mask and merges the instances that share points across cameras; nothing else changes.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from reconstruction.fusion import PointSet
from reconstruction.models import color_saturation
from reconstruction.repeatable import ransac_plane

log = logging.getLogger(__name__)

NEUTRAL = -1   # color label of points that match no chromatic reference color


# ---------------------------------------------------------------------------------------------- table plane
@dataclass(frozen=True)
class TablePlane:
    """n . x + d = 0 with unit normal n pointing up; `fitted` is False when the prior z = 0 was used."""

    normal: tuple[float, float, float]
    d: float
    fitted: bool
    n_inliers: int = 0
    note: str = ""

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        return self.signed_distance_xyz(points[:, 0], points[:, 1], points[:, 2])

    def signed_distance_xyz(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b, c = self.normal  # per axis, not points @ n: see fusion.transform
        return a * x + b * y + c * z + self.d

    @classmethod
    def z0(cls, note: str = "") -> TablePlane:
        return cls((0.0, 0.0, 1.0), 0.0, False, 0, note)


def fit_table_plane(points: np.ndarray, max_tilt_deg: float = 5.0, max_offset_m: float = 0.03,
                    distance_m: float = 0.004, band_m: float = 0.04, max_samples: int = 8000,
                    seed: int = 0) -> TablePlane:
    """RANSAC plane (open3d segment_plane) on the points near z = 0, sanity-checked against z = 0.

    Only points within `band_m` of z = 0 vote (a random subset of them, for speed). A plane that is tilted
    by more than max_tilt_deg or offset by more than max_offset_m is rejected in favour of z = 0.
    """
    low = points[np.abs(points[:, 2]) < band_m]
    if len(low) < 100:
        return TablePlane.z0(f"table plane: only {len(low)} points near z = 0; using z = 0")
    if len(low) > max_samples:
        low = low[np.random.default_rng(seed).choice(len(low), max_samples, replace=False)]
    # a seeded numpy RANSAC: open3d's segment_plane answers differently for the same seed (repeatable.py)
    n, d, inliers = ransac_plane(low, distance_m, iterations=200, seed=seed)
    norm = np.linalg.norm(n)
    if norm < 1e-9 or len(inliers) < 50:
        return TablePlane.z0("table plane: RANSAC found no plane; using z = 0")
    n, d = n / norm, d / norm
    if n[2] < 0:
        n, d = -n, -d
    tilt = float(np.degrees(np.arccos(np.clip(n[2], -1.0, 1.0))))
    if tilt > max_tilt_deg or abs(d) > max_offset_m:
        return TablePlane.z0(f"table plane: fitted plane tilted {tilt:.1f} deg, offset {d * 1000:.0f} mm; "
                             "using z = 0")
    return TablePlane(tuple(float(v) for v in n), float(d), True, len(inliers))


def table_noise_per_m2(plane: TablePlane, points: np.ndarray, origin: np.ndarray) -> float:
    """One camera's depth noise on the table, as a std per squared metre of range (sensor noise grows ~z^2).

    Robust (median absolute deviation) to the objects' bottoms among the points near the table.
    """
    if len(points) < 50:
        return 0.0
    r2 = np.sum((points - origin) ** 2, axis=1)
    scaled = plane.signed_distance(points) / np.maximum(r2, 1e-6)
    med = np.median(scaled)
    return float(1.4826 * np.median(np.abs(scaled - med)))


def remove_table(points: PointSet, plane: TablePlane, above_m: float = 0.006) -> PointSet:
    """Keep points more than `above_m` above the table plane (the table and anything below it go)."""
    return points.subset(plane.signed_distance(points.points) > above_m)


# ---------------------------------------------------------------------------------------------- colors
def chromaticity(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) rgb -> (N, 3) r, g, b / (r + g + b): invariant to the renderer's shading (intensity)."""
    rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
    return rgb / np.maximum(rgb.sum(axis=1, keepdims=True), 1e-6)


def color_labels(colors: np.ndarray, references: np.ndarray, max_dist: float = 0.08,
                 min_brightness: float = 0.08) -> np.ndarray:
    """Index of the matching reference color per point (chromaticity distance), NEUTRAL if none matches.

    Each reference's acceptance radius is at most max_dist and less than half its distance to the other
    references and to gray, so neighbouring colors never overlap.
    """
    refs = chromaticity(references) if len(references) else np.zeros((0, 3))
    labels = np.full(len(colors), NEUTRAL, dtype=np.int64)
    if len(refs) == 0 or len(colors) == 0:
        return labels
    gray = np.full(3, 1.0 / 3.0)
    anchors = np.vstack([refs, gray])
    sep = np.linalg.norm(refs[:, None, :] - anchors[None, :, :], axis=2)
    sep[np.arange(len(refs)), np.arange(len(refs))] = np.inf
    radius = np.minimum(max_dist, 0.45 * sep.min(axis=1))
    chroma = chromaticity(colors)
    dist = np.linalg.norm(chroma[:, None, :] - refs[None, :, :], axis=2)
    best = np.argmin(dist, axis=1)
    ok = (dist[np.arange(len(chroma)), best] < radius[best]) & (colors.max(axis=1) > min_brightness)
    labels[ok] = best[ok]
    return labels


# ---------------------------------------------------------------------------------------------- clusters
@dataclass(frozen=True, eq=False)
class Cluster:
    """A segment of the object points; `label` is the matched reference color index or NEUTRAL."""

    points: PointSet
    label: int

    @property
    def centroid(self) -> np.ndarray:
        return self.points.points.mean(axis=0)

    @property
    def bounds(self) -> np.ndarray:
        return np.stack([self.points.points.min(axis=0), self.points.points.max(axis=0)])

    @property
    def extent(self) -> np.ndarray:
        b = self.bounds
        return b[1] - b[0]

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True, eq=False)
class SegmentationContext:
    """What the points came from: the usable camera frames (name, rgb, K, T_world_camera), their depth images
    with robot pixels and flying pixels removed (NaN), and the table plane."""

    frames: tuple
    depths: tuple[np.ndarray, ...]
    table: TablePlane | None = None


class Segmenter(abc.ABC):
    """Object points (table removed, world frame, voxelised) -> clusters."""

    @abc.abstractmethod
    def segment(self, points: PointSet, context: SegmentationContext | None = None) -> list[Cluster]:
        """Return the clusters, largest first; points that belong to none are left out (they may still become
        unknown obstacles: the reconstructor meshes every point no named object explains)."""


class ImageSegmenter(abc.ABC):
    """Instance masks for one camera image: what a learned segmenter (SAM, Mask R-CNN, ...) provides."""

    @abc.abstractmethod
    def instances(self, rgb: np.ndarray, depth_m: np.ndarray, camera: str) -> np.ndarray:
        """(H, W) int instance ids, -1 where no instance. Ids are per image: cameras need not agree on them."""


def dbscan(points: np.ndarray, eps_m: float, min_points: int) -> np.ndarray:
    """open3d DBSCAN labels (-1 = noise)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points, dtype=np.float64)))
    return np.asarray(pc.cluster_dbscan(eps=float(eps_m), min_points=int(min_points), print_progress=False))


class ColorDbscanSegmenter(Segmenter):
    """DBSCAN per color label. reference_rgb: (K, 3) colors in [0, 1] of the chromatic named objects."""

    def __init__(self, reference_rgb=(), eps_m: float = 0.01, min_points: int = 6, min_cluster_points: int = 15,
                 max_color_dist: float = 0.08) -> None:
        refs = np.asarray(reference_rgb, dtype=float).reshape(-1, 3)
        unique: list[np.ndarray] = []
        for r in refs:
            # gray assets cannot be told from gray clutter by color; two objects of one color share a label
            if color_saturation(r) > 0.3 and all(
                    np.linalg.norm(chromaticity(r) - chromaticity(u)) > 0.02 for u in unique):
                unique.append(r)
        self.references = np.array(unique).reshape(-1, 3)
        self.eps_m = float(eps_m)
        self.min_points = int(min_points)
        self.min_cluster_points = int(min_cluster_points)
        self.max_color_dist = float(max_color_dist)

    def label_of(self, rgb) -> int:
        """The label a point of this color gets (NEUTRAL for gray or unknown colors)."""
        return int(color_labels(np.asarray(rgb, dtype=float).reshape(1, 3), self.references,
                                self.max_color_dist)[0])

    def segment(self, points: PointSet, context: SegmentationContext | None = None) -> list[Cluster]:
        labels = color_labels(points.colors, self.references, self.max_color_dist)
        clusters = []
        for label in np.unique(labels):
            idx = np.flatnonzero(labels == label)
            if len(idx) < self.min_cluster_points:
                continue
            ids = dbscan(points.points[idx], self.eps_m, self.min_points)
            for k in range(ids.max(initial=-1) + 1):
                members = idx[ids == k]
                if len(members) >= self.min_cluster_points:
                    clusters.append(Cluster(points.subset(members), int(label)))
        clusters.sort(key=len, reverse=True)
        return clusters


class ProjectedMaskSegmenter(Segmenter):
    """Clusters from per-camera instance masks: each fused point is projected into every camera that sees it
    (its depth agrees with the image's within depth_tol_m) and takes that camera's instance id there. Instances
    of different cameras that share enough points are one object; each point joins the object most of its
    votes name; each object is split into spatially connected parts (DBSCAN). Points no mask claims are left
    out. Clusters carry the NEUTRAL label: named objects are then matched by size and registration fitness.
    """

    def __init__(self, image_segmenter: ImageSegmenter, eps_m: float = 0.01, min_points: int = 6,
                 min_cluster_points: int = 15, depth_tol_m: float = 0.01, min_shared: float = 0.2) -> None:
        self.image_segmenter = image_segmenter
        self.eps_m = float(eps_m)
        self.min_points = int(min_points)
        self.min_cluster_points = int(min_cluster_points)
        self.depth_tol_m = float(depth_tol_m)
        self.min_shared = float(min_shared)

    def _votes(self, points: PointSet, context: SegmentationContext) -> tuple[np.ndarray, np.ndarray]:
        """(point index, node id) pairs; a node is one instance in one camera."""
        pairs_p, pairs_n = [], []
        offset = 0
        for frame, depth in zip(context.frames, context.depths):
            inst = np.asarray(self.image_segmenter.instances(frame.rgb, depth, frame.name))
            H, W = depth.shape
            if inst.shape != (H, W):
                raise ValueError(f"ImageSegmenter: camera '{frame.name}': instance mask shape {inst.shape}, "
                                 f"expected {(H, W)}")
            T_cw = np.linalg.inv(np.asarray(frame.T_world_camera, dtype=float))
            pc = points.points @ T_cw[:3, :3].T + T_cw[:3, 3]
            z = pc[:, 2]
            K = np.asarray(frame.K, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                u = np.round(K[0, 0] * pc[:, 0] / z + K[0, 2])
                v = np.round(K[1, 1] * pc[:, 1] / z + K[1, 2])
            ok = (z > 0) & (u >= 0) & (u < W) & (v >= 0) & (v < H)
            idx = np.flatnonzero(ok)
            ui, vi = u[idx].astype(np.int64), v[idx].astype(np.int64)
            seen = np.abs(depth[vi, ui] - z[idx]) < self.depth_tol_m     # NaN depth compares False
            ids = inst[vi, ui].astype(np.int64)
            take = seen & (ids >= 0)
            pairs_p.append(idx[take])
            pairs_n.append(offset + ids[take])
            offset += int(inst.max(initial=-1)) + 1
        if not pairs_p:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(pairs_p), np.concatenate(pairs_n)

    def segment(self, points: PointSet, context: SegmentationContext | None = None) -> list[Cluster]:
        if context is None or not context.frames or len(points) == 0:
            return []
        p_idx, nodes = self._votes(points, context)
        if len(p_idx) == 0:
            return []
        node_ids, node_of = np.unique(nodes, return_inverse=True)
        size = np.bincount(node_of, minlength=len(node_ids))
        parent = np.arange(len(node_ids))

        def root(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        # nodes voted by the same point: count shared points per node pair
        order = np.argsort(p_idx, kind="stable")
        p_sorted, n_sorted = p_idx[order], node_of[order]
        shared: dict[tuple[int, int], int] = {}
        starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
        ends = np.r_[starts[1:], len(p_sorted)]
        for s0, s1 in zip(starts, ends):
            if s1 - s0 < 2:
                continue
            ns = np.unique(n_sorted[s0:s1])
            for i in range(len(ns)):
                for j in range(i + 1, len(ns)):
                    key = (int(ns[i]), int(ns[j]))
                    shared[key] = shared.get(key, 0) + 1
        for (a, b), n in shared.items():
            if n >= max(3, self.min_shared * min(size[a], size[b])):
                parent[root(a)] = root(b)
        group = np.array([root(a) for a in range(len(node_ids))])[node_of]
        # each point joins the group most of its votes name
        votes: dict[tuple[int, int], int] = {}
        for pi, g in zip(p_idx, group):
            votes[(int(pi), int(g))] = votes.get((int(pi), int(g)), 0) + 1
        best: dict[int, tuple[int, int]] = {}
        for (pi, g), n in votes.items():
            if pi not in best or n > best[pi][1]:
                best[pi] = (g, n)
        point_ids = np.array(sorted(best), dtype=np.int64)
        point_group = np.array([best[pi][0] for pi in point_ids], dtype=np.int64)
        clusters = []
        for g in np.unique(point_group):
            members = point_ids[point_group == g]
            if len(members) < self.min_cluster_points:
                continue
            ids = dbscan(points.points[members], self.eps_m, self.min_points)
            for k in range(ids.max(initial=-1) + 1):
                part = members[ids == k]
                if len(part) >= self.min_cluster_points:
                    clusters.append(Cluster(points.subset(part), NEUTRAL))
        clusters.sort(key=len, reverse=True)
        return clusters
