"""An object standing on a cabinet (one segment with it) is cut off at the cabinet's top; a bowl alone, an object
beside a flat dish, and a box's lid are not cut. A hypothesis that explains nothing ranks low, not NaN."""

from __future__ import annotations

import numpy as np

from reconstruction.fusion import PointSet
from reconstruction.resting import hypothesis_rank
from reconstruction.segmentation import NEUTRAL, Cluster
from reconstruction.supports import SupportConfig, layer_heights, split_at_supports, split_oversized

VOXEL = 0.004
EPS, MIN_POINTS, MIN_CLUSTER = 0.01, 6, 15


def _grid(a0, a1, b0, b1):
    a = np.arange(a0, a1 + 1e-9, VOXEL)
    b = np.arange(b0, b1 + 1e-9, VOXEL)
    return np.stack(np.meshgrid(a, b, indexing="ij"), axis=-1).reshape(-1, 2)


def _box(x0, x1, y0, y1, top):
    """What cameras in front (+x) and above see of a box on the table: its top and its front and side faces."""
    t = _grid(x0, x1, y0, y1)
    top_face = np.column_stack([t, np.full(len(t), top)])
    f = _grid(y0, y1, 0.01, top - VOXEL)
    front = np.column_stack([np.full(len(f), x1), f])
    s = _grid(x0, x1, 0.01, top - VOXEL)
    side = np.column_stack([s[:, 0], np.full(len(s), y0), s[:, 1]])
    return np.vstack([top_face, front, side])


def _bowl(cx, cy, z0, radius=0.055, height=0.05):
    """A bowl: a floor disc and a wall flaring from 0.6 radius at its foot to the full radius at its rim."""
    pts = []
    for h in np.arange(0.0, height + 1e-9, VOXEL):
        r = radius * (0.6 + 0.4 * h / height)
        n = max(8, int(2 * np.pi * r / VOXEL))
        a = np.linspace(0, 2 * np.pi, n, endpoint=False)
        pts.append(np.column_stack([cx + r * np.cos(a), cy + r * np.sin(a), np.full(n, z0 + h)]))
    floor = _grid(-0.6 * radius, 0.6 * radius, -0.6 * radius, 0.6 * radius)
    floor = floor[np.linalg.norm(floor, axis=1) < 0.6 * radius - VOXEL]
    pts.append(np.column_stack([floor + (cx, cy), np.full(len(floor), z0 + 0.004)]))
    return np.vstack(pts)


def _cluster(*parts):
    pts = np.vstack(parts)
    return Cluster(PointSet(pts, np.full_like(pts, 0.3), np.zeros_like(pts)), NEUTRAL)


def _split(cluster):
    return split_at_supports(cluster, EPS, MIN_POINTS, MIN_CLUSTER, SupportConfig())


def test_a_bowl_on_a_cabinet_is_cut_off_at_the_cabinets_top():
    cabinet = _box(0.6, 0.9, -0.4, -0.13, 0.226)
    bowl = _bowl(0.7, -0.265, 0.226)
    parts = _split(_cluster(cabinet, bowl))
    assert len(parts) == 2
    piece, rest = parts
    # the bowl's points above the cabinet's top layer, and nothing of the cabinet
    assert np.allclose(piece.centroid[:2], (0.7, -0.265), atol=0.005)
    assert piece.points.points[:, 2].min() > 0.226 and np.ptp(piece.points.points[:, 0]) < 0.12
    assert len(piece) + len(rest) == len(cabinet) + len(bowl)
    assert len(piece) > 0.7 * np.sum(bowl[:, 2] > 0.226 + 0.008)


def test_a_bowl_on_a_low_flat_stove_is_cut_off_too():
    stove = _box(0.33, 0.5, -0.22, -0.06, 0.02)
    bowl = _bowl(0.41, -0.14, 0.02)
    parts = _split(_cluster(stove, bowl))
    assert len(parts) == 2 and np.allclose(parts[0].centroid[:2], (0.41, -0.14), atol=0.005)


def test_a_bowl_alone_a_box_and_an_object_beside_a_dish_are_not_cut():
    bowl = _bowl(0.5, 0.0, 0.0)
    assert len(_split(_cluster(bowl))) == 1           # its floor is inside its walls: it supports nothing
    assert len(_split(_cluster(_box(0.4, 0.5, 0.0, 0.1, 0.06)))) == 1   # a lid with nothing on it
    # a tall block touching a flat dish on one side only: it stands beside it, not on it
    dish = _box(0.3, 0.45, -0.1, 0.05, 0.012)
    block = _box(0.45 + VOXEL, 0.5, -0.03, 0.02, 0.08)
    assert len(_split(_cluster(dish, block))) == 1


def test_layer_heights_finds_the_top_not_the_walls():
    cabinet = _box(0.6, 0.9, -0.4, -0.13, 0.226)
    levels = layer_heights(cabinet[:, 2], SupportConfig())
    assert len(levels) == 1 and abs(levels[0] - 0.226) < 0.003


def test_a_hypothesis_with_no_inlier_ranks_low_and_finite():
    good = hypothesis_rank(0.9, 0.6, 0.002, 0.006, 0.3)
    nothing = hypothesis_rank(0.0, 0.4, float("nan"), 0.006, 0.3)
    assert np.isfinite(nothing) and nothing < 0 < good
    # the winner's rival ratio, as the estimator computes it, stays a number
    assert np.isfinite(np.clip(max([nothing]) / good, 0.0, 1.0))


def test_only_segments_too_large_for_any_named_object_are_cut():
    """A bowl in a low wide dish is a segment a model could be (left whole, fitted as before); on a cabinet it is
    not (cut)."""
    dish = _box(0.6, 0.8, 0.1, 0.3, 0.015)
    in_dish = _cluster(dish, _bowl(0.7, 0.2, 0.015))
    on_cabinet = _cluster(_box(0.6, 0.9, -0.4, -0.13, 0.226), _bowl(0.7, -0.265, 0.226))
    assert len(_split(in_dish)) == 2                              # it would be cut ...
    out = split_oversized([in_dish, on_cabinet], 0.33, EPS, MIN_POINTS, MIN_CLUSTER, SupportConfig())
    assert len(out) == 3 and any(c is in_dish for c in out)       # ... but it could be the dish: left whole
    assert [len(c) for c in out] == sorted((len(c) for c in out), reverse=True)
