"""The failure picture (render/failure_view.py): the symbols land where their world points project, and the legend
names exactly what is drawn."""

import io

import numpy as np
from PIL import Image

from render.failure_view import ARROW_RGB, PREDICTED_RGB, TARGET_RGB, FailureMarks, failure_png, symbols_of
from sim.camera import CameraSpec, project_points

CAM = CameraSpec.look_at("front", 320, 240, 60.0, eye=(1.2, 0.0, 0.6), target=(0.5, 0.0, 0.05))


def _near(rgb: np.ndarray, uv, color, radius: int = 20) -> int:
    """Pixels of `color` (within 30 per channel) within `radius` of uv."""
    u, v = int(round(uv[0])), int(round(uv[1]))
    patch = rgb[max(0, v - radius):v + radius, max(0, u - radius):u + radius].astype(int)
    return int(np.sum(np.all(np.abs(patch - np.asarray(color)) < 30, axis=-1)))


def test_symbols_are_drawn_where_their_points_project(twin):
    marks = FailureMarks("dropped", 0, "grasp the red block", object="red_block", target_xyz=(0.45, 0.15, 0.03),
                         predicted_xyz=(0.55, -0.15, 0.03), from_xyz=(0.5, 0.0, 0.3), gripper_closed=True)
    rgb = np.asarray(Image.open(io.BytesIO(failure_png(twin, CAM, marks))).convert("RGB"))
    assert rgb.shape == (240, 320, 3)
    (target, predicted, hand), _ = project_points(CAM, [marks.target_xyz, marks.predicted_xyz, marks.from_xyz])
    assert _near(rgb, target, TARGET_RGB) > 20
    assert _near(rgb, predicted, PREDICTED_RGB) > 20
    assert _near(rgb, (target + hand) / 2, ARROW_RGB) > 10        # the arrow runs from the hand to the target
    assert _near(rgb, predicted, TARGET_RGB) == 0                  # no crosshair where nothing is aimed at
    legend = symbols_of(marks)
    assert any("crosshair: red_block" in s for s in legend) and any("hollow blue square" in s for s in legend)
    assert "gripper ON (closed)" in legend and legend[-1] == "rewind mark: back to subtask 0: grasp the red block"


def test_without_points_only_the_gripper_state_and_the_rewind_are_drawn(twin):
    marks = FailureMarks("no_progress", 1, "place it")
    assert symbols_of(marks) == ("gripper OFF (open)", "rewind mark: back to subtask 1: place it")
    rgb = np.asarray(Image.open(io.BytesIO(failure_png(twin, CAM, marks))).convert("RGB"))
    assert not np.any(np.all(np.abs(rgb.astype(int) - np.asarray(TARGET_RGB)) < 30, axis=-1))
