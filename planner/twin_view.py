"""The twin seen through a real camera: the camera's image, the twin rendered with the same intrinsics and
pose, and a 50/50 blend, side by side. A person checks the reconstruction at a glance: where the blend
shows double edges, the twin and the world disagree."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from robot_io.observation import CameraFrame
from sim.camera import CameraSpec, render_rgbd
from sim.world import World


def camera_spec_of(frame: CameraFrame) -> CameraSpec:
    """A noise-free CameraSpec with the frame's intrinsics and pose."""
    K = frame.K
    return CameraSpec(name=frame.name, width=frame.width, height=frame.height, fx=float(K[0, 0]), fy=float(K[1, 1]),
                      cx=float(K[0, 2]), cy=float(K[1, 2]), T_world_camera=tuple(frame.T_world_camera.flatten()))


def twin_beside_camera_png(world: World, frame: CameraFrame, scale: float = 0.5) -> bytes:
    """PNG of [camera | twin | blend] at `scale` of the camera's resolution, each panel labelled."""
    twin_rgb = render_rgbd(world.client, camera_spec_of(frame), renderer=world.renderer, segmentation=False).rgb
    real = frame.rgb
    blend = ((real.astype(np.uint16) + twin_rgb.astype(np.uint16)) // 2).astype(np.uint8)
    w, h = max(1, int(frame.width * scale)), max(1, int(frame.height * scale))
    canvas = Image.new("RGB", (3 * w, h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (rgb, label) in enumerate(((real, f"camera {frame.name}"), (twin_rgb, "twin"), (blend, "blend"))):
        canvas.paste(Image.fromarray(rgb).resize((w, h), Image.BILINEAR), (i * w, 0))
        draw.rectangle((i * w, 0, i * w + 8 + 7 * len(label), 16), fill="black")
        draw.text((i * w + 4, 2), label, fill="white")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
