"""Segments that hold more than one object: two objects of one colour touching are one segment to colour and
geometry. The fix is the model itself: fit one, keep the points it explains (explained_part), and pose the
others in what the found objects leave unexplained of their segments (leftover_clusters)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from reconstruction.fusion import PointSet, transform
from reconstruction.models import ObjectModel
from reconstruction.pose import PoseEstimator, PoseResult
from reconstruction.segmentation import Cluster, dbscan

MAX_EXPLAINED_SHARE = 0.9   # a fit explaining more than this of its segment leaves nothing worth a second fit


def _explained(estimator: PoseEstimator, model: ObjectModel, T_world_object: np.ndarray, points: np.ndarray,
               tol_m: float) -> np.ndarray:
    prep = estimator.prepare(model)
    R, t = T_world_object[:3, :3], T_world_object[:3, 3]
    dist, _ = prep.tree.query((points - t) @ R, distance_upper_bound=tol_m)
    return np.isfinite(dist)


def explained_part(estimator: PoseEstimator, model: ObjectModel, result: PoseResult, min_points: int
                   ) -> Cluster | None:
    """The points of result's segment within two registration voxels of the model at its pose, when the model
    explains only part of the segment and the rest is itself an object's worth of points; else None."""
    if result.cluster is None:
        return None
    pts = result.cluster.points
    prep = estimator.prepare(model)
    inside = _explained(estimator, model, result.T_world_object, pts.points,
                        2.0 * max(estimator.config.inlier_m, prep.voxel_m))
    n_in = int(inside.sum())
    if n_in < max(min_points, estimator.config.min_points) or len(pts) - n_in < min_points:
        return None
    if n_in > MAX_EXPLAINED_SHARE * len(pts):
        return None
    return Cluster(pts.subset(inside), result.cluster.label)


def leftover_clusters(estimator: PoseEstimator, models: dict[str, ObjectModel], results: dict[str, PoseResult],
                      parents: dict[int, Cluster], explain_m: float, eps_m: float, dbscan_min_points: int,
                      min_points: int) -> list[Cluster]:
    """Of the segments the found objects were fitted in, the points no found object explains (within explain_m of
    its dense surface), clustered again: each keeps its segment's colour label."""
    found = {n: r for n, r in results.items() if r.cluster is not None}
    if not found:
        return []
    surfaces = [transform(r.T_world_object, estimator.prepare(models[n]).dense_points) for n, r in found.items()]
    tree = cKDTree(np.concatenate(surfaces))
    out: list[Cluster] = []
    seen: set[int] = set()
    for r in found.values():
        segment = parents.get(id(r), r.cluster)
        if id(segment) in seen:
            continue
        seen.add(id(segment))
        pts: PointSet = segment.points
        dist, _ = tree.query(pts.points, distance_upper_bound=explain_m)
        rest = pts.subset(~np.isfinite(dist))
        if len(rest) < min_points:
            continue
        ids = dbscan(rest.points, eps_m, dbscan_min_points)
        for k in range(ids.max(initial=-1) + 1):
            members = np.flatnonzero(ids == k)
            if len(members) >= min_points:
                out.append(Cluster(rest.subset(members), segment.label))
    return out
