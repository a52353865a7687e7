"""Goal predicates on a World: validation, truth value, and a shaped progress in [0, 1].

The lab judges success with `evaluate` on its truth world; the planner judges plans with the same code on
its twin. `progress` gives a graded answer for plan scoring (how far a rollout got towards the predicate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

import configs
from configs import checks
from sim.grasp import GRIPPER_OPEN_FRACTION
from sim.world import World

# name -> (argument kind, description of what is expected)
PREDICATES: dict[str, tuple[str, str]] = {
    "grasped": ("object", "an object name"),
    "on_top": ("pair", "a list [top_object, bottom_object]"),
    "inside": ("pair", "a list [object, container]"),
    "near": ("near", "{objects: [a, b], within_m: number}"),
    "at": ("at", "{object: name, xyz: [x, y, z], within_m: number}"),
    "upright": ("object", "an object name"),
    "on_side": ("object", "an object name (its own z axis must lie horizontal)"),
    "on_end": ("object", "an object name (its own z axis must stand vertical, either way up)"),
    "on_table": ("object", "an object name (resting on the table, not held)"),
    "joint_at_least": ("joint", "{object: name, joint: name, value: number}"),
    "gripper_open": ("bool", "true or false"),
}
COMBINATORS = ("all", "any", "not")

ON_TOP_GAP_M = 0.015
UPRIGHT_TILT_DEG = 15.0
ON_TABLE_GAP_M = 0.01          # an object whose lowest point is this close to the table (z = 0) stands on it
ON_SIDE_TOL_DEG = 15.0         # on its side / on its end: its own z axis this close to horizontal / vertical
INSIDE_MARGIN = 0.2            # fraction of a container's half-size that counts as its rim
PLAN_INSIDE_MARGIN = 0.35      # the planner's stricter rim (its twin must show the object well inside, so an
                               # estimate a centimetre off still counts: LIBERO's basket region is +-61 mm of its
                               # origin, the twin's default rim +-70 mm of its box). The lab keeps INSIDE_MARGIN.


class PredicateError(configs.InputError):
    """A predicate that cannot be evaluated: file, field, expected, got."""


def validate_predicate(pred: Any, where: str, object_names: set[str] | frozenset[str],
                       file: str | None = None) -> None:
    """Check a predicate tree against PREDICATES and the task's object names; `where` is its field path."""
    def fail(field: str, expected: str, got: Any, hint: str = "") -> None:
        raise PredicateError(file, field, expected, got, hint=hint)

    if not isinstance(pred, dict) or len(pred) != 1:
        fail(where, "a mapping with exactly one predicate or combinator", pred)
    (key, arg), = pred.items()
    if key in ("all", "any"):
        if not isinstance(arg, list) or not arg:
            fail(f"{where}.{key}", "a non-empty list of predicates", arg)
        for i, sub in enumerate(arg):
            validate_predicate(sub, f"{where}.{key}[{i}]", object_names, file)
        return
    if key == "not":
        validate_predicate(arg, f"{where}.not", object_names, file)
        return
    if key not in PREDICATES:
        fail(where, f"a predicate or combinator ({', '.join(sorted([*PREDICATES, *COMBINATORS]))})",
             configs.safe_key(key), configs.did_you_mean(key, [*PREDICATES, *COMBINATORS]))
    kind, expected = PREDICATES[key]
    field = f"{where}.{key}"

    def need_object(name: Any, f: str) -> None:
        if not isinstance(name, str) or name not in object_names:
            fail(f, f"a task object name (one of {sorted(object_names)})", name)

    def need_number(v: Any, f: str, positive: bool = False) -> None:
        if not checks.is_number(v) or (positive and v <= 0) or abs(v) > 1e3:
            fail(f, f"a {'positive ' if positive else ''}finite number (at most 1000 in size)", v)

    if kind == "object":
        need_object(arg, field)
    elif kind == "pair":
        if not isinstance(arg, list) or len(arg) != 2:
            fail(field, expected, arg)
        need_object(arg[0], f"{field}[0]")
        need_object(arg[1], f"{field}[1]")
    elif kind == "bool":
        if not isinstance(arg, bool):
            fail(field, expected, arg)
    elif not isinstance(arg, dict):
        fail(field, expected, arg)
    elif kind == "near":
        objs = arg.get("objects")
        if not isinstance(objs, list) or len(objs) != 2:
            fail(f"{field}.objects", "a list of two object names", objs)
        for i, o in enumerate(objs):
            need_object(o, f"{field}.objects[{i}]")
        need_number(arg.get("within_m"), f"{field}.within_m", positive=True)
    elif kind == "at":
        need_object(arg.get("object"), f"{field}.object")
        xyz = arg.get("xyz")
        checks.numbers(xyz, file, f"{field}.xyz", 3, -10.0, 10.0, what="[x, y, z]", unit="m", error=PredicateError)
        need_number(arg.get("within_m"), f"{field}.within_m", positive=True)
    elif kind == "joint":
        need_object(arg.get("object"), f"{field}.object")
        if not isinstance(arg.get("joint"), str):
            fail(f"{field}.joint", "a joint name", arg.get("joint"))
        need_number(arg.get("value"), f"{field}.value")


