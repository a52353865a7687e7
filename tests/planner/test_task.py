import os

import pytest
import yaml

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


def test_missing_field(tmp_path):
    data = _base()
    del data["instruction"]
    path = _write(tmp_path, data)
    with pytest.raises(TaskError, match=rf"{path}: field 'instruction': missing"):
        load_task(path)


def test_unknown_asset(tmp_path):
    data = _base()
    data["objects"]["red_block"]["asset"] = "block_rde"
    path = _write(tmp_path, data)
    with pytest.raises(TaskError, match=r"field 'objects.red_block'.asset: unknown asset 'block_rde'; did you mean "
                                        r"'block_red'"):
        load_task(path)


def test_unknown_predicate(tmp_path):
    data = _base()
    data["success"] = {"all": [{"on_topp": ["red_block", "blue_block"]}]}
    path = _write(tmp_path, data)
    with pytest.raises(TaskError, match=r"field 'success'.all\[0\]: unknown predicate 'on_topp'; did you mean "
                                        r"'on_top'"):
        load_task(path)


def test_pose_outside_workspace(tmp_path):
    data = _base()
    data["objects"]["blue_block"]["pose"]["xyz"] = [1.5, 0.0, 0.025]
    path = _write(tmp_path, data)
    with pytest.raises(TaskError, match=r"objects.blue_block'.pose.xyz: expected a position inside robot 'panda' "
                                        r"workspace x in \[0.2, 0.8\]"):
        load_task(path)


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(max_steps=0), r"field 'max_steps': expected a positive integer"),
    (lambda d: d.update(instructions="x"), r"field 'instructions': unknown field; did you mean 'instruction'"),
    (lambda d: d.update(robot="pandaa"), r"unknown robot 'pandaa'; did you mean 'panda'"),
    (lambda d: d.update(cameras=["frnt"]), r"unknown camera 'frnt'; did you mean 'front'"),
    (lambda d: d["objects"]["red_block"].pop("pose"), r"objects.red_block'.pose: missing"),
    (lambda d: d["objects"]["red_block"].update(physics={"mass_kg": -1}), r"physics.mass_kg: expected a positive"),
    (lambda d: d.update(identify=["green_block"]), r"field 'identify': expected a list of task object names"),
    (lambda d: d["subtasks"][0].update(done={"grasped": "nothing"}), r"subtasks\[0\]'.done.grasped: expected a task"),
    (lambda d: d["clutter"][0].update(phyiscs={"mass_kg": 1}), r"clutter\[0\]': expected only the fields asset"),
])
def test_bad_fields_are_named(tmp_path, mutate, match):
    data = _base()
    mutate(data)
    with pytest.raises(TaskError, match=match):
        load_task(_write(tmp_path, data))


def test_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(TaskError, match="not valid YAML"):
        load_task(str(path))


def test_named_object_without_colour_hint_gets_its_symmetry_from_its_mesh(tmp_path):
    """rgba is an optional hint; an undeclared symmetry is inferred from the mesh, a declared one wins."""
    data = _base()
    data["objects"]["red_block"]["asset"] = {"urdf": "pybullet_data:cube_small.urdf"}
    data["objects"]["blue_block"]["asset"] = {"urdf": "pybullet_data:cube_small.urdf", "symmetry": "box"}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    task = load_task(str(path)).planner
    assert task.objects["red_block"].rgba is None and task.objects["red_block"].symmetry == "cube"
    assert task.objects["blue_block"].symmetry == "box"
