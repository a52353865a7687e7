"""Silhouette refinement: x, y and yaw of a resting object from its color outline in every camera image.

Stereo depth is noisy (~5 mm at 1 m) and most noisy at an object's edges, while the color image shows the
object's outline to the pixel. Once an object's tilt and height are fixed by its resting pose, its outline
in each image depends only on x, y and the yaw about the table normal. This module moves the model's
projected outline onto the edge of the object's color mask: Gauss-Newton on the mask's signed distance at
points along the outline, Huber-weighted, with outline points skipped where something nearer hides the object
or where the arm is. Used for chromatic objects whose outline is that of their convex hull (blocks, boxes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from reconstruction.resting import turn_about

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SilhouetteConfig:
    enabled: bool = True
    iterations: int = 8
    margin_px: int = 12              # window around the projected model in which the mask is computed
    occluder_m: float = 0.015        # a pixel this much nearer than the object's nearest point hides it
    huber_px: float = 1.0
    max_shift_m: float = 0.012       # larger corrections are not trusted (the outline then disagrees too much)
    max_yaw_deg: float = 12.0
    min_samples: int = 40            # usable outline points over all cameras

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.margin_px < 2 or self.min_samples < 6:
            raise ValueError("SilhouetteConfig: iterations >= 1, margin_px >= 2, min_samples >= 6")
        for name in ("occluder_m", "huber_px", "max_shift_m", "max_yaw_deg"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SilhouetteConfig.{name} must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True, eq=False)
class _ViewData:
    K: np.ndarray
    T_cw: np.ndarray
    origin: tuple[int, int]          # window's top-left pixel (u0, v0)
    sdf: np.ndarray                  # signed distance to the mask's edge in px: > 0 outside, < 0 inside
    blocked: np.ndarray              # window pixels where the object may be hidden (nearer surface, arm)


def _project(K: np.ndarray, T_cw: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pc = pts @ T_cw[:3, :3].T + T_cw[:3, 3]
    z = pc[:, 2]
    return np.stack([K[0, 0] * pc[:, 0] / z + K[0, 2], K[1, 1] * pc[:, 1] / z + K[1, 2]], axis=1), z


def _outline(uv: np.ndarray, spacing_px: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points every ~spacing_px along the convex outline of projected vertices, as (vertex a, vertex b, t):
    the point is uv[a] + t * (uv[b] - uv[a]), so it moves with the vertices when the pose changes."""
    try:
        ring = ConvexHull(uv).vertices
    except QhullError:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    ia, ib, ts = [], [], []
    for a, b in zip(ring, np.roll(ring, -1)):
        n = max(1, int(np.ceil(np.linalg.norm(uv[b] - uv[a]) / spacing_px)))
        ia.append(np.full(n, a))
        ib.append(np.full(n, b))
        ts.append((np.arange(n) + 0.5) / n)
    return np.concatenate(ia), np.concatenate(ib), np.concatenate(ts)


def _pose(T0: np.ndarray, centre: np.ndarray, up: np.ndarray, axes: tuple[np.ndarray, np.ndarray],
          x: np.ndarray) -> np.ndarray:
    dR = turn_about(up, x[2])
    T = np.eye(4)
    T[:3, :3] = dR @ T0[:3, :3]
    T[:3, 3] = dR @ (T0[:3, 3] - centre) + centre + x[0] * axes[0] + x[1] * axes[1]
    return T


