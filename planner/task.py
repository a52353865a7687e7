"""Task files: load, validate, and split into what the planner may read and the lab's truth.

The planner may read the instruction, subtasks, success predicate, robot, cameras, identify, max_steps and each
named object's name and asset. Poses, physics, clutter and randomisation are the lab's alone: they leave this
module only inside the LabSpec handed to the lab process.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any

import yaml

import configs
from planner.catalog import Asset, asset_from_dict, load_catalog, lookup_asset
from planner.errors import TaskError
from reconstruction.model_symmetry import model_symmetry
from robot_io.labspec import LabSpec, Randomize
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.predicates import PredicateError, validate_predicate
from sim.scene import ObjectSpec, RobotSpec, SceneSpec, SpecError

TOP_FIELDS = ("name", "instruction", "robot", "cameras", "objects", "clutter", "randomize", "subtasks", "success",
              "max_steps", "identify")
REQUIRED = ("name", "instruction", "objects", "success")


@dataclass(frozen=True)
class Subtask:
    say: str
    done: dict


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


@dataclass(frozen=True)
class LoadedTask:
    planner: PlannerTask
    lab: LabSpec                        # the truth; only for the lab process


def _expect(cond: bool, where: str, expected: str, got: Any) -> None:
    if not cond:
        raise TaskError(f"{where}: expected {expected}, got {got!r}")


def _numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                       for x in v)


def _pose(d: Any, where: str, robot: RobotSpec) -> Pose:
    _expect(isinstance(d, dict) and "xyz" in d, where, "a mapping {xyz: [x, y, z], rpy_deg: [r, p, y]}", d)
    unknown = sorted(set(d) - {"xyz", "rpy_deg"})
    _expect(not unknown, f"{where}", "only the fields xyz and rpy_deg", d)
    _expect(_numbers(d["xyz"], 3), f"{where}.xyz", "[x, y, z] in metres", d["xyz"])
    rpy = d.get("rpy_deg", [0, 0, 0])
    _expect(_numbers(rpy, 3), f"{where}.rpy_deg", "[roll, pitch, yaw] in degrees", rpy)
    lo, hi = robot.workspace_min_xyz, robot.workspace_max_xyz
    x, y, z = d["xyz"]
    inside = lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and -0.01 <= z <= hi[2]
    _expect(inside, f"{where}.xyz",
            f"a position inside robot '{robot.name}' workspace x in [{lo[0]}, {hi[0]}], y in [{lo[1]}, {hi[1]}], "
            f"z in [-0.01, {hi[2]}] m", d["xyz"])
    return Pose.from_xyz_rpy_deg(d["xyz"], rpy)


def _asset(value: Any, where: str, catalog: dict[str, Asset], base_dir: str) -> Asset:
    if isinstance(value, dict):
        return asset_from_dict("inline", value, where, base_dir)
    return lookup_asset(catalog, value, where)


def _physics(d: Any, where: str, asset: Asset) -> tuple[float, float]:
    if d is None:
        return asset.mass_kg, asset.friction
    _expect(isinstance(d, dict), where, "a mapping {mass_kg, friction}", d)
    unknown = sorted(set(d) - {"mass_kg", "friction"})
    _expect(not unknown, where, "only the fields mass_kg and friction", d)
    out = []
    for key, default in (("mass_kg", asset.mass_kg), ("friction", asset.friction)):
        v = d.get(key, default)
        _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, f"{where}.{key}",
                "a positive number", v)
        out.append(float(v))
    return out[0], out[1]


def _named_config(kind: str, value: str, where: str) -> str:
    """A robot or camera config by name (user config folders first, then the shipped ones) or by path."""
    try:
        return str(configs.find(kind, value))
    except configs.ConfigNotFoundError as exc:
        raise TaskError(f"{where}: {exc}, or an inline mapping") from None


def _camera(value: Any, where: str) -> CameraSpec:
    try:
        if isinstance(value, str):
            path = _named_config("cameras", value, where)
            with open(path) as f:
                data = yaml.safe_load(f)
            return CameraSpec.from_dict({"name": value, **data}, f"{path}")
        _expect(isinstance(value, dict), where, "a camera name or an inline camera mapping", value)
        return CameraSpec.from_dict(value, where)
    except SpecError as exc:
        raise TaskError(str(exc)) from None


def _robot(value: Any, where: str) -> RobotSpec:
    try:
        if isinstance(value, dict):
            return RobotSpec.from_dict(value, where)
        _expect(isinstance(value, str), where, "a robot name (configs/robots/) or an inline mapping", value)
        return RobotSpec.from_yaml(_named_config("robots", value, where))
    except SpecError as exc:
        raise TaskError(str(exc)) from None


def load_task(name_or_path: str, catalog_path: str | None = None) -> LoadedTask:
    """Read and validate a task by name (`stack_blocks`: the user's config folders, then the shipped tasks) or
    from any path; errors name the file, the field and what was expected."""
    try:
        path = str(configs.find("tasks", name_or_path))
    except configs.ConfigNotFoundError as exc:
        raise TaskError(str(exc)) from None
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise TaskError(f"{path}: not valid YAML: {exc}") from None
    return parse_task(data, path, catalog_path)


def parse_task(data: Any, path: str, catalog_path: str | None = None) -> LoadedTask:
    src = path
    base_dir = os.path.dirname(os.path.abspath(path))
    _expect(isinstance(data, dict), src, "a mapping of task fields", type(data).__name__)
    for key in data:
        if key not in TOP_FIELDS:
            close = difflib.get_close_matches(key, TOP_FIELDS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise TaskError(f"{src}: field '{key}': unknown field{hint} (expected some of {list(TOP_FIELDS)})")
    for key in REQUIRED:
        if key not in data:
            raise TaskError(f"{src}: field '{key}': missing (required: {list(REQUIRED)})")
    _expect(isinstance(data["name"], str) and data["name"], f"{src}: field 'name'", "a non-empty string", data["name"])
    _expect(isinstance(data["instruction"], str) and data["instruction"].strip(), f"{src}: field 'instruction'",
            "a non-empty sentence", data["instruction"])
    robot = _robot(data.get("robot", "panda"), f"{src}: field 'robot'")
    cams_raw = data.get("cameras", ["front", "left", "right"])
    _expect(isinstance(cams_raw, list) and cams_raw, f"{src}: field 'cameras'", "a non-empty list", cams_raw)
    cameras = tuple(_camera(c, f"{src}: field 'cameras[{i}]'") for i, c in enumerate(cams_raw))
    catalog = load_catalog(catalog_path)

    objs_raw = data["objects"]
    _expect(isinstance(objs_raw, dict) and objs_raw, f"{src}: field 'objects'",
            "a non-empty mapping of object names to {asset, pose, physics}", objs_raw)
    assets: dict[str, Asset] = {}
    truth: list[ObjectSpec] = []
    for name, spec in objs_raw.items():
        where = f"{src}: field 'objects.{name}'"
        _expect(isinstance(name, str) and name.isidentifier(), where, "an object name made of letters, digits and _",
                name)
        _expect(isinstance(spec, dict), where, "a mapping {asset, pose, physics}", spec)
        unknown = sorted(set(spec) - {"asset", "pose", "physics"})
        _expect(not unknown, where, "only the fields asset, pose, physics", spec)
        for key in ("asset", "pose"):
            if key not in spec:
                raise TaskError(f"{where}.{key}: missing")
        asset = _asset(spec["asset"], f"{where}.asset", catalog, base_dir)
        if asset.symmetry == "auto":      # not declared: inferred from the mesh (a declared one wins)
            asset = dataclasses.replace(asset, symmetry=model_symmetry(asset.urdf, asset.scale).kind)
        pose = _pose(spec["pose"], f"{where}.pose", robot)
        mass, friction = _physics(spec.get("physics"), f"{where}.physics", asset)
        assets[name] = asset
        truth.append(ObjectSpec(name, pose, urdf=asset.urdf, scale=asset.scale, rgba=asset.rgba, mass_kg=mass,
                                friction=friction, fixed=asset.fixed, symmetry=asset.symmetry))
    names = frozenset(assets)

    clutter_raw = data.get("clutter", [])
    _expect(isinstance(clutter_raw, list), f"{src}: field 'clutter'", "a list of {asset, pose}", clutter_raw)
    for i, spec in enumerate(clutter_raw):
        where = f"{src}: field 'clutter[{i}]'"
        _expect(isinstance(spec, dict) and "asset" in spec and "pose" in spec, where, "a mapping {asset, pose}", spec)
        _expect(not set(spec) - {"asset", "pose", "physics"}, where, "only the fields asset, pose, physics", spec)
        asset = _asset(spec["asset"], f"{where}.asset", catalog, base_dir)
        mass, friction = _physics(spec.get("physics"), f"{where}.physics", asset)
        truth.append(ObjectSpec(f"clutter_{i}", _pose(spec["pose"], f"{where}.pose", robot), urdf=asset.urdf,
                                scale=asset.scale, rgba=asset.rgba, mass_kg=mass, friction=friction,
                                fixed=asset.fixed))

    try:
        validate_predicate(data["success"], f"{src}: field 'success'", names)
        subtasks = []
        subs_raw = data.get("subtasks", [])
        _expect(isinstance(subs_raw, list), f"{src}: field 'subtasks'", "a list of {say, done}", subs_raw)
        for i, s in enumerate(subs_raw):
            where = f"{src}: field 'subtasks[{i}]'"
            _expect(isinstance(s, dict) and set(s) == {"say", "done"}, where, "a mapping {say: text, done: predicate}",
                    s)
            _expect(isinstance(s["say"], str) and s["say"], f"{where}.say", "a non-empty string", s["say"])
            validate_predicate(s["done"], f"{where}.done", names)
            subtasks.append(Subtask(s["say"], s["done"]))
    except PredicateError as exc:
        raise TaskError(str(exc)) from None

    max_steps = data.get("max_steps", 30)
    _expect(isinstance(max_steps, int) and not isinstance(max_steps, bool) and max_steps > 0,
            f"{src}: field 'max_steps'", "a positive integer", max_steps)
    identify = data.get("identify", [])
    _expect(isinstance(identify, list) and all(n in names for n in identify), f"{src}: field 'identify'",
            f"a list of task object names ({sorted(names)})", identify)
    try:
        randomize = Randomize.from_dict(data.get("randomize", {}), f"{src}: field 'randomize'")
    except ValueError as exc:
        raise TaskError(str(exc)) from None

    planner = PlannerTask(data["name"], data["instruction"].strip(), robot, cameras, assets, tuple(subtasks),
                          data["success"], max_steps, tuple(identify), os.path.abspath(path))
    lab = LabSpec(scene=SceneSpec(robot, tuple(truth)), cameras=cameras, randomize=randomize,
                  success=data["success"])
    return LoadedTask(planner, lab)
