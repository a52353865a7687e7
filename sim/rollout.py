"""Candidate trajectories, simulating one in a world, and the result with its one verdict.

The verdict is computed here, once per rollout: `feasible` (the arm can follow the path: IK and joint limits)
and `clean` (the twin saw no collision, no object knocked out of place, no release from height). The planner
vetoes on it and the scorers' evidence is built from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation, Slerp

from sim.geometry import Pose

if TYPE_CHECKING:
    from sim.world import World

GRIPPER_COMMANDS = ("open", "close", "keep")
TABLE = "table"               # the name contacts and clearances give the table
ROBOT = "robot"
GRIPPER_ACTION_S = 0.5        # time given to the fingers to open or close
SETTLE_S = 0.3                # time for released objects to come to rest
CARTESIAN_STEP_M = 0.02       # spacing of IK waypoints along a candidate's TCP path (1 cm costs 1.5x, same paths)
DISTURB_TOL_M = 0.01          # an untouched object that moved more than this was disturbed
MAX_RELEASE_DROP_M = 0.04     # a release from higher than this is vetoed while another candidate is clean
MIN_JOINT_MARGIN_RAD = 0.01   # a path closer than this to a joint limit is infeasible
# The path's last few centimetres in shrinking steps (metres, summing to STOP_M): at a constant time per step the
# arm slows to a stop instead of arriving at full speed (it overshot a grasp 3 mm down into the table).
STOP_STEPS_M = (0.012, 0.008, 0.005, 0.003, 0.002)
STOP_M = sum(STOP_STEPS_M)
VETOED = "twin: collision or high release, vetoed"


@dataclass(frozen=True)
class Contact:
    a: str            # "robot" or "robot:<link>" or an object name; "held:<name>" for the grasped object
    b: str            # "table" or an object name
    distance_m: float = 0.0


@dataclass(frozen=True)
class Candidate:
    """A TCP waypoint path (world frame, after the current pose) and a gripper command at its end."""

    id: int
    waypoints: tuple[Pose, ...]
    gripper: str = "keep"
    label: str = ""

    def __post_init__(self) -> None:
        if not self.waypoints:
            raise ValueError(f"candidate {self.id}: needs at least one waypoint")
        if self.gripper not in GRIPPER_COMMANDS:
            raise ValueError(f"candidate {self.id}: gripper {self.gripper!r}: expected one of {GRIPPER_COMMANDS}")

    @property
    def goal(self) -> Pose:
        return self.waypoints[-1]


@dataclass(frozen=True)
class Rollout:
    candidate: Candidate
    joint_path_rad: np.ndarray          # (N, dof) commanded joint positions
    gripper_width_m: np.ndarray         # (N,) commanded gripper width
    dt_s: float                         # time between commanded waypoints
    ee_path_xyz: np.ndarray             # (M, 3) TCP positions actually reached in the twin
    ee_end_pose: Pose
    contacts: tuple[Contact, ...]       # unexpected contacts (collisions)
    disturbed: tuple[str, ...]          # objects that moved although nothing should have moved them
    min_clearance_m: float
    joint_limit_margin_rad: float
    ik_error_m: float
    object_poses_after: dict[str, Pose] = field(default_factory=dict)
    grasped_after: str | None = None
    gripper_after_m: float = 0.0
    feasible: bool = True
    reason: str = ""
    probe: dict = field(default_factory=dict)
    release_drop_m: float = 0.0         # fall height of an object the gripper let go of (0 if none)
    clean: bool = True                  # no collision, nothing knocked over, no release from height

    @property
    def collisions(self) -> int:
        """Unexpected contacts plus objects knocked out of place, as the twin saw them."""
        return len(self.contacts) + len(self.disturbed)

    @property
    def path_length_m(self) -> float:
        if len(self.ee_path_xyz) < 2:
            return 0.0
        return float(np.linalg.norm(np.diff(self.ee_path_xyz, axis=0), axis=1).sum())

    @property
    def duration_s(self) -> float:
        return float(self.dt_s * len(self.joint_path_rad))


def plan_joint_path(world: World, candidate: Candidate, speed_scale: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """IK along the candidate's TCP path (straight segments, 1 cm spacing) and its gripper action.

    Returns (joint path, gripper widths, dt_s, worst IK error). dt is chosen so that no joint exceeds
    speed_scale times its speed limit.
    """
    start = world.tcp_pose()
    q = world.joint_pos_rad()
    hold_width = world.gripper_target_m
    qs, errs = [], []
    prev = start
    for i, wp in enumerate(candidate.waypoints):
        length = float(np.linalg.norm(wp.position - prev.position))
        for s in _fractions(length, last=i == len(candidate.waypoints) - 1):
            q, err = world.ik(_interpolate(prev, wp, s), q_seed=q)
            qs.append(q)
            errs.append(err)
        prev = wp
    grip = [hold_width] * len(qs)
    vmax = speed_scale * np.asarray(world.spec.robot.max_joint_speed_rad_s)
    steps = np.abs(np.diff(np.vstack([world.joint_pos_rad(), *qs]), axis=0))
    dt = max(1.0 / 60.0, float(np.max(steps / vmax)))
    if candidate.gripper != "keep":
        target = 0.0 if candidate.gripper == "close" else world.spec.robot.gripper_max_width_m
        hold = int(np.ceil(GRIPPER_ACTION_S / dt))
        qs.extend([qs[-1]] * hold)
        grip.extend([target] * hold)
    return np.asarray(qs), np.asarray(grip), dt, float(max(errs))


def simulate(world: World, candidate: Candidate, allowed_contacts: frozenset[str] = frozenset(),
             speed_scale: float = 0.5, max_ik_error_m: float = 0.01,
             probe: Callable[[World], dict] | None = None) -> Rollout:
    """Simulate a candidate in this world and restore the state afterwards.

    Contacts of the fingers with `allowed_contacts` objects (the ones the subtask is about) and of a held
    object with the table or allowed objects are expected; every other contact is a collision.
    `probe(world)` runs on the end state before it is restored (e.g. predicate progress); its answer is
    kept in Rollout.probe.
    """
    with world.saved_state():
        before = world.object_poses()
        held_before = world.grasped()
        # A held object touching what it stood on is no collision: the fits leave a bowl a millimetre into the
        # noisy top of the stove's obstacle, and every lift off it was vetoed (LIBERO-Spatial tasks 4 and 7)
        touching_before = touching_pairs(world)
        world.last_drop_m = 0.0
        q_path, grip, dt, ik_err = plan_joint_path(world, candidate, speed_scale)
        margin = float(np.min(np.minimum(q_path - world.lower, world.upper - q_path)))
        contacts: dict[tuple[str, str], Contact] = {}
        clearance = [world.min_clearance_m(ignore=tuple(allowed_contacts))]
        counter = {"n": 0}

        def watch() -> None:
            counter["n"] += 1
            if counter["n"] % 4:
                return  # contacts every 4 physics steps (60 Hz) are plenty and 4x cheaper
            for c in world.contacts():
                if _expected(c, allowed_contacts, touching_before):
                    continue
                contacts.setdefault((c.a, c.b), c)
            if counter["n"] % 24 == 0:
                clearance.append(world.min_clearance_m(ignore=tuple(allowed_contacts)))

        result = world.execute_joint_path(q_path, grip, dt, on_step=watch,
                                         settle_s=SETTLE_S if candidate.gripper == "open" else 0.15)
        after = world.object_poses()
        grasped_after = world.grasped()
        touched = {c.b for c in contacts.values()} | set(allowed_contacts) | {held_before, grasped_after}
        disturbed = tuple(sorted(
            name for name in after
            if name not in touched
            and np.linalg.norm(after[name].position - before[name].position) > DISTURB_TOL_M))
        end = world.tcp_pose()
        gripper_after = world.gripper_width_m()
        probed = probe(world) if probe is not None else {}
        drop = world.last_drop_m
    reason = ""
    feasible = True
    if ik_err > max_ik_error_m:
        feasible, reason = False, f"IK error {ik_err * 1000:.0f} mm"
    elif margin < MIN_JOINT_MARGIN_RAD:
        feasible, reason = False, f"joint limit margin {margin:.3f} rad"
    clean = len(contacts) + len(disturbed) == 0 and drop <= MAX_RELEASE_DROP_M
    if feasible and not clean:
        reason = VETOED
    return Rollout(
        candidate=candidate, joint_path_rad=q_path, gripper_width_m=grip, dt_s=dt,
        ee_path_xyz=result.ee_path_xyz, ee_end_pose=end, contacts=tuple(contacts.values()),
        disturbed=disturbed, min_clearance_m=float(min(clearance)), joint_limit_margin_rad=margin,
        ik_error_m=ik_err, object_poses_after=after, grasped_after=grasped_after,
        gripper_after_m=gripper_after, feasible=feasible, reason=reason, probe=probed, release_drop_m=drop,
        clean=clean)


def touching_pairs(world: World) -> set[frozenset[str]]:
    """Pairs of named objects touching now (not the robot, not the table): what stands on or against what."""
    p.performCollisionDetection(physicsClientId=world.client)   # the contacts of now, not of the last step
    names = set(world.body_ids)
    pairs = set()
    for c in p.getContactPoints(physicsClientId=world.client):
        a, b = world.name_of(c[1]), world.name_of(c[2])
        if a in names and b in names and a != b:
            pairs.add(frozenset((a, b)))
    return pairs


def _expected(c: Contact, allowed: frozenset[str], touching_before: set[frozenset[str]]) -> bool:
    if c.a == "robot:finger" and c.b in allowed:
        return True
    if c.a.startswith("held:") and (c.b == TABLE or c.b in allowed
                                    or frozenset((c.a.removeprefix("held:"), c.b)) in touching_before):
        return True
    return False


def _fractions(length_m: float, last: bool) -> list[float]:
    """Where along a straight segment the IK waypoints go (fractions in (0, 1]): CARTESIAN_STEP_M apart, and on
    the path's last segment ending in STOP_STEPS_M (scaled down on a segment shorter than STOP_M)."""
    if not last or length_m <= 1e-9:
        n = max(1, int(np.ceil(length_m / CARTESIAN_STEP_M)))
        return [k / n for k in range(1, n + 1)]
    tail = np.asarray(STOP_STEPS_M) * min(1.0, length_m / STOP_M)
    cruise = length_m - float(tail.sum())
    n = int(np.ceil(cruise / CARTESIAN_STEP_M - 1e-9))
    points = [cruise * k / n for k in range(1, n + 1)] if n else []
    points += list(cruise + np.cumsum(tail))
    return [min(1.0, d / length_m) for d in points]


def _interpolate(a: Pose, b: Pose, s: float) -> Pose:
    slerp = Slerp([0.0, 1.0], Rotation.from_quat([a.quat_xyzw, b.quat_xyzw]))
    xyz = (1 - s) * a.position + s * b.position
    return Pose(tuple(xyz), tuple(slerp([s]).as_quat()[0]))
