"""LIBERO tasks as planner tasks: `--task libero:SUITE/ID`, with `--seed N` picking the N-th official initial state.

The planner reads what a user would tell a robot: the BDDL language instruction, the goal translated into the
planner's predicates, and the named objects with their models (converted from LIBERO's assets at install time
by `make libero`). The truth (initial states, physics, LIBERO's check_success) stays in the LIBERO lab process.

BDDL goal -> planner predicate:
    (In a B_contain_region)      -> inside: [a, B]          (a region whose target is object B; In a drawer's
                                                             region, e.g. cabinet_top_region, is refused)
    (On a b)                     -> on_top: [a, b]
    (On a B_some_region)         -> on_top: [a, B]          (a region on an object or fixture B: its top)
    (And p q ...)                -> all: [...]
Open / Close / TurnOn / TurnOff of articulated fixtures and On/In a region of the table itself have no
counterpart in the planner's twin (it has no joints or table regions for LIBERO's fixtures); such tasks are
refused with a TaskError that says so, instead of being given a goal the planner cannot check.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import yaml

import configs
from configs.errors import did_you_mean
from planner.bddl import BddlProblem, parse_bddl
from planner.catalog import Asset
from planner.errors import TaskError
from planner.task import LoadedTask, PlannerTask, StartHint, Subtask
from robot_io.libero.launcher import LiberoMissingError, libero_python, load_manifest
from robot_io.libero.spec import LiberoLabSpec
from sim.camera import CameraSpec
from sim.geometry import Pose
from sim.predicates import PredicateError, validate_predicate
from sim.scene import RobotSpec, SpecError

log = logging.getLogger(__name__)

PREFIX = "libero:"
ROBOT_CONFIG = "panda_libero"
DEFAULT_CAMERAS = ("agentview", "frontview", "birdview")
# A tabletop scene's birdview (2.1 m up) sees the floor 0.9 m below the table around it, which the reconstruction's
# frame check takes for a wrong camera pose (58% of its depth "below the table" in LIBERO-Spatial task 0).
# The same for every tabletop problem class (LIBERO-Goal's and LIBERO-10's kitchen, living-room and study scenes).
CAMERAS_BY_PROBLEM = {f"libero_{room}tabletop_manipulation": ("agentview", "frontview")
                      for room in ("", "kitchen_", "living_room_", "study_")}
DEFAULT_SIZE_PX = 320
MAX_STEPS = 30
ARENA_FIXTURES = {"floor", "table", "main_table", "kitchen_table", "living_room_table", "study_table", "coffee_table"}
# the project's RealSense-class sensor model (configs/cameras/front.yaml), applied by the LIBERO lab
SENSOR_MODEL = {"depth_noise_m": 0.0045, "depth_noise_corr_px": 1.5, "depth_quant_m": 0.001,
                "depth_edge_dropout": 0.3, "depth_flying_pixels": 0.2, "depth_dropout": 0.01, "rgb_noise": 2.0}
# The top of the arena, in MuJoCo's world, that LIBERO's table/floor regions are measured on (LIBERO's
# problems/libero_*_manipulation.py: table_offset (0, 0, 0.90); the floor scene's floor at z = 0). A scene not
# listed gets no start hints.
ARENA_TOP_WORLD = {"libero_tabletop_manipulation": (0.0, 0.0, 0.90), "libero_floor_manipulation": (0.0, 0.0, 0.0)}
DRAWER_HEIGHT_FRACTION = 0.5   # `(In x cabinet_top_region)`: a drawer, roughly half-way up its cabinet
_REF = re.compile(r"^libero:([a-z0-9_]+)/(\d+)$")


class UnsupportedGoalError(TaskError):
    """A BDDL goal with no counterpart in the planner's predicates."""


class LiberoNotInstalledError(TaskError):
    """`make libero` has not been run here (the CLI prints this and exits 2)."""


def _manifest() -> dict:
    try:
        return load_manifest()
    except LiberoMissingError as exc:
        raise LiberoNotInstalledError(str(exc)) from None


def parse_ref(ref: str) -> tuple[str, int]:
    m = _REF.match(ref.strip())
    if not m:
        raise TaskError(None, "--task", "libero:SUITE/ID, e.g. libero:libero_object/3", ref)
    return m.group(1), int(m.group(2))


