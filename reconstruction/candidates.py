"""Which observed clusters could be a named object: same colour label (a chromatic model, fragments of an
occluded object merged) or a compatible size (a neutral one: one cluster, or two within JOIN_GAP_M of each other
whose union has the size, the halves of a dark bowl that the depth split)."""

from __future__ import annotations

import numpy as np

from reconstruction.fusion import PointSet
from reconstruction.models import ObjectModel
from reconstruction.segmentation import NEUTRAL, Cluster

JOIN_GAP_M = 0.02   # two neutral clusters whose bounding boxes are this close may be one object's parts
PAIR_MIN_SHARE = 0.8   # ... when together they span at least this share of the model's diameter


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
    fits = lambda span: 0.4 * max_extent <= span <= 1.5 * diameter + 0.03   # noqa: E731
    by_size = lambda ci: abs(float(np.linalg.norm(ci[0].extent)) - diameter)   # noqa: E731
    neutral = [(i, c) for i, c in free if c.label == NEUTRAL]
    singles = [(c, [i]) for i, c in neutral if fits(float(np.linalg.norm(c.extent)))]
    # A neutral object split in two (the bowl on a cabinet: one part stood apart, the other was cut off the
    # cabinet at its top, supports.py) fits neither part well: the pair is a candidate too. Pairs have their own
    # max_candidates: two specks that make an object's size must not crowd out the object's own cluster.
    pairs = []
    for a, (i, c) in enumerate(neutral):
        for j, e in neutral[a + 1:]:
            (lo1, hi1), (lo2, hi2) = c.bounds, e.bounds
            if np.max(np.maximum(lo1 - hi2, lo2 - hi1)) > JOIN_GAP_M:
                continue
            span = float(np.linalg.norm(np.maximum(hi1, hi2) - np.minimum(lo1, lo2)))
            # the two parts of one object make nearly its whole size: two specks by a tray are not a tray
            if fits(span) and span >= PAIR_MIN_SHARE * diameter:
                pairs.append((_merge([c, e]), [i, j]))
    # Closest in size first: a tray-sized cluster before a pebble.
    return sorted(sorted(singles, key=by_size)[:max_candidates] + sorted(pairs, key=by_size)[:max_candidates],
                  key=by_size)
