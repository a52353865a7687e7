"""The rigid-coupled rotation module (AntiGrounding): turning the gripper and the object it holds as one body.

When the gripper holds an object that the current subtask wants in some orientation (`on_side`, `upright`),
the module draws the gripper's axes ("G") and the held object's axes ("O") into every view, asks the agents
which axis to turn about, which way and roughly how far (`scoring.rotation_question`), and maps the fused
answer back to a rotation matrix. The next candidates carry it: copies of the sampler's goals whose TCP
orientation is the current one turned by that rotation (the held object turns rigidly with it), copies that
keep the current, possibly tilted, orientation (the sampler's candidates point the tool straight down and would
undo a tilt), and a few random tilts and rolls about horizontal axes that explore. simjudge answers from the
twin: the planner tries a grid of turns on the held object's orientation and passes the goal's orientation
error after each as evidence, keeping only the turns the arm can make: the turn's path (half of it on the way up
to `turn_min_z_m`, then all of it), planned by IK in the twin as a rollout plans it, within the rollout's IK
tolerance and joint margins, in place or, when the hand is far out, nearer the arm's base (`reachable_turns`).
The turn candidate goes where its turn is reachable. A grasp skewed on the object can leave the best turn out of
reach while an equal one is fine; without the check simjudge answered the unreachable turn step after step and
stand_block_upright ran out of steps holding a tilt.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from planner.candidates import view_image
from planner.task import Subtask
from render.frames import Frame
from render.renderer import Renderer
from scoring import Scorer
from scoring.rotation_question import (
    AXES,
    DIRECTIONS,
    FRAMES,
    RotationAnswer,
    RotationOutcome,
    RotationRequest,
    ask_rotation,
)
from sim import predicates
from sim.geometry import Pose
from sim.rollout import MIN_JOINT_MARGIN_RAD, Candidate
from sim.world import World

ANGLES_DEG = (15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0)   # the turns the twin tries (simjudge's evidence)
TOLERANCE_DEG = 0.5 * predicates.ON_SIDE_TOL_DEG             # closer than this to the goal orientation: no turn


@dataclass(frozen=True)
class RotationConfig:
    n_turned: int = 6            # sampler goals copied with the answered turn (one of them: turn in place)
    n_kept: int = 5              # while turning: sampler goals copied at the current orientation (one: stay and
                                 # toggle); once the orientation is right, all of them are
    n_explore: int = 4           # random tilts/rolls about horizontal axes, while the goal's orientation is off
    explore_min_deg: float = 20.0
    explore_max_deg: float = 100.0
    turn_min_z_m: float = 0.15   # turns happen at least this high: the held object swings through the turn
    lower_steps_m: tuple[float, ...] = (0.03, 0.06)   # once turned: straight down by these, and all the way
    set_down_gap_m: float = 0.005   # "all the way": the held object's lowest point this far above the table
    max_ik_error_m: float = 0.01    # a turn is reachable when its path's IK error is within this (the rollout's)
    max_reachable: int = 4          # evidence: checked best first, until this many reachable turns are found
    turn_reach_m: float = 0.47      # a turn out of reach in place is tried this far (horizontally) from the base

    def __post_init__(self) -> None:
        for name in ("n_turned", "n_kept", "n_explore"):
            if getattr(self, name) < 0:
                raise ValueError(f"RotationConfig.{name}: expected >= 0, got {getattr(self, name)!r}")
        if self.max_reachable < 1:
            raise ValueError(f"RotationConfig.max_reachable: expected >= 1, got {self.max_reachable!r}")
        for name in ("max_ik_error_m", "turn_reach_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RotationConfig.{name}: expected > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.explore_min_deg <= self.explore_max_deg <= 180.0:
            raise ValueError("RotationConfig: expected 0 <= explore_min_deg <= explore_max_deg <= 180")


def axis_world(R_world_frame: np.ndarray, axis: str, direction: str) -> np.ndarray:
    """The unit world vector of a frame's axis, signed by the direction (right-hand rule)."""
    if axis not in AXES[:3] or direction not in DIRECTIONS:
        raise ValueError(f"axis_world: expected an axis in {AXES[:3]} and a direction in {DIRECTIONS}, "
                         f"got {axis!r}, {direction!r}")
    v = np.asarray(R_world_frame, dtype=float)[:, "xyz".index(axis)]
    return v * (1.0 if direction == "positive" else -1.0)