def _region(problem: BddlProblem, ref: str) -> tuple[str, str] | None:
    """'basket_1_contain_region' -> ('basket_1', 'contain_region') when the BDDL defines it."""
    for name, info in problem.regions.items():
        target = info.get("target")
        if target and ref == f"{target}_{name}":
            return target, name
    # a fixture's own sites (a cabinet's top_region, a stove's cook_region) are not listed in the BDDL
    owners = [n for n in (*problem.objects, *problem.fixtures) if ref.startswith(f"{n}_")]
    if owners:
        owner = max(owners, key=len)
        return owner, ref[len(owner) + 1:]
    return None


def translate_goal(problem: BddlProblem, expr: Any = None, where: str = "goal") -> dict:
    """The BDDL goal as a planner predicate (sim.predicates syntax); UnsupportedGoalError if it has none."""
    expr = problem.goal if expr is None else expr
    if not isinstance(expr, list) or not expr or not isinstance(expr[0], str):
        raise TaskError(f"{where}: expected a BDDL expression (Predicate args...), got {expr!r}")
    head, args = expr[0].lower(), expr[1:]
    if head == "and":
        parts = [translate_goal(problem, a, f"{where}.And[{i}]") for i, a in enumerate(args)]
        return parts[0] if len(parts) == 1 else {"all": parts}
    if head == "or":
        return {"any": [translate_goal(problem, a, f"{where}.Or[{i}]") for i, a in enumerate(args)]}
    if head == "not" and len(args) == 1:
        return {"not": translate_goal(problem, args[0], f"{where}.Not")}
    movable = set(problem.objects) | (set(problem.fixtures) - ARENA_FIXTURES)
    if head in ("in", "on") and len(args) == 2 and all(isinstance(a, str) for a in args):
        obj, place = args
        if obj not in problem.objects:
            raise TaskError(f"{where}: ({expr[0]} {obj} {place}): {obj!r} is not one of the task's objects")
        if place in movable:
            return {"inside" if head == "in" else "on_top": [obj, place]}
        region = _region(problem, place)
        if region is not None and region[0] in movable and head == "in" and not region[1].endswith("contain_region"):
            # a cabinet's top_region / middle_region / bottom_region is the inside of a drawer: the twin's
            # rigid cabinet has no drawer to open, and "inside the cabinet's box" would be a different goal
            raise UnsupportedGoalError(
                f"{where}: ({expr[0]} {obj} {place}): '{region[1]}' of {region[0]} is a drawer or compartment of an "
                "articulated fixture; the twin's fixtures have no joints (no drawer to open)")
        if region is not None and region[0] in movable:
            return {"inside" if head == "in" else "on_top": [obj, region[0]]}
        raise UnsupportedGoalError(
            f"{where}: ({expr[0]} {obj} {place}): a region of the {region[0] if region else 'scene'} has no "
            "counterpart in the planner's predicates (only objects and regions on objects do)")
    raise UnsupportedGoalError(
        f"{where}: BDDL predicate ({' '.join(map(str, expr))}) is not supported: articulated fixtures "
        "(Open, Close, TurnOn, TurnOff) have no joints in the planner's twin")


def _yaw_rad(info: dict) -> float:
    """The middle of a region's yaw range (LIBERO turns a fixture placed there about z by it), 0 without one."""
    yaw = info.get("yaw_rad")
    return 0.5 * (float(yaw[0]) + float(yaw[1])) if yaw else 0.0


def site_point(site: dict, head: str, opened_m: float = 0.0) -> np.ndarray:
    """Where an object (On|In) a fixture's region site stands, in the fixture's root frame: on the site's top, or,
    In a drawer's site, on its bottom (the drawer's floor); the drawer slid out by opened_m along its joint."""
    pos, half = np.asarray(site["pos_m"], float), np.asarray(site["half_m"], float)
    slide = site.get("slide")
    if slide is not None:
        pos = pos + opened_m * np.asarray(slide["axis"], float)
    return pos + np.array([0.0, 0.0, -half[2] if head == "in" else half[2]])


