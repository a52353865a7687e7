"""MuJoCo cameras as the project's cameras: intrinsics, OpenCV-frame poses, and image conversion.

Pure numpy, so both the LIBERO lab (inside its own virtual environment) and the tests on the planner's side
use it. A MuJoCo camera looks along its -z axis with y up (the OpenGL convention); its vertical field of view
`fovy` spans the image height. MuJoCo's offscreen images come bottom row first, and its depth buffer holds
normalised OpenGL depth in [0, 1] that becomes metres with the model's near and far planes (scaled by the
model's extent).
"""

from __future__ import annotations

import numpy as np

# OpenGL camera frame (x right, y up, z backward) -> OpenCV optical frame (x right, y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    """K for a MuJoCo camera: square pixels, f = 0.5 H / tan(fovy / 2), pixel centres at integer (u, v)."""
    if not 0.0 < fovy_deg < 180.0 or width <= 0 or height <= 0:
        raise ValueError(f"camera needs 0 < fovy_deg < 180 and a positive size, got {fovy_deg}, {width}x{height}")
    f = 0.5 * height / np.tan(np.radians(fovy_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0 - 0.5], [0.0, f, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])


def T_world_camera_cv(cam_xpos: np.ndarray, cam_xmat: np.ndarray) -> np.ndarray:
    """4x4 pose of the OpenCV optical frame in MuJoCo's world from MuJoCo's cam_xpos (3,) and cam_xmat (9,)."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(cam_xmat, dtype=float).reshape(3, 3) @ GL_TO_CV
    T[:3, 3] = np.asarray(cam_xpos, dtype=float).reshape(3)
    return T


def depth_buffer_to_m(depth_buffer: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """MuJoCo's normalised depth buffer -> z along the optical axis in metres (what robosuite's
    get_real_depth_map computes); the far plane (no geometry) becomes NaN, like a sensor with no return."""
    d = np.asarray(depth_buffer, dtype=np.float64)
    z = near_m / (1.0 - d * (1.0 - near_m / far_m))
    z = z.astype(np.float32)
    z[d >= 1.0 - 1e-7] = np.nan
    return z


def flip_rows(image: np.ndarray) -> np.ndarray:
    """MuJoCo renders bottom row first; images travel top row first."""
    return np.ascontiguousarray(np.asarray(image)[::-1])


def to_frame(T_frame_world: np.ndarray, T_world_x: np.ndarray) -> np.ndarray:
    """Re-express a pose given in MuJoCo's world in another frame (the robot base, which is the lab's world)."""
    return np.asarray(T_frame_world, dtype=float) @ np.asarray(T_world_x, dtype=float)
