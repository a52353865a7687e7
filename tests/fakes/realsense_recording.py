"""Writes a synthetic RealSense recording: depth (z16) + colour (rgb8) streams from a librealsense
`software_device`, recorded by librealsense's own `recorder` into a .db3 file (what pyrealsense2 2.59 writes and
plays). The file is read back by `RealSenseCamera` through an ordinary pipeline, as a real recording would be.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _intrinsics(rs, K: np.ndarray, width: int, height: int):
    i = rs.intrinsics()
    i.width, i.height = width, height
    i.fx, i.fy, i.ppx, i.ppy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    i.model, i.coeffs = rs.distortion.brown_conrady, [0.0] * 5
    return i


def _stream(rs, kind, uid: int, fmt, bpp: int, K: np.ndarray, width: int, height: int, fps: int):
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = kind, 0, uid
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = width, height, fps, bpp, fmt
    vs.intrinsics = _intrinsics(rs, K, width, height)
    return vs


def write_recording(path: str | Path, depth_z16: Sequence[np.ndarray], rgb: Sequence[np.ndarray],
                    K_depth: np.ndarray, K_color: np.ndarray, depth_units_m: float = 0.001, fps: int = 30) -> Path:
    """Record len(depth_z16) frame pairs (uint16 (H, W) and uint8 (H, W, 3)) at `fps`, in real time; identity
    depth->colour extrinsics."""
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"pyrealsense2 2.59 records to .db3 files, got {path.name}")
    height, width = depth_z16[0].shape
    dev = rs.software_device()
    depth_sensor, color_sensor = dev.add_sensor("Depth"), dev.add_sensor("Color")
    dp = depth_sensor.add_video_stream(_stream(rs, rs.stream.depth, 0, rs.format.z16, 2, K_depth, width, height,
                                               fps))
    depth_sensor.add_read_only_option(rs.option.depth_units, float(depth_units_m))
    cp = color_sensor.add_video_stream(_stream(rs, rs.stream.color, 1, rs.format.rgb8, 3, K_color, width, height,
                                               fps))
    ext = rs.extrinsics()
    ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    dp.register_extrinsics_to(cp, ext)
    dev.create_matcher(rs.matchers.dlr_c)
    recorder = rs.recorder(str(path), dev)
    depth_sensor.open(dp)
    color_sensor.open(cp)
    sink = rs.syncer()
    depth_sensor.start(sink)
    color_sensor.start(sink)
    for i, (d, c) in enumerate(zip(depth_z16, rgb, strict=True)):
        for sensor, profile, pixels, bpp in ((depth_sensor, dp, np.ascontiguousarray(d, np.uint16), 2),
                                             (color_sensor, cp, np.ascontiguousarray(c, np.uint8), 3)):
            f = rs.software_video_frame()
            f.pixels, f.stride, f.bpp = pixels.tobytes(), width * bpp, bpp
            f.timestamp, f.domain, f.frame_number = (i + 1) * 1000.0 / fps, rs.timestamp_domain.hardware_clock, i + 1
            f.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(f)
        sink.wait_for_frames(1000)
        # The recorder stamps frames with their arrival time: pace them like a camera, so that the file plays for
        # N / fps seconds as a real recording does (an unpaced file is over before a pipeline can be configured).
        time.sleep(1.0 / fps)
    for sensor in (depth_sensor, color_sensor):
        sensor.stop()
        sensor.close()
    del recorder                      # the file is finalised when the recorder goes away
    return path


def record_scene(path: str | Path, scene, camera, n_frames: int = 20, seed: int = 0) -> Path:
    """A recording of one true scene (sim.scene.SceneSpec) seen by one camera (sim.camera.CameraSpec): the scene is
    rendered with the camera's sensor noise (tests.fakes.recon_scenes.shoot) and its frame repeated n_frames times,
    depth in millimetres (z16; no return -> 0). What a static cell looks like to a RealSense while a run observes
    it; the camera's pose goes into the RealSense config, as `antigrounding calibrate` would write it."""
    from tests.fakes.recon_scenes import shoot

    frame = shoot(scene, [camera], seed=seed).obs.frames[0]
    depth = np.nan_to_num(frame.depth_m * 1000.0, nan=0.0)
    z16 = np.clip(np.round(depth), 0, 65535).astype(np.uint16)
    return write_recording(path, [z16] * n_frames, [frame.rgb] * n_frames, frame.K, frame.K)
