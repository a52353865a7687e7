"""World polylines -> image polylines: near-plane clipping in the camera frame, then clipping to the image.

Projecting a point behind the camera flips it through the centre of the image, so every segment is cut at
the near plane *before* the perspective divide; what is left is cut to a rectangle slightly larger than the
image so that drawing code never sees huge coordinates and thick lines still reach the border cleanly.
"""

from __future__ import annotations

import numpy as np

from sim.camera import CameraSpec


def checked_image(rgb, cam: CameraSpec, who: str) -> np.ndarray:
    """rgb as an array, or a ValueError naming `who` when it is not the camera's (H, W, 3) uint8 image."""
    rgb = np.asarray(rgb)
    if rgb.shape != (cam.height, cam.width, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"{who}: image {rgb.shape} {rgb.dtype} does not match camera '{cam.name}' "
                         f"({cam.height}, {cam.width}, 3) uint8")
    return rgb


def to_camera_frame(cam: CameraSpec, pts_world) -> np.ndarray:
    """(N, 3) world points -> (N, 3) points in the camera's OpenCV optical frame (z forward)."""
    pts = np.asarray(pts_world, dtype=float).reshape(-1, 3)
    T = cam.T_world_camera_matrix
    # inverse of a rigid transform: R^T (p - t)
    return (pts - T[:3, 3]) @ T[:3, :3]


def project_camera_points(cam: CameraSpec, pc: np.ndarray) -> np.ndarray:
    """(N, 3) optical-frame points with z > 0 -> (N, 2) pixel coordinates (u right, v down)."""
    return np.stack([cam.fx * pc[:, 0] / pc[:, 2] + cam.cx, cam.fy * pc[:, 1] / pc[:, 2] + cam.cy], axis=1)


def project_visible(cam: CameraSpec, pt_world) -> tuple[float, float] | None:
    """Pixel (u, v) of one world point, or None when it is behind the near plane or outside the image.

    Inside means 0 <= u < width and 0 <= v < height, the convention of scoring.ViewImage.contains.
    """
    pc = to_camera_frame(cam, pt_world)
    if not np.all(np.isfinite(pc)) or pc[0, 2] < cam.near_m:
        return None
    u, v = project_camera_points(cam, pc)[0]
    if not (0.0 <= u < cam.width and 0.0 <= v < cam.height):
        return None
    return float(u), float(v)