def _opened_m(problem: BddlProblem, place: str, model: dict) -> float:
    """The drawer joint's position the task's init implies: (Open place) -> the middle of the fixture's
    default_open_ranges (what LIBERO sets it to); otherwise closed (0)."""
    opened = any(len(f) == 2 and f[0].lower() == "open" and f[1] == place for f in problem.init)
    ranges = model.get("articulation", {}).get("default_open_ranges")
    return float(np.mean(ranges)) if opened and ranges else 0.0


def start_hints(problem: BddlProblem, T_world_base: Any, arena_top_world: tuple[float, float, float],
                bounds: dict[str, Any], names: set[str] | None = None,
                models: dict[str, dict] | None = None) -> dict[str, StartHint]:
    """Where each instance starts, from the BDDL's `(:init (On|In obj place))` facts, in the robot base frame: the
    point its footprint's centre stands on (planner.twin_tracker compares it with the model's bottom centre).

    A table/floor region: the centre of its ranges (LIBERO measures them from the arena's centre, at its top; a
    fixture there is turned by the middle of the region's yaw range). On or in a region of a fixture whose model
    has that region's site (`models`: category -> the manifest's model entry with "sites", "bounds_m" and
    "articulation"): the site placed by the fixture's pose (its bottom on its support, turned by its yaw), on the
    site's top, or, In a drawer, on its floor, slid out where the init says (Open ...) ("the bowl in the top drawer
    of the cabinet", "on the stove's cook region"). Otherwise on or in another object or fixture: where that one
    stands, raised by its height (`bounds`, category -> [[min xyz], [max xyz]] in its root frame); a drawer's
    region without a site half-way up its cabinet. z_known is False where a support's height is not known (a model
    that did not convert). names: only these instances (None: all that resolve). This is the task's public text
    and the fixtures' models, as a user would say it ("the bowl on the cookie box"); where LIBERO's initial state
    put the object is never read."""
    T_base_world = np.linalg.inv(np.asarray(T_world_base, float))
    facts = {f[1]: (f[0].lower(), f[2]) for f in problem.init if len(f) == 3 and f[0].lower() in ("on", "in")}
    category = {**problem.fixtures, **problem.objects}
    models = models or {}
    placed: dict[str, tuple[np.ndarray, bool, str, float]] = {}

    def height(name: str) -> float | None:
        b = bounds.get(category.get(name, ""))
        return None if b is None else float(b[1][2]) - float(b[0][2])

    def on_site(name: str, head: str, place: str, owner: str, rname: str, under) -> tuple | None:
        model = models.get(category.get(owner, ""), {})
        site, b = model.get("sites", {}).get(rname), model.get("bounds_m") or bounds.get(category.get(owner, ""))
        if site is None or head == "in" and rname.endswith("contain_region"):
            return None
        c, s = np.cos(under[3]), np.sin(under[3])
        p = site_point(site, head, _opened_m(problem, place, model))
        root_z = under[0][2] - (float(b[0][2]) if b is not None else 0.0)
        xyz = under[0][:2] + np.array([c * p[0] - s * p[1], s * p[0] + c * p[1]])
        return (np.array([xyz[0], xyz[1], root_z + p[2]]), under[1] and b is not None,
                f"({head} {name} {place}) at its site", 0.0)

    def resolve(name: str, depth: int = 0) -> tuple[np.ndarray, bool, str, float] | None:
        if name in placed or name not in facts or depth > len(facts):
            return placed.get(name)
        head, place = facts[name]
        region = _region(problem, place) if place not in category else (place, "")
        if region is None:
            return None
        owner, rname = region
        info = problem.regions.get(rname, {})
        if owner in ARENA_FIXTURES and info.get("ranges"):
            r = np.asarray(info["ranges"], float)
            xy = 0.5 * (r[:, 0:2].mean(axis=0) + r[:, 2:4].mean(axis=0))
            out = (np.array([xy[0] + arena_top_world[0], xy[1] + arena_top_world[1], arena_top_world[2]]), True,
                   f"({head} {name} {place})", _yaw_rad(info))
        else:
            under, top = resolve(owner, depth + 1), height(owner)
            if under is None:
                return None
            out = on_site(name, head, place, owner, rname, under) if rname else None
            if out is None:
                if head == "in" and not rname.endswith("contain_region"):
                    up = None if top is None else DRAWER_HEIGHT_FRACTION * top
                elif head == "in":
                    up = 0.0        # inside a container: on its floor
                else:
                    up = top
                out = (under[0] + np.array([0.0, 0.0, up or 0.0]), under[1] and up is not None,
                       f"({head} {name} {place})", 0.0)
        placed[name] = out
        return out

    hints = {}
    for name in category:
        got = resolve(name)
        if got is None or (names is not None and name not in names) or name in ARENA_FIXTURES:
            continue
        xyz_base = T_base_world @ np.append(got[0], 1.0)
        hints[name] = StartHint(tuple(round(float(v), 4) for v in xyz_base[:3]), got[1], got[2])
    return hints


