"""Cutting the column over an object out of a convex obstacle part (sim.carve): volumes and bounds of the pieces
checked with trimesh, an independent mesh library."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import trimesh

from sim.carve import carve_part, column_pieces
from sim.geometry import Pose
from sim.scene import ObjectSpec


def _box(lo, hi) -> np.ndarray:
    return np.array(list(itertools.product(*zip(lo, hi))), dtype=float)


def _volume(v: np.ndarray) -> float:
    return float(trimesh.convex.convex_hull(v).volume)


def test_the_pieces_fill_the_box_but_the_column():
    box = _box((0.0, 0.0, 0.0), (0.4, 0.3, 0.2))
    pieces = column_pieces(box, (0.1, 0.1, 0.05), (0.2, 0.2))
    assert len(pieces) == 5
    column = 0.1 * 0.1 * 0.15
    assert sum(_volume(v) for v in pieces) == pytest.approx(0.4 * 0.3 * 0.2 - column, rel=1e-6)
    below = [v for v in pieces if v[:, 2].max() <= 0.05 + 1e-9]
    assert len(below) == 1 and _volume(below[0]) == pytest.approx(0.4 * 0.3 * 0.05, rel=1e-6)
    for v in pieces:   # nothing of any piece is inside the column
        c = v.mean(axis=0)
        assert not (0.1 < c[0] < 0.2 and 0.1 < c[1] < 0.2 and c[2] > 0.05)


def test_a_column_beside_the_part_cuts_nothing_and_an_edge_column_leaves_fewer_pieces():
    box = _box((0.0, 0.0, 0.0), (0.4, 0.3, 0.2))
    assert column_pieces(box, (0.5, 0.0, 0.0), (0.6, 0.1)) is None
    assert column_pieces(box, (0.1, 0.1, 0.25), (0.2, 0.2)) is None     # above the part
    # the column at the part's x edge: no piece beyond it in x
    pieces = column_pieces(box, (0.3, 0.1, 0.0), (0.45, 0.2))
    assert len(pieces) == 3
    assert sum(_volume(v) for v in pieces) == pytest.approx(0.4 * 0.3 * 0.2 - 0.1 * 0.1 * 0.2, rel=1e-6)


def test_carve_part_keeps_the_frame_and_the_physics():
    lo, hi = np.array([-0.2, -0.15, -0.1]), np.array([0.2, 0.15, 0.1])
    part = ObjectSpec("clutter_3", Pose((0.6, 0.0, 0.1)), mesh_vertices=tuple(map(tuple, _box(lo, hi))),
                      mesh_faces=((0, 1, 2),), rgba=(0.2, 0.2, 0.2, 1.0), fixed=True)
    pieces = carve_part(part, (0.55, -0.05, 0.1), (0.65, 0.05))
    assert [q.name for q in pieces] == [f"clutter_3_c{i}" for i in range(5)]
    assert all(q.fixed and q.rgba == part.rgba for q in pieces)
    world = np.vstack([np.asarray(q.mesh_vertices) + q.pose.position for q in pieces])
    assert world.min(axis=0) == pytest.approx([0.4, -0.15, 0.0])
    assert world.max(axis=0) == pytest.approx([0.8, 0.15, 0.2])
    assert carve_part(part, (1.0, 1.0, 0.0), (1.1, 1.1)) is None
    with pytest.raises(ValueError, match="mesh object"):
        carve_part(ObjectSpec("cube", Pose(), urdf="cube.urdf"), (0, 0, 0), (1, 1))
