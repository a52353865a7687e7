"""LabSpec JSON round trip and validation errors; per-seed randomisation of the lab's layout."""

import json
import os

import numpy as np
import pybullet as p
import pybullet_data
import pytest

from robot_io.labspec import LabSpec, LabSpecError, Randomize
from robot_io.simlab import MIN_GAP_M, randomize_scene
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.predicates import PredicateError
from sim.scene import ObjectSpec, SceneSpec
from sim.world import World

CUBE = os.path.join(pybullet_data.getDataPath(), "cube_small.urdf")  # a 5 cm cube


@pytest.fixture(scope="module")
def panda(panda_spec):  # tests/conftest.py: RobotSpec.from_yaml("configs/robots/panda.yaml")
    return panda_spec


def _cube(name, xyz, yaw=0.0, **kw):
    return ObjectSpec(name, Pose.from_xyz_rpy_deg(xyz, (0, 0, yaw)), urdf=CUBE, **kw)


def _spec(panda, **kw):
    red = _cube("red", (0.55, 0.1, 0.025), 20, mass_kg=0.08, friction=0.7, rgba=(1, 0, 0, 1))
    scene = SceneSpec(panda, (red, _cube("blue", (0.5, -0.12, 0.025))))
    cams = (CameraSpec.look_at("front", 64, 48, 55, (1.25, 0, 0.75), (0.45, 0, 0), depth_noise_m=0.001),
            CameraSpec.from_dict({"width": 32, "height": 24, "fov_deg": 50, "eye": [0.6, 0.8, 0.7],
                                  "target": [0.45, 0, 0], "depth_dropout": 0.01}, where="left"))
    base = dict(scene=scene, cameras=cams, randomize={"xy_m": 0.04, "yaw_deg": 45},
                success={"all": [{"on_top": ("red", "blue")}, {"gripper_open": True}]}, seed=7,
                heartbeat_timeout_s=1.5, realtime_factor=0.5)
    base.update(kw)
    return LabSpec(**base)


def test_round_trip_through_json(panda):
    spec = _spec(panda)
    assert isinstance(spec.randomize, Randomize) and spec.randomize.xy_m == 0.04
    assert spec.success == {"all": [{"on_top": ["red", "blue"]}, {"gripper_open": True}]}
    text = json.dumps(spec.to_dict())
    again = LabSpec.from_dict(json.loads(text))
    assert again == spec
    assert again.scene.object("red").mass_kg == 0.08 and again.scene.object("red").friction == 0.7
    assert again.camera_names == ("front", "left")
    np.testing.assert_allclose(again.cameras[0].K, spec.cameras[0].K)


def test_json_file_round_trip(panda, tmp_path):
    path = tmp_path / "lab.json"
    path.write_text(_spec(panda).to_json())
    assert LabSpec.from_json_file(str(path)) == _spec(panda)
    path.write_text("{not json")
    with pytest.raises(LabSpecError, match="expected valid JSON") as info:
        LabSpec.from_json_file(str(path))
    assert info.value.file == str(path) and info.value.field == "line 1"


@pytest.mark.parametrize("kw, field, fragment", [
    ({"randomize": {"xy_m": -0.01}}, "randomize.xy_m", "expected a finite number in [0, 1]"),
    ({"randomize": {"yaw_deg": 200}}, "randomize.yaw_deg", "expected a finite number in [0, 180]"),
    ({"randomize": {"xy": 0.1}}, "randomize.xy", "did you mean 'xy_m'"),
    ({"heartbeat_timeout_s": 0}, "heartbeat_timeout_s", "expected a finite number in (0, 60]"),
    ({"realtime_factor": -1}, "realtime_factor", "expected a finite number in [0, 100]"),
    ({"realtime_factor": float("nan")}, "realtime_factor", "expected a finite number"),
    ({"seed": -3}, "seed", "expected an integer in [0, 2**32)"),
    ({"seed": True}, "seed", "expected an integer"),
    ({"success": ["on_top"]}, "success", "expected a predicate mapping"),
])
def test_validation_errors_name_the_field(panda, kw, field, fragment):
    with pytest.raises(LabSpecError) as info:
        _spec(panda, **kw)
    assert info.value.field == field and fragment in str(info.value)


