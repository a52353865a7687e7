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


def camera_spec_of(frame: CameraFrame, scale: float = 1.0) -> CameraSpec:
    """A noise-free CameraSpec with the frame's pose and intrinsics, its image scaled by `scale`."""
    K = frame.K * np.array([[scale], [scale], [1.0]])
    return CameraSpec(name=frame.name, width=max(1, round(frame.width * scale)),
                      height=max(1, round(frame.height * scale)), fx=float(K[0, 0]), fy=float(K[1, 1]),
                      cx=float(K[0, 2]), cy=float(K[1, 2]), T_world_camera=tuple(frame.T_world_camera.flatten()))


def twin_beside_camera_png(world: World, frame: CameraFrame, scale: float = 0.5) -> bytes:
    """PNG of [camera | twin | blend] at `scale` of the camera's resolution, each panel labelled.

    The twin is rendered at the panel size directly (a quarter of the pixels at 0.5): this runs every step."""
    cam = camera_spec_of(frame, scale)
    twin_rgb = render_rgbd(world.client, cam, renderer=world.renderer, segmentation=False).rgb
    real = np.asarray(Image.fromarray(frame.rgb).resize((cam.width, cam.height), Image.BILINEAR))
    blend = ((real.astype(np.uint16) + twin_rgb.astype(np.uint16)) // 2).astype(np.uint8)
    w, h = cam.width, cam.height
    canvas = Image.new("RGB", (3 * w, h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (rgb, label) in enumerate(((real, f"camera {frame.name}"), (twin_rgb, "twin"), (blend, "blend"))):
        canvas.paste(Image.fromarray(rgb), (i * w, 0))
        draw.rectangle((i * w, 0, i * w + 8 + 7 * len(label), 16), fill="black")
        draw.text((i * w + 4, 2), label, fill="white")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
