"""Objects standing on something other than the table: a segment cut apart at the top of what holds them.

The table is cut away before segmentation, so objects on it come apart; an object on a cabinet, a stove or a box
touches its support, and Euclidean clustering merges the two (LIBERO-Spatial: the black bowl on the wooden
cabinet was one segment with the cabinet in most looks, too large to be any named object's candidate, so the bowl
was never posed, or fitted to the other bowl). Like the table, a support shows as a horizontal layer: far more
points at one height than the segment's vertical faces give a layer. Points above such a layer that stand on it
(reach down to it) and that it surrounds on most sides (seen around them, not on one side only: a bowl beside a
plate is not on it) are split off as their own segment. A layer inside what stands above it (a bowl's floor under
its walls) supports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reconstruction.segmentation import Cluster, dbscan


@dataclass(frozen=True)
class SupportConfig:
    bin_m: float = 0.004              # height histogram resolution
    peak_ratio: float = 4.0           # a support layer holds this many times the segment's median points per bin
    min_layer_points: int = 60        # ... and at least this many points (within layer_m of its height)
    layer_m: float = 0.008            # points this close to the layer's height are the support's top
    reach_m: float = 0.02             # what stands on the layer reaches down to within this of it
    ring_m: float = 0.05              # the support's points within this of a piece's footprint ...
    min_sectors: int = 8              # ... lie in at least this many of 12 directions around it (LIBERO: 8-12;
                                      # the side facing away from the cameras is hidden by the object)
    margin_m: float = 0.01            # a piece's footprint: its xy bounds grown by this

    def __post_init__(self) -> None:
        for name in ("bin_m", "peak_ratio", "layer_m", "reach_m", "ring_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SupportConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 1 <= self.min_sectors <= 12:
            raise ValueError(f"SupportConfig.min_sectors must be in 1..12, got {self.min_sectors!r}")


def layer_heights(z: np.ndarray, cfg: SupportConfig) -> list[float]:
    """Heights of the horizontal layers in a segment's points (highest first): histogram bins holding
    peak_ratio times the median bin, merged with their neighbours, each at its points' mean height."""
    if len(z) == 0:
        return []
    edges = np.arange(z.min(), z.max() + 2 * cfg.bin_m, cfg.bin_m)
    counts, _ = np.histogram(z, edges)
    if len(counts) < 3:
        return []
    base = max(1.0, float(np.median(counts)))
    peaks = [i for i in range(len(counts)) if counts[i] >= cfg.peak_ratio * base
             and counts[i] >= counts[max(0, i - 1)] and counts[i] >= counts[min(len(counts) - 1, i + 1)]]
    out: list[float] = []
    for i in sorted(peaks, key=lambda k: -edges[k]):
        lo, hi = edges[max(0, i - 1)], edges[min(len(counts), i + 2)]
        sel = (z >= lo) & (z < hi)
        level = float(z[sel].mean())
        if all(abs(level - o) > cfg.layer_m for o in out) and np.sum(np.abs(z - level) <= cfg.layer_m) \
                >= cfg.min_layer_points:
            out.append(level)
    return out


def surrounded(piece_xy: np.ndarray, layer_xy: np.ndarray, cfg: SupportConfig) -> tuple[bool, int]:
    """Does the layer lie around the piece (outside its footprint, within ring_m of it) in min_sectors of 12
    directions from its centre? Returns (answer, sectors)."""
    lo, hi = piece_xy.min(axis=0) - cfg.margin_m, piece_xy.max(axis=0) + cfg.margin_m
    outside = ~np.all((layer_xy >= lo) & (layer_xy <= hi), axis=1)
    near = np.all((layer_xy >= lo - cfg.ring_m) & (layer_xy <= hi + cfg.ring_m), axis=1)
    ring = layer_xy[outside & near]
    if len(ring) == 0:
        return False, 0
    d = ring - 0.5 * (lo + hi)
    sector = np.floor((np.arctan2(d[:, 1], d[:, 0]) + np.pi) / (np.pi / 6)).astype(int) % 12
    # a direction counts with a few points only (noise leaves single points anywhere)
    n = int(np.sum(np.bincount(sector, minlength=12) >= 3))
    return n >= cfg.min_sectors, n


def split_at_supports(cluster: Cluster, eps_m: float, min_points: int, min_cluster_points: int,
                      cfg: SupportConfig | None = None) -> list[Cluster]:
    """The cluster, or its parts: each piece standing on a support layer of it, then the rest (the support)."""
    cfg = cfg or SupportConfig()
    pts = cluster.points.points
    if len(pts) < 2 * min_cluster_points:
        return [cluster]
    taken = np.zeros(len(pts), dtype=bool)
    pieces: list[np.ndarray] = []
    for level in layer_heights(pts[:, 2], cfg):
        free = np.flatnonzero(~taken)
        above = free[pts[free, 2] > level + cfg.layer_m]
        layer = free[np.abs(pts[free, 2] - level) <= cfg.layer_m]
        if len(above) < min_cluster_points:
            continue
        ids = dbscan(pts[above], eps_m, min_points)
        for k in range(ids.max(initial=-1) + 1):
            members = above[ids == k]
            if len(members) < min_cluster_points or pts[members, 2].min() > level + cfg.layer_m + cfg.reach_m:
                continue
            ok, _ = surrounded(pts[members, :2], pts[layer, :2], cfg)
            if ok:
                pieces.append(members)
                taken[members] = True
    if not pieces:
        return [cluster]
    out = [Cluster(cluster.points.subset(m), cluster.label) for m in pieces]
    rest = np.flatnonzero(~taken)
    if len(rest) >= min_cluster_points:
        out.append(Cluster(cluster.points.subset(rest), cluster.label))
    return out


def split_oversized(clusters: list[Cluster], largest_m: float, eps_m: float, min_points: int, min_cluster_points: int,
                    cfg: SupportConfig | None = None) -> list[Cluster]:
    """split_at_supports on the segments larger (bounding-box diagonal) than largest_m, the largest any named object
    can be; the others are left whole (a bowl nested in a plate is fitted in one segment, as before). Largest first."""
    out = []
    for c in clusters:
        out += split_at_supports(c, eps_m, min_points, min_cluster_points, cfg) \
            if float(np.linalg.norm(c.extent)) > largest_m else [c]
    return sorted(out, key=len, reverse=True)
