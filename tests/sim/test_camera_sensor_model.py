"""The lab's RGB-D sensor model (sim.camera.apply_sensor_model): what reconstruction has to cope with.

Noise statistics are checked against the model's own formula on a plane at two distances (the std grows with
z^2), with tolerances from the sample size; edge effects only where the depth jumps.
"""

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from sim.camera import DEPTH_EDGE_JUMP_M, CameraSpec, apply_sensor_model, render_rgbd
from sim.scene import SpecError


def _plane_depth(distance_m: float, shape=(120, 160)) -> np.ndarray:
    return np.full(shape, distance_m, dtype=np.float32)


def _cam(**kw) -> CameraSpec:
    return CameraSpec.look_at("c", 160, 120, 55.0, eye=(0.0, 0.0, 1.0), target=(0.0, 0.0, 0.0), up=(1, 0, 0), **kw)


def test_axial_noise_grows_with_z_squared():
    cam = _cam(depth_noise_m=0.004)
    rgb = np.zeros((120, 160, 3), np.uint8)
    stds = []
    for z in (0.5, 1.0):
        _, d = apply_sensor_model(rgb, _plane_depth(z), cam, np.random.default_rng(0))
        stds.append(float(np.std(d - z)))
    # 19200 white samples: the sample std is within ~2 % of the true one
    assert stds[0] == pytest.approx(0.004 * 0.25, rel=0.05)
    assert stds[1] == pytest.approx(0.004, rel=0.05)


def test_noise_is_spatially_correlated_when_asked():
    rgb = np.zeros((120, 160, 3), np.uint8)
    corr = {}
    for c in (0.0, 1.5):
        _, d = apply_sensor_model(rgb, _plane_depth(1.0), _cam(depth_noise_m=0.004, depth_noise_corr_px=c),
                                  np.random.default_rng(1))
        e = d - 1.0
        corr[c] = float(np.corrcoef(e[:, :-1].ravel(), e[:, 1:].ravel())[0, 1])
        assert np.std(e) == pytest.approx(0.004, rel=0.15)   # still the configured std per pixel
    # a Gaussian of sigma 1.5 px correlates neighbours by exp(-1 / (4 * 1.5^2)) = 0.89
    assert abs(corr[0.0]) < 0.05 and corr[1.5] == pytest.approx(0.89, abs=0.04)


def test_depth_is_quantised_to_the_output_unit():
    rgb = np.zeros((120, 160, 3), np.uint8)
    _, d = apply_sensor_model(rgb, _plane_depth(0.8123), _cam(depth_noise_m=0.003, depth_quant_m=0.001),
                              np.random.default_rng(2))
    steps = d.astype(np.float64) / 0.001
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)


def test_flying_pixels_and_dropout_only_at_depth_discontinuities():
    depth = _plane_depth(1.0)
    depth[40:80, 60:100] = 0.9        # a box 10 cm in front of the plane
    rgb = np.zeros((120, 160, 3), np.uint8)
    cam = _cam(depth_edge_dropout=0.4, depth_flying_pixels=0.4)
    _, d = apply_sensor_model(rgb, depth, cam, np.random.default_rng(3))
    changed = np.isnan(d) | (np.abs(d - depth) > 1e-6)
    band = np.zeros_like(changed)
    band[39:41, 59:101] = band[79:81, 59:101] = band[39:81, 59:61] = band[39:81, 99:101] = True
    assert changed.any() and not (changed & ~band).any()
    flying = changed & ~np.isnan(d)
    # a flying pixel returns a depth between the fore- and the background
    assert flying.any() and np.all((d[flying] > 0.9) & (d[flying] < 1.0))
    assert 0.6 < changed[band].mean() < 0.95      # 80 % of the band on average
    assert DEPTH_EDGE_JUMP_M < 0.1


def test_rgb_noise_and_everything_off_without_rng(client):
    p.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", physicsClientId=client)
    cam = _cam(depth_noise_m=0.004, rgb_noise=3.0, depth_dropout=0.02, depth_quant_m=0.001)
    clean = render_rgbd(client, cam)
    again = render_rgbd(client, cam)
    np.testing.assert_array_equal(clean.rgb, again.rgb)
    np.testing.assert_array_equal(clean.depth_m, again.depth_m)   # no rng: exact, repeatable
    noisy = render_rgbd(client, cam, rng=np.random.default_rng(4))
    diff = noisy.rgb.astype(float) - clean.rgb.astype(float)
    assert 2.0 < diff.std() < 4.0
    assert np.isnan(noisy.depth_m).mean() == pytest.approx(0.02, abs=0.01)


def test_fields_are_validated_and_round_trip():
    with pytest.raises(SpecError, match="depth_noise_corr_px"):
        _cam(depth_noise_corr_px=-1.0)
    with pytest.raises(SpecError, match="depth_edge_dropout"):
        _cam(depth_edge_dropout=1.5)
    with pytest.raises(SpecError, match=r"depth_edge_dropout \+ depth_flying_pixels <= 1"):
        _cam(depth_edge_dropout=0.6, depth_flying_pixels=0.6)
    cam = _cam(depth_noise_m=0.0045, depth_noise_corr_px=1.5, depth_quant_m=0.001, depth_edge_dropout=0.3,
               depth_flying_pixels=0.2, depth_dropout=0.01, rgb_noise=2.0)
    again = CameraSpec.from_dict(cam.to_dict(), "c")
    assert again == cam and again.has_sensor_model and not _cam().has_sensor_model


def test_shipped_cameras_model_a_realsense_class_sensor():
    """The lab cameras' std at their ~1.05 m working distance is ~5 mm (D435 at this resolution)."""
    import os

    import yaml

    cams_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "configs", "cameras")
    for name in ("front", "left", "right"):
        with open(os.path.join(cams_dir, f"{name}.yaml")) as fh:
            cam = CameraSpec.from_dict(yaml.safe_load(fh), name)
        assert 0.002 <= cam.depth_noise_m <= 0.008 and cam.depth_quant_m == 0.001
        assert cam.depth_noise_corr_px > 0 and cam.depth_flying_pixels > 0 and cam.depth_edge_dropout > 0
