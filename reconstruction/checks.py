"""Sanity checks of camera frames before fusion: units, frames, empty images.

A depth map in millimetres or a camera pose that puts the table behind the camera would otherwise turn into
a point cloud far from the workspace and a silently empty (or wrong) scene. Configuration mistakes like
these raise FrameError with the camera's name, what was found and what was expected. A frame that is merely
useless this time (no depth returns, nothing of the workspace in view) is skipped and reported instead, so
one bad camera does not stop the others. The checks assume what every task camera does: the table (the plane
z = 0 of the world frame, DESIGN.md) fills much of the view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

import configs
from configs import Said

log = logging.getLogger(__name__)

MAX_PLAUSIBLE_DEPTH_M = 20.0     # no tabletop RGB-D sensor returns depth beyond this: larger means other units
MIN_VALID_FRACTION = 0.01        # fewer finite depth pixels than this: the frame is treated as empty
BELOW_TABLE_M = 0.05             # a return this far below the table plane is physically impossible ...
MAX_BELOW_TABLE_FRACTION = 0.5   # ... for most of the pixels (a real rig may see some floor) unless the pose is wrong


class FrameError(configs.InputError):
    """A camera frame whose units or pose cannot be right; the message names the camera and the field."""


@dataclass(frozen=True)
class FrameCheck:
    """usable: the frame goes into fusion. issue: why not (or a warning), '' when all is well."""

    name: str
    usable: bool
    issue: str = ""
    valid_fraction: float = 0.0
    in_crop_fraction: float = 0.0


def _table_ray_depth(shape, K: np.ndarray, T_world_camera: np.ndarray, stride: int = 8) -> np.ndarray:
    """z-depth at which each (strided) pixel's ray meets the plane z = 0 (NaN where it never does)."""
    H, W = shape
    v, u = np.mgrid[0:H:stride, 0:W:stride]
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], axis=-1)
    dz = rays.reshape(-1, 3) @ T_world_camera[2, :3]        # world z change per unit of camera z-depth
    h = T_world_camera[2, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -h / dz
    t[~(t > 0)] = np.nan
    return t.reshape(v.shape)


def check_frame(name: str, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                crop_min: np.ndarray, crop_max: np.ndarray) -> FrameCheck:
    """Check one frame; raise FrameError for wrong units or an impossible pose, else say whether it is usable."""
    depth = np.asarray(depth_m, dtype=np.float32)
    K = np.asarray(K, dtype=float)
    T = np.asarray(T_world_camera, dtype=float)
    where = f"camera '{name}'"
    if depth.ndim != 2 or depth.size == 0:
        raise FrameError(where, "depth_m", "a non-empty (H, W) image", Said(f"shape {depth.shape}"))
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise FrameError(where, "K", "positive focal lengths fx, fy", Said(f"fx={K[0, 0]}, fy={K[1, 1]}"))
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or np.linalg.det(R) < 0.9:
        raise FrameError(where, "T_world_camera", "a rigid transform",
                         Said("a rotation part that is not orthonormal"))
    if T[2, 3] <= 0:
        raise FrameError(where, "T_world_camera", "a camera above the table (z = 0) in the world frame",
                         Said(f"a camera {T[2, 3]:.3f} m above the table, i.e. at or below it"),
                         hint=" (is it T_camera_world, or in another world frame?)")
    H, W = depth.shape
    stride = max(1, int(np.sqrt(H * W / 4000)))      # ~4000 pixels are plenty for these checks
    table = _table_ray_depth(depth.shape, K, T, stride)
    if not np.any(np.isfinite(table)):
        raise FrameError(where, "T_world_camera", "an OpenCV optical frame, z forward, looking down at the table",
                         Said("a pose that looks away from the table: no pixel's ray reaches the plane z = 0 in "
                              "front of the camera"), hint=" (an OpenGL frame looks backwards)")
    finite = np.isfinite(depth) & (depth > 0)
    valid = float(finite.mean())
    if valid < MIN_VALID_FRACTION:
        return FrameCheck(name, False, f"{where}: no depth ({valid:.1%} of the pixels have a return); skipped",
                          valid)
    d = depth[finite]
    med = float(np.median(d))
    expected = float(np.nanmedian(table))
    if med > MAX_PLAUSIBLE_DEPTH_M:
        unit = "millimetres" if 300.0 < med / max(expected, 1e-6) < 3000.0 else "some unit other than metres"
        raise FrameError(where, "depth_m", "depth in metres",
                         Said(f"median {med:.4g}, where the camera pose puts the table about {expected:.2f} m "
                              f"away: the depth looks like {unit}"),
                         hint=" (divide by 1000 for a z16 image in millimetres)")
    # Back-project a sample and check where it lands: below the table or nowhere near the workspace means the
    # pose (or the depth scale) is wrong.
    v, u = np.mgrid[0:H:stride, 0:W:stride]
    z = depth[::stride, ::stride]
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    pc = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], axis=1)
    pw = pc @ R.T + T[:3, 3]
    below = float(np.mean(pw[:, 2] < -BELOW_TABLE_M)) if len(pw) else 0.0
    if below > MAX_BELOW_TABLE_FRACTION:
        raise FrameError(where, "T_world_camera",
                         "the world pose of the OpenCV optical frame and depth in metres along the optical axis",
                         Said(f"{below:.0%} of the depth landing more than {BELOW_TABLE_M * 100:.0f} cm below the "
                              "table"), hint=": T_world_camera (or the depth scale) is wrong")
    inside = np.all((pw >= crop_min) & (pw <= crop_max), axis=1)
    in_crop = float(inside.mean()) if len(pw) else 0.0
    # Where the pose says a ray meets the table, the depth can be shorter (an object) but not much longer; and
    # a tabletop view whose surfaces all end far short of the table, outside the workspace, has the wrong pose.
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = depth[::stride, ::stride] / table
    ratio = ratio[np.isfinite(ratio)]
    if len(ratio) > 20:
        med_ratio = float(np.median(ratio))
        if (med_ratio > 1.25 and in_crop < 0.5) or (med_ratio < 0.6 and in_crop < 0.05):
            raise FrameError(where, "T_world_camera", "the world pose of the OpenCV optical frame",
                             Said(f"depth {med_ratio:.2f} x the distance at which this pose puts the table, with "
                                  "little of it in the workspace"),
                             hint=": T_world_camera is wrong (is it T_camera_world, or another world frame?)")
    if not inside.any():
        return FrameCheck(name, False, f"{where}: none of its depth falls in the workspace (looking away from the "
                          "table?); skipped", valid, 0.0)
    issue = ""
    if valid < 0.5:
        issue = f"{where}: only {valid:.0%} of the pixels have depth"
    return FrameCheck(name, True, issue, valid, in_crop)
