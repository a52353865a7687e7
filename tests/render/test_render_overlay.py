"""Drawing on a plain image through a synthetic camera: where things land, in which colour (no PyBullet)."""

import numpy as np
import pytest

from render.overlay import OverlayStyle, Trace, draw_overlay
from render.palette import AXIS_COLORS, PALETTE, color_of, text_color_on
from sim.camera import CameraSpec, project_points
from sim.geometry import Pose

# A top-down camera over the table: image up = world +x, image right = world -y.
CAM = CameraSpec.look_at("top", 320, 240, 45.0, eye=(0.5, 0.0, 1.0), target=(0.5, 0.0, 0.0), up=(1, 0, 0))
GREY = np.full((CAM.height, CAM.width, 3), 128, dtype=np.uint8)
DOWN = Pose.from_xyz_rpy_deg((0, 0, 0), (180, 0, 0))   # x along world +x, y along -y, z down


def _trace(cid, start, end, n=20, pose_rot=DOWN):
    path = np.linspace(start, end, n)
    return Trace(cid, path, Pose(tuple(end)) @ pose_rot)


def _pixel(img, uv):
    return img[int(round(uv[1])), int(round(uv[0]))].astype(int)


def _best_match(img, uv, color):
    """Smallest max-channel difference to color among the 3x3 pixels around uv."""
    col, row = int(round(uv[0])), int(round(uv[1]))
    patch = img[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3).astype(int)
    return int(np.abs(patch - color).max(axis=1).min())


def test_palette_is_distinct_and_stable():
    assert len(PALETTE) >= 16 and len(set(PALETTE)) == len(PALETTE)
    assert not set(PALETTE) & set(AXIS_COLORS)
    assert color_of(3) == color_of(3 + len(PALETTE)) == PALETTE[3]
    assert text_color_on((255, 255, 255)) == (0, 0, 0) and text_color_on((0, 0, 80)) == (255, 255, 255)


def test_end_point_is_on_the_curve_in_the_candidates_colour():
    style = OverlayStyle(axes=False, legend=False)
    tr = _trace(2, (0.45, 0.1, 0.1), (0.55, -0.05, 0.1))
    out = draw_overlay(GREY, CAM, [tr], style=style)
    uv_end = project_points(CAM, tr.path_xyz[-1:])[0][0]
    assert out.endpoints_px[2] == pytest.approx(tuple(uv_end), abs=1e-9)
    # The fill covers every pixel whose centre is within w/2 of the centre line; the pixel nearest to the
    # end point is at most 0.5 px off in u and in v, i.e. <= 0.71 px < w/2 = 1.5 px, inside the round cap.
    assert style.curve_width_px / 2 > np.sqrt(0.5)
    np.testing.assert_array_equal(_pixel(out.rgb, uv_end), color_of(2))
    # halfway along the curve too (pixel footprint again: within 0.71 px of the line)
    uv_mid = project_points(CAM, tr.path_xyz[10:11])[0][0]
    np.testing.assert_array_equal(_pixel(out.rgb, uv_mid), color_of(2))
    # the untouched part of the image is exactly the input (nearest-neighbour up, box filter down)
    assert (out.rgb == 128).all(axis=2).mean() > 0.9


def test_axis_markers_point_where_the_axes_project():
    style = OverlayStyle(legend=False, axis_length_m=0.06)
    tr = _trace(0, (0.4, 0.0, 0.3), (0.5, 0.0, 0.1))
    out = draw_overlay(GREY, CAM, [tr], style=style)
    end = tr.end_pose.position
    o = project_points(CAM, end[None])[0][0]
    R = tr.end_pose.rotation()
    for k, want in ((0, AXIS_COLORS[0]), (1, AXIS_COLORS[1])):   # z points away from this camera
        tip = project_points(CAM, (end + style.axis_length_m * R[:, k])[None])[0][0]
        assert np.linalg.norm(tip - o) > 10  # long enough to test
        for t in (0.5, 0.7, 0.9):
            # The marker's fill is w = 2 px wide. Among the 3x3 pixels around a point of its centre line one
            # has its centre within 0.5 px (axis-aligned) or 0.35 px (diagonal) of the line, so that pixel's
            # whole footprint (+-0.5 px, or +-0.35 px across a diagonal) lies within w/2 of the line: it is
            # pure axis colour up to rasterisation. Mirrored through the end point there is none of it.
            assert _best_match(out.rgb, o + t * (tip - o), want) <= 8
            assert _best_match(out.rgb, o - t * (tip - o), want) > 40
    # world +x is image up in this camera, so the red marker goes up from the end point
    tip_x = project_points(CAM, (end + 0.06 * R[:, 0])[None])[0][0]
    assert tip_x[1] < o[1] - 10 and abs(tip_x[0] - o[0]) < 1