def test_success_predicate_is_validated_against_the_objects_when_read(panda):
    """A spec from JSON (the lab's input) has its predicate checked against its scene; the task loader checks a
    task's predicates once, when it reads the file, and builds the spec without checking them again."""
    d = _spec(panda).to_dict()
    with pytest.raises(PredicateError, match="green") as info:
        LabSpec.from_dict({**d, "success": {"grasped": "green"}}, where="lab.json")
    assert info.value.file == "lab.json" and info.value.field == "success.grasped"
    with pytest.raises(PredicateError, match="did you mean 'on_top'"):
        LabSpec.from_dict({**d, "success": {"on_tpo": ["red", "blue"]}})


def test_duplicate_camera_names_are_refused(panda):
    cam = CameraSpec.look_at("front", 8, 6, 55, (1, 0, 1), (0, 0, 0))
    with pytest.raises(LabSpecError, match="distinct camera names"):
        _spec(panda, cameras=(cam, cam))


def test_from_dict_errors(panda):
    d = _spec(panda).to_dict()
    with pytest.raises(LabSpecError, match="field 'scene': expected a value \\(this field is required\\)"):
        LabSpec.from_dict({k: v for k, v in d.items() if k != "scene"})
    with pytest.raises(LabSpecError, match="one of the fields") as info:
        LabSpec.from_dict({**d, "clutter": []})
    assert info.value.field == "clutter"
    with pytest.raises(LabSpecError, match="expected a lab spec mapping"):
        LabSpec.from_dict([d])


# ---------------------------------------------------------------- randomisation
def _aabbs(scene):
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, scene)
        p.performCollisionDetection(physicsClientId=client)
        return {o.name: world.object_aabb(o.name) for o in scene.objects}
    finally:
        p.disconnect(client)


def _yaw_deg(pose):
    return float(np.degrees(np.arctan2(pose.rotation()[1, 0], pose.rotation()[0, 0])))


def test_randomisation_is_deterministic_bounded_and_keeps_a_gap(panda):
    # Two 5 cm cubes 7 cm apart: +-4 cm of jitter often makes them overlap, which must be resampled.
    scene = SceneSpec(panda, (_cube("a", (0.5, 0.0, 0.025)), _cube("b", (0.5, 0.07, 0.025), 10)))
    rnd = Randomize(xy_m=0.04, yaw_deg=45)
    layouts = [randomize_scene(scene, rnd, seed) for seed in range(6)]
    assert randomize_scene(scene, rnd, 3) == layouts[3]
    assert len({lay.object("a").pose.xyz for lay in layouts}) == 6
    for lay in layouts:
        for o in scene.objects:
            new = lay.object(o.name).pose
            assert np.all(np.abs(np.subtract(new.xyz[:2], o.pose.xyz[:2])) <= 0.04 + 1e-9)
            assert new.xyz[2] == pytest.approx(o.pose.xyz[2])
            d_yaw = (_yaw_deg(new) - _yaw_deg(o.pose) + 180) % 360 - 180
            assert abs(d_yaw) <= 45 + 1e-6
        (lo_a, hi_a), (lo_b, hi_b) = _aabbs(lay).values()
        gap = max(lo_b[0] - hi_a[0], lo_a[0] - hi_b[0], lo_b[1] - hi_a[1], lo_a[1] - hi_b[1])
        assert gap >= MIN_GAP_M - 1e-6


def test_stacks_move_as_one_and_fixed_objects_stay(panda):
    base = _cube("base", (0.5, 0.0, 0.025))
    top = _cube("top", (0.5, 0.0, 0.075), 30)
    wall = _cube("wall", (0.4, 0.25, 0.025), fixed=True)
    scene = SceneSpec(panda, (base, top, wall))
    lay = randomize_scene(scene, Randomize(xy_m=0.04, yaw_deg=45), 11)
    assert lay.object("wall") == wall
    assert lay.object("base").pose != base.pose
    rel_before = base.pose.inverse() @ top.pose
    rel_after = lay.object("base").pose.inverse() @ lay.object("top").pose
    np.testing.assert_allclose(rel_after.xyz, rel_before.xyz, atol=1e-9)
    np.testing.assert_allclose(np.abs(np.dot(rel_after.quat_xyzw, rel_before.quat_xyzw)), 1.0, atol=1e-9)


def test_zero_randomisation_keeps_the_task_layout(panda):
    scene = SceneSpec(panda, (_cube("a", (0.5, 0.0, 0.025)),))
    assert randomize_scene(scene, Randomize(), 5) is scene
