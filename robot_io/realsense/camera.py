"""`RealSenseCamera`: a live Intel RealSense, or a recorded file, behind `robot_io.camera.Camera`.

RGB uint8, depth in metres as float32 (the device's z16 units times its depth scale; 0 = no return -> NaN),
intrinsics K read from the stream profile (the colour stream's when depth is aligned to colour), and
`T_world_camera` from the config (written by `antigrounding calibrate`).

`pipeline.start()` blocks ~15 s when no device is attached, so a live connect first asks the librealsense
context which devices exist and fails at once with the list. A recording plays with real time off, so frames
are delivered however slow the reader (librealsense starts it in real time: the first few can be missed on a
loaded machine); its end raises `RobotError("... recording ended ...")`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from robot_io.camera import Camera
from robot_io.errors import NotConnectedError, RobotError
from robot_io.observation import CameraFrame
from robot_io.realsense.config import RealSenseConfig

log = logging.getLogger(__name__)


def _import_rs():
    try:
        import pyrealsense2 as rs
    except ImportError as e:
        raise RobotError(f"the RealSense camera needs pyrealsense2: pip install 'antigrounding[realsense]' ({e})") \
            from None
    return rs


def intrinsics_matrix(intr) -> np.ndarray:
    """3x3 K from a pyrealsense2 `intrinsics` (fx, fy, ppx, ppy)."""
    return np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])


class RealSenseCamera(Camera):
    """One RealSense (or recording). Use as a context manager; `read()` returns the next aligned RGB-D frame."""

    def __init__(self, config: RealSenseConfig | None = None) -> None:
        self.config = config or RealSenseConfig.load()
        self.name = self.config.name
        self._rs = None
        self._pipe = None
        self._align = None
        self._playback = None
        self.depth_scale_m: float | None = None
        self.T_world_camera = self.config.pose()

    def __repr__(self) -> str:
        src = self.config.recording or self.config.serial or "first device"
        return f"RealSenseCamera({self.name}: {src}, connected={self.is_connected})"

    @property
    def is_connected(self) -> bool:
        return self._pipe is not None

    def connect(self) -> None:
        if self._pipe is not None:
            raise RobotError(f"{self!r}: already connected")
        rs = self._rs = _import_rs()
        cfg = self.config
        rs_cfg = rs.config()
        if cfg.recording is not None:
            path = Path(cfg.recording)
            if not path.is_file():
                raise RobotError(f"{self.name}: recording {path} does not exist")
            rs_cfg.enable_device_from_file(str(path), repeat_playback=False)
            rs_cfg.enable_stream(rs.stream.depth)
            rs_cfg.enable_stream(rs.stream.color)
        else:
            serials = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
            if not serials:
                raise RobotError(f"{self.name}: no RealSense device found. Plug it into a USB 3 port (a USB 2 link "
                                 f"cannot carry depth + colour at {cfg.width}x{cfg.height}@{cfg.fps}), check "
                                 f"`rs-enumerate-devices`, and on Linux install librealsense's udev rules.")
            if cfg.serial is not None:
                if cfg.serial not in serials:
                    raise RobotError(f"{self.name}: no RealSense with serial {cfg.serial}; connected: {serials}")
                rs_cfg.enable_device(cfg.serial)
            elif len(serials) > 1:
                raise RobotError(f"{self.name}: {len(serials)} RealSense devices connected {serials}; set `serial`")
            rs_cfg.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
            rs_cfg.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        pipe = rs.pipeline()
        try:
            profile = pipe.start(rs_cfg)
        except RuntimeError as e:
            raise RobotError(f"{self.name}: librealsense could not start the streams: {e}") from None
        device = profile.get_device()
        if cfg.recording is not None:
            self._playback = device.as_playback()
            self._playback.set_real_time(False)
        try:
            self.depth_scale_m = float(device.first_depth_sensor().get_depth_scale())
        except RuntimeError as e:
            pipe.stop()
            raise RobotError(f"{self.name}: the device has no depth sensor: {e}") from None
        self._align = rs.align(rs.stream.color) if cfg.align_depth_to_color else None
        self._pipe = pipe
        log.info("%r streaming (depth scale %.6f m)", self, self.depth_scale_m)

    def read(self) -> CameraFrame:
        if self._pipe is None:
            raise NotConnectedError(f"{self!r} is not connected; call connect() or use it as a context manager")
        rs, cfg = self._rs, self.config
        deadline = time.monotonic() + cfg.timeout_s
        while True:
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            ok, frames = self._pipe.try_wait_for_frames(left_ms)
            if not ok:
                if self._playback is not None and self._playback.current_status() == rs.playback_status.stopped:
                    raise RobotError(f"{self.name}: the recording ended ({cfg.recording})")
                raise RobotError(f"{self.name}: no frame within {cfg.timeout_s} s (cable, USB bandwidth, or the "
                                 f"device was unplugged)")
            if self._align is not None:
                frames = self._align.process(frames)
            depth, color = frames.get_depth_frame(), frames.get_color_frame()
            if depth and color:
                return self._frame(depth, color)
            if time.monotonic() > deadline:
                raise RobotError(f"{self.name}: no frame with both depth and colour within {cfg.timeout_s} s")

    def _frame(self, depth, color) -> CameraFrame:
        rs = self._rs
        z16 = np.asanyarray(depth.get_data())
        depth_m = z16.astype(np.float32) * np.float32(self.depth_scale_m)
        depth_m[z16 == 0] = np.nan
        img = np.asanyarray(color.get_data())
        fmt = color.get_profile().format()
        if fmt == rs.format.bgr8:
            img = img[..., ::-1]
        elif fmt in (rs.format.rgba8, rs.format.bgra8):
            img = img[..., [2, 1, 0]] if fmt == rs.format.bgra8 else img[..., :3]
        elif fmt != rs.format.rgb8:
            raise RobotError(f"{self.name}: colour format {fmt} is not supported (use rgb8, bgr8, rgba8 or bgra8)")
        if img.shape[:2] != depth_m.shape:
            raise RobotError(f"{self.name}: colour {img.shape[:2]} and depth {depth_m.shape} differ in size; set "
                             f"align_depth_to_color: true")
        source = color if self._align is not None else depth
        K = intrinsics_matrix(source.get_profile().as_video_stream_profile().get_intrinsics())
        return CameraFrame(name=self.name, rgb=np.ascontiguousarray(img, dtype=np.uint8), depth_m=depth_m, K=K,
                           T_world_camera=self.T_world_camera)

    def disconnect(self) -> None:
        pipe, self._pipe = self._pipe, None
        self._playback = self._align = None
        if pipe is not None:
            try:
                pipe.stop()
            except RuntimeError as e:
                log.warning("%s: pipeline.stop(): %s", self.name, e)
