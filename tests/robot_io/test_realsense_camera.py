"""RealSenseCamera through real pyrealsense2 on a synthetic recording (tests/fakes/realsense_recording.py): depth +
colour from a librealsense software_device, recorded by librealsense's recorder, played through a pipeline.

Proves: depth in metres (device depth units), NaN for no return, intrinsics read from the stream (colour's after
alignment, depth's without), the depth->colour alignment uses both intrinsics, frames arrive in order to the
recording's end, the end of a recording and a missing device are clear errors (no 15 s block).
Cannot prove: a live device's USB behaviour, real sensor noise, auto-exposure (see docs/real_arms.md).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.robot_io.conftest import require

require("pyrealsense2", "realsense")

from robot_io.errors import NotConnectedError, RobotError  # noqa: E402
from robot_io.realsense import RealSenseCamera, RealSenseConfig  # noqa: E402
from tests.fakes.realsense_recording import write_recording  # noqa: E402

pytestmark = [pytest.mark.hardware_sim, pytest.mark.timeout(30)]
W, H, N = 64, 48, 30
K_DEPTH = np.array([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]])
K_COLOR = np.array([[55.0, 0, 31.5], [0, 55.0, 23.5], [0, 0, 1]])
PLANE_MM = 1234


def _frames():
    depth, rgb = [], []
    for i in range(N):
        d = np.full((H, W), PLANE_MM, np.uint16)
        d[20:28, 40:50] = 0                          # no return: a hole right of the centre
        c = np.zeros((H, W, 3), np.uint8)
        c[..., 0], c[..., 1], c[..., 2] = 5 * (i + 1), np.arange(W)[None, :], 200
        depth.append(d)
        rgb.append(c)
    return depth, rgb


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    depth, rgb = _frames()
    return write_recording(tmp_path_factory.mktemp("rs") / "synthetic.db3", depth, rgb, K_DEPTH, K_COLOR)


def _read_all(cam):
    frames = []
    with pytest.raises(RobotError, match="recording ended"):
        while True:
            frames.append(cam.read())
    return frames


def test_recording_plays_rgbd_in_metres_with_the_device_intrinsics(recording):
    with RealSenseCamera(RealSenseConfig(name="wrist", recording=str(recording))) as cam:
        assert cam.depth_scale_m == pytest.approx(0.001, rel=1e-6)
        frames = _read_all(cam)
    # librealsense starts a recording in real time; the driver switches that off right after start, so only the
    # first frames can be missed (on a slow or loaded machine). From then on every frame arrives, in order.
    ids = [int(f.rgb[0, 0, 0]) // 5 for f in frames]
    print(f"\nRealSense recording: {len(frames)} of {N} recorded frames read")
    assert ids == sorted(set(ids)) and ids[-1] == N and len(frames) >= 1
    for f in frames:
        assert f.name == "wrist" and f.rgb.shape == (H, W, 3) and f.depth_m.dtype == np.float32
        np.testing.assert_allclose(f.K, K_COLOR)
        assert np.all(f.rgb[..., 2] == 200) and np.array_equal(f.rgb[5, :, 1], np.arange(W))
        valid = np.isfinite(f.depth_m)
        np.testing.assert_allclose(f.depth_m[valid], PLANE_MM * 0.001, atol=1e-5)
        # Aligned into colour pixels: u_c = 1.1 (u_d - 31.5) + 31.5 maps the hole's columns 40..49 to 40.9..51.8
        assert np.isnan(f.depth_m[24, 44]) and np.isnan(f.depth_m[24, 50])
        assert np.isfinite(f.depth_m[24, 39]) and np.isfinite(f.depth_m[24, 53]) and np.isfinite(f.depth_m[10, 10])


def test_without_alignment_depth_keeps_its_own_intrinsics(recording):
    with RealSenseCamera(RealSenseConfig(recording=str(recording), align_depth_to_color=False)) as cam:
        f = cam.read()
    np.testing.assert_allclose(f.K, K_DEPTH)
    assert np.isnan(f.depth_m[24, 49]) and np.isfinite(f.depth_m[24, 50])


def test_pose_comes_from_the_calibration_file(recording, tmp_path):
    T = np.eye(4)
    T[:3, 3] = [1.2, -0.1, 0.7]
    T[:3, :3] = [[0, 0, -1], [1, 0, 0], [0, -1, 0]]
    cal = tmp_path / "front.yaml"
    cal.write_text(yaml.safe_dump({"name": "front", "width": W, "height": H, "T_world_camera": T.flatten().tolist()}))
    with RealSenseCamera(RealSenseConfig(recording=str(recording), calibration=str(cal))) as cam:
        np.testing.assert_allclose(cam.read().T_world_camera, T)


def test_no_device_fails_at_once_with_advice():
    cam = RealSenseCamera(RealSenseConfig.load())
    with pytest.raises(NotConnectedError):
        cam.read()
    import pyrealsense2 as rs

    if rs.context().query_devices().size() > 0:
        pytest.skip("a RealSense is attached to this machine")
    with pytest.raises(RobotError, match="no RealSense device found.*USB 3"):
        cam.connect()


def test_missing_recording_and_bad_config(tmp_path):
    with pytest.raises(RobotError, match="does not exist"):
        RealSenseCamera(RealSenseConfig(recording=str(tmp_path / "nope.db3"))).connect()
    from robot_io.driver_config import DriverConfigError

    bad = tmp_path / "cam.yaml"
    bad.write_text("width: 640\nfsp: 30\n")
    with pytest.raises(DriverConfigError, match="did you mean 'fps'"):
        RealSenseConfig.load(bad)