def refine_on_silhouettes(vertices: np.ndarray, T_wo: np.ndarray, up: np.ndarray, views,
                          is_object_color: Callable[[np.ndarray], np.ndarray],
                          config: SilhouetteConfig | None = None) -> tuple[np.ndarray, dict] | None:
    """The pose with x, y and yaw (about `up`) refined on the color outlines, or None when it cannot be done.

    vertices: the model's convex-hull vertices (object frame). views: reconstruction.depth_views.DepthView with rgb
    (and robot mask). is_object_color: (h, w, 3) uint8 -> bool mask of the object's color.
    """
    cfg = config or SilhouetteConfig()
    up = np.asarray(up, dtype=float)
    e1 = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    axes = (e1, np.cross(up, e1))
    centre = T_wo[:3, :3] @ vertices.mean(axis=0) + T_wo[:3, 3]
    world = vertices @ T_wo[:3, :3].T + T_wo[:3, 3]
    data = []
    for v in views:
        if v.rgb is None:
            continue
        uv, z = _project(v.K, v.T_camera_world, world)
        if np.any(z <= 0):
            continue
        H, W = v.depth_m.shape
        u0, v0 = np.floor(uv.min(axis=0)).astype(int) - cfg.margin_px
        u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + cfg.margin_px
        u0, v0, u1, v1 = max(u0, 0), max(v0, 0), min(u1, W), min(v1, H)
        if u1 - u0 < 4 or v1 - v0 < 4:
            continue
        mask = np.asarray(is_object_color(v.rgb[v0:v1, u0:u1]), dtype=bool)
        if mask.sum() < 10:
            continue
        sdf = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
        depth = v.depth_m[v0:v1, u0:u1]
        with np.errstate(invalid="ignore"):
            nearer = np.nan_to_num(depth, nan=np.inf) < z.min() - cfg.occluder_m
        blocked = nearer & ~mask
        if v.robot is not None:
            blocked |= v.robot[v0:v1, u0:u1]
        blocked = ndimage.binary_dilation(blocked, iterations=2)
        data.append(_ViewData(v.K, v.T_camera_world, (u0, v0), sdf.astype(np.float64), blocked))
    if not data:
        return None

    outlines = []
    for d in data:
        uv, _ = _project(d.K, d.T_cw, world)
        outlines.append(_outline(uv))

    def residuals(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distances (px) of the outline points to the mask edge, and whether each point is usable."""
        T = _pose(T_wo, centre, up, axes, x)
        pts = vertices @ T[:3, :3].T + T[:3, 3]
        res, usable = [], []
        for d, (ia, ib, t) in zip(data, outlines):
            uv, _ = _project(d.K, d.T_cw, pts)
            local = uv[ia] + t[:, None] * (uv[ib] - uv[ia]) - np.asarray(d.origin, dtype=float)
            h, w = d.sdf.shape
            ok = (local[:, 0] >= 0) & (local[:, 0] <= w - 1) & (local[:, 1] >= 0) & (local[:, 1] <= h - 1)
            ii = np.clip(np.round(local[:, 1]).astype(int), 0, h - 1)
            jj = np.clip(np.round(local[:, 0]).astype(int), 0, w - 1)
            ok &= ~d.blocked[ii, jj]
            res.append(ndimage.map_coordinates(d.sdf, [local[:, 1], local[:, 0]], order=1, mode="nearest"))
            usable.append(ok)
        return np.concatenate(res), np.concatenate(usable)

    x = np.zeros(3)
    _, valid = residuals(x)       # the points usable at the start are used throughout: a smooth cost
    if valid.sum() < cfg.min_samples:
        return None
    # per view, only the outline points usable at the start
    kept, at = [], 0
    for ia, ib, t in outlines:
        v = valid[at:at + len(t)]
        kept.append((ia[v], ib[v], t[v]))
        at += len(t)

    def costs(xs: np.ndarray) -> np.ndarray:
        """cost(x) for several x (n, 3) at once: one interpolation per view for all of them, (n, samples)."""
        out = []
        Ts = [_pose(T_wo, centre, up, axes, x_) for x_ in xs]
        for d, (ia, ib, t) in zip(data, kept):
            uv = np.stack([_project(d.K, d.T_cw, vertices @ T[:3, :3].T + T[:3, 3])[0] for T in Ts])   # (n, v, 2)
            local = uv[:, ia] + t[None, :, None] * (uv[:, ib] - uv[:, ia]) - np.asarray(d.origin, dtype=float)
            flat = local.reshape(-1, 2)
            out.append(ndimage.map_coordinates(d.sdf, [flat[:, 1], flat[:, 0]], order=1, mode="nearest")
                       .reshape(len(xs), -1))
        return np.concatenate(out, axis=1)

    def cost(x_: np.ndarray) -> np.ndarray:
        return costs(x_[None])[0]

    start = cost(x)
    steps = np.array([5e-4, 5e-4, np.radians(0.2)])
    probes = np.concatenate([[np.zeros(3)], np.diag(steps), -np.diag(steps)])     # x, x + s e_i, x - s e_i
    for _ in range(cfg.iterations):
        c = costs(x + probes)
        r = c[0]
        J = ((c[1:4] - c[4:7]) / (2 * steps[:, None])).T
        a = np.abs(r)
        w = np.where(a <= cfg.huber_px, 1.0, cfg.huber_px / np.maximum(a, 1e-9))
        H = J.T @ (J * w[:, None]) + 1e-6 * np.eye(3)
        dx = -np.linalg.solve(H, J.T @ (w * r))
        x = x + dx
        if np.linalg.norm(dx[:2]) < 1e-5 and abs(dx[2]) < 1e-5:
            break
    end = cost(x)

    def robust(v: np.ndarray) -> float:
        a = np.abs(v)
        return float(np.mean(np.where(a <= cfg.huber_px, 0.5 * a**2, cfg.huber_px * (a - 0.5 * cfg.huber_px))))

    info = {"samples": int(valid.sum()), "views": len(data), "cost_before": robust(start), "cost_after": robust(end),
            "shift_m": float(np.hypot(x[0], x[1])), "yaw_deg": float(np.degrees(x[2]))}
    if (not np.all(np.isfinite(x)) or info["shift_m"] > cfg.max_shift_m or abs(info["yaw_deg"]) > cfg.max_yaw_deg
            or info["cost_after"] >= info["cost_before"]):
        log.debug("silhouette refinement rejected: %s", info)
        return None
    return _pose(T_wo, centre, up, axes, x), info
