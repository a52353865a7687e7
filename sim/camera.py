"""Pinhole RGB-D cameras on a PyBullet client: intrinsics, OpenCV-frame poses, rendering with a sensor model.

The sensor model stands in for an active-stereo RGB-D camera (RealSense D4xx class) so that the lab's frames are
as imperfect as a real one's: axial noise that grows with z^2 and is spatially correlated (the stereo matcher's
window), depth quantised to the sensor's output unit, no return or "flying" depths mixed from fore- and
background at depth discontinuities, random dropout, and a little RGB noise. Every part is off unless the
camera's fields ask for it and an rng is passed (the twin's own renders stay exact).
"""

from __future__ import annotations

import logging
import pkgutil
from dataclasses import dataclass

import numpy as np
import pybullet as p
from scipy import ndimage

import configs
from configs import checks
from sim.scene import SpecError

log = logging.getLogger(__name__)

# OpenCV optical frame (x right, y down, z forward) -> OpenGL camera frame (x right, y up, z backward).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])
# A 3x3 neighbourhood whose depths span more than this straddles a discontinuity (an object's silhouette, or a
# surface seen at a grazing angle): where stereo matching mixes fore- and background or finds nothing.
DEPTH_EDGE_JUMP_M = 0.02
_FRACTIONS = ("depth_dropout", "depth_edge_dropout", "depth_flying_pixels")
_NOISE_FIELDS = ("depth_noise_m", "depth_noise_corr_px", "depth_quant_m", "rgb_noise")
# upper bounds of the sensor-model fields (fractions: 1): far beyond any real camera, short of absurd
_NOISE_MAX = {"depth_noise_m": 1.0, "depth_noise_corr_px": 50.0, "depth_quant_m": 0.1, "rgb_noise": 255.0}
# A camera this large is a typo (a 100000 x 100000 frame would allocate ~75 GiB); 8K is the most anyone renders.
MAX_SIDE_PX = 8192
MAX_PIXELS = 8192 * 4320


