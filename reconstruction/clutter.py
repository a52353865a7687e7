"""Unknown objects: observed points that no known model explains, meshed as convex hulls for the twin."""

from __future__ import annotations

import logging

import numpy as np
import trimesh
from scipy.spatial import QhullError

from reconstruction.fusion import PointSet
from sim.geometry import Pose
from sim.scene import ObjectSpec

log = logging.getLogger(__name__)


def hull_object(name: str, points: PointSet, rest_height_m: float = 0.03, min_size_m: float = 0.005,
                max_points: int = 2000) -> ObjectSpec | None:
    """A fixed convex-hull ObjectSpec around the points, posed at the hull's centroid, or None if degenerate.

    The cameras look down, so the underside is never seen; a cluster that reaches below rest_height_m
    stands on the table, and its hull is extended straight down to z = 0 (what a planner must avoid anyway).
    """
    pts = np.asarray(points.points, dtype=np.float64)
    if len(pts) < 4:
        return None
    if len(pts) > max_points:
        pts = pts[np.random.default_rng(0).choice(len(pts), max_points, replace=False)]
    if pts[:, 2].min() < rest_height_m:
        foot = pts.copy()
        foot[:, 2] = 0.0
        pts = np.vstack([pts, foot])
    if np.any(np.ptp(pts, axis=0) < min_size_m):
        return None  # flat or thin: too little for a solid obstacle
    try:
        hull = trimesh.convex.convex_hull(pts)
    except (QhullError, ValueError) as exc:
        log.info("clutter %s: no convex hull (%s)", name, exc)
        return None
    if hull.volume <= 0 or len(hull.faces) < 4:
        return None
    centroid = np.asarray(hull.centroid, dtype=float)
    verts = np.asarray(hull.vertices, dtype=float) - centroid
    rgb = np.clip(points.colors.mean(axis=0), 0.0, 1.0)
    return ObjectSpec(
        name=name,
        pose=Pose(tuple(centroid)),
        mesh_vertices=tuple(tuple(float(c) for c in v) for v in verts),
        mesh_faces=tuple(tuple(int(i) for i in f) for f in np.asarray(hull.faces)),
        rgba=(float(rgb[0]), float(rgb[1]), float(rgb[2]), 1.0),
        fixed=True,
    )