# ---------------------------------------------------------------- truth values
def _resting(world: World, name: str) -> bool:
    return world.grasped() != name


def on_top(world: World, top: str, bottom: str) -> bool:
    lo_t, hi_t = world.object_aabb(top)
    lo_b, hi_b = world.object_aabb(bottom)
    centre = (lo_t + hi_t) / 2
    over = lo_b[0] <= centre[0] <= hi_b[0] and lo_b[1] <= centre[1] <= hi_b[1]
    return bool(_resting(world, top) and over and abs(lo_t[2] - hi_b[2]) < ON_TOP_GAP_M)


def inside(world: World, obj: str, container: str, margin: float = INSIDE_MARGIN) -> bool:
    """Resting within the container's footprint shrunk by `margin` of its half-size (not on its rim) and below
    its top."""
    lo_o, hi_o = world.object_aabb(obj)
    lo_c, hi_c = world.object_aabb(container)
    centre = (lo_o + hi_o) / 2
    shrink = margin * (hi_c - lo_c) / 2
    lo_in, hi_in = lo_c + shrink, hi_c - shrink
    within = lo_in[0] <= centre[0] <= hi_in[0] and lo_in[1] <= centre[1] <= hi_in[1]
    return bool(_resting(world, obj) and within and hi_o[2] < hi_c[2] + 0.5 * (hi_o[2] - lo_o[2]))


def _tilt_deg(world: World, name: str) -> float:
    z = world.object_pose(name).rotation()[:, 2]
    return float(np.degrees(np.arccos(np.clip(z[2], -1.0, 1.0))))


def gripper_is_open(world: World) -> bool:
    return world.gripper_width_m() >= GRIPPER_OPEN_FRACTION * world.spec.robot.gripper_max_width_m


def _joint_value(world: World, obj: str, joint: str) -> float:
    import pybullet as p

    body = world.body_ids[obj]
    for j in range(p.getNumJoints(body, physicsClientId=world.client)):
        if p.getJointInfo(body, j, physicsClientId=world.client)[1].decode() == joint:
            return float(p.getJointState(body, j, physicsClientId=world.client)[0])
    raise PredicateError(None, "joint_at_least.joint", f"a joint of object '{obj}'", joint)


def objects_of(pred: dict) -> set[str]:
    """The object names a predicate tree mentions."""
    (key, arg), = pred.items()
    if key in COMBINATORS:
        subs = arg if isinstance(arg, list) else [arg]
        return set().union(*(objects_of(s) for s in subs))
    kind = PREDICATES[key][0]
    if kind == "object":
        return {arg}
    if kind == "pair":
        return set(arg)
    if kind == "near":
        return set(arg["objects"])
    if kind in ("at", "joint"):
        return {arg["object"]}
    return set()