@dataclass(frozen=True)
class RGBD:
    rgb: np.ndarray          # (H, W, 3) uint8
    depth_m: np.ndarray      # (H, W) float32, z along the optical axis; NaN = no return
    seg: np.ndarray | None   # (H, W) int32 body unique id, -1 = background; None when not asked for


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera. T_world_camera is row-major 4x4 in the OpenCV optical frame."""

    name: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    T_world_camera: tuple[float, ...]
    near_m: float = 0.05
    far_m: float = 3.0
    depth_noise_m: float = 0.0        # axial std at 1 m; grows with z^2 (stereo: sigma_z = z^2 sigma_disp / (f b))
    depth_dropout: float = 0.0        # fraction of pixels with no return, anywhere in the image
    depth_noise_corr_px: float = 0.0  # spatial correlation of that noise: Gaussian sigma in pixels (0: white)
    depth_quant_m: float = 0.0        # output unit of the depth (RealSense z16: 1 mm); 0: continuous
    depth_edge_dropout: float = 0.0   # fraction of depth-discontinuity pixels with no return
    depth_flying_pixels: float = 0.0  # fraction of them that return a depth between fore- and background
    rgb_noise: float = 0.0            # std of the RGB noise in 8-bit levels

    def __post_init__(self) -> None:
        where = f"camera '{self.name}'"
        for key, hi in (("width", MAX_SIDE_PX), ("height", MAX_SIDE_PX)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 0 < value <= hi:
                raise SpecError(where, key, f"an integer in [1, {hi}] pixels", value)
        if self.width * self.height > MAX_PIXELS:
            raise SpecError(where, "width", f"width x height at most {MAX_PIXELS} pixels",
                            f"{self.width} x {self.height}")
        for key in ("fx", "fy"):
            checks.number(getattr(self, key), where, key, 0.0, 1e6, lo_open=True, unit="px", error=SpecError)
        for key in ("cx", "cy"):
            checks.number(getattr(self, key), where, key, -1e6, 1e6, unit="px", error=SpecError)
        T = np.asarray(self.T_world_camera, dtype=float)
        if T.size != 16:
            raise SpecError(where, "T_world_camera", "16 numbers (a 4x4 matrix)", T.size)
        if not np.all(np.isfinite(T)) or np.abs(T).max() > 100.0:
            raise SpecError(where, "T_world_camera", "finite numbers (a position within 100 m)", list(T.flatten()))
        T = T.reshape(4, 4)
        if not np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise SpecError(where, "T_world_camera", "a rigid transform")
        object.__setattr__(self, "T_world_camera", tuple(float(v) for v in T.flatten()))
        checks.number(self.near_m, where, "near_m", 0.0, 10.0, lo_open=True, unit="m", error=SpecError)
        checks.number(self.far_m, where, "far_m", 0.0, 100.0, lo_open=True, unit="m", error=SpecError)
        if not self.near_m < self.far_m:
            raise SpecError(where, "far_m", f"a distance beyond near_m = {self.near_m}", self.far_m)
        for key in _NOISE_FIELDS + _FRACTIONS:
            value = checks.number(getattr(self, key), where, key, 0.0, _NOISE_MAX.get(key, 1.0), error=SpecError)
            object.__setattr__(self, key, value)
        if self.depth_edge_dropout + self.depth_flying_pixels > 1:
            raise SpecError(where, "depth_flying_pixels", "depth_edge_dropout + depth_flying_pixels <= 1",
                            self.depth_edge_dropout + self.depth_flying_pixels)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def T_world_camera_matrix(self) -> np.ndarray:
        return np.asarray(self.T_world_camera, dtype=float).reshape(4, 4)

    @classmethod
    def look_at(cls, name: str, width: int, height: int, fov_deg: float, eye, target, up=(0.0, 0.0, 1.0),
                **kw) -> CameraSpec:
        """fov_deg is the vertical field of view, as in PyBullet."""
        eye, target, up = (np.asarray(v, dtype=float) for v in (eye, target, up))
        z = target - eye
        if np.linalg.norm(z) < 1e-9:
            raise SpecError(None, "target", "a point away from the eye", list(target))
        z /= np.linalg.norm(z)
        x = np.cross(z, up)
        if np.linalg.norm(x) < 1e-9:
            raise SpecError(None, "up", "a direction not parallel to the viewing direction", list(up))
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        T = np.eye(4)
        T[:3, 0], T[:3, 1], T[:3, 2], T[:3, 3] = x, y, z, eye
        f = 0.5 * height / np.tan(np.radians(fov_deg) / 2.0)
        return cls(name, int(width), int(height), f, f, width / 2.0 - 0.5, height / 2.0 - 0.5, tuple(T.flatten()), **kw)

    @classmethod
    def from_dict(cls, d: dict, where: str | None = None, prefix: str | None = None) -> CameraSpec:
        """Either {fov_deg | fx,fy,cx,cy} with {eye, target[, up] | T_world_camera}; width and height always.

        `where` is the file the mapping came from, `prefix` its field there (an inline camera in a task).
        """
        def f(key: str) -> str:
            return f"{prefix}.{key}" if prefix else key

        allowed = ("name", "width", "height", "fov_deg", "fx", "fy", "cx", "cy", "eye", "target", "up",
                   "T_world_camera", "near_m", "far_m", *_NOISE_FIELDS, *_FRACTIONS)
        checks.mapping(d, where, prefix, "a mapping of camera fields", allowed, ("width", "height"), error=SpecError)
        name = checks.name(d["name"], where, f("name"), "a camera name", error=SpecError) if "name" in d \
            else str(prefix or where or "camera")
        width = checks.integer(d["width"], where, f("width"), 1, MAX_SIDE_PX, error=SpecError)
        height = checks.integer(d["height"], where, f("height"), 1, MAX_SIDE_PX, error=SpecError)
        if width * height > MAX_PIXELS:
            raise SpecError(where, f("width"), f"width x height at most {MAX_PIXELS} pixels", f"{width} x {height}")
        extra = {k: checks.number(d[k], where, f(k), error=SpecError)
                 for k in ("near_m", "far_m", *_NOISE_FIELDS, *_FRACTIONS) if k in d}
        has_k = all(k in d for k in ("fx", "fy", "cx", "cy"))
        if not has_k and "fov_deg" not in d:
            raise SpecError(where, f("fov_deg"), "a field of view in degrees (or all of fx, fy, cx, cy)")
        if has_k:
            intr = tuple(checks.number(d[k], where, f(k), error=SpecError) for k in ("fx", "fy", "cx", "cy"))
        else:
            fov = checks.number(d["fov_deg"], where, f("fov_deg"), 1.0, 170.0, unit="degrees", error=SpecError)
            fpx = 0.5 * height / np.tan(np.radians(fov) / 2.0)
            intr = (fpx, fpx, width / 2.0 - 0.5, height / 2.0 - 0.5)
        try:
            if "T_world_camera" in d:
                T = d["T_world_camera"]
                flat = [v for row in T for v in (row if isinstance(row, list) else [row])] \
                    if isinstance(T, list) else T
                T = checks.numbers(flat, where, f("T_world_camera"), 16, what="16 finite numbers (a 4x4 matrix)",
                                   error=SpecError)
            else:
                for key in ("eye", "target"):
                    if key not in d:
                        raise SpecError(where, f(key), "a point [x, y, z] in metres (or give T_world_camera)")
                eye, target, up = (checks.numbers(d.get(k, [0.0, 0.0, 1.0]), where, f(k), 3, -100.0, 100.0,
                                                  error=SpecError) for k in ("eye", "target", "up"))
                T = cls.look_at(name, width, height, 60.0, eye, target, up).T_world_camera
            return cls(name, width, height, *intr, T, **extra)
        except SpecError as exc:  # a check across fields (in __post_init__): place it in the file
            got = () if exc.got is None else (configs.Said(exc.got),)
            raise SpecError(where, f(exc.field or ""), exc.expected, *got, hint=exc.hint) from None

    def to_dict(self) -> dict:
        return {"name": self.name, "width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy,
                "cx": self.cx, "cy": self.cy, "T_world_camera": list(self.T_world_camera), "near_m": self.near_m,
                "far_m": self.far_m, **{k: getattr(self, k) for k in (*_NOISE_FIELDS, *_FRACTIONS)}}

    @property
    def has_sensor_model(self) -> bool:
        """Whether any imperfection is switched on (render_rgbd applies them only when given an rng)."""
        return any(getattr(self, k) > 0 for k in (*_NOISE_FIELDS, *_FRACTIONS))

    def view_matrix_gl(self) -> list[float]:
        T_world_gl = self.T_world_camera_matrix @ _CV_TO_GL
        return list(np.linalg.inv(T_world_gl).flatten(order="F"))

    def projection_matrix_gl(self) -> list[float]:
        # Pixel centres sit at integer (u, v) in OpenCV but at +0.5 in OpenGL window coordinates.
        W, H, n, f = self.width, self.height, self.near_m, self.far_m
        P = np.array([
            [2 * self.fx / W, 0.0, 1.0 - 2 * (self.cx + 0.5) / W, 0.0],
            [0.0, 2 * self.fy / H, 2 * (self.cy + 0.5) / H - 1.0, 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ])
        return list(P.flatten(order="F"))


def load_fast_renderer(client: int, allow_egl: bool = True) -> int:
    """Try the EGL plugin (Mesa on the CPU is ~5x faster than TinyRenderer); return the renderer flag to use.

    Call it on an empty client: the plugin renders only bodies created after it is loaded, and once loaded
    it serves every getCameraImage call of that client, from the thread that loaded it only (EGL contexts are
    per thread). allow_egl=False forces TinyRenderer (the command line's ANTIGROUNDING_RENDERER=tiny).
    """
    if not allow_egl:
        return p.ER_TINY_RENDERER
    loader = pkgutil.get_loader("eglRenderer")
    if loader is None:
        return p.ER_TINY_RENDERER
    try:
        plugin = p.loadPlugin(loader.get_filename(), "_eglRendererPlugin", physicsClientId=client)
    except p.error as exc:  # no EGL on this machine
        log.info("EGL renderer unavailable (%s); using TinyRenderer", exc)
        return p.ER_TINY_RENDERER
    return p.ER_BULLET_HARDWARE_OPENGL if plugin >= 0 else p.ER_TINY_RENDERER


def render_rgbd(client: int, cam: CameraSpec, rng: np.random.Generator | None = None,
                renderer: int = p.ER_TINY_RENDERER, segmentation: bool = True) -> RGBD:
    """Render the client's scene; with an rng, the camera's sensor model (apply_sensor_model) is applied.

    segmentation=False skips the mask pass (~10-15 ms of a ~50 ms EGL frame on 2 cores); seg is then None.
    """
    _, _, rgba, depth_buf, seg = p.getCameraImage(
        cam.width, cam.height, cam.view_matrix_gl(), cam.projection_matrix_gl(), renderer=renderer,
        flags=0 if segmentation else p.ER_NO_SEGMENTATION_MASK, physicsClientId=client)
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(cam.height, cam.width, 4)[:, :, :3].copy()
    buf = np.asarray(depth_buf, dtype=np.float64).reshape(cam.height, cam.width)
    n, f = cam.near_m, cam.far_m
    depth = (f * n / (f - (f - n) * buf)).astype(np.float32)
    depth[buf >= 0.9999] = np.nan
    body = None
    if segmentation:
        seg = np.asarray(seg, dtype=np.int64).reshape(cam.height, cam.width)
        body = np.where(seg >= 0, seg & ((1 << 24) - 1), -1).astype(np.int32)
    if rng is not None and cam.has_sensor_model:
        rgb, depth = apply_sensor_model(rgb, depth, cam, rng)
    return RGBD(rgb, depth, body)


def _unit_noise_field(shape: tuple[int, int], corr_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian noise, smoothed by a Gaussian of corr_px pixels (white if 0)."""
    white = rng.standard_normal(shape, dtype=np.float32)
    if corr_px <= 0:
        return white
    radius = int(4.0 * corr_px + 0.5)     # ndimage's default truncation
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / corr_px) ** 2)
    k /= k.sum()
    smooth = ndimage.gaussian_filter(white, corr_px, mode="reflect")
    # a separable unit-sum kernel shrinks the variance of white noise by (sum k^2)^2
    return smooth / np.float32(np.sum(k**2))


