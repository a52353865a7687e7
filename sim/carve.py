"""Cutting a vertical column out of a fixed convex obstacle part: the convex pieces of the part that lie outside
the column (below its floor, and on its four sides).

An unknown obstacle is meshed from what the cameras saw of it; a coarse convex part (the hull of an open drawer
and the cabinet around it) can swallow a named object the cameras saw inside it, and the twin's physics then
throws that object out of the part. The object's own model stands for the space it fills, and the cameras saw
it from above, so the column over its footprint from its bottom up is no obstacle.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.optimize import linprog
from scipy.spatial import ConvexHull, HalfspaceIntersection, QhullError

from sim.geometry import Pose
from sim.scene import ObjectSpec

MIN_PIECE_M = 0.005     # a piece thinner than this in any axis is dropped (as reconstruction drops such parts)
_INSIDE_M = 1e-6        # a piece whose largest inscribed ball is smaller than this is empty


def _halfspaces(vertices: np.ndarray) -> np.ndarray:
    """The convex hull of the points as rows (a, b, c, d) with a x + b y + c z + d <= 0 inside."""
    return ConvexHull(vertices).equations


def _interior(halfspaces: np.ndarray) -> np.ndarray | None:
    """The centre of the largest ball inside the halfspaces (None if there is none worth a piece)."""
    A, d = halfspaces[:, :3], halfspaces[:, 3]
    norms = np.linalg.norm(A, axis=1, keepdims=True)
    res = linprog(c=[0.0, 0.0, 0.0, -1.0], A_ub=np.hstack([A, norms]), b_ub=-d,
                  bounds=[(None, None)] * 3 + [(0.0, None)], method="highs")
    if not res.success or res.x[3] < _INSIDE_M:
        return None
    return res.x[:3]


def _piece(halfspaces: np.ndarray, min_size_m: float) -> np.ndarray | None:
    """The vertices of the polytope the halfspaces bound (None if empty or thinner than min_size_m)."""
    inside = _interior(halfspaces)
    if inside is None:
        return None
    try:
        verts = HalfspaceIntersection(halfspaces, inside).intersections
    except QhullError:
        return None
    verts = np.unique(np.round(verts, 9), axis=0)
    if len(verts) < 4 or np.min(verts.max(axis=0) - verts.min(axis=0)) < min_size_m:
        return None
    return verts


def column_pieces(vertices: np.ndarray, lo_xyz, hi_xy, min_size_m: float = MIN_PIECE_M) -> list[np.ndarray] | None:
    """The convex pieces of the hull of `vertices` (world frame) outside the column x in [lo_x, hi_x], y in [lo_y,
    hi_y], z >= lo_z: below the floor, and beside it (x below, x above, then y below and y above within the x
    range). None when the column does not cut into the hull (nothing to change)."""
    vertices = np.asarray(vertices, dtype=float)
    (x0, y0, z0), (x1, y1) = np.asarray(lo_xyz, float), np.asarray(hi_xy, float)
    hull = _halfspaces(vertices)
    column = np.array([[-1, 0, 0, x0], [1, 0, 0, -x1], [0, -1, 0, y0], [0, 1, 0, -y1], [0, 0, -1, z0]], float)
    if _interior(np.vstack([hull, column])) is None:
        return None
    above = [0, 0, -1, z0]
    cuts = [
        [[0, 0, 1, -z0]],                                               # below the floor
        [above, [1, 0, 0, -x0]],                                        # x < x0
        [above, [-1, 0, 0, x1]],                                        # x > x1
        [above, [-1, 0, 0, x0], [1, 0, 0, -x1], [0, 1, 0, -y0]],        # y < y0
        [above, [-1, 0, 0, x0], [1, 0, 0, -x1], [0, -1, 0, y1]],        # y > y1
    ]
    pieces = (_piece(np.vstack([hull, np.asarray(c, float)]), min_size_m) for c in cuts)
    return [v for v in pieces if v is not None]


def carve_part(part: ObjectSpec, lo_xyz, hi_xy, min_size_m: float = MIN_PIECE_M) -> list[ObjectSpec] | None:
    """`part` (a fixed convex mesh object) with the column cut out, as fixed convex ObjectSpecs named
    `<part>_c<i>`, each posed at its centroid; None when the column does not cut into it."""
    if part.mesh_vertices is None:
        raise ValueError(f"object '{part.name}': carve_part needs a mesh object, got a URDF")
    local = np.asarray(part.mesh_vertices, dtype=float)
    T = part.pose.matrix()
    world = local @ T[:3, :3].T + T[:3, 3]
    pieces = column_pieces(world, lo_xyz, hi_xy, min_size_m)
    if pieces is None:
        return None
    out = []
    for i, verts in enumerate(pieces):
        hull = trimesh.convex.convex_hull(verts)
        centroid = np.asarray(hull.centroid, dtype=float)
        out.append(ObjectSpec(
            name=f"{part.name}_c{i}", pose=Pose(tuple(centroid)),
            mesh_vertices=tuple(tuple(float(c) for c in v) for v in np.asarray(hull.vertices) - centroid),
            mesh_faces=tuple(tuple(int(j) for j in f) for f in np.asarray(hull.faces)),
            rgba=part.rgba, mass_kg=part.mass_kg, friction=part.friction, fixed=part.fixed))
    return out
