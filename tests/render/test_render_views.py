import dataclasses
import os

import numpy as np
import pytest

from render.views import ViewConfigError, VirtualView, load_views, select_views
from sim.camera import project_points
from tests.conftest import REPO

VIEWS_YAML = os.path.join(REPO, "configs", "views.yaml")


def _write(tmp_path, text):
    path = tmp_path / "views.yaml"
    path.write_text(text)
    return str(path)


GOOD = """
width: 64
height: 48
views:
  a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 50}
  b: {eye: [0.4, 0, 1.2], target: [0.4, 0, 0], up: [1, 0, 0], fov_deg: 40, width: 80}
"""


def test_shipped_views_frame_the_workspace():
    views = load_views(VIEWS_YAML)
    assert [v.name for v in views] == ["front", "top", "side"]
    # every corner of the object workspace (x 0.35..0.65, y -0.3..0.3, z 0..0.3) is in every picture
    corners = np.array([[x, y, z] for x in (0.35, 0.65) for y in (-0.3, 0.3) for z in (0.0, 0.3)])
    for v in views:
        cam = v.camera()
        assert (cam.width, cam.height) == (512, 384)
        uv, z = project_points(cam, corners)
        assert np.all(z > cam.near_m)
        assert np.all((uv >= 0) & (uv < [cam.width, cam.height])), v.name
    front, top, side = (v.camera().T_world_camera_matrix for v in views)
    assert front[0, 3] > 0.65 and front[0, 2] < -0.5 and front[2, 2] < 0      # from +x, looking back and down
    np.testing.assert_allclose(top[:3, 2], (0, 0, -1), atol=1e-9)              # straight down
    np.testing.assert_allclose(top[:3, 1], (-1, 0, 0), atol=1e-9)              # image up = world +x
    assert abs(side[1, 3]) > 0.6 and abs(side[1, 2]) > 0.8                     # from the side (y)


def test_load_defaults_and_selection(tmp_path):
    a, b = load_views(_write(tmp_path, GOOD))
    assert (a.width, a.height, b.width, b.height) == (64, 48, 80, 48)
    assert a.up == (0.0, 0.0, 1.0) and b.up == (1.0, 0.0, 0.0)
    assert select_views((a, b), ["b", "a"]) == (b, a)
    assert load_views(_write(tmp_path, GOOD), names=["b"]) == (b,)
    with pytest.raises(ViewConfigError, match=r"a known view name.*got 'frnt'; did you mean 'front'"):
        load_views(VIEWS_YAML, names=["frnt"])


def test_view_is_frozen_and_camera_matches():
    v = VirtualView("v", eye=(1, 0, 0.5), target=(0.4, 0, 0), fov_deg=60, width=100, height=50)
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.fov_deg = 10
    cam = v.camera()
    # vertical fov: the top image row is fov/2 above the optical axis
    assert np.degrees(2 * np.arctan((cam.height / 2) / cam.fy)) == pytest.approx(60.0)
    uv, _ = project_points(cam, np.array([v.target]))
    np.testing.assert_allclose(uv[0], (cam.cx, cam.cy), atol=1e-9)


@pytest.mark.parametrize("body, field", [
    ("a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 200}", "fov_deg"),
    ("a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 50, width: -3}", "width"),
    ("a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 50, height: true}", "height"),
    ("a: {eye: [1, 0], target: [0.4, 0, 0], fov_deg: 50}", "eye"),
    ("a: {eye: [1, 0, 0.5], target: [0.4, zero, 0], fov_deg: 50}", "target"),
    ("a: {eye: [0.4, 0, 1], target: [0.4, 0, 0], fov_deg: 50}", "up"),   # default up is parallel to the view
    ("a: {target: [0.4, 0, 0], fov_deg: 50}", "eye"),
    ("a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 50, near_m: 2, far_m: 1}", "far_m"),
    ("a: {eye: [1, 0, 0.5], target: [0.4, 0, 0], fov_deg: 50, width: 100000, height: 100000}", "width"),
])
def test_errors_name_file_view_and_field(tmp_path, body, field):
    path = _write(tmp_path, "width: 64\nheight: 48\nviews:\n  " + body + "\n")
    with pytest.raises(ViewConfigError) as err:
        load_views(path)
    assert err.value.file == path and err.value.field.startswith(f"views.a.{field}"), str(err.value)


def test_unknown_fields_suggest_the_right_one(tmp_path):
    path = _write(tmp_path, "views:\n  a: {eye: [1, 0, 0.5], target: [0, 0, 0], fov: 50, width: 8, height: 8}\n")
    with pytest.raises(ViewConfigError, match=r"views\.a\.fov'.*did you mean 'fov_deg'\?"):
        load_views(path)
    path = _write(tmp_path, "widht: 8\nviews:\n  a: {eye: [1, 0, 0.5], target: [0, 0, 0], fov_deg: 50}\n")
    with pytest.raises(ViewConfigError, match=r"did you mean 'width'"):
        load_views(path)
    with pytest.raises(ViewConfigError, match="no such file"):
        load_views(str(os.path.join(str(path), "missing.yaml")))
    with pytest.raises(ViewConfigError, match="one of the fields views"):
        load_views(_write(tmp_path, "front: {}\n"))
