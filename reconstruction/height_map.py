"""The seen top surface of an unknown object as a height map over the table, extruded down to it: its convex
column parts ("columns") and the closed solid CoACD decomposes (see clutter.py for when each is used)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from reconstruction.segmentation import TablePlane

if TYPE_CHECKING:
    from reconstruction.clutter import ClutterConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class HeightMap:
    """Top heights above the table on an xy grid: height_m[i, j] for cell (x0 + i * cell, y0 + j * cell)."""

    origin_xy: np.ndarray
    cell_m: float
    height_m: np.ndarray        # (nx, ny), NaN where empty
    bottom_m: float             # columns reach down to this height above the table (0: the table)

    @property
    def occupied(self) -> np.ndarray:
        return np.isfinite(self.height_m)

    def cell_corners(self, cells: np.ndarray) -> np.ndarray:
        """(4k, 2) xy corners of the cells (k, 2) of integer indices."""
        c = self.cell_m
        base = self.origin_xy + cells * c
        return np.concatenate([base, base + [c, 0.0], base + [0.0, c], base + [c, c]])


def height_map(points: np.ndarray, table: TablePlane, cfg: ClutterConfig,
               forbidden_xyz: np.ndarray | None = None) -> HeightMap | None:
    """The cluster's top surface on a grid, holes closed; cells whose column would cut into a forbidden point
    (a found named object's surface) are left out."""
    h = table.signed_distance(points)
    c = cfg.cell_m
    origin = points[:, :2].min(axis=0) - 2 * c
    ij = np.floor((points[:, :2] - origin) / c).astype(np.int64)
    shape = tuple(ij.max(axis=0) + 3)
    if shape[0] * shape[1] > 400 * 400:     # a cluster > 2 m across is not one object
        return None
    # a cell's top: its highest point, or the second highest when it has four or more (the maximum of many
    # noisy points is biased up; a lower percentile would cut a cell that also holds side-face points)
    lin = ij[:, 0] * shape[1] + ij[:, 1]
    order = np.lexsort((h, lin))
    lin_s, h_s = lin[order], h[order]
    starts = np.flatnonzero(np.r_[True, lin_s[1:] != lin_s[:-1]])
    counts = np.diff(np.r_[starts, len(lin_s)])
    top = np.full(shape[0] * shape[1], -np.inf)
    top[lin_s[starts]] = h_s[starts + counts - 1 - (counts >= 4)]
    top = top.reshape(shape)
    seen = top > -np.inf
    # close pinholes (dropout, a cell no voxel fell in) and enclosed holes; they take their neighbours'
    # height (the surface of a solid object continues across them)
    closed = ndimage.binary_fill_holes(ndimage.binary_closing(seen, np.ones((3, 3)), border_value=0)) | seen
    for _ in range(4):
        missing = closed & ~seen
        if not missing.any():
            break
        grown = ndimage.grey_dilation(top, size=(3, 3))
        new = missing & (grown > -np.inf)
        top[new] = grown[new]
        seen |= new
    top = np.where(seen, top, np.nan)
    resting = float(np.nanmin(h)) < cfg.rest_height_m
    bottom = 0.0 if resting else float(np.nanmin(h))
    if forbidden_xyz is not None and len(forbidden_xyz):
        fh = table.signed_distance(forbidden_xyz)
        fij = np.floor((forbidden_xyz[:, :2] - origin) / c).astype(np.int64)
        inside = np.all((fij >= 0) & (fij < shape), axis=1)
        fij, fh = fij[inside], fh[inside]
        # a column spans [bottom, top]: a named object's point within it means the column would cut into it
        hit = np.isfinite(top[fij[:, 0], fij[:, 1]]) & (fh <= top[fij[:, 0], fij[:, 1]]) & (fh >= bottom - 1e-3)
        top[fij[hit, 0], fij[hit, 1]] = np.nan
    if not np.isfinite(top).any():
        return None
    return HeightMap(origin, c, top, bottom)


def _footprint_area_ratio(hm: HeightMap, cells: np.ndarray) -> float:
    corners = hm.cell_corners(cells)
    try:
        hull_area = ConvexHull(corners).volume    # 2-D: volume is the area
    except QhullError:
        return 1.0
    return float(hull_area / (len(cells) * hm.cell_m ** 2))


def _split(hm: HeightMap, cells: np.ndarray, cfg: ClutterConfig, depth: int = 0) -> list[np.ndarray]:
    """Cells -> groups whose footprint is nearly convex (split along the principal axis at the median)."""
    if len(cells) < 2 * cfg.min_part_cells or depth >= 4 or _footprint_area_ratio(hm, cells) <= cfg.max_concavity:
        return [cells]
    xy = cells.astype(float)
    centred = xy - xy.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    s = centred @ axis
    cut = np.median(s)
    out = []
    for half in (cells[s <= cut], cells[s > cut]):
        if len(half) == 0:
            continue
        # one half of a concave patch may itself fall apart into pieces
        grid = np.zeros(hm.height_m.shape, dtype=bool)
        grid[half[:, 0], half[:, 1]] = True
        labels, n = ndimage.label(grid)
        for k in range(1, n + 1):
            out.extend(_split(hm, np.argwhere(labels == k), cfg, depth + 1))
    return out


def _prism_volume(hm: HeightMap, cells: np.ndarray, z_top: float) -> float:
    corners = hm.cell_corners(cells)
    try:
        area = ConvexHull(corners).volume
    except QhullError:
        area = len(cells) * hm.cell_m ** 2
    return float(area * (z_top - hm.bottom_m))


def _merge_groups(hm: HeightMap, groups: list[np.ndarray], cfg: ClutterConfig) -> list[np.ndarray]:
    """Greedily merge neighbouring groups while one prism around both stays within max_concavity of the solid
    they stand for (its height-field volume): fewer, larger convex parts where the shape allows."""
    top = hm.height_m
    solid = [float(np.sum(top[g[:, 0], g[:, 1]] - hm.bottom_m)) * hm.cell_m ** 2 for g in groups]
    z_top = [float(np.max(top[g[:, 0], g[:, 1]])) for g in groups]
    label = np.full(top.shape, -1, dtype=np.int64)
    for k, g in enumerate(groups):
        label[g[:, 0], g[:, 1]] = k
    alive = set(range(len(groups)))

    def neighbours(k: int) -> set[int]:
        grid = np.zeros(top.shape, dtype=bool)
        grid[groups[k][:, 0], groups[k][:, 1]] = True
        ring = ndimage.binary_dilation(grid, np.ones((3, 3))) & ~grid
        return {int(v) for v in np.unique(label[ring]) if v >= 0 and v != k and v in alive}

    def ratio(a: int, b: int) -> float:
        cells = np.concatenate([groups[a], groups[b]])
        return _prism_volume(hm, cells, max(z_top[a], z_top[b])) / max(solid[a] + solid[b], 1e-12)

    pairs = {(min(a, b), max(a, b)): None for a in alive for b in neighbours(a)}
    for key in pairs:
        pairs[key] = ratio(*key)
    while pairs:
        (a, b), r = min(pairs.items(), key=lambda kv: kv[1])
        if r > cfg.max_concavity:
            break
        groups[a] = np.concatenate([groups[a], groups[b]])
        solid[a] += solid[b]
        z_top[a] = max(z_top[a], z_top[b])
        label[groups[b][:, 0], groups[b][:, 1]] = a
        alive.discard(b)
        pairs = {k: v for k, v in pairs.items() if a not in k and b not in k}
        for n in neighbours(a):
            key = (min(a, n), max(a, n))
            pairs[key] = ratio(*key)
    return [groups[k] for k in sorted(alive)]


def column_parts(hm: HeightMap, cfg: ClutterConfig) -> list[np.ndarray]:
    """Convex prisms (each an (n, 3) vertex array, table-relative height in z) covering the height map."""
    top = hm.height_m
    occupied = np.isfinite(top)
    level = np.where(occupied, np.floor(np.nan_to_num(top, nan=0.0) / cfg.level_m), -1).astype(np.int64)
    groups: list[np.ndarray] = []
    for lv in np.unique(level[occupied]):
        labels, n = ndimage.label(level == lv)
        for k in range(1, n + 1):
            cells = np.argwhere(labels == k)
            if len(cells) < cfg.min_part_cells:
                # a sliver of a level (a slope, a noisy rim): keep it only as part of the level below
                level[cells[:, 0], cells[:, 1]] = lv - 1 if lv > 0 else -1
                continue
            groups.extend(_split(hm, cells, cfg))
    groups = _merge_groups(hm, [g for g in groups if len(g) >= cfg.min_part_cells], cfg)
    prisms = []
    for cells in groups:
        z_top = float(np.nanmax(top[cells[:, 0], cells[:, 1]]))
        if z_top - hm.bottom_m < cfg.min_size_m:
            continue
        corners = hm.cell_corners(cells)
        try:
            ring = corners[ConvexHull(corners).vertices]
        except QhullError:
            continue
        prisms.append(np.vstack([np.column_stack([ring, np.full(len(ring), hm.bottom_m)]),
                                 np.column_stack([ring, np.full(len(ring), z_top)])]))
    return prisms


def solid_mesh(hm: HeightMap, cfg: ClutterConfig) -> trimesh.Trimesh | None:
    """The extruded height map as one closed, manifold mesh (what CoACD needs), table-relative z.

    Vertices sit on the cell-corner grid: a top vertex at the highest of the (up to four) occupied cells
    around it, a bottom vertex at the bottom height; each occupied cell has a top and a bottom quad, and a wall
    quad on every side that borders an empty cell. Cells touching only at a corner are bridged first, so no
    vertex is shared by two otherwise separate pieces.
    """
    occ = np.isfinite(hm.height_m)
    # bridge diagonal-only contacts (x. / .x patterns), which would make a non-manifold vertex
    for _ in range(3):
        a, b, c, d = occ[:-1, :-1], occ[1:, 1:], occ[1:, :-1], occ[:-1, 1:]
        diag = (a & b & ~c & ~d) | (c & d & ~a & ~b)
        if not diag.any():
            break
        i, j = np.nonzero(diag)
        occ[i + 1, j] = True       # fill one of the two empty cells of each pattern
    if occ.sum() < 2:
        return None
    top = np.where(occ, np.nan_to_num(hm.height_m, nan=np.nan), np.nan)
    # a bridged cell takes its neighbours' height
    fill = ndimage.grey_dilation(np.where(np.isfinite(top), top, -np.inf), size=(3, 3))
    top = np.where(occ & ~np.isfinite(top), fill, top)
    nx, ny = occ.shape
    padded = np.full((nx + 2, ny + 2), -np.inf)
    padded[1:-1, 1:-1] = np.where(occ, top, -np.inf)
    corner_top = np.maximum.reduce([padded[:-1, :-1], padded[1:, :-1], padded[:-1, 1:], padded[1:, 1:]])  # (nx+1, ny+1)
    used = np.isfinite(corner_top)
    index = -np.ones(used.shape, dtype=np.int64)
    index[used] = np.arange(int(used.sum()))
    n = int(used.sum())
    ci, cj = np.nonzero(used)
    xy = hm.origin_xy + np.column_stack([ci, cj]) * hm.cell_m
    vertices = np.vstack([np.column_stack([xy, corner_top[used]]),
                          np.column_stack([xy, np.full(n, hm.bottom_m)])])
    faces = []
    i, j = np.nonzero(occ)
    v00, v10, v01, v11 = index[i, j], index[i + 1, j], index[i, j + 1], index[i + 1, j + 1]
    faces += [np.column_stack([v00, v10, v11]), np.column_stack([v00, v11, v01])]                 # top, up
    faces += [np.column_stack([v00 + n, v11 + n, v10 + n]), np.column_stack([v00 + n, v01 + n, v11 + n])]  # bottom
    padded_occ = np.pad(occ, 1)
    # walls: (neighbour offset, the cell edge's two corners in counter-clockwise order seen from outside)
    for (di, dj), (a, b) in (((-1, 0), (v01, v00)), ((1, 0), (v10, v11)), ((0, -1), (v00, v10)),
                             ((0, 1), (v11, v01))):
        open_side = ~padded_occ[i + 1 + di, j + 1 + dj]
        a_, b_ = a[open_side], b[open_side]
        faces += [np.column_stack([a_, b_, b_ + n]), np.column_stack([a_, b_ + n, a_ + n])]
    mesh = trimesh.Trimesh(vertices, np.concatenate(faces), process=False)
    mesh.fix_normals()
    return mesh
