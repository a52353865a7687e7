"""The failure picture (after ViFailback's visual symbols): the twin seen through a real camera with a crosshair on
the target, an arrow for the correction, a hollow square where the twin predicted the object, a gripper ON/OFF
box and a rewind mark naming the subtask the plan goes back to. The report shows it and the failure question's
agents are asked over it. The planner says what to mark (`FailureMarks`, from its typed failure); this file only
draws."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from sim.camera import CameraSpec, project_points, render_rgbd
from sim.world import World

TARGET_RGB = (255, 40, 40)      # crosshair
ARROW_RGB = (255, 200, 0)       # correction
PREDICTED_RGB = (60, 200, 255)  # where the twin expected the object
ON_RGB, OFF_RGB = (20, 150, 60), (90, 90, 90)

XYZ = tuple[float, float, float]


@dataclass(frozen=True)
class FailureMarks:
    """What the failure picture marks (world frame): the target now (crosshair), where the twin predicted the
    object (hollow square), the gripper now (the correction arrow starts there), ON/OFF, and the rewind."""

    kind: str                      # the failure's type, named on the rewind mark
    redo_subtask: int
    redo_say: str
    object: str | None = None
    target_object: str | None = None   # what the crosshair is on, when not `object`
    target_xyz: XYZ | None = None
    predicted_xyz: XYZ | None = None
    from_xyz: XYZ | None = None
    gripper_closed: bool = False


def _uv(cam: CameraSpec, xyz) -> tuple[float, float] | None:
    if xyz is None:
        return None
    uv, z = project_points(cam, [xyz])
    if not z[0] > 0 or not np.all(np.isfinite(uv[0])):
        return None
    return float(uv[0, 0]), float(uv[0, 1])


def _arrow(draw: ImageDraw.ImageDraw, a, b, color, width: int = 4) -> None:
    draw.line([a, b], fill=(0, 0, 0), width=width + 3)
    draw.line([a, b], fill=color, width=width)
    ang = math.atan2(b[1] - a[1], b[0] - a[0])
    size = 14
    head = [b, (b[0] - size * math.cos(ang - 0.45), b[1] - size * math.sin(ang - 0.45)),
            (b[0] - size * math.cos(ang + 0.45), b[1] - size * math.sin(ang + 0.45))]
    draw.polygon(head, fill=color, outline=(0, 0, 0))


def _crosshair(draw: ImageDraw.ImageDraw, c, r: float = 14) -> None:
    for color, w in (((0, 0, 0), 5), (TARGET_RGB, 3)):
        draw.ellipse((c[0] - r, c[1] - r, c[0] + r, c[1] + r), outline=color, width=w)
        draw.line([(c[0] - 1.6 * r, c[1]), (c[0] + 1.6 * r, c[1])], fill=color, width=w - 1)
        draw.line([(c[0], c[1] - 1.6 * r), (c[0], c[1] + 1.6 * r)], fill=color, width=w - 1)


def _label(draw: ImageDraw.ImageDraw, xy, text: str, fill) -> None:
    x, y = xy
    draw.rectangle((x, y, x + 8 + 6 * len(text), y + 14), fill=fill, outline=(0, 0, 0))
    draw.text((x + 4, y + 1), text, fill=(255, 255, 255))


def symbols_of(marks: FailureMarks) -> tuple[str, ...]:
    """The legend of what failure_png draws, one line per symbol (the failure question lists it)."""
    out = []
    if marks.target_xyz is not None:
        aim = marks.target_object or marks.object
        out.append(f"red crosshair: {aim or 'the target'} where the cameras see it now")
    if marks.predicted_xyz is not None:
        out.append(f"hollow blue square: where the twin predicted {marks.object or 'it'}")
    if marks.target_xyz is not None and marks.from_xyz is not None:
        out.append("yellow arrow: the correction, from the gripper to the target")
    out.append(f"gripper {'ON (closed)' if marks.gripper_closed else 'OFF (open)'}")
    out.append(f"rewind mark: back to subtask {marks.redo_subtask}: {marks.redo_say}")
    return tuple(out)


def failure_png(world: World, cam: CameraSpec, marks: FailureMarks) -> bytes:
    """The twin through camera `cam` with the failure's symbols drawn on it."""
    rgb = render_rgbd(world.client, cam, renderer=world.renderer, segmentation=False).rgb
    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
    draw = ImageDraw.Draw(image)
    target = _uv(cam, marks.target_xyz)
    predicted = _uv(cam, marks.predicted_xyz)
    hand = _uv(cam, marks.from_xyz)
    if hand is not None and target is not None:
        _arrow(draw, hand, target, ARROW_RGB)
    if predicted is not None:
        p = predicted
        draw.rectangle((p[0] - 8, p[1] - 8, p[0] + 8, p[1] + 8), outline=PREDICTED_RGB, width=3)
    if target is not None:
        _crosshair(draw, target)
    on = marks.gripper_closed
    where = (hand[0] + 12, hand[1] - 24) if hand is not None else (cam.width - 110, 4)
    _label(draw, where, "gripper ON" if on else "gripper OFF", ON_RGB if on else OFF_RGB)
    # rewind mark: two triangles pointing left, and the subtask the plan goes back to
    text = f"{marks.kind}: back to subtask {marks.redo_subtask}: {marks.redo_say}"
    fits = max(8, (cam.width - 50) // 6)   # the default bitmap font is 6 px wide
    text = text if len(text) <= fits else text[:fits - 3] + "..."
    x, y = 6, cam.height - 26
    draw.rectangle((x - 2, y - 4, min(cam.width - 2, x + 40 + 6 * len(text)), y + 20), fill=(0, 0, 0))
    for dx in (0, 14):
        draw.polygon([(x + dx, y + 8), (x + dx + 14, y), (x + dx + 14, y + 16)], fill=(255, 255, 255))
    draw.text((x + 34, y + 3), text, fill=(255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
