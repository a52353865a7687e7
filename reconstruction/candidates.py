"""Which observed clusters could be a named object: same colour label (a chromatic model, fragments of an
occluded object merged) or a compatible size (a neutral one)."""

from __future__ import annotations

import numpy as np

from reconstruction.fusion import PointSet
from reconstruction.models import ObjectModel
from reconstruction.segmentation import NEUTRAL, Cluster


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