def identical_instances(problem: BddlProblem) -> set[str]:
    """The instances that share their category with another (two akita_black_bowl): only a start hint tells
    them apart."""
    counts = Counter(problem.objects.values())
    return {n for n, c in problem.objects.items() if counts[c] > 1}


def _goal_objects(pred: dict) -> list[str]:
    (key, arg), = pred.items()
    if key in ("all", "any"):
        return [n for s in arg for n in _goal_objects(s)]
    if key == "not":
        return _goal_objects(arg)
    return list(arg) if isinstance(arg, list) else [arg]


def nested_on_top(goal: dict, half_width_m: dict[str, float], site_reach_m: dict[str, float] | None = None) -> dict:
    """The success the planner believes: every `on_top: [a, b]` leaf also holds when a rests (is not held) with its
    origin within half of b's half-width of b's origin. The twin's on_top wants a's lowest point within 15 mm of
    b's bounding-box top, and a bowl set on LIBERO's plate nests in its dish, 18 mm below the rim's box (LIBERO's
    own On is a contact from above); both models have their origin at the bottom centre. b without a known
    half-width (half_width_m: name -> m) keeps its plain leaf. A goal on a fixture's region site (site_reach_m:
    fixture -> how far that site's inner half lies from the fixture's origin, `goal_site_reach`) believes a at
    rest off the table within that reach: the stove's cook region is 15 cm from its origin (its knob, which
    stands 24 mm above the burner plate, so the plain leaf never holds there). Subtasks keep the plain leaves."""
    site_reach_m = site_reach_m or {}
    (key, arg), = goal.items()
    if key in ("all", "any"):
        return {key: [nested_on_top(g, half_width_m, site_reach_m) for g in arg]}
    if key == "not":
        return {key: nested_on_top(arg, half_width_m, site_reach_m)}
    if key == "on_top" and arg[1] in site_reach_m:
        a, b = arg
        rests = {"all": [{"near": {"objects": [a, b], "within_m": round(site_reach_m[b], 4)}},
                         {"not": {"grasped": a}}, {"not": {"on_table": a}}]}
        return {"any": [goal, rests]}
    if key == "on_top" and arg[1] in half_width_m:
        a, b = arg
        rests = {"all": [{"near": {"objects": [a, b], "within_m": round(0.5 * half_width_m[b], 4)}},
                         {"not": {"grasped": a}}]}
        return {"any": [goal, rests]}
    return goal


def goal_site_reach(problem: BddlProblem, models: dict[str, dict]) -> dict[str, float]:
    """fixture -> reach (m) for each goal `(On a fixture_region)` whose fixture's model has that region's site
    (`models`: category -> the manifest's entry with "sites"): the site centre's distance from the fixture's
    origin plus half the site's smaller half-width."""
    out: dict[str, float] = {}

    def walk(expr: Any) -> None:
        if not isinstance(expr, list) or not expr or not isinstance(expr[0], str):
            return
        if expr[0].lower() == "on" and len(expr) == 3 and isinstance(expr[2], str):
            region = _region(problem, expr[2])
            if region is not None and region[0] in problem.fixtures:
                site = models.get(problem.fixtures[region[0]], {}).get("sites", {}).get(region[1])
                if site is not None:
                    half = min(float(site["half_m"][0]), float(site["half_m"][1]))
                    out[region[0]] = float(np.hypot(*site["pos_m"][:2])) + 0.5 * half
        for sub in expr[1:]:
            walk(sub)

    walk(problem.goal)
    return out


