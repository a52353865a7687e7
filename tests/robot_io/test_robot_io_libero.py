"""The LIBERO lab's pure parts: MuJoCo camera conversion, the controller's resampling and actions, the lab spec.

Camera checks are round trips with tolerances from geometry: a point built in MuJoCo's camera convention
(looking along -z, y up, vertical fov) must land on the pixel and depth that K and T_world_camera (OpenCV)
predict; the depth buffer inverse must reproduce OpenGL's projection.
"""

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robot_io.labspec import LabSpecError
from robot_io.libero.cameras import T_world_camera_cv, depth_buffer_to_m, flip_rows, intrinsics
from robot_io.libero.controller import (
    CONTROL_PERIOD_S,
    JointPositionControllerConfig,
    arm_action,
    gripper_action,
    resample,
)
from robot_io.libero.launcher import LiberoMissingError, libero_available, libero_python, load_manifest
from robot_io.libero.spec import LiberoLabSpec
from sim.camera import CameraSpec, project_points


def _mujoco_camera(rng):
    xmat = Rotation.random(random_state=rng).as_matrix()
    return rng.uniform(-1, 1, 3), xmat


def test_pixel_and_depth_of_a_point_in_mujoco_convention():
    rng = np.random.default_rng(0)
    W, H, fovy = 320, 240, 45.0
    for _ in range(20):
        pos, xmat = _mujoco_camera(rng)
        # a point in MuJoCo's camera frame: in front means negative z; image x right, y up
        z = rng.uniform(0.3, 3.0)
        tan = np.tan(np.radians(fovy) / 2)
        x_ndc, y_ndc = rng.uniform(-0.9, 0.9, 2)      # normalised image coordinates, +y up
        p_cam = np.array([x_ndc * tan * z * W / H, y_ndc * tan * z, -z])
        p_world = pos + xmat @ p_cam
        K = intrinsics(fovy, W, H)
        T = T_world_camera_cv(pos, xmat.flatten())
        cam = CameraSpec("c", W, H, K[0, 0], K[1, 1], K[0, 2], K[1, 2], tuple(T.flatten()))
        uv, depth = project_points(cam, p_world[None])
        # OpenGL pixel centres: u = (x_ndc + 1) W / 2 - 0.5, rows counted from the top after the flip
        assert uv[0, 0] == pytest.approx((x_ndc + 1) * W / 2 - 0.5, abs=1e-6)
        assert uv[0, 1] == pytest.approx((1 - y_ndc) * H / 2 - 0.5, abs=1e-6)
        assert depth[0] == pytest.approx(z, abs=1e-9)


def test_depth_buffer_inverse_and_no_return():
    near, far = 0.0106, 530.0       # LIBERO's extent 10.6 times znear 0.001 and zfar 50
    z = np.array([[0.3, 1.0], [2.5, 4.0]])
    # OpenGL's window depth for a perspective projection
    d = (1.0 / near - 1.0 / z) / (1.0 / near - 1.0 / far)
    out = depth_buffer_to_m(d, near, far)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, z, rtol=1e-5)
    assert np.isnan(depth_buffer_to_m(np.ones((1, 1)), near, far)).all()


def test_flip_rows_makes_the_bottom_row_last():
    img = np.arange(6).reshape(3, 2)
    assert flip_rows(img)[0].tolist() == [4, 5] and flip_rows(img).flags["C_CONTIGUOUS"]


def test_intrinsics_rejects_nonsense():
    with pytest.raises(ValueError):
        intrinsics(0.0, 10, 10)


def test_resample_to_the_control_period():
    q = np.stack([np.linspace(0, 1, 11), np.zeros(11)], axis=1)   # 11 waypoints, 0 to 1 rad
    g = np.array([0.078] * 6 + [0.0] * 5)
    q_out, g_out = resample(q, g, dt_s=0.1)                        # 1.0 s path
    assert len(q_out) == round(1.0 / CONTROL_PERIOD_S)
    np.testing.assert_allclose(q_out[:, 0], np.arange(1, 21) * CONTROL_PERIOD_S, atol=1e-12)
    assert q_out[-1, 0] == pytest.approx(1.0)                       # ends exactly at the last waypoint
    assert g_out[0] == 0.078 and g_out[-1] == 0.0
    # a single waypoint is held for one period
    q1, g1 = resample(q[:1], g[:1], dt_s=0.1)
    assert q1.shape == (1, 2) and g1.tolist() == [0.078]
    # an uneven duration still ends on the last waypoint
    q2, _ = resample(q[:4], g[:4], dt_s=0.07)
    assert q2[-1, 0] == pytest.approx(q[3, 0]) and len(q2) == 5


@pytest.mark.parametrize("bad", [dict(dt_s=0.0), dict(dt_s=0.1, period_s=-1.0)])
def test_resample_rejects_bad_timing(bad):
    with pytest.raises(ValueError):
        resample(np.zeros((3, 7)), np.zeros(3), **bad)


def test_actions_are_clipped_deltas_and_a_binary_gripper():
    q = np.zeros(7)
    np.testing.assert_allclose(arm_action(np.full(7, 0.1), q, 0.5), 0.2)
    np.testing.assert_allclose(arm_action(np.full(7, -3.0), q, 0.5), -1.0)
    assert gripper_action(0.078, 0.078) == -1.0 and gripper_action(0.01, 0.078) == 1.0
    # "keep" while holding a 49 mm object sends 0.049: the object must stay held
    assert gripper_action(0.049, 0.078) == 1.0 and gripper_action(0.066, 0.078) == 1.0
    from robot_io.libero.controller import OPEN_FRACTION
    from sim.grasp import GRIPPER_OPEN_FRACTION
    assert OPEN_FRACTION == GRIPPER_OPEN_FRACTION
    cfg = JointPositionControllerConfig().to_robosuite()
    assert cfg["type"] == "JOINT_POSITION" and cfg["kp"] == 300 and cfg["output_max"] == 0.5


def test_lab_spec_json_round_trip_and_errors(panda_spec):
    cam = CameraSpec.from_dict({"name": "agentview", "width": 64, "height": 48, "fov_deg": 45,
                                "eye": [1.5, 0, 0.65], "target": [0.5, 0, 0], "depth_noise_m": 0.004}, "cam")
    spec = LiberoLabSpec("libero_object", 3, "/x.bddl", panda_spec, (cam,), seed=4)
    back = LiberoLabSpec.from_dict(json.loads(spec.to_json()))
    assert back == spec and back.camera_names == ("agentview",)
    with pytest.raises(LabSpecError, match="seed"):
        LiberoLabSpec("libero_object", 3, "/x.bddl", panda_spec, (cam,), seed=-1)
    with pytest.raises(LabSpecError, match="cameras"):
        LiberoLabSpec("libero_object", 3, "/x.bddl", panda_spec, ())
    with pytest.raises(LabSpecError, match="unknown field"):
        LiberoLabSpec.from_dict({**spec.to_dict(), "objects": {}})


def test_missing_install_names_make_libero(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTIGROUNDING_LIBERO_PYTHON", str(tmp_path / "python"))
    monkeypatch.setenv("ANTIGROUNDING_LIBERO_ASSETS", str(tmp_path))
    with pytest.raises(LiberoMissingError, match="make libero"):
        libero_python()
    with pytest.raises(LiberoMissingError, match="make libero"):
        load_manifest()
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(LiberoMissingError, match="not valid JSON"):
        load_manifest()
    assert "make libero" in libero_available()
