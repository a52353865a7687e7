"""Labelled axes on the gripper ("G") and the held object ("O") for the rotation question (render.frames)."""

import numpy as np
import pytest

from render.frames import Frame, draw_frames
from render.palette import AXIS_COLORS
from sim.camera import CameraSpec, project_points
from sim.geometry import Pose

# A side camera (from -y): image right = world +x, image up = world +z.
CAM = CameraSpec.look_at("side", 320, 240, 45.0, eye=(0.5, -1.0, 0.2), target=(0.5, 0.0, 0.2), up=(0, 0, 1))
GREY = np.full((CAM.height, CAM.width, 3), 128, dtype=np.uint8)
DOWN = Pose.from_xyz_rpy_deg((0.45, 0.0, 0.25), (180, 0, 0))
BLOCK = Pose.from_xyz_rpy_deg((0.6, 0.0, 0.15), (0, 0, 0))


def _best_match(img, uv, color):
    col, row = int(round(uv[0])), int(round(uv[1]))
    patch = img[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3).astype(int)
    return int(np.abs(patch - color).max(axis=1).min())


def test_arrows_run_where_each_frames_axes_project_and_tips_are_reported():
    frames = [Frame("G", DOWN, 0.08), Frame("O", BLOCK, 0.06)]
    out = draw_frames(GREY, CAM, frames, "side")
    for f in frames:
        o = project_points(CAM, f.pose.position[None])[0][0]
        for k in (0, 2):   # x and z lie in the image plane of this camera; y points along its axis
            tip_world = f.tips_world()[k]
            tip = project_points(CAM, tip_world[None])[0][0]
            assert np.linalg.norm(tip - o) > 15
            assert out.tips_px[f"{f.label}{'xyz'[k]}"] == pytest.approx(tuple(tip), abs=1e-6)
            # the 3 px arrow covers its centre line: a pixel within 0.5 px of it is the axis colour (see
            # test_render_overlay's marker test); half way along is away from the arrow head and the label
            assert _best_match(out.rgb, o + 0.5 * (tip - o), AXIS_COLORS[k]) <= 8
    # the gripper's z (blue) points down in the world, so down in the picture
    g = out.tips_px["Gz"]
    assert g[1] > project_points(CAM, DOWN.position[None])[0][0][1] + 15


def test_bad_frames_are_refused():
    with pytest.raises(ValueError, match="unique"):
        draw_frames(GREY, CAM, [Frame("G", DOWN), Frame("G", BLOCK)])
    with pytest.raises(ValueError, match="does not match"):
        draw_frames(GREY[:10], CAM, [Frame("G", DOWN)])
    with pytest.raises(ValueError, match="positive"):
        Frame("G", DOWN, 0.0)


def test_the_renderer_draws_the_frames_in_every_view(twin):
    import configs
    from render.renderer import Renderer
    from render.views import load_views
    renderer = Renderer(load_views(configs.file("views.yaml"), ("front", "top")))
    views = renderer.render_frames(twin, [Frame("G", twin.tcp_pose())])
    assert [v.name for v in views] == ["front", "top"]
    assert all(v.png.startswith(b"\x89PNG") and v.endpoints_px == {} for v in views)