def world_rotation(answer: RotationAnswer, R_world_tcp: np.ndarray, R_world_obj: np.ndarray) -> np.ndarray:
    """The answer as a world-frame rotation R (3x3) that turns gripper and held object: R_new = R @ R_old."""
    if not answer.turns:
        return np.eye(3)
    frame_R = R_world_tcp if answer.frame == "gripper" else R_world_obj
    rotvec = axis_world(frame_R, answer.axis, answer.direction) * math.radians(answer.angle_deg)
    return Rotation.from_rotvec(rotvec).as_matrix()


def turned(pose: Pose, R_world_rel: np.ndarray, pivot_world=None) -> Pose:
    """A pose turned rigidly by a world-frame rotation about a pivot (default: the pose's own origin)."""
    R_new = np.asarray(R_world_rel) @ pose.rotation()
    p = pose.position
    if pivot_world is not None:
        c = np.asarray(pivot_world, dtype=float)
        p = c + np.asarray(R_world_rel) @ (p - c)
    return Pose(tuple(p), tuple(Rotation.from_matrix(R_new).as_quat()))


def tried_turns(pred: dict, held: str, R_world_tcp: np.ndarray, R_world_obj: np.ndarray,
                angles_deg: Sequence[float] = ANGLES_DEG) -> tuple[RotationOutcome, ...]:
    """The twin's evidence: every (frame, axis, direction, angle) turn and the goal's orientation error after it
    (the held object turned rigidly with the gripper). Empty when the goal says nothing about its orientation."""
    out = []
    for frame in FRAMES:
        for axis in AXES[:3]:
            for direction in DIRECTIONS:
                for angle in angles_deg:
                    R = world_rotation(RotationAnswer(frame, axis, direction, float(angle)), R_world_tcp, R_world_obj)
                    err = predicates.orientation_error_deg(pred, {held: R @ R_world_obj})
                    if err is None:
                        return ()
                    out.append(RotationOutcome(frame, axis, direction, float(angle), round(float(err), 3)))
    return tuple(out)


def turn_spots(world: World, tcp: Pose, config: RotationConfig) -> list[np.ndarray]:
    """Where a turn may be made: in place (the TCP raised to turn_min_z_m), and, when the TCP is farther from the
    arm's base than turn_reach_m, the same height pulled in towards the base to turn_reach_m (a Panda at full
    stretch cannot turn its hand sideways: no quarter turn was reachable 0.55 m out, all were at 0.45-0.5 m)."""
    up = np.array([*tcp.position[:2], max(float(tcp.position[2]), config.turn_min_z_m)])
    spots = [up]
    base = np.asarray(world.spec.robot.base_pose.position, dtype=float)
    out = up[:2] - base[:2]
    dist = float(np.linalg.norm(out))
    if dist > config.turn_reach_m:
        spots.append(np.array([*(base[:2] + out * (config.turn_reach_m / dist)), up[2]]))
    return spots


def turn_path(tcp: Pose, R_world_rel: np.ndarray, spot) -> tuple[Pose, Pose]:
    """The two waypoints of a turn made at `spot`: half the turn on the way there, then all of it in place."""
    R_now = np.asarray(tcp.rotation())
    half = Rotation.from_rotvec(Rotation.from_matrix(R_world_rel).as_rotvec() * 0.5).as_matrix()

    def at(R: np.ndarray) -> Pose:
        return Pose(tuple(float(v) for v in spot), tuple(Rotation.from_matrix(R).as_quat()))
    return at(half @ R_now), at(np.asarray(R_world_rel) @ R_now)


def turn_spot(world: World, tcp: Pose, R_world_rel: np.ndarray, config: RotationConfig) -> np.ndarray | None:
    """The first of `turn_spots` where the arm can make this turn: the turn's path, planned by IK in the twin as a
    rollout plans it, stays within the rollout's IK tolerance and joint margins; None when there is none."""
    for spot in turn_spots(world, tcp, config):
        q_path, _, _, ik_err = world.plan_joint_path(Candidate(-1, turn_path(tcp, R_world_rel, spot), "keep"))
        margin = float(np.min(np.minimum(q_path - world.lower, world.upper - q_path)))
        if ik_err <= config.max_ik_error_m and margin >= MIN_JOINT_MARGIN_RAD:
            return spot
    return None


