"""Clipping and projection, against the geometry they come from (no PyBullet)."""

import numpy as np
import pytest

from render.projection import clip_polyline, clip_polylines, project_visible, simplify, to_camera_frame
from sim.camera import CameraSpec, project_points

# Looking along world +x from the origin, image right = world -y, image down = world -z.
CAM = CameraSpec.look_at("c", 200, 100, 60.0, eye=(0, 0, 0), target=(1, 0, 0), near_m=0.1)


def _on_segment(p, a, b, tol):
    d = b - a
    t = np.clip((p - a) @ d / (d @ d), 0, 1)
    return np.linalg.norm(a + t * d - p) < tol


def test_project_visible_matches_sim_and_rejects_behind_and_outside():
    pt = np.array([2.0, 0.3, -0.2])
    uv, _ = project_points(CAM, pt[None])
    assert project_visible(CAM, pt) == pytest.approx(tuple(uv[0]), abs=1e-9)
    assert project_visible(CAM, (-1.0, 0.0, 0.0)) is None           # behind: would project to the centre
    assert project_visible(CAM, (0.05, 0.0, 0.0)) is None           # in front but closer than near_m
    assert project_visible(CAM, (1.0, -5.0, 0.0)) is None           # far off to the right


def test_near_plane_cut_lands_on_the_segment():
    a, b = np.array([1.0, 0.2, 0.1]), np.array([-1.0, -0.4, 0.1])   # from in front to behind the camera
    (piece,) = clip_polyline(CAM, np.stack([a, b]), margin_px=1e6)
    np.testing.assert_allclose(piece[0], project_points(CAM, a[None])[0][0], atol=1e-9)
    # the cut point is where the segment meets z = near: interpolate in 3D and project
    t = (1.0 - CAM.near_m) / 2.0
    cut = a + t * (b - a)
    np.testing.assert_allclose(to_camera_frame(CAM, cut)[0, 2], CAM.near_m, atol=1e-12)
    np.testing.assert_allclose(piece[-1], project_points(CAM, cut[None])[0][0], atol=1e-6)
    assert clip_polyline(CAM, np.stack([-a, -b * 0.01])) == []      # wholly behind


def test_image_border_cut_and_pieces():
    margin = 5.0
    lo, hi = -margin, np.array([CAM.width - 1 + margin, CAM.height - 1 + margin])
    # in view, out to the right (world -y), back in view, out again: two pieces
    path = np.array([[2.0, 0.0, 0.0], [2.0, -5.0, 0.0], [2.0, 0.1, 0.05], [2.0, 0.2, 0.05], [2.0, 0.2, 5.0]])
    pieces = clip_polyline(CAM, path, margin_px=margin)
    assert len(pieces) == 2
    uv = project_points(CAM, path)[0]
    for piece in pieces:
        assert np.all(piece >= lo - 1e-6) and np.all(piece <= hi + 1e-6)
    # each cut point lies on the projected segment it came from (projection maps lines to lines)
    assert _on_segment(pieces[0][-1], uv[0], uv[1], 1e-6) and pieces[0][-1][0] == pytest.approx(hi[0])
    assert _on_segment(pieces[1][0], uv[1], uv[2], 1e-6) and pieces[1][0][0] == pytest.approx(hi[0])
    np.testing.assert_allclose(pieces[1][1:3], uv[2:4], atol=1e-9)
    assert _on_segment(pieces[1][-1], uv[3], uv[4], 1e-6) and pieces[1][-1][1] == pytest.approx(lo)


def test_batched_clipping_keeps_paths_apart():
    p1 = np.array([[2.0, 0.0, 0.0], [2.0, 0.1, 0.0]])
    p2 = np.array([[2.0, 0.2, 0.1]])                     # a single visible point
    p3 = np.array([[-1.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])  # behind
    p4 = np.array([[2.0, 0.1, 0.0], [2.0, 0.1, 0.1], [2.0, 0.0, 0.1]])
    out = clip_polylines(CAM, [p1, p2, p3, p4])
    assert [len(o) for o in out] == [1, 1, 0, 1]
    np.testing.assert_allclose(out[0][0], project_points(CAM, p1)[0], atol=1e-9)
    np.testing.assert_allclose(out[1][0], project_points(CAM, p2)[0], atol=1e-9)
    np.testing.assert_allclose(out[3][0], project_points(CAM, p4)[0], atol=1e-9)


def test_simplify_drops_only_collinear_points():
    t = np.linspace(0, 1, 50)
    line = np.stack([10 + 100 * t, 20 + 50 * t], axis=1)
    corner = np.vstack([line, line[-1] + np.stack([np.zeros(20), np.linspace(1, 40, 20)], axis=1)])
    out = simplify(corner, tol_px=0.2)
    assert len(out) == 3
    np.testing.assert_allclose(out, [corner[0], line[-1], corner[-1]])
    wiggle = line + np.stack([np.zeros(50), 0.1 * np.sin(np.arange(50))], axis=1)
    assert len(simplify(wiggle, tol_px=0.2)) == 2      # within tolerance: a straight segment
    kept = simplify(wiggle, tol_px=0.05)
    # every dropped point is within tolerance of the kept polyline
    for q in wiggle:
        d = min(np.linalg.norm(q - (a + np.clip((q - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1) * (b - a)))
                for a, b in zip(kept[:-1], kept[1:]))
        assert d <= 0.05 + 1e-9
