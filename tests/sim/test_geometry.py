import numpy as np
import pytest

from sim.geometry import Pose, rotation_error_deg, transform_points


def test_compose_and_inverse_match_matrices():
    a = Pose.from_xyz_rpy_deg((1, 2, 3), (10, 20, 30))
    b = Pose.from_xyz_rpy_deg((0.3, -1, 2), (-40, 5, 60))
    np.testing.assert_allclose((a @ b).matrix(), a.matrix() @ b.matrix(), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(Pose.from_matrix(a.matrix()).matrix(), a.matrix(), atol=1e-12)


def test_dict_round_trip_and_rpy():
    a = Pose.from_xyz_rpy_deg((0.1, 0.2, 0.3), (0, 0, 45))
    assert Pose.from_dict(a.to_dict()) == a
    assert Pose.from_dict({"xyz": [0.1, 0.2, 0.3], "rpy_deg": [0, 0, 45]}).rpy_deg()[2] == pytest.approx(45)


def test_rejects_nan():
    with pytest.raises(ValueError):
        Pose((0, float("nan"), 0))


@pytest.mark.parametrize("symmetry,yaw,expected", [
    ("none", 90, 90), ("cube", 90, 0), ("cube", 100, 10), ("box", 90, 90), ("box", 180, 0), ("square", 90, 0),
    ("square", 95, 5), ("cylinder", 73, 0)])
def test_symmetry_aware_rotation_error(symmetry, yaw, expected):
    R = Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, yaw)).rotation()
    assert rotation_error_deg(np.eye(3), R, symmetry) == pytest.approx(expected, abs=1e-6)


def test_cube_symmetry_does_not_hide_a_real_tilt():
    R = Pose.from_xyz_rpy_deg((0, 0, 0), (20, 0, 0)).rotation()
    assert rotation_error_deg(np.eye(3), R, "cube") == pytest.approx(20, abs=1e-6)


def test_transform_points():
    T = Pose.from_xyz_rpy_deg((1, 0, 0), (0, 0, 90)).matrix()
    np.testing.assert_allclose(transform_points(T, [[1, 0, 0]]), [[1, 1, 0]], atol=1e-12)