def reachable_turns(world: World, tcp: Pose, R_world_obj: np.ndarray, evidence: Sequence[RotationOutcome],
                    error_now_deg: float | None, config: RotationConfig
                    ) -> tuple[tuple[RotationOutcome, ...], dict[bytes, np.ndarray | None]]:
    """The evidence cut to the turns the arm can make (see `turn_spot`), and the spot found for every rotation
    checked (keyed by `rotation_key`; None: out of reach).

    Turns are checked best first (smallest error, then smallest angle: simjudge's order) until
    config.max_reachable are found; a turn that does not reduce the error by a degree is never answered and not
    checked. Equal rotations (an axis both frames share) are checked once."""
    spots: dict[bytes, np.ndarray | None] = {}
    if error_now_deg is None:
        return (), spots
    order = sorted(range(len(evidence)), key=lambda i: (round(evidence[i].error_deg, 3), evidence[i].angle_deg, i))
    out: list[RotationOutcome] = []
    for i in order:
        e = evidence[i]
        if e.error_deg > error_now_deg - 1.0 or len(out) >= config.max_reachable:
            break
        R = world_rotation(RotationAnswer(e.frame, e.axis, e.direction, e.angle_deg), tcp.rotation(), R_world_obj)
        key = rotation_key(R)
        if key not in spots:
            spots[key] = turn_spot(world, tcp, R, config)
        if spots[key] is not None:
            out.append(e)
    return tuple(out), spots


def rotation_key(R: np.ndarray) -> bytes:
    """A rotation matrix as a dictionary key (rounded: the same turn named two ways is one key)."""
    return (np.round(np.asarray(R, dtype=float), 6) + 0.0).tobytes()


def _random_tilt(rng: np.random.Generator, lo_deg: float, hi_deg: float) -> np.ndarray:
    """A turn about a random horizontal world axis: a tilt or a roll of a downward tool, never a yaw."""
    phi = rng.uniform(0.0, 2.0 * math.pi)
    angle = math.radians(rng.uniform(lo_deg, hi_deg))
    return Rotation.from_rotvec(np.array([math.cos(phi), math.sin(phi), 0.0]) * angle).as_matrix()


def rotation_candidates(base: Sequence[Candidate], tcp: Pose, R_world_rel: np.ndarray, rng: np.random.Generator,
                        config: RotationConfig, explore: bool, first_id: int, gripper_open: bool,
                        held_bottom_z_m: float | None = None, turn_at=None) -> list[Candidate]:
    """Candidates that carry a tool orientation other than straight down, numbered from first_id.

    turned: the sampler's goals with the tool at R_rel @ (current orientation), the via point half-way (one of
    them turns in place); kept: the sampler's goals at the current orientation (one stays and toggles the
    gripper; all of the goals when not exploring); explore: the sampler's goals with a random tilt of the
    current orientation. lower (once the orientation is right and the held object's lowest point,
    held_bottom_z_m, is known): straight down at the current orientation by a few centimetres, and all the way
    to just above the table, where it also opens (the annealed ball seldom goes straight down far enough).
    turn_at: where the turn is made (`turn_spot`; default in place, raised to turn_min_z_m).
    """
    moves = [c for c in base if not c.label.startswith("stay")] or list(base)
    R_now = tcp.rotation()
    toggle = "close" if gripper_open else "open"
    half = Rotation.from_matrix(R_world_rel).as_rotvec() * 0.5
    R_half = Rotation.from_rotvec(half).as_matrix()
    out: list[Candidate] = []

    def add(waypoints: tuple[Pose, ...], gripper: str, label: str) -> None:
        out.append(Candidate(first_id + len(out), waypoints, gripper, label=label))

    def at(xyz, R: np.ndarray) -> Pose:
        return Pose(tuple(xyz), tuple(Rotation.from_matrix(R).as_quat()))

    def copy(c: Candidate, R_end: np.ndarray, R_via: np.ndarray, label: str, gripper: str | None = None,
             min_z: float = 0.0) -> None:
        def lifted(xyz) -> np.ndarray:
            return np.array([xyz[0], xyz[1], max(float(xyz[2]), min_z)])
        wps = tuple(at(lifted(w.position), R_via if i < len(c.waypoints) - 1 else R_end)
                    for i, w in enumerate(c.waypoints))
        add(wps, c.gripper if gripper is None else gripper, label)

    turning = not np.allclose(R_world_rel, np.eye(3), atol=1e-6)
    if turning and config.n_turned:
        up = np.array([*tcp.position[:2], max(float(tcp.position[2]), config.turn_min_z_m)])
        spot = up if turn_at is None else np.asarray(turn_at, dtype=float)
        add(turn_path(tcp, R_world_rel, spot), "keep",
            "turn in place" if np.allclose(spot, up) else "turn nearer the base")
        for i in range(config.n_turned - 1):
            copy(moves[i % len(moves)], R_world_rel @ R_now, R_half @ R_now, "turn", gripper="keep",
                 min_z=config.turn_min_z_m)
    # Once the orientation is right, every sampler move is offered at it (the vertical originals would undo
    # it); while it is still off, a few suffice beside the turns and the tilts.
    n_kept = len(moves) + 1 if not explore else config.n_kept
    if n_kept:
        add((tcp,), toggle, f"stay tilted and {toggle}")
        for i in range(n_kept - 1):
            copy(moves[(i + 3) % len(moves)], R_now, R_now, "keep tilt")
    if not explore and held_bottom_z_m is not None:
        room = float(held_bottom_z_m) - config.set_down_gap_m
        for drop in sorted({min(d, room) for d in config.lower_steps_m} | {room}):
            if drop > 0.005:
                down = tcp.position - np.array([0.0, 0.0, drop])
                add((at(down, R_now),), toggle if drop == room else "keep",
                    f"lower {100 * drop:.0f} cm" + (f" and {toggle}" if drop == room else ""))
    if explore:
        for i in range(config.n_explore):
            R = _random_tilt(rng, config.explore_min_deg, config.explore_max_deg) @ R_now
            copy(moves[(i + 7) % len(moves)], R, R_now, "tilt", gripper="keep", min_z=config.turn_min_z_m)
    return out


