"""Table plane removal and object segmentation (Euclidean clusters, split by color).

`Segmenter` is the interface a learned segmenter can implement later; `ColorDbscanSegmenter` is the
geometric one: points are first labelled by which known object color they match (or none), then each
label is clustered on its own with DBSCAN, so touching objects of different colors come apart.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass

import numpy as np
import open3d as o3d

from reconstruction.fusion import PointSet
from reconstruction.models import color_saturation

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
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(low, dtype=np.float64)))
    o3d.utility.random.seed(seed)
    (a, b, c, d), inliers = pc.segment_plane(distance_threshold=distance_m, ransac_n=3, num_iterations=200)
    n = np.array([a, b, c])
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


class Segmenter(abc.ABC):
    """Object points (table removed) -> clusters. A learned (image) segmenter can implement this too."""

    @abc.abstractmethod
    def segment(self, points: PointSet) -> list[Cluster]:
        """Return the clusters, largest first; points that belong to none are left out."""


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

    def segment(self, points: PointSet) -> list[Cluster]:
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
