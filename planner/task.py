"""Task files: load, validate, and split into what the planner may read and the lab's truth.

The planner may read the instruction, subtasks, success predicate, robot, cameras, identify, max_steps and each
named object's name and asset. Poses, physics, clutter and randomisation are the lab's alone: they leave this
module only inside the LabSpec handed to the lab process.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

import configs
from configs import checks
from planner.catalog import Asset, asset_from_dict, load_catalog, lookup_asset
from planner.errors import TaskError
from reconstruction.model_symmetry import model_symmetry
from reconstruction.models import AUTO_SYMMETRY
from robot_io.labspec import LabSpec, Randomize
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.predicates import validate_predicate
from sim.scene import ObjectSpec, RobotSpec, SceneSpec

TOP_FIELDS = ("name", "instruction", "robot", "cameras", "objects", "clutter", "randomize", "subtasks", "success",
              "max_steps", "identify")
REQUIRED = ("name", "instruction", "objects", "success")
# Sizes a task may have: far beyond any real task, short of what would exhaust the lab or the planner.
MAX_OBJECTS = 32
MAX_CLUTTER = 64
MAX_CAMERAS = 8
MAX_SUBTASKS = 50
MAX_STEPS = 1000
MIN_SEPARATION_M = 0.01   # two object origins closer than this: the same place (their bodies would overlap)


@dataclass(frozen=True)
class Subtask:
    say: str
    done: dict


@dataclass(frozen=True)
class StartHint:
    """Roughly where an object started, in the robot base frame (m). z_known=False: only x, y are told (the
    height of what it stands on is not known). source: the words it came from, for the run log."""

    xyz_m: tuple[float, float, float]
    z_known: bool = True
    source: str = ""


@dataclass(frozen=True)
class PlannerTask:
    """Everything the planner is allowed to know about a task."""

    name: str
    instruction: str
    robot: RobotSpec
    cameras: tuple[CameraSpec, ...]
    objects: dict[str, Asset]          # named task objects -> their known model (no pose, no true physics)
    subtasks: tuple[Subtask, ...]
    success: dict
    max_steps: int
    identify: tuple[str, ...]
    path: str
    # Where an object started, in the robot base frame, when the task file says so in words a user could give
    # (LIBERO's BDDL `(:init (On bowl_1 plate_region))`): the only way to tell identical instances apart
    # (two black bowls); planner.twin_tracker names them by it on the first observation. Never the lab's truth.
    start_hints: dict[str, StartHint] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class LoadedTask:
    planner: PlannerTask
    lab: LabSpec                        # the truth; only for the lab process


def _expect(cond: bool, file: str, field: str, expected: str, got: Any) -> None:
    if not cond:
        raise TaskError(file, field, expected, got)


def _pose(d: Any, file: str, field: str, robot: RobotSpec) -> Pose:
    checks.mapping(d, file, field, "a mapping {xyz: [x, y, z], rpy_deg: [r, p, y]}", ("xyz", "rpy_deg"), ("xyz",),
                   error=TaskError)
    lo, hi = robot.workspace_min_xyz, robot.workspace_max_xyz
    x, y, z = checks.numbers(d["xyz"], file, f"{field}.xyz", 3, unit="m", what="[x, y, z]", error=TaskError)
    rpy = checks.numbers(d.get("rpy_deg", [0, 0, 0]), file, f"{field}.rpy_deg", 3, -360.0, 360.0,
                         what="[roll, pitch, yaw]", unit="degrees", error=TaskError)
    inside = lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and -0.01 <= z <= hi[2]
    _expect(inside, file, f"{field}.xyz",
            f"a position inside robot '{robot.name}' workspace x in [{lo[0]}, {hi[0]}], y in [{lo[1]}, {hi[1]}], "
            f"z in [-0.01, {hi[2]}] m", d["xyz"])
    return Pose.from_xyz_rpy_deg((x, y, z), rpy)


def _asset(value: Any, file: str, field: str, catalog: dict[str, Asset], base_dir: str) -> Asset:
    if isinstance(value, dict):
        return asset_from_dict("inline", value, field, base_dir, file)
    return lookup_asset(catalog, value, field, file)


def _physics(d: Any, file: str, field: str, asset: Asset) -> tuple[float, float]:
    if d is None:
        return asset.mass_kg, asset.friction
    checks.mapping(d, file, field, "a mapping {mass_kg, friction}", ("mass_kg", "friction"), error=TaskError)
    mass = checks.number(d.get("mass_kg", asset.mass_kg), file, f"{field}.mass_kg", 0.0, 50.0, lo_open=True,
                         unit="kg", error=TaskError)
    friction = checks.number(d.get("friction", asset.friction), file, f"{field}.friction", 0.0, 10.0, lo_open=True,
                             error=TaskError)
    return mass, friction


def _camera(value: Any, file: str, field: str) -> CameraSpec:
    if isinstance(value, str):
        path = str(configs.find("cameras", value, field, file))
        data = configs.read_yaml(path, "camera config")
        if isinstance(data, dict) and "name" not in data:
            data = {"name": value, **data}
        return CameraSpec.from_dict(data, path)
    _expect(isinstance(value, dict), file, field, "a camera name or an inline camera mapping", value)
    return CameraSpec.from_dict(value, file, field)


def _robot(value: Any, file: str, field: str) -> RobotSpec:
    if isinstance(value, dict):
        return RobotSpec.from_dict(value, file, os.path.dirname(os.path.abspath(file)), prefix=field)
    _expect(isinstance(value, str), file, field, "a robot name (configs/robots/) or an inline mapping", value)
    return RobotSpec.from_yaml(str(configs.find("robots", value, field, file)))


def load_task(name_or_path: str, catalog_path: str | None = None) -> LoadedTask:
    """Read and validate a task by name (`stack_blocks`: the user's config folders, then the shipped tasks) or
    from any path; errors (TaskError or another InputError) name the file, the field and what was expected.

    `libero:SUITE/ID` loads a LIBERO task instead (planner/libero_task.py; needs `make libero`)."""
    if name_or_path.startswith("libero:"):
        from planner.libero_task import load_libero_task
        return load_libero_task(name_or_path)
    path = str(configs.find("tasks", name_or_path, "--task"))
    return parse_task(configs.read_yaml(path, "task file"), path, catalog_path)


def _separated(objects: list[ObjectSpec], fields_: list[str], file: str) -> None:
    """No two objects at the same place (their bodies would start inside each other)."""
    for i, a in enumerate(objects):
        for j in range(i):
            b = objects[j]
            if math.dist(a.pose.xyz, b.pose.xyz) < MIN_SEPARATION_M:
                raise TaskError(file, f"{fields_[i]}.pose.xyz", f"a position at least {MIN_SEPARATION_M} m from "
                                f"{fields_[j]} (two objects cannot share a place)", list(a.pose.xyz))


def parse_task(data: Any, path: str, catalog_path: str | None = None) -> LoadedTask:
    """Validate a parsed task file: every field once, here (the lab spec it returns is not validated again)."""
    src = path
    base_dir = os.path.dirname(os.path.abspath(path))
    checks.mapping(data, src, None, "a mapping of task fields", TOP_FIELDS, REQUIRED, error=TaskError)
    name = checks.name(data["name"], src, "name", "a task name", error=TaskError)
    instruction = checks.text(data["instruction"], src, "instruction", "a non-empty sentence", 2000, error=TaskError)
    robot = _robot(data.get("robot", "panda"), src, "robot")
    cams_raw = data.get("cameras", ["front", "left", "right"])
    _expect(isinstance(cams_raw, list) and 0 < len(cams_raw) <= MAX_CAMERAS, src, "cameras",
            f"a list of 1 to {MAX_CAMERAS} cameras", cams_raw)
    cameras = tuple(_camera(c, src, f"cameras[{i}]") for i, c in enumerate(cams_raw))
    cam_names = [c.name for c in cameras]
    _expect(len(set(cam_names)) == len(cam_names), src, "cameras", "cameras with distinct names", cam_names)
    catalog = load_catalog(catalog_path)

    objs_raw = data["objects"]
    _expect(isinstance(objs_raw, dict) and 0 < len(objs_raw) <= MAX_OBJECTS, src, "objects",
            f"a mapping of 1 to {MAX_OBJECTS} object names to {{asset, pose, physics}}", objs_raw)
    assets: dict[str, Asset] = {}
    truth: list[ObjectSpec] = []
    fields_: list[str] = []
    for obj_name, spec in objs_raw.items():
        where = f"objects.{configs.safe_key(obj_name)}"
        _expect(isinstance(obj_name, str) and obj_name.isidentifier() and len(obj_name) <= 64, src, where,
                "an object name made of letters, digits and _", obj_name)
        where = f"objects.{obj_name}"
        checks.mapping(spec, src, where, "a mapping {asset, pose, physics}", ("asset", "pose", "physics"),
                       ("asset", "pose"), error=TaskError)
        asset = _asset(spec["asset"], src, f"{where}.asset", catalog, base_dir)
        if asset.symmetry == AUTO_SYMMETRY:      # not declared: inferred from the mesh (a declared one wins)
            asset = dataclasses.replace(asset, symmetry=model_symmetry(asset.urdf, asset.scale).kind)
        pose = _pose(spec["pose"], src, f"{where}.pose", robot)
        mass, friction = _physics(spec.get("physics"), src, f"{where}.physics", asset)
        assets[obj_name] = asset
        fields_.append(where)
        truth.append(ObjectSpec(obj_name, pose, urdf=asset.urdf, scale=asset.scale, rgba=asset.rgba, mass_kg=mass,
                                friction=friction, fixed=asset.fixed, symmetry=asset.symmetry))
    names = frozenset(assets)

    clutter_raw = data.get("clutter", [])
    _expect(isinstance(clutter_raw, list) and len(clutter_raw) <= MAX_CLUTTER, src, "clutter",
            f"a list of at most {MAX_CLUTTER} {{asset, pose}}", clutter_raw)
    for i, spec in enumerate(clutter_raw):
        where = f"clutter[{i}]"
        checks.mapping(spec, src, where, "a mapping {asset, pose}", ("asset", "pose", "physics"), ("asset", "pose"),
                       error=TaskError)
        asset = _asset(spec["asset"], src, f"{where}.asset", catalog, base_dir)
        mass, friction = _physics(spec.get("physics"), src, f"{where}.physics", asset)
        fields_.append(where)
        truth.append(ObjectSpec(f"clutter_{i}", _pose(spec["pose"], src, f"{where}.pose", robot), urdf=asset.urdf,
                                scale=asset.scale, rgba=asset.rgba, mass_kg=mass, friction=friction,
                                fixed=asset.fixed))
    _separated(truth, fields_, src)

    validate_predicate(data["success"], "success", names, src)
    subtasks = []
    subs_raw = data.get("subtasks", [])
    _expect(isinstance(subs_raw, list) and len(subs_raw) <= MAX_SUBTASKS, src, "subtasks",
            f"a list of at most {MAX_SUBTASKS} {{say, done}}", subs_raw)
    for i, sub in enumerate(subs_raw):
        where = f"subtasks[{i}]"
        checks.mapping(sub, src, where, "a mapping {say: text, done: predicate}", ("say", "done"), ("say", "done"),
                       error=TaskError)
        say = checks.text(sub["say"], src, f"{where}.say", "a non-empty sentence", 500, error=TaskError)
        validate_predicate(sub["done"], f"{where}.done", names, src)
        subtasks.append(Subtask(say, sub["done"]))

    max_steps = checks.integer(data.get("max_steps", 30), src, "max_steps", 1, MAX_STEPS, error=TaskError)
    identify = data.get("identify", [])
    _expect(isinstance(identify, list) and all(isinstance(n, str) and n in names for n in identify)
            and len(set(identify)) == len(identify), src, "identify",
            f"a list of distinct task object names ({sorted(names)})", identify)
    randomize = Randomize.from_dict(data.get("randomize", {}), "randomize", src)

    planner = PlannerTask(name, instruction.strip(), robot, cameras, assets, tuple(subtasks),
                          data["success"], max_steps, tuple(identify), os.path.abspath(path))
    lab = LabSpec(scene=SceneSpec(robot, tuple(truth)), cameras=cameras, randomize=randomize,
                  success=data["success"])
    return LoadedTask(planner, lab)
