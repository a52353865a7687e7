"""Hand-eye calibration (robot_io/calibration.py, calibration_data.py) on synthetic ChArUco images with known
extrinsics (tests/fakes/charuco_scenes.py): OpenCV's aruco detection and cv2.calibrateHandEye do the work.

Proves: both set-ups recover the camera pose within 2 mm / 0.2 deg from 15 rendered views with pixel noise and a
robot-like TCP error; the residual exposes a bad sample; the written camera config reads back as a CameraSpec.
Cannot prove: lens distortion estimation (intrinsics are given), blur, lighting, a badly printed board.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.robot_io.conftest import require

require("cv2", "calibrate")

from robot_io.calibration import (  # noqa: E402
    BoardSpec,
    CalibrationError,
    detect_board,
    rotation_angle_deg,
    solve_hand_eye,
    write_camera_config,
)
from robot_io.calibration_data import load_dataset, solve_dataset  # noqa: E402
from sim.camera import CameraSpec  # noqa: E402
from tests.fakes.charuco_scenes import BOARD, K, make_samples, pose, write_dataset  # noqa: E402

pytestmark = pytest.mark.timeout(120)
SOLVED = {"eye-to-hand": "T_base_camera", "eye-in-hand": "T_tcp_camera"}


@pytest.fixture(scope="module", params=["eye-to-hand", "eye-in-hand"])
def scene(request):
    truth, samples = make_samples(request.param, 15, seed=1)
    dets = [detect_board(img, BOARD, K) for img, _ in samples]
    assert all(d is not None for d in dets)
    return request.param, truth, [T for _, T in samples], dets


def _errors(T, T_true):
    return np.linalg.norm(T[:3, 3] - T_true[:3, 3]) * 1e3, rotation_angle_deg(T_true[:3, :3].T @ T[:3, :3])


def test_extrinsics_within_two_mm_and_a_fifth_of_a_degree(scene):
    mode, truth, poses, dets = scene
    result = solve_hand_eye(poses, dets, mode, K)
    err_mm, err_deg = _errors(result.T_solved, truth[SOLVED[mode]])
    print(f"\n{mode}: {SOLVED[mode]} error {err_mm:.3f} mm / {err_deg:.4f} deg ({result.method}); residual "
          f"{result.residual_rms_mm:.3f} mm / {result.residual_rms_deg:.3f} deg RMS, reprojection "
          f"{result.reprojection_rms_px:.3f} px")
    assert err_mm <= 2.0 and err_deg <= 0.2
    assert result.residual_rms_mm < 1.0 and result.reprojection_rms_px < 1.0
    for method in ("tsai", "park", "horaud", "andreff", "daniilidis"):
        r = solve_hand_eye(poses, dets, mode, K, method=method)
        # "best" keeps the method with the smallest residual (mm + deg)
        assert r.method == method
        assert r.residual_rms_mm + r.residual_rms_deg >= result.residual_rms_mm + result.residual_rms_deg - 1e-9


def test_the_residual_exposes_a_bad_tcp_pose(scene):
    mode, truth, poses, dets = scene
    bad = list(poses)
    bad[4] = bad[4] @ pose([0.01, 0.0, 0.0], np.radians([0.0, 2.0, 0.0]))     # 10 mm / 2 deg off
    good = solve_hand_eye(poses, dets, mode, K)
    worse = solve_hand_eye(bad, dets, mode, K)
    assert worse.residual_max_mm > 5 * good.residual_max_mm and worse.reprojection_rms_px > 2 * \
        good.reprojection_rms_px


def test_dataset_to_camera_config_round_trip(tmp_path):
    truth = write_dataset(tmp_path / "data", "eye-to-hand", 12, seed=3, name="front")
    ds = load_dataset(tmp_path / "data")
    result, fields, skipped = solve_dataset(ds)
    assert skipped == []
    out = write_camera_config(tmp_path / "front.yaml", fields, result)
    text = out.read_text()
    assert text.startswith("# Written by `antigrounding calibrate` (eye-to-hand") and "Residual:" in text
    cam = CameraSpec.from_dict(yaml.safe_load(text), str(out))
    err_mm, err_deg = _errors(cam.T_world_camera_matrix, truth["T_base_camera"])
    assert err_mm <= 2.0 and err_deg <= 0.2
    np.testing.assert_allclose(cam.K, K)


def test_bad_inputs_name_file_and_field(tmp_path):
    write_dataset(tmp_path / "d", "eye-in-hand", 4, seed=5)
    f = tmp_path / "d" / "calibration.yaml"
    data = yaml.safe_load(f.read_text())
    data["board"]["dictionary"] = "DICT_4X4_50"           # the wrong dictionary: no board is found
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match="found in 0 of 4 images"):
        solve_dataset(load_dataset(tmp_path / "d"))
    data["mode"] = "eye-on-hand"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match=r"calibration\.yaml: field 'mode': expected one of"):
        load_dataset(tmp_path / "d")
    data["mode"] = "eye-in-hand"
    data["samples"][1]["T_base_tcp"] = [1, 2, 3]
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(CalibrationError, match=r"samples\[1\]: field 'T_base_tcp': expected 16 numbers"):
        load_dataset(tmp_path / "d")
    with pytest.raises(CalibrationError, match="need 0 < marker_m < square_m"):
        BoardSpec(square_m=0.03, marker_m=0.04)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_dataset(tmp_path / "nowhere")