def evaluate(world: World, pred: dict, inside_margin: float = INSIDE_MARGIN) -> bool:
    """Truth value on `world`. A leaf about an object the world does not hold (e.g. one the reconstruction
    did not find) is False, not an error: the loop must go on and look again. `inside_margin`: the rim of
    `inside` (the lab's truth keeps the default; the planner asks for PLAN_INSIDE_MARGIN)."""
    (key, arg), = pred.items()
    if key not in COMBINATORS and not all(world.has_object(n) for n in objects_of(pred)):
        return False
    if key == "all":
        return all(evaluate(world, s, inside_margin) for s in arg)
    if key == "any":
        return any(evaluate(world, s, inside_margin) for s in arg)
    if key == "not":
        return not evaluate(world, arg, inside_margin)
    if key == "grasped":
        return world.grasped() == arg
    if key == "on_top":
        return on_top(world, *arg)
    if key == "inside":
        return inside(world, *arg, margin=inside_margin)
    if key == "near":
        a, b = arg["objects"]
        return float(np.linalg.norm(world.object_pose(a).position - world.object_pose(b).position)) <= arg["within_m"]
    if key == "at":
        d = np.linalg.norm(world.object_pose(arg["object"]).position - np.asarray(arg["xyz"], dtype=float))
        return float(d) <= arg["within_m"]
    if key == "upright":
        return _tilt_deg(world, arg) <= UPRIGHT_TILT_DEG
    if key == "on_side":
        return abs(90.0 - _tilt_deg(world, arg)) <= ON_SIDE_TOL_DEG
    if key == "on_end":
        tilt = _tilt_deg(world, arg)
        return min(tilt, 180.0 - tilt) <= ON_SIDE_TOL_DEG
    if key == "on_table":
        return bool(_resting(world, arg) and world.object_aabb(arg)[0][2] <= ON_TABLE_GAP_M)
    if key == "joint_at_least":
        return _joint_value(world, arg["object"], arg["joint"]) >= arg["value"]
    if key == "gripper_open":
        return gripper_is_open(world) == arg
    raise PredicateError(None, "predicate", f"one of {sorted(PREDICATES)}", key)


# ---------------------------------------------------------------- shaped progress
def _yaw_alignment(world: World, name: str) -> float:
    """1 when the TCP's finger axis lines up with a face of the object (90-degree symmetric), 0 at 45 degrees."""
    R_tcp = world.tcp_pose().rotation()
    R_obj = world.object_pose(name).rotation()
    ang = np.arctan2(R_tcp[1, 0], R_tcp[0, 0]) - np.arctan2(R_obj[1, 0], R_obj[0, 0])
    return float(0.5 + 0.5 * np.cos(4.0 * ang))


def _approach_progress(pos: np.ndarray, centre_xy: np.ndarray, above_z: float, final_z: float,
                       lateral_tol_m: float, final_bonus: float = 1.0) -> float:
    """Shaped progress of moving `pos` to a point above a target, then straight down to final_z.

    Up to 0.6 for closing in on the approach point (above_z over the target): a sharp exponential near it
    plus a linear term whose gradient survives far away (an exponential alone goes flat at 0.3 m and loses
    to the efficiency penalty). Then, within lateral_tol_m of the vertical line, a linear rise from 0.6 to
    0.6 + 0.3 * final_bonus on the way down. Continuous in height: no reward for hovering far above.
    """
    lateral = float(np.linalg.norm(pos[:2] - centre_xy))
    if lateral > lateral_tol_m or pos[2] >= above_z:
        d = float(np.hypot(max(0.0, lateral - lateral_tol_m), pos[2] - above_z))
        return 0.3 * float(np.exp(-d / 0.12)) + 0.3 * max(0.0, 1.0 - d / 0.7)
    depth = float(np.clip((above_z - pos[2]) / max(1e-6, above_z - final_z), 0.0, 1.0))
    return 0.6 + 0.3 * depth * final_bonus


def _grasp_progress(world: World, name: str) -> float:
    if world.grasped() == name:
        return 1.0
    lo, hi = world.object_aabb(name)
    centre = (lo + hi) / 2
    grasp_z = max(centre[2], lo[2] + 0.015)
    tcp = world.tcp_pose().position
    # the finger axis should line up with a face by the time the fingers reach the object
    score = _approach_progress(tcp, centre[:2], hi[2] + 0.05, grasp_z, 0.015,
                               final_bonus=0.6 + 0.4 * _yaw_alignment(world, name))
    if not gripper_is_open(world):
        score *= 0.5   # a closed, empty gripper cannot grasp
    return float(score)


def _place_progress(world: World, obj: str, target: str, lateral_tol_m: float, into: bool) -> float:
    """Carry `obj` over `target`, lower it onto the target's top (or, `into`, to just above its floor), let go."""
    if world.grasped() != obj:
        return 0.4 * _grasp_progress(world, obj)
    lo_o, hi_o = world.object_aabb(obj)
    lo_t, hi_t = world.object_aabb(target)
    c_o, c_t = (lo_o + hi_o) / 2, (lo_t + hi_t) / 2
    bottom = np.array([c_o[0], c_o[1], lo_o[2]])
    # a container's floor is about a centimetre above its bottom; release just above it (a short drop)
    release_z = lo_t[2] + 0.025 if into else hi_t[2] + 0.005
    score = _approach_progress(bottom, c_t[:2], hi_t[2] + 0.06, release_z, lateral_tol_m)
    return float(0.4 + 0.6 * score)