def subtasks_for(goal: dict) -> tuple[Subtask, ...]:
    """grasp / place pairs for every inside / on_top leaf, in the goal's order."""
    leaves = goal["all"] if "all" in goal else [goal]
    out = []
    for leaf in leaves:
        (key, arg), = leaf.items()
        if key in ("inside", "on_top"):
            obj, place = arg
            word = "in" if key == "inside" else "on"
            out += [Subtask(f"grasp the {obj.rsplit('_', 1)[0].replace('_', ' ')}", {"grasped": obj}),
                    Subtask(f"place it {word} the {place.rsplit('_', 1)[0].replace('_', ' ')}", leaf)]
    return tuple(out)


def _robot(base_pose: Pose | None = None) -> RobotSpec:
    try:
        robot = RobotSpec.from_yaml(str(configs.find("robots", ROBOT_CONFIG)))
    except SpecError as exc:
        raise TaskError(str(exc)) from None
    return robot if base_pose is None else replace(robot, base_pose=base_pose)


def arena_base_pose(T_world_base: Any, arena_top_world: tuple[float, float, float] | None) -> Pose:
    """The robot base in the planner's (and the lab's) world: the base frame lowered onto the arena's top, because
    the twin's table is the plane z = 0. LIBERO-Spatial's base stands 12 mm above its table (base at z 0.912 in
    MuJoCo's world, table top at 0.90): in the base frame the objects would rest 12 mm inside the twin's table,
    which lifts them (a bowl pinched 14 mm too high). LIBERO-Object's base is on its floor: no shift."""
    if arena_top_world is None:
        return Pose()
    top_base = np.linalg.inv(np.asarray(T_world_base, float)) @ np.append(np.asarray(arena_top_world, float), 1.0)
    return Pose((0.0, 0.0, round(-float(top_base[2]), 6) + 0.0))   # + 0.0: no -0.0


def _cameras(problem_info: dict, names: tuple[str, ...], size_px: int, where: str,
             base_pose: Pose | None = None) -> tuple[CameraSpec, ...]:
    """The scene's cameras in the planner's world (the manifest has them in the robot base frame)."""
    T_world_base = np.eye(4) if base_pose is None else base_pose.matrix()
    cams = []
    for name in names:
        info = problem_info["cameras"].get(name)
        if info is None:
            raise TaskError(None, f"{where}: cameras", f"a camera of this scene {sorted(problem_info['cameras'])}",
                            name, hint=did_you_mean(name, problem_info["cameras"], list_choices=False))
        cams.append(CameraSpec.from_dict({"name": name, "width": size_px, "height": size_px,
                                          "fov_deg": info["fovy_deg"],
                                          "T_world_camera": (T_world_base @ np.asarray(info["T_base_camera"], float)
                                                             ).tolist(),
                                          "near_m": 0.05, "far_m": 4.0, **SENSOR_MODEL}, f"{where}: {name}"))
    return tuple(cams)


def _asset(category: str, manifest: dict, where: str, fixed: bool) -> Asset:
    model = manifest["objects"].get(category)
    if model is None:
        why = manifest.get("failed_objects", {}).get(category, "not converted")
        raise TaskError(None, where, f"a LIBERO category with a converted model ({why}; rerun `make libero`)",
                        category)
    # No colour hint: the converted model carries LIBERO's texture, which the reconstruction compares with the
    # cameras (printed look-alikes differ only in their print); the manifest's gray "rgba" stays optional.
    return Asset(category, model["urdf"], 1.0, None, "none", float(model["mass_kg"]), 0.8, fixed)