def apply_sensor_model(rgb: np.ndarray, depth_m: np.ndarray, cam: CameraSpec, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
    """An active-stereo camera's imperfections on exact (rgb, depth_m); returns new arrays.

    Order follows the sensor: discontinuities first (the matcher mixes fore- and background there, or rejects
    the match), then axial noise sigma(z) = depth_noise_m * z^2 correlated over depth_noise_corr_px pixels,
    then quantisation to the output unit, then dropout. NaN stays NaN (no return).
    """
    depth = np.array(depth_m, dtype=np.float32, copy=True)
    finite = np.isfinite(depth)
    if cam.depth_edge_dropout > 0 or cam.depth_flying_pixels > 0:
        filled = np.where(finite, depth, np.float32(cam.far_m))
        lo = ndimage.minimum_filter(filled, size=3, mode="nearest")
        hi = ndimage.maximum_filter(filled, size=3, mode="nearest")
        edge = (hi - lo > DEPTH_EDGE_JUMP_M) & finite
        u = rng.random(depth.shape, dtype=np.float32)
        flying = edge & (u < cam.depth_flying_pixels)
        dropped = edge & (u >= cam.depth_flying_pixels) & (u < cam.depth_flying_pixels + cam.depth_edge_dropout)
        mix = rng.random(depth.shape, dtype=np.float32)
        depth = np.where(flying, lo + mix * (hi - lo), depth)
        depth[dropped] = np.nan
        # a flying depth behind the far plane (mixed with "no return") is no return either
        depth[flying & (depth >= cam.far_m)] = np.nan
    if cam.depth_noise_m > 0:
        depth = depth + _unit_noise_field(depth.shape, cam.depth_noise_corr_px, rng) * (
            np.float32(cam.depth_noise_m) * depth * depth)
    if cam.depth_quant_m > 0:
        depth = (np.round(depth / cam.depth_quant_m) * cam.depth_quant_m).astype(np.float32)
    if cam.depth_dropout > 0:
        depth[rng.random(depth.shape) < cam.depth_dropout] = np.nan
    with np.errstate(invalid="ignore"):
        depth[depth <= 0] = np.nan
    if cam.rgb_noise > 0:
        noisy = rgb.astype(np.float32) + rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(cam.rgb_noise)
        rgb = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return rgb, depth.astype(np.float32)


def project_points(cam: CameraSpec, pts_world) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) -> pixel coordinates (N, 2) (u right, v down) and depth z (N,) in metres."""
    pts = np.asarray(pts_world, dtype=float).reshape(-1, 3)
    T_cam_world = np.linalg.inv(cam.T_world_camera_matrix)
    pc = pts @ T_cam_world[:3, :3].T + T_cam_world[:3, 3]
    z = pc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = np.stack([cam.fx * pc[:, 0] / z + cam.cx, cam.fy * pc[:, 1] / z + cam.cy], axis=1)
    return uv, z


def backproject(depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Depth image -> (H*W, 3) points in the camera's optical frame; NaN depth stays NaN."""
    H, W = depth_m.shape
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    z = depth_m.astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)
