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
from scipy.spatial import ConvexHull, QhullError

from reconstruction.fusion import PointSet
from reconstruction.height_map import HeightMap, column_parts, height_map, solid_mesh
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
