"""Coordinate frames drawn into a view for the rotation question: labelled x/y/z arrows on the gripper ("G")
and on the object it holds ("O"), so an agent can name an axis, a direction and an angle.

Arrows are clipped to the view (an axis that points at the camera is drawn as far as it is visible), drawn
far-to-near so that the nearer arrow is on top, each with a dark outline and its label (e.g. "Gy") in the
axis colour at its tip. Works on an RGB array and the view's `CameraSpec`; nothing touches PyBullet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from render.overlay import _Canvas, _cased, _legend_corner, _legend_layer, font
from render.palette import AXIS_COLORS, AXIS_NAMES, OUTLINE
from render.projection import checked_image, clip_polylines, to_camera_frame
from sim.camera import CameraSpec
from sim.geometry import Pose

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Frame:
    """A frame to draw: its label letter ("G" gripper, "O" held object), its pose in the world, arrow length."""

    label: str
    pose: Pose
    length_m: float = 0.08

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise ValueError(f"Frame.label: expected a non-empty string, got {self.label!r}")
        if not self.length_m > 0:
            raise ValueError(f"Frame.length_m: expected a positive length, got {self.length_m!r}")

    def tips_world(self) -> np.ndarray:
        """(3, 3) world positions of the x, y and z arrow tips."""
        R = self.pose.rotation()
        return self.pose.position[None, :] + self.length_m * R.T


@dataclass(frozen=True)
class DrawnFrames:
    rgb: np.ndarray
    tips_px: dict[str, tuple[float, float]]   # "Gx" -> pixel of that arrow's visible tip


def _legend(view_name: str, labels: Sequence[str]) -> tuple:
    names = {"G": "gripper", "O": "held object"}
    line = [(f"view: {view_name}   axes: ", WHITE)]
    line += [(f"{lab} {names.get(lab, lab)}   ", WHITE) for lab in labels]
    colours = [("x ", AXIS_COLORS[0]), ("y ", AXIS_COLORS[1]), ("z ", AXIS_COLORS[2]), ("= ", WHITE)]
    colours += [(n + " ", AXIS_COLORS[k]) for k, n in enumerate(AXIS_NAMES)]
    turn = [("positive turn: counter-clockwise seen from the arrow's tip", WHITE)]
    return (tuple(line), tuple(colours), tuple(turn))


def draw_frames(rgb: np.ndarray, cam: CameraSpec, frames: Sequence[Frame], view_name: str | None = None,
                width_px: float = 3.0, font_px: int = 13, supersample: int = 2) -> DrawnFrames:
    """Draw each frame's three arrows and their labels on a copy of rgb (H, W, 3) uint8 seen through cam."""
    rgb = checked_image(rgb, cam, "draw_frames")
    labels = [f.label for f in frames]
    if len(set(labels)) != len(labels):
        raise ValueError(f"draw_frames: frame labels must be unique, got {labels}")
    segments, keys = [], []
    for f in frames:
        for k, tip in enumerate(f.tips_world()):
            segments.append(np.stack([f.pose.position, tip]))
            keys.append((f.label, k))
    pieces = clip_polylines(cam, segments) if segments else []
    depth = to_camera_frame(cam, np.array([s[1] for s in segments]).reshape(-1, 3))[:, 2] if segments else []
    canvas = _Canvas(rgb, supersample)
    tips: dict[str, tuple[float, float]] = {}
    order = sorted(range(len(segments)), key=lambda i: -depth[i])   # far arrows first
    for i in order:
        label, k = keys[i]
        for piece in pieces[i]:
            _cased(canvas, piece, AXIS_COLORS[k], width_px, [(OUTLINE, 1.0)])
            canvas.disc(piece[-1], width_px * 1.1, AXIS_COLORS[k], OUTLINE, 1.0)   # the arrow's head
        if pieces[i]:
            tips[f"{label}{'xyz'[k]}"] = (float(pieces[i][-1][-1, 0]), float(pieces[i][-1][-1, 1]))
    image = canvas.result()
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    f = font(font_px)
    for name, (u, v) in tips.items():
        k = "xyz".index(name[-1])
        x, y = u + 4.0, v - font_px - 2.0
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):   # a dark halo keeps the letters legible anywhere
            draw.text((x + dx, y + dy), name, font=f, fill=OUTLINE)
        draw.text((x, y), name, font=f, fill=AXIS_COLORS[k])
    legend = _legend_layer(_legend(view_name or cam.name, labels), 12)
    box = _legend_corner(legend.size, cam.width, cam.height,
                         [p for ps in pieces for p in ps] or [np.zeros((0, 2))])
    image.paste(legend, box[:2], legend)
    return DrawnFrames(np.array(image), tips)