def test_highlight_is_thicker_with_a_white_outline():
    a = _trace(1, (0.45, 0.1, 0.1), (0.55, 0.1, 0.1))
    b = _trace(4, (0.45, -0.1, 0.1), (0.55, -0.1, 0.1))
    style = OverlayStyle(axes=False, legend=False)
    plain = draw_overlay(GREY, CAM, [a, b], style=style).rgb
    chosen = draw_overlay(GREY, CAM, [a, b], highlight=4, style=style).rgb
    uv = project_points(CAM, b.path_xyz[8:9])[0][0]
    col, row = int(round(uv[0])), int(round(uv[1]))
    # the curve runs along v (up the image); look across it, along u
    across_plain = plain[row, col - 8:col + 9]
    across_chosen = chosen[row, col - 8:col + 9]
    is_color = lambda px: np.all(np.abs(px.astype(int) - color_of(4)) <= 2, axis=1)  # noqa: E731
    assert is_color(across_chosen).sum() > is_color(across_plain).sum()
    assert np.all(across_chosen >= 250, axis=1).any() and not np.all(across_plain >= 250, axis=1).any()
    with pytest.raises(ValueError, match="highlight 9"):
        draw_overlay(GREY, CAM, [a, b], highlight=9)
    with pytest.raises(ValueError, match="unique"):
        draw_overlay(GREY, CAM, [a, a])


def test_labels_do_not_overlap_and_stay_inside():
    rng = np.random.default_rng(0)
    start = np.array([0.5, 0.0, 0.3])
    traces = []
    for i in range(16):
        end = start + np.r_[rng.uniform(-0.12, 0.12, 2), -0.15]   # ends crowd into ~100 x 100 px
        traces.append(_trace(i, start, end))
    out = draw_overlay(GREY, CAM, traces, highlight=5)
    assert set(out.labels_px) == set(range(16))
    centres = np.array([out.labels_px[i] for i in range(16)])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(16) * 1e9
    assert gaps.min() > 2 * 9.0  # two label radii (9 px for the 12 px font)
    assert np.all(centres > 9) and np.all(centres < [CAM.width - 9, CAM.height - 9])


def test_behind_camera_and_off_image():
    behind = Trace(0, np.array([[0.5, 0.0, 0.5], [0.5, 0.0, 2.0]]), Pose((0.5, 0.0, 2.0)))   # up through the eye
    off = _trace(1, (0.5, 0.0, 0.1), (0.5, -3.0, 0.1))
    out = draw_overlay(GREY, CAM, [behind, off])
    assert out.endpoints_px == {0: None, 1: None}
    # both curves have a visible part, so both are labelled, inside the image
    for uv in out.labels_px.values():
        assert 0 <= uv[0] < CAM.width and 0 <= uv[1] < CAM.height
    gone = Trace(2, np.array([[0.5, 0.0, 1.5], [0.6, 0.0, 2.0]]), None)   # wholly behind the camera
    out = draw_overlay(GREY, CAM, [gone], style=OverlayStyle(legend=False))
    assert out.endpoints_px == {2: None} and out.labels_px == {}
    np.testing.assert_array_equal(out.rgb, GREY)


def test_image_must_match_camera():
    with pytest.raises(ValueError, match="does not match camera"):
        draw_overlay(GREY[:10], CAM, [])


def test_labels_are_drawn_where_reported():
    traces = [_trace(i, (0.5, 0.0, 0.3), (0.5 + 0.1 * np.cos(i), 0.1 * np.sin(i), 0.1)) for i in range(6)]
    out = draw_overlay(GREY, CAM, traces, style=OverlayStyle(legend=False))
    for cid, (u, v) in out.labels_px.items():
        # a disc of radius >= 9 px around the number (digits are ~9 px tall at 12 px): 7 px above and below
        # the centre is inside the disc and clear of the digit, so those pixels are the candidate's colour
        for dv in (-7, 7):
            np.testing.assert_array_equal(_pixel(out.rgb, (u, v + dv)), color_of(cid))