def load_libero_task(ref: str, cameras: tuple[str, ...] | None = None, size_px: int = DEFAULT_SIZE_PX,
                     name_all_objects: bool = True) -> LoadedTask:
    """`libero:SUITE/ID` -> LoadedTask(planner view, LiberoLabSpec). Needs `make libero` (LiberoMissingError).
    cameras: None for the scene's default (CAMERAS_BY_PROBLEM, else DEFAULT_CAMERAS)."""
    suite, task_id = parse_ref(ref)
    manifest = _manifest()
    if int(manifest.get("version", 1)) < 2:
        log.warning("LIBERO's converted models predate textures (manifest version %s): printed look-alikes are told "
                    "apart by shape alone; rerun `make libero`", manifest.get("version", 1))
    elif int(manifest.get("version", 1)) < 3:
        log.warning("LIBERO's converted models predate the object-frame fix (manifest version %s): the akita bowl's "
                    "model is 10 cm off the pose LIBERO gives it; rerun `make libero`", manifest.get("version", 1))
    if suite not in manifest["suites"]:
        raise TaskError(None, "--task", f"a prepared LIBERO suite {sorted(manifest['suites'])}", suite,
                        hint=did_you_mean(suite, manifest["suites"], list_choices=False))
    tasks = manifest["suites"][suite]
    if not 0 <= task_id < len(tasks):
        raise TaskError(None, "--task", f"a task id of {suite} in 0..{len(tasks) - 1}", task_id)
    info = tasks[task_id]
    try:
        with open(info["bddl"]) as f:
            problem = parse_bddl(f.read(), info["bddl"])
    except OSError as exc:
        raise LiberoNotInstalledError(f"{info['bddl']}: {exc}; run `make libero`") from exc
    goal = translate_goal(problem, where=f"{ref}: goal")
    in_goal = set(_goal_objects(goal))
    names = [n for n in problem.objects if name_all_objects or n in in_goal or n in problem.obj_of_interest]
    names += [n for n in problem.fixtures if n in in_goal]
    objects = {n: _asset(problem.objects.get(n) or problem.fixtures[n], manifest, f"{ref}: object {n!r}",
                         fixed=n in problem.fixtures) for n in names}
    try:
        validate_predicate(goal, f"{ref}: goal", frozenset(objects))
    except PredicateError as exc:
        raise TaskError(str(exc)) from None
    scene = manifest["problems"][info["problem"]]
    base_pose = arena_base_pose(scene["T_world_base"], ARENA_TOP_WORLD.get(info["problem"]))
    robot = _robot(base_pose)
    if cameras is None:
        cameras = CAMERAS_BY_PROBLEM.get(info["problem"], DEFAULT_CAMERAS)
    cams = _cameras(scene, tuple(cameras), size_px, ref, base_pose)
    hints = {}
    if info["problem"] in ARENA_TOP_WORLD and identical_instances(problem):
        bounds = {c: m["bounds_m"] for c, m in manifest["objects"].items() if m.get("bounds_m")}
        # MuJoCo's world -> the planner's world (the base frame, lowered onto the table: arena_base_pose)
        T_mujoco_world = np.asarray(scene["T_world_base"], float) @ np.linalg.inv(base_pose.matrix())
        hints = start_hints(problem, T_mujoco_world, ARENA_TOP_WORLD[info["problem"]], bounds,
                            identical_instances(problem) & set(objects), manifest["objects"])
    half_width = {n: 0.5 * min(float(b[1][0]) - float(b[0][0]), float(b[1][1]) - float(b[0][1]))
                  for n in objects if (b := manifest["objects"].get(problem.objects.get(n) or problem.fixtures.get(n)
                                                                    or "", {}).get("bounds_m"))}
    planner = PlannerTask(f"{suite}_{task_id}", problem.language.strip(), robot, cams, objects, subtasks_for(goal),
                          nested_on_top(goal, half_width, goal_site_reach(problem, manifest["objects"])),
                          MAX_STEPS, (), ref, hints)
    try:
        libero_python()     # the lab's interpreter must be there too, not only the assets
    except LiberoMissingError as exc:
        raise LiberoNotInstalledError(str(exc)) from None
    lab = LiberoLabSpec(suite, task_id, info["bddl"], robot, cams)
    return LoadedTask(planner, lab)


def suite_size(suite: str) -> int:
    manifest = _manifest()
    if suite not in manifest["suites"]:
        raise TaskError(None, "suite", f"a prepared LIBERO suite {sorted(manifest['suites'])}", suite,
                        hint=did_you_mean(suite, manifest["suites"], list_choices=False))
    return len(manifest["suites"][suite])


def n_init_states(suite: str, task_id: int) -> int:
    return int(_manifest()["suites"][suite][task_id]["n_init_states"])


def dump(ref: str) -> str:
    """The planner's view of a LIBERO task as YAML (for `docs/libero.md` and debugging)."""
    t = load_libero_task(ref).planner
    return yaml.safe_dump({"name": t.name, "instruction": t.instruction, "success": t.success,
                           "objects": {n: a.name for n, a in t.objects.items()},
                           "subtasks": [{"say": s.say, "done": s.done} for s in t.subtasks]}, sort_keys=False)