class RotationModule:
    """Asks the rotation question when the held object's orientation matters and adds the candidates that carry
    the answer. `save_image(step, name, png)` stores the question's pictures in the run log."""

    def __init__(self, instruction: str, renderer: Renderer, scorer: Scorer, rng: np.random.Generator,
                 save_image: Callable[[int, str, bytes], str] | None = None,
                 config: RotationConfig | None = None) -> None:
        self.instruction = instruction
        self.renderer = renderer
        self.scorer = scorer
        self.rng = rng
        self.save_image = save_image
        self.config = config or RotationConfig()

    def extend(self, step: int, world: World, subtask: Subtask, candidates: list[Candidate],
               gripper_open: bool) -> tuple[list[Candidate], dict | None]:
        """The sampler's candidates plus the rotation module's (ids kept unique), and the record of the
        question (None when it was not asked: nothing held, or the goal asks nothing of the held object's
        orientation)."""
        held = world.grasped()
        pred = subtask.done
        if held is None or held not in predicates.orientation_objects(pred):
            return candidates, None
        tcp = world.tcp_pose()
        obj = world.object_pose(held)
        R_tcp, R_obj = tcp.rotation(), obj.rotation()
        error_now = predicates.orientation_error_deg(pred, {held: R_obj})
        tried = tried_turns(pred, held, R_tcp, R_obj)
        explore = error_now is not None and error_now > TOLERANCE_DEG
        # within tolerance simjudge answers no turn: nothing to check
        evidence, spots = reachable_turns(world, tcp, R_obj, tried, error_now, self.config) if explore else ((), {})
        size = max(0.04, 0.6 * float(np.linalg.norm(np.subtract(*world.object_aabb(held)))))
        views = self.renderer.render_frames(world, [Frame("G", tcp, 0.12), Frame("O", obj, size)])
        request = RotationRequest(self.instruction, subtask.say, held, tuple(view_image(v) for v in views),
                                  error_now, TOLERANCE_DEG, evidence)
        verdict = ask_rotation(self.scorer, request)
        answer = verdict.answer
        R_rel = np.eye(3) if answer is None else world_rotation(answer, R_tcp, R_obj)
        first = max((c.id for c in candidates), default=-1) + 1
        bottom = float(world.object_aabb(held)[0][2])
        key = rotation_key(R_rel)
        if answer is not None and answer.turns and key not in spots:   # an agent's own answer: where can it turn?
            spots[key] = turn_spot(world, tcp, R_rel, self.config)
        spot = spots.get(key)
        extra = rotation_candidates(candidates, tcp, R_rel, self.rng, self.config, explore, first, gripper_open,
                                    bottom, spot)
        record = {"held": held, "error_now_deg": error_now, "tolerance_deg": TOLERANCE_DEG,
                  "turns_tried": len(tried), "turns_checked": len(spots), "turns_reachable": len(evidence),
                  "turn_at": None if spot is None else np.round(spot, 4).tolist(),
                  **verdict.to_dict(), "R_world_rel": np.round(R_rel, 6).tolist(),
                  "added": [c.id for c in extra]}
        if self.save_image is not None:
            record["images"] = {v.name: self.save_image(step, f"rotation_{v.name}", v.png) for v in views}
        return candidates + extra, record
