"""The renderer on a real EGL twin: sizes, PNG round trip, end points on their curves, axis markers, clipping."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from render import OverlayStyle, Renderer, VirtualView, color_of, load_views, render_scene_image, save_pngs
from render.palette import AXIS_COLORS
from sim.camera import project_points, render_rgbd
from sim.rollout import Candidate
from tests.conftest import REPO
from tests.fakes.demo_scene import down, sampled_candidates

VIEWS = load_views(os.path.join(REPO, "configs", "views.yaml"))


@pytest.fixture(scope="module")
def rollouts(twin):
    robot = twin.spec.robot
    cands = [
        Candidate(0, (down(robot, (0.45, 0.15, 0.25)),), "keep"),
        Candidate(1, (down(robot, (0.55, -0.10, 0.20)),), "keep"),
        Candidate(2, (down(robot, (0.40, 0.00, 0.30)), down(robot, (0.60, 0.05, 0.15))), "keep"),
    ]
    return [twin.rollout(c) for c in cands]


def _best_match(img, uv, color):
    col, row = int(round(uv[0])), int(round(uv[1]))
    patch = img[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3).astype(int)
    return int(np.abs(patch - color).max(axis=1).min())


def test_views_have_their_size_and_png_round_trips(twin, rollouts, tmp_path):
    out = Renderer(VIEWS).render(twin, rollouts, highlight=1)
    assert [v.name for v in out] == ["front", "top", "side"]
    for v, view in zip(out, VIEWS):
        assert v.rgb.shape == (view.height, view.width, 3) and v.rgb.dtype == np.uint8
        assert (v.width, v.height) == (view.width, view.height) and v.camera.name == view.name
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(v.png)).convert("RGB")), v.rgb)
        assert set(v.endpoints_px) == {0, 1, 2}
    paths = save_pngs(out, tmp_path / "step0")
    assert [os.path.basename(p) for p in paths] == ["front.png", "top.png", "side.png"]
    assert open(paths[1], "rb").read() == out[1].png


def test_scene_image_is_the_sim_camera_picture(twin):
    cam = VIEWS[0].camera()
    expected = render_rgbd(twin.client, cam, renderer=twin.renderer).rgb
    np.testing.assert_array_equal(render_scene_image(twin, VIEWS[0]), expected)


def test_end_points_lie_on_their_curves(twin, rollouts):
    # Without axis markers and legend nothing is drawn over a curve's end; with the 3 px line the pixel nearest
    # to the projected end (<= 0.71 px away) is inside the round cap (radius 1.5 px): exactly the colour.
    style = OverlayStyle(axes=False, legend=False)
    for v in Renderer(VIEWS, style=style).render(twin, rollouts):
        for r in rollouts:
            uv, z = project_points(v.camera, r.ee_path_xyz[-1:])
            assert v.endpoints_px[r.candidate.id] == pytest.approx(tuple(uv[0]), abs=1e-9)
            col, row = (int(round(c)) for c in uv[0])
            np.testing.assert_array_equal(v.rgb[row, col], color_of(r.candidate.id), err_msg=v.name)
    # and with the default style the end point is still covered by the overlay, not the bare twin
    scene = {view.name: render_scene_image(twin, view) for view in VIEWS}
    for v in Renderer(VIEWS).render(twin, rollouts):
        for uv in v.endpoints_px.values():
            col, row = (int(round(c)) for c in uv)
            assert np.any(v.rgb[row, col] != scene[v.name][row, col])


def test_axis_marker_along_world_x_is_red_towards_projected_x(twin, rollouts):
    # candidate 1 ends in the top-down orientation: its x axis is world +x (up in the top view), y is world -y
    roll = rollouts[1]
    R = roll.ee_end_pose.rotation()
    np.testing.assert_allclose(R[:, 0], (1, 0, 0), atol=0.05)
    style = OverlayStyle(legend=False)
    for v in Renderer(VIEWS, style=style).render(twin, [roll]):
        end = roll.ee_end_pose.position
        o = project_points(v.camera, end[None])[0][0]
        for k in (0, 1):
            tip = project_points(v.camera, (end + style.axis_length_m * R[:, k])[None])[0][0]
            if np.linalg.norm(tip - o) < 8:   # foreshortened in this view: nothing to measure
                continue
            for t in (0.6, 0.8):
                # 2 px wide marker: among the 3x3 pixels around a centre-line point one is wholly covered
                assert _best_match(v.rgb, o + t * (tip - o), AXIS_COLORS[k]) <= 8, (v.name, k, t)
                assert _best_match(v.rgb, o - t * (tip - o), AXIS_COLORS[k]) > 40, (v.name, k, t)
    top = VIEWS[1].camera()
    o = project_points(top, roll.ee_end_pose.position[None])[0][0]
    tip = project_points(top, (roll.ee_end_pose.position + (0.04, 0, 0))[None])[0][0]
    assert tip[1] < o[1] - 8   # world +x is image up in the top view


def test_end_behind_the_camera_is_none(twin, rollouts):
    # a wide camera just in front of the start (TCP at x ~ 0.43) looking along +x: candidate 0 ends at
    # x = 0.45, behind the eye; its curve is cut at the near plane and the label stays inside the image
    view = VirtualView("ahead", eye=(0.47, 0.0, 0.2), target=(1.5, 0.0, 0.1), fov_deg=100, width=160, height=120)
    (v,) = Renderer((view,)).render(twin, rollouts)
    ends = np.array([r.ee_path_xyz[-1] for r in rollouts])
    uv, z = project_points(v.camera, ends)
    assert z[0] < 0 and v.endpoints_px[0] is None
    inside = (z > view.near_m) & np.all((uv >= 0) & (uv < [view.width, view.height]), axis=1)
    assert inside[1:].all()
    for i in (1, 2):
        assert v.endpoints_px[i] == pytest.approx(tuple(uv[i]), abs=1e-9)
    for uv_label in v.labels_px.values():
        assert 0 <= uv_label[0] < view.width and 0 <= uv_label[1] < view.height


def test_many_candidates_all_numbered(twin):
    rolls = [twin.rollout(c) for c in sampled_candidates(twin, 16, seed=1)]
    out = Renderer(VIEWS).render(twin, rolls, highlight=7)
    for v in out:
        visible = {cid for cid, uv in v.endpoints_px.items() if uv is not None}
        assert visible <= set(v.labels_px)
        centres = np.array(list(v.labels_px.values()))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(len(centres)) * 1e9
        assert gaps.min() > 2 * 9.0 - 1e-6, v.name   # label discs (radius >= 9 px) do not overlap
    with pytest.raises(ValueError, match="highlight 99"):
        Renderer(VIEWS).render(twin, rolls, highlight=99)


def test_renderer_rejects_bad_views():
    with pytest.raises(ValueError, match="unique"):
        Renderer((VIEWS[0], VIEWS[0]))
    with pytest.raises(ValueError, match="at least one"):
        Renderer(())


def test_overlay_coordinates_register_with_the_twin_image(twin):
    # The centre of a block's top face, projected with the view's camera, must land on that block in the
    # twin's own segmentation. The blocks are 5 cm (>= 15 px in every view), so a registration error of
    # more than a few pixels would fall off them.
    for view in VIEWS:
        cam = view.camera()
        seg = render_rgbd(twin.client, cam, renderer=twin.renderer).seg
        for name in ("red_block", "blue_block"):
            lo, hi = twin.object_aabb(name)
            top = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] - 0.005])
            uv, _ = project_points(cam, top[None])
            col, row = (int(round(c)) for c in uv[0])
            assert seg[row, col] == twin.body_ids[name], (view.name, name)
