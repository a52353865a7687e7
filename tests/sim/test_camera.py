import numpy as np
import pybullet as p
import pybullet_data
import pytest

from sim.camera import CameraSpec, backproject, load_fast_renderer, project_points, render_rgbd
from sim.geometry import transform_points
from sim.scene import SpecError


def _cam(**kw):
    return CameraSpec.look_at("front", 160, 120, 60.0, eye=(1.0, 0.0, 0.6), target=(0.4, 0.0, 0.0), **kw)


def test_look_at_frame_is_opencv():
    cam = _cam()
    T = cam.T_world_camera_matrix
    z = T[:3, 2]
    np.testing.assert_allclose(z, np.array([-0.6, 0, -0.6]) / np.linalg.norm([0.6, 0.6]), atol=1e-9)
    assert T[2, 1] < 0  # image "down" points towards the world's -z


def test_project_backproject_round_trip():
    cam = _cam()
    pts = np.array([[0.4, 0.0, 0.0], [0.5, 0.1, 0.05], [0.3, -0.1, 0.1]])
    uv, z = project_points(cam, pts)
    depth = np.full((cam.height, cam.width), np.nan, dtype=np.float32)
    # a sub-pixel round trip: rebuild each point from its own (u, v, z)
    K = cam.K
    pc = np.stack([(uv[:, 0] - K[0, 2]) * z / K[0, 0], (uv[:, 1] - K[1, 2]) * z / K[1, 1], z], axis=1)
    np.testing.assert_allclose(transform_points(cam.T_world_camera_matrix, pc), pts, atol=1e-9)
    assert backproject(depth, K).shape == (cam.width * cam.height, 3)


def test_rendered_depth_matches_geometry(client):
    """Back-projected depth of the table lands on the plane z = 0."""
    renderer = load_fast_renderer(client)
    p.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", physicsClientId=client)
    cam = _cam()
    rgbd = render_rgbd(client, cam, renderer=renderer)
    pts_cam = backproject(rgbd.depth_m, cam.K)
    pts = transform_points(cam.T_world_camera_matrix, pts_cam[np.isfinite(pts_cam[:, 2])])
    # EGL's 24-bit depth is exact to well under a millimetre at 1 m; TinyRenderer's rasteriser is biased by
    # up to ~1% of the range at 160x120, i.e. ~10 mm at 1.2 m.
    tol = 2e-3 if renderer == p.ER_BULLET_HARDWARE_OPENGL else 1.5e-2
    assert np.abs(pts[:, 2]).max() < tol
    assert rgbd.rgb.shape == (120, 160, 3) and rgbd.seg.max() == 0


def test_depth_noise_only_with_rng(client):
    p.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", physicsClientId=client)
    cam = _cam(depth_noise_m=0.002, depth_dropout=0.05)
    clean = render_rgbd(client, cam).depth_m
    noisy = render_rgbd(client, cam, rng=np.random.default_rng(0)).depth_m
    assert np.isnan(noisy).mean() == pytest.approx(0.05, abs=0.02)
    diff = (noisy - clean)[np.isfinite(noisy)]
    assert 0.0005 < diff.std() < 0.005


def test_from_dict_errors_name_the_field():
    with pytest.raises(SpecError, match=r"front: field 'width': expected a value \(this field is required\)"):
        CameraSpec.from_dict({"height": 10, "fov_deg": 50, "eye": [1, 0, 1], "target": [0, 0, 0]}, "front")
    with pytest.raises(SpecError, match="not parallel to the viewing direction"):
        CameraSpec.from_dict({"width": 10, "height": 10, "fov_deg": 50, "eye": [0, 0, 1], "target": [0, 0, 0]},
                             "top")


def test_segmentation_can_be_skipped_without_changing_the_picture(client):
    renderer = load_fast_renderer(client)
    p.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", physicsClientId=client)
    p.loadURDF(f"{pybullet_data.getDataPath()}/cube_small.urdf", (0.4, 0.0, 0.025), physicsClientId=client)
    full = render_rgbd(client, _cam(), renderer=renderer)
    lean = render_rgbd(client, _cam(), renderer=renderer, segmentation=False)
    assert lean.seg is None and full.seg.max() == 1
    np.testing.assert_array_equal(lean.rgb, full.rgb)
    np.testing.assert_array_equal(np.isnan(lean.depth_m), np.isnan(full.depth_m))
