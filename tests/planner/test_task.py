import os

import pytest
import yaml

from configs import InputError
from planner.errors import TaskError
from planner.task import load_task
from tests.conftest import REPO

STACK = os.path.join(REPO, "configs", "tasks", "stack_blocks.yaml")


def _write(tmp_path, data, name="task.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _base():
    with open(STACK) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("name", ["stack_blocks", "pick_place_tray", "cluttered_five", "cluttered_touching",
                                  "cluttered_edge_of_view", "ident_blocks"])
def test_shipped_tasks_load_and_split(name):
    loaded = load_task(os.path.join(REPO, "configs", "tasks", f"{name}.yaml"))
    planner, lab = loaded.planner, loaded.lab
    assert planner.subtasks and planner.max_steps > 0 and len(planner.cameras) >= 3
    # the planner side has models only; poses, physics and clutter live in the lab spec
    assert not hasattr(planner, "clutter")
    assert all(not hasattr(a, "pose") for a in planner.objects.values())
    assert len(lab.scene.objects) > len(planner.objects)
    assert any(o.name.startswith("clutter_") for o in lab.scene.objects)


def test_task_from_any_path_with_inline_asset_and_camera(tmp_path):
    data = _base()
    data["objects"]["red_block"]["asset"] = {"urdf": "pybullet_data:cube_small.urdf", "rgba": [1, 0, 0, 1],
                                             "symmetry": "cube"}
    data["cameras"] = ["front", {"name": "wrist", "width": 64, "height": 48, "fov_deg": 60,
                                 "eye": [0.8, 0, 0.5], "target": [0.5, 0, 0]}]
    loaded = load_task(_write(tmp_path, data))
    assert loaded.planner.objects["red_block"].rgba == (1.0, 0.0, 0.0, 1.0)
    assert [c.name for c in loaded.planner.cameras] == ["front", "wrist"]


def _rejected(path: str, field: str, fragment: str) -> None:
    """load_task raises the one input error, naming the file and the field, with `fragment` in its message."""
    with pytest.raises(InputError) as info:
        load_task(path)
    err = info.value
    assert (err.file, err.field) == (path, field), str(err)
    assert fragment in str(err)


def test_missing_field(tmp_path):
    data = _base()
    del data["instruction"]
    path = _write(tmp_path, data)
    _rejected(path, "instruction", "expected a value (this field is required), got nothing")


def test_unknown_asset(tmp_path):
    data = _base()
    data["objects"]["red_block"]["asset"] = "block_rde"
    path = _write(tmp_path, data)
    _rejected(path, "objects.red_block.asset", "got 'block_rde'; did you mean 'block_red'")


def test_unknown_predicate(tmp_path):
    data = _base()
    data["success"] = {"all": [{"on_topp": ["red_block", "blue_block"]}]}
    path = _write(tmp_path, data)
    _rejected(path, "success.all[0]", "did you mean 'on_top'")


def test_pose_outside_workspace(tmp_path):
    data = _base()
    data["objects"]["blue_block"]["pose"]["xyz"] = [1.5, 0.0, 0.025]
    path = _write(tmp_path, data)
    _rejected(path, "objects.blue_block.pose.xyz", "expected a position inside robot 'panda' workspace x in [0.2, 0.8]")


@pytest.mark.parametrize("mutate,field,fragment", [
    (lambda d: d.update(max_steps=0), "max_steps", "expected an integer in [1, 1000]"),
    (lambda d: d.update(instructions="x"), "instructions", "did you mean 'instruction'"),
    (lambda d: d.update(robot="pandaa"), "robot", "did you mean 'panda'"),
    (lambda d: d.update(cameras=["frnt"]), "cameras[0]", "did you mean 'front'"),
    (lambda d: d["objects"]["red_block"].pop("pose"), "objects.red_block.pose", "this field is required"),
    (lambda d: d["objects"]["red_block"].update(physics={"mass_kg": -1}), "objects.red_block.physics.mass_kg",
     "expected a finite number in (0, 50] kg, got -1"),
    (lambda d: d.update(identify=["green_block"]), "identify", "expected a list of distinct task object names"),
    (lambda d: d["subtasks"][0].update(done={"grasped": "nothing"}), "subtasks[0].done.grasped",
     "expected a task object name"),
    (lambda d: d["clutter"][0].update(phyiscs={"mass_kg": 1}), "clutter[0].phyiscs", "did you mean 'physics'"),
    (lambda d: d["objects"]["red_block"].update(asset={"urdf": "pybullet_data:cube_small.urdf", "symmetry": "cubic"}),
     "objects.red_block.asset.symmetry", "did you mean 'cube'"),
])
def test_bad_fields_are_named(tmp_path, mutate, field, fragment):
    data = _base()
    mutate(data)
    path = _write(tmp_path, data)
    _rejected(path, field, fragment)


def test_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(InputError, match="expected valid YAML") as info:
        load_task(str(path))
    assert info.value.file == str(path) and info.value.field.startswith("line 1")


def test_task_errors_are_task_errors(tmp_path):
    """A value the task loader itself checks raises the planner floor's TaskError, an InputError."""
    data = _base()
    data["max_steps"] = -1
    with pytest.raises(TaskError):
        load_task(_write(tmp_path, data))


def test_named_object_without_colour_hint_gets_its_symmetry_from_its_mesh(tmp_path):
    """rgba is an optional hint; an undeclared symmetry is inferred from the mesh, a declared one wins."""
    data = _base()
    data["objects"]["red_block"]["asset"] = {"urdf": "pybullet_data:cube_small.urdf"}
    data["objects"]["blue_block"]["asset"] = {"urdf": "pybullet_data:cube_small.urdf", "symmetry": "box"}
    task = load_task(_write(tmp_path, data)).planner
    assert task.objects["red_block"].rgba is None and task.objects["red_block"].symmetry == "cube"
    assert task.objects["blue_block"].symmetry == "box"
