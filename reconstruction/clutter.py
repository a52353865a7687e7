"""Unknown objects: observed points that no known model explains, meshed as fixed convex obstacles for the twin.

The cameras look down at the table, so an unknown object's underside is never seen; what a planner must
avoid is everything from the seen surface down to the table. Three ways to mesh one cluster of points:

- "hull": one convex hull of the points and their footprint on the table (fast; covers concavities too).
- "columns": the seen top surface as a height map on a grid, extruded down to the table, cut into convex
  prisms: one per connected patch of similar height, split where a patch is far from convex, then neighbours
  merged again while one prism still fits them. A convex decomposition of the observed solid in a few
  milliseconds; cells under a found named object are left out so the twin does not interpenetrate.
- "auto" (default): the hull, unless it is more than hull_too_coarse times the volume of the extruded height
  map (a concave object: an L, a ring, two touching objects), then the columns. Few bodies for the twin (each
  part is one, reloaded when it changes) where one is enough.
- "coacd": CoACD (Wei et al. 2022) on that same extruded solid. Better parts for complex shapes, but 1-60 s
  per object on two cores, so it runs in a forked worker with a time limit (falling back to "columns") and
  its results are cached per cluster by UnknownMesher, so an unchanged obstacle is decomposed once.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from reconstruction.fusion import PointSet
from reconstruction.segmentation import TablePlane
from sim.geometry import Pose
from sim.scene import ObjectSpec

log = logging.getLogger(__name__)

MESH_METHODS = ("auto", "columns", "hull", "coacd")
REUSE_M = 0.008           # a cluster whose box centre and size moved less than this is the same obstacle
HYSTERESIS = 0.2          # "auto" switches an obstacle's method only when its ratio moves this far past the threshold


@dataclass(frozen=True)
class ClutterConfig:
    method: str = "auto"
    rest_height_m: float = 0.03        # a cluster reaching below this stands on the table: extruded down to it
    cell_m: float = 0.005              # height-map grid ("columns", and the solid CoACD decomposes)
    level_m: float = 0.01              # cells within one level of height form one prism
    max_concavity: float = 1.3         # a prism's footprint hull may be this much larger than its cells
    hull_too_coarse: float = 1.6       # "auto": the hull is used unless it is this much larger than the solid
    min_part_cells: int = 3            # smaller patches join the patch below them or are dropped
    max_parts: int = 16                # more than this: one hull instead
    min_size_m: float = 0.005          # thinner than this in any axis: not a solid obstacle
    coacd_threshold: float = 0.08      # CoACD concavity threshold (relative to the bounding-box diagonal)
    coacd_max_hulls: int = 6
    coacd_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.method not in MESH_METHODS:
            raise ValueError(f"ClutterConfig.method {self.method!r}: expected one of {MESH_METHODS}")
        for name in ("rest_height_m", "cell_m", "level_m", "min_size_m", "coacd_threshold", "coacd_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ClutterConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_concavity < 1.0:
            raise ValueError(f"ClutterConfig.max_concavity must be >= 1, got {self.max_concavity!r}")
        if self.max_parts < 1 or self.coacd_max_hulls < 1 or self.min_part_cells < 1:
            raise ValueError("ClutterConfig: max_parts, coacd_max_hulls and min_part_cells must be >= 1")


@dataclass(frozen=True)
class UnknownObject:
    """One unknown object (a cluster of unexplained points) and the convex parts that stand for it in the twin."""

    name: str
    parts: tuple[ObjectSpec, ...]
    n_points: int
    method: str                    # "hull", "columns" or "coacd" (what actually produced the parts)
    centroid: tuple[float, float, float]
    extent_m: tuple[float, float, float]
    resting: bool                  # extruded down to the table

    def to_dict(self) -> dict:
        return {"name": self.name, "parts": [p.name for p in self.parts], "n_points": self.n_points,
                "method": self.method, "centroid": list(self.centroid), "extent_m": list(self.extent_m),
                "resting": self.resting}


# ---------------------------------------------------------------------------------------------- parts
def _part(name: str, vertices: np.ndarray, rgba) -> ObjectSpec | None:
    """A fixed convex ObjectSpec around the vertices, posed at its centroid (None if degenerate)."""
    try:
        hull = trimesh.convex.convex_hull(np.asarray(vertices, dtype=float))
    except (QhullError, ValueError) as exc:
        log.debug("part %s: no convex hull (%s)", name, exc)
        return None
    if hull.volume <= 1e-9 or len(hull.faces) < 4:
        return None
    centroid = np.asarray(hull.centroid, dtype=float)
    verts = np.asarray(hull.vertices, dtype=float) - centroid
    return ObjectSpec(
        name=name, pose=Pose(tuple(centroid)),
        mesh_vertices=tuple(tuple(float(c) for c in v) for v in verts),
        mesh_faces=tuple(tuple(int(i) for i in f) for f in np.asarray(hull.faces)),
        rgba=(float(rgba[0]), float(rgba[1]), float(rgba[2]), 1.0), fixed=True)


def _table_z(table: TablePlane, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    a, b, c = table.normal
    return -(table.d + a * x + b * y) / c


def hull_object(name: str, points: PointSet, rest_height_m: float = 0.03, min_size_m: float = 0.005,
                max_points: int = 2000, table: TablePlane | None = None) -> ObjectSpec | None:
    """A fixed convex-hull ObjectSpec around the points, posed at the hull's centroid, or None if degenerate.

    A cluster that reaches below rest_height_m stands on the table: its hull is extended straight down to it.
    """
    table = table or TablePlane.z0()
    pts = np.asarray(points.points, dtype=np.float64)
    if len(pts) < 4:
        return None
    if len(pts) > max_points:
        pts = pts[np.random.default_rng(0).choice(len(pts), max_points, replace=False)]
    if np.min(table.signed_distance(pts)) < rest_height_m:
        foot = pts.copy()
        foot[:, 2] = _table_z(table, foot[:, 0], foot[:, 1])
        pts = np.vstack([pts, foot])
    if np.any(np.ptp(pts, axis=0) < min_size_m):
        return None  # flat or thin: too little for a solid obstacle
    return _part(name, pts, np.clip(points.colors.mean(axis=0), 0.0, 1.0))


# ---------------------------------------------------------------------------------------------- height map
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


def _coacd_worker(vertices: np.ndarray, faces: np.ndarray, kw: dict, conn) -> None:
    try:
        import coacd

        coacd.set_log_level("error")
        parts = coacd.run_coacd(coacd.Mesh(vertices, faces), **kw)
        conn.send([np.asarray(v, dtype=float) for v, _ in parts])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which falls back
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def coacd_parts(mesh: trimesh.Trimesh, cfg: ClutterConfig) -> list[np.ndarray] | None:
    """CoACD's convex parts (vertex arrays) of a watertight mesh, or None if it failed or ran out of time."""
    kw = dict(threshold=cfg.coacd_threshold, max_convex_hull=cfg.coacd_max_hulls, preprocess_mode="off",
              mcts_iterations=20, mcts_max_depth=2, mcts_nodes=8, resolution=500, seed=0)
    ctx = mp.get_context("fork")     # the child needs only numpy and coacd; fork skips re-importing them
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_coacd_worker, args=(np.asarray(mesh.vertices), np.asarray(mesh.faces), kw, child),
                       daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(cfg.coacd_timeout_s):
            log.info("CoACD did not finish in %.1f s; using the column decomposition", cfg.coacd_timeout_s)
            return None
        result = parent.recv()
    except EOFError:
        return None
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(1.0)
        parent.close()
    if isinstance(result, str):
        log.info("CoACD failed (%s); using the column decomposition", result)
        return None
    return result