def _clip_near(a: np.ndarray, b: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments a[i]-b[i] (camera frame) to z >= near. Returns (a', b', kept mask)."""
    za, zb = a[:, 2], b[:, 2]
    keep = (za >= near) | (zb >= near)
    dz = zb - za
    # t only matters where exactly one end is behind the near plane, and there dz != 0
    t = (near - za) / np.where(np.abs(dz) > 1e-12, dz, 1.0)
    cut = a + t[:, None] * (b - a)
    a2 = np.where((za < near)[:, None], cut, a)
    b2 = np.where((zb < near)[:, None], cut, b)
    return a2, b2, keep


def _clip_rect(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """Liang-Barsky clipping of 2D segments to the box [lo, hi]. Returns (a', b', kept, t0, t1)."""
    d = b - a
    t0 = np.zeros(len(a))
    t1 = np.ones(len(a))
    keep = np.ones(len(a), dtype=bool)
    for axis in range(2):
        for p, q in ((-d[:, axis], a[:, axis] - lo[axis]), (d[:, axis], hi[axis] - a[:, axis])):
            parallel = np.abs(p) < 1e-12
            keep &= ~(parallel & (q < 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(parallel, 0.0, q / np.where(parallel, 1.0, p))
            entering = ~parallel & (p < 0)
            leaving = ~parallel & (p > 0)
            t0 = np.where(entering, np.maximum(t0, r), t0)
            t1 = np.where(leaving, np.minimum(t1, r), t1)
    keep &= t0 <= t1
    return a + t0[:, None] * d, a + t1[:, None] * d, keep, t0, t1


def clip_polylines(cam: CameraSpec, paths_world, margin_px: float = 16.0) -> list[list[np.ndarray]]:
    """The visible pieces of each world polyline as (M, 2) pixel polylines, in path order.

    A piece ends where its path goes behind the near plane or leaves the image (grown by margin_px), and a
    new piece starts where it comes back. A single-point path gives one (1, 2) piece when it is visible.
    All paths are clipped in one vectorised pass (a view has dozens of short paths).
    """
    paths = [np.asarray(pth, dtype=float).reshape(-1, 3) for pth in paths_world]
    paths = [pth[np.all(np.isfinite(pth), axis=1)] for pth in paths]
    out: list[list[np.ndarray]] = [[] for _ in paths]
    lo = np.array([-margin_px, -margin_px])
    hi = np.array([cam.width - 1 + margin_px, cam.height - 1 + margin_px])
    a_idx, owner = [], []
    offset = 0
    all_pts = []
    for i, pth in enumerate(paths):
        all_pts.append(pth)
        if len(pth) == 1:
            pc = to_camera_frame(cam, pth)
            if pc[0, 2] >= cam.near_m:
                uv = project_camera_points(cam, pc)
                if np.all((uv >= lo) & (uv <= hi)):
                    out[i].append(uv)
        elif len(pth) > 1:
            a_idx.append(np.arange(offset, offset + len(pth) - 1))
            owner.append(np.full(len(pth) - 1, i))
        offset += len(pth)
    if not a_idx:
        return out
    pc = to_camera_frame(cam, np.concatenate(all_pts))
    ia = np.concatenate(a_idx)
    owner = np.concatenate(owner)
    a3, b3, keep = _clip_near(pc[ia], pc[ia + 1], cam.near_m)
    near_cut_a = pc[ia, 2] < cam.near_m
    near_cut_b = pc[ia + 1, 2] < cam.near_m
    a2 = np.zeros((len(ia), 2))
    b2 = np.zeros((len(ia), 2))
    a2[keep] = project_camera_points(cam, a3[keep])
    b2[keep] = project_camera_points(cam, b3[keep])
    a2, b2, keep_rect, t0, t1 = _clip_rect(a2, b2, lo, hi)
    keep &= keep_rect
    # A segment whose start (end) was moved by either clip cannot join its predecessor (successor).
    fresh = near_cut_a | (t0 > 1e-9)
    cut = near_cut_b | (t1 < 1 - 1e-9)
    prev_joins = np.zeros(len(ia), dtype=bool)
    prev_joins[1:] = keep[:-1] & ~cut[:-1] & (owner[1:] == owner[:-1])
    starts = np.flatnonzero(keep & ~(prev_joins & ~fresh))
    next_joins = np.zeros(len(ia), dtype=bool)
    next_joins[:-1] = keep[1:] & ~fresh[1:] & (owner[1:] == owner[:-1])
    ends = np.flatnonzero(keep & ~(next_joins & ~cut))
    # starts and ends alternate: every run of joined segments has exactly one of each
    for s, e in zip(starts, ends):
        out[int(owner[s])].append(np.vstack([a2[s:s + 1], b2[s:e + 1]]))
    return out


def clip_polyline(cam: CameraSpec, pts_world, margin_px: float = 16.0) -> list[np.ndarray]:
    """clip_polylines for one path."""
    return clip_polylines(cam, [pts_world], margin_px)[0]


def simplify(uv: np.ndarray, tol_px: float = 0.2) -> np.ndarray:
    """Ramer-Douglas-Peucker in pixels: drop points within tol_px of the line through their neighbours.

    Rollout paths have a point per centimetre; most are collinear in the image, and every vertex of a thick
    ImageDraw line with round joints costs a pie slice.
    """
    if len(uv) < 3:
        return uv
    keep = np.zeros(len(uv), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(uv) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b = uv[i], uv[j]
        d = b - a
        n = float(np.hypot(*d))
        mid = uv[i + 1:j]
        if n < 1e-9:
            dist = np.hypot(*(mid - a).T)
        else:
            dist = np.abs(d[0] * (mid[:, 1] - a[1]) - d[1] * (mid[:, 0] - a[0])) / n
        k = int(np.argmax(dist))
        if dist[k] > tol_px:
            keep[i + 1 + k] = True
            stack.extend(((i, i + 1 + k), (i + 1 + k, j)))
    return uv[keep]