def progress(world: World, pred: dict, inside_margin: float = INSIDE_MARGIN) -> float:
    """How close the world is to satisfying `pred`, in [0, 1]; 1 exactly when it holds (with that rim)."""
    if evaluate(world, pred, inside_margin):
        return 1.0
    (key, arg), = pred.items()
    if key not in COMBINATORS and not all(world.has_object(n) for n in objects_of(pred)):
        return 0.0
    if key == "all":
        return float(np.mean([progress(world, s, inside_margin) for s in arg]))
    if key == "any":
        return float(max(progress(world, s, inside_margin) for s in arg))
    if key == "not":
        return 0.0
    if key == "grasped":
        return min(0.99, _grasp_progress(world, arg))
    if key == "on_top":
        return min(0.99, _place_progress(world, arg[0], arg[1], 0.012, into=False))
    if key == "inside":
        return min(0.99, _place_progress(world, arg[0], arg[1], 0.04, into=True))
    if key in ("near", "at"):
        if key == "near":
            a, b = arg["objects"]
            d = np.linalg.norm(world.object_pose(a).position - world.object_pose(b).position)
        else:
            d = np.linalg.norm(world.object_pose(arg["object"]).position - np.asarray(arg["xyz"], dtype=float))
        return float(min(0.99, np.exp(-(d - arg["within_m"]) / 0.1)))
    if key == "upright":
        return float(max(0.0, 1.0 - _tilt_deg(world, arg) / 90.0)) * 0.99
    if key == "on_side":
        return float(max(0.0, 1.0 - abs(90.0 - _tilt_deg(world, arg)) / 90.0)) * 0.99
    if key == "on_end":
        tilt = _tilt_deg(world, arg)
        return float(max(0.0, 1.0 - min(tilt, 180.0 - tilt) / 90.0)) * 0.99
    if key == "on_table":
        # held: the lower it is carried, the closer (at most 0.9, so letting go low is what completes it);
        # resting higher up (on something else): a little for being low
        bottom = max(0.0, float(world.object_aabb(arg)[0][2]) - ON_TABLE_GAP_M)
        return float((0.9 if world.grasped() == arg else 0.5) * np.exp(-bottom / 0.05))
    if key == "gripper_open":
        frac = world.gripper_width_m() / world.spec.robot.gripper_max_width_m
        return float(frac if arg else 1.0 - frac) * 0.99
    return 0.0


# ---------------------------------------------------------------- orientation requirements
ORIENTATION_PREDICATES = ("upright", "on_side", "on_end")


def tilt_deg_of(R_world_obj) -> float:
    """Angle between an object's own z axis (third column of its rotation) and world up, in degrees."""
    z = np.asarray(R_world_obj, dtype=float)[:, 2]
    return float(np.degrees(np.arccos(np.clip(z[2] / max(np.linalg.norm(z), 1e-12), -1.0, 1.0))))


def orientation_error_deg(pred: dict, R_world_obj: dict[str, np.ndarray]) -> float | None:
    """How many degrees an orientation requirement of `pred` is from being met, given objects' rotations.

    Leaves: `upright` wants tilt 0, `on_side` tilt 90, `on_end` tilt 0 or 180 (an end-over-end symmetric
    object, e.g. a square prism, stands either way up; its pose estimate cannot tell which end is which); the
    error is the distance, not the tolerance;
    `all` takes the worst of its parts, `any` the best, `not` and every other leaf state none. None when the
    predicate asks nothing about orientation (or about objects not in R_world_obj).
    """
    (key, arg), = pred.items()
    if key in ("all", "any"):
        errors = [e for s in arg if (e := orientation_error_deg(s, R_world_obj)) is not None]
        if not errors:
            return None
        return max(errors) if key == "all" else min(errors)
    if key not in ORIENTATION_PREDICATES or arg not in R_world_obj:
        return None
    tilt = tilt_deg_of(R_world_obj[arg])
    if key == "upright":
        return tilt
    return abs(90.0 - tilt) if key == "on_side" else min(tilt, 180.0 - tilt)


def orientation_objects(pred: dict) -> set[str]:
    """The objects an orientation leaf of `pred` (outside `not`) is about."""
    (key, arg), = pred.items()
    if key in ("all", "any"):
        return set().union(*(orientation_objects(s) for s in arg))
    return {arg} if key in ORIENTATION_PREDICATES else set()