# ---------------------------------------------------------------------------------------------- one object
def _renamed(obj: UnknownObject, name: str) -> UnknownObject:
    if obj.name == name:
        return obj
    parts = tuple(dataclasses.replace(p, name=name + p.name[len(obj.name):]) for p in obj.parts)
    return dataclasses.replace(obj, name=name, parts=parts)


def _signature(points: np.ndarray, grid_m: float) -> tuple:
    """A cluster's centre and extent on a grid_m grid: the CoACD cache key."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    return tuple(int(v) for v in np.round(np.concatenate([(lo + hi) / 2, hi - lo]) / grid_m))


class UnknownMesher:
    """Meshes unknown clusters with the configured method, and remembers each result with the cluster's box
    (centre and size). In an MPC loop obstacles rarely move: a cluster whose box moved less than REUSE_M gets
    the same parts again (no recomputation, and identical meshes let the twin keep its bodies instead of
    reloading them), and "coacd" runs once per obstacle."""

    def __init__(self, config: ClutterConfig | None = None, cache_size: int = 64) -> None:
        self.config = config or ClutterConfig()
        self.cache_size = int(cache_size)
        self._cache: dict[tuple, list[np.ndarray]] = {}
        self._results: dict[tuple, UnknownObject | None] = {}
        self._method_at: dict[tuple[int, int], str] = {}     # "auto"'s last choice per place (hysteresis)

    def mesh(self, name: str, points: PointSet, table: TablePlane,
             forbidden_xyz: np.ndarray | None = None) -> UnknownObject | None:
        """The unknown object for one cluster, or None when the points make no solid obstacle."""
        pts = np.asarray(points.points, dtype=float)
        if len(pts) < 4:
            return None
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre, extent = (lo + hi) / 2, hi - lo
        for (c, e, d), cached in self._results.items():
            # the same obstacle as before, seen again through new noise: keep its mesh
            if (np.max(np.abs(np.asarray(c) - centre)) < REUSE_M and np.max(np.abs(np.asarray(e) - extent)) < REUSE_M
                    and abs(d - table.d) < 0.002):
                return None if cached is None else _renamed(cached, name)
        obj = self._mesh(name, points, table, forbidden_xyz)
        if len(self._results) >= self.cache_size:
            self._results.pop(next(iter(self._results)))
        self._results[(tuple(centre), tuple(extent), float(table.d))] = obj
        return obj

    def _hull_fits(self, hm: HeightMap, place: tuple[int, int]) -> bool:
        """Whether one convex hull is close enough to the extruded height map: both measured on the cell grid.

        With hysteresis per place (2 cm grid): an obstacle near the threshold does not flip between one hull
        and several prisms from one noisy observation to the next (the twin would reload it every step)."""
        cells = np.argwhere(np.isfinite(hm.height_m))
        if len(cells) < 4:
            return True
        tops = hm.height_m[cells[:, 0], cells[:, 1]]
        corners = hm.cell_corners(cells)
        z = np.tile(tops, 4)
        pts = np.vstack([np.column_stack([corners, z]), np.column_stack([corners, np.full(len(z), hm.bottom_m)])])
        try:
            hull_volume = ConvexHull(pts).volume
        except QhullError:
            return True
        solid = float(np.sum(tops - hm.bottom_m)) * hm.cell_m ** 2
        threshold = self.config.hull_too_coarse
        previous = self._method_at.get(place)
        if previous is not None:
            threshold += HYSTERESIS if previous == "hull" else -HYSTERESIS
        fits = hull_volume <= threshold * solid
        if len(self._method_at) >= 4 * self.cache_size:
            self._method_at.pop(next(iter(self._method_at)))
        self._method_at[place] = "hull" if fits else "columns"
        return fits

    def _mesh(self, name: str, points: PointSet, table: TablePlane,
              forbidden_xyz: np.ndarray | None = None) -> UnknownObject | None:
        cfg = self.config
        pts = np.asarray(points.points, dtype=float)
        if len(pts) < 4:
            return None
        rgba = np.clip(points.colors.mean(axis=0), 0.0, 1.0)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        resting = float(np.min(table.signed_distance(pts))) < cfg.rest_height_m
        info = dict(n_points=len(pts), centroid=tuple(float(v) for v in pts.mean(axis=0)),
                    extent_m=tuple(float(v) for v in hi - lo), resting=resting)
        part_vertices: list[np.ndarray] = []
        method = cfg.method
        if method in ("auto", "columns", "coacd"):
            hm = height_map(pts, table, cfg, forbidden_xyz)
            if hm is not None and method == "auto":
                place = tuple(int(v) for v in np.round(pts[:, :2].mean(axis=0) / 0.02))
                method = "hull" if self._hull_fits(hm, place) else "columns"
            if hm is not None and method != "hull":
                if method == "coacd":
                    key = _signature(pts, 0.01)
                    cached = self._cache.get(key)
                    if cached is None:
                        solid = solid_mesh(hm, cfg)
                        cached = coacd_parts(solid, cfg) if solid is not None else None
                        if cached is not None:
                            if len(self._cache) >= self.cache_size:
                                self._cache.pop(next(iter(self._cache)))
                            self._cache[key] = cached
                    if cached is None:
                        method = "columns"
                    else:
                        part_vertices = [v.copy() for v in cached]
                if method == "columns":
                    part_vertices = column_parts(hm, cfg)
                # table-relative heights -> world z on the (possibly slightly tilted) table plane
                for v in part_vertices:
                    v[:, 2] = v[:, 2] + _table_z(table, v[:, 0], v[:, 1])
            if not part_vertices or len(part_vertices) > cfg.max_parts:
                method = "hull"
        if method == "hull":
            spec = hull_object(name, points, cfg.rest_height_m, cfg.min_size_m, table=table)
            return None if spec is None else UnknownObject(name, (spec,), method=method, **info)
        parts = []
        for v in part_vertices:
            if np.any(np.ptp(v, axis=0) < cfg.min_size_m * 0.5):
                continue
            spec = _part(f"{name}_p{len(parts)}" if len(part_vertices) > 1 else name, v, rgba)
            if spec is not None:
                parts.append(spec)
        if not parts:
            return None
        if len(parts) == 1 and parts[0].name != name:
            parts = [dataclasses.replace(parts[0], name=name)]
        return UnknownObject(name, tuple(parts), method=method, **info)
