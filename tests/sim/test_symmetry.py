"""Symmetry inferred from meshes (sim/symmetry.py), on pybullet_data's own models and on made-up solids."""

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from reconstruction.model_symmetry import model_symmetry
from sim.geometry import Pose, rotation_error_deg
from sim.symmetry import infer_symmetry, mesh_symmetry, named_symmetry


@pytest.mark.parametrize("urdf,scale,kind,order", [
    ("pybullet_data:cube_small.urdf", 1.0, "cube", 24),
    ("pybullet_data:jenga/jenga.urdf", 1.0, "box", 4),
    ("pybullet_data:tray/traybox.urdf", 0.5, "square", 4),
    ("pybullet_data:soccerball.urdf", 0.1, "sphere", np.inf),
    ("pybullet_data:duck_vhacd.urdf", 1.0, "none", 1),
    ("pybullet_data:objects/mug.urdf", 1.0, "none", 1),     # the handle breaks the cup's revolution symmetry
])
def test_pybullet_data_models(urdf, scale, kind, order):
    sym = model_symmetry(urdf, scale)
    assert sym.kind == kind
    assert sym.order == order


def test_made_up_solids():
    assert mesh_symmetry(trimesh.creation.cylinder(radius=0.03, height=0.1, sections=64)).kind == "cylinder"
    assert mesh_symmetry(trimesh.creation.box(extents=[0.04, 0.04, 0.1])).kind == "square_prism"
    assert mesh_symmetry(trimesh.creation.box(extents=[0.03, 0.05, 0.1])).kind == "box"
    cone = trimesh.creation.cone(radius=0.04, height=0.08, sections=64)
    sym = mesh_symmetry(cone)
    assert sym.kind == "cylinder" and len(sym.rotations) == 1      # a cone does not turn over


def test_symmetry_about_a_tilted_axis_is_found_but_not_named():
    box = trimesh.creation.box(extents=[0.03, 0.05, 0.1])
    box.apply_transform(trimesh.transformations.rotation_matrix(np.radians(30), [1, 1, 0]))
    sym = mesh_symmetry(box)
    assert sym.kind == "none" and len(sym.rotations) == 4        # the box's half turns, about its own axes
    R = Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_matrix()
    assert sym.rotation_error_deg(R @ sym.rotations[2], R) == pytest.approx(0.0, abs=1e-3)


def test_off_centre_frame_moves_the_origin_with_the_flip():
    box = trimesh.creation.box(extents=[0.03, 0.05, 0.1])
    box.apply_translation([0.0, 0.0, 0.05])                      # the frame's origin at the bottom face
    sym = mesh_symmetry(box)
    assert sym.kind == "none" and len(sym.rotations) == 4        # the flips turn about the centre, not the origin
    T_true = Pose.from_xyz_rpy_deg((0.5, 0.1, 0.0), (0, 0, 25)).matrix()
    flip = np.eye(4)
    flip[:3, :3] = Rotation.from_euler("x", 180, degrees=True).as_matrix()
    flip[:3, 3] = sym.center - flip[:3, :3] @ sym.center
    t_err, r_err = sym.pose_error(T_true @ flip, T_true)         # the same box, upside down: no error
    assert t_err == pytest.approx(0.0, abs=1e-3) and r_err == pytest.approx(0.0, abs=0.5)
    t_err, r_err = sym.pose_error(T_true @ Pose.from_xyz_rpy_deg((0.01, 0, 0), (0, 0, 12)).matrix(), T_true)
    assert t_err == pytest.approx(0.01, abs=1e-6) and r_err == pytest.approx(12.0, abs=1e-6)


def test_named_symmetries_agree_with_rotation_error_deg():
    R = Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, 95)).rotation()
    for kind in ("none", "cube", "box", "square", "square_prism", "sphere"):
        assert named_symmetry(kind).rotation_error_deg(R, np.eye(3)) == pytest.approx(
            rotation_error_deg(R, np.eye(3), kind), abs=1e-6)
    upside_down = Rotation.from_euler("x", 180, degrees=True).as_matrix()
    assert rotation_error_deg(upside_down, np.eye(3), "square_prism") == pytest.approx(0.0, abs=1e-6)
    assert rotation_error_deg(upside_down, np.eye(3), "square") == pytest.approx(180.0, abs=1e-6)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="need >= 20 points"):
        infer_symmetry(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="unknown symmetry"):
        named_symmetry("hexagon")


def _lying_can(tmp_path):
    """A can (a 64-sided cylinder) whose axis is the frame's y axis, as LIBERO's scanned cans are: no named
    symmetry fits it (the named cylinder turns about z)."""
    can = trimesh.creation.cylinder(radius=0.033, height=0.08, sections=64)
    can.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    can.export(tmp_path / "can.obj")
    (tmp_path / "can.urdf").write_text(
        '<robot name="can"><link name="base"><visual><geometry><mesh filename="can.obj"/></geometry></visual>'
        '<collision><geometry><mesh filename="can.obj"/></geometry></collision></link></robot>')
    return can, str(tmp_path / "can.urdf")


def test_a_can_lying_along_y_turns_about_its_own_axis(tmp_path):
    can, urdf = _lying_can(tmp_path)
    sym = mesh_symmetry(can)
    assert sym.kind == "box"       # the named cylinder turns about z: only the half turns about x, y, z are named
    assert len(sym.axes) == 1 and abs(sym.axes[0] @ [0, 1, 0]) > 0.99
    assert sym.turn_order([0, 1, 0]) == np.inf                   # standing on its end: every yaw looks alike
    assert sym.turn_order([0, 0, 1]) == 2                        # lying: it turns over end for end
    assert sym.turn_order([1, 0, 0]) == 2
    assert sym.maps([1, 0, 0], [0, 0, -1])                       # any side it rolls onto is the same side
    assert sym.maps([0, 1, 0], [0, -1, 0]) and not sym.maps([0, 1, 0], [1, 0, 0])


def test_object_symmetry_judges_a_lying_can_by_its_own_axis(tmp_path):
    from reconstruction.accuracy import object_pose_errors
    from reconstruction.model_symmetry import object_symmetry
    from reconstruction.models import ObjectModel

    _, urdf = _lying_can(tmp_path)
    model = ObjectModel("can", urdf, symmetry="none")
    assert object_symmetry(model).order == np.inf
    truth = Pose.from_xyz_rpy_deg((0.5, 0.1, 0.033), (0, 0, 30))
    rolled = Pose.from_matrix(truth.matrix() @ Pose.from_xyz_rpy_deg((0, 0, 0), (0, 70, 0)).matrix())
    t_mm, r_deg = object_pose_errors(rolled, truth, model)       # rolled 70 deg about its own axis: no error
    assert t_mm == pytest.approx(0.0, abs=0.5) and r_deg == pytest.approx(0.0, abs=0.5)
    yawed = Pose.from_matrix(truth.matrix() @ Pose.from_xyz_rpy_deg((0, 0, 0), (0, 0, 12)).matrix())
    assert object_pose_errors(yawed, truth, model)[1] == pytest.approx(12.0, abs=0.5)
    assert object_symmetry(ObjectModel("can", urdf, symmetry="box")).order == np.inf   # what a task infers
    # a declared symmetry other than the mesh's name wins
    assert object_symmetry(ObjectModel("can", urdf, symmetry="square")).order == 4
