"""The planner's twin, kept in step with what the robot observes: reconstruction, objects remembered where last
seen, the held object carried in the hand (`sim.grasp`'s rule), rebuilt into one PyBullet world each step."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math

import numpy as np
import pybullet as p

from planner.instance_namer import InstanceNamer
from reconstruction.estimate import SceneEstimate
from reconstruction.models import ObjectModel
from robot_io.observation import Observation
from sim.carve import carve_part
from sim.geometry import Pose
from sim.grasp import HELD_MIN_WIDTH_M, ExpectedHold, Held, may_hold, track_held
from sim.scene import RobotSpec, SceneSpec
from sim.world import World

log = logging.getLogger(__name__)

HAND_CLEAR_RADIUS_M = 0.08   # unknown clusters centred this close to the TCP are taken as hand/held parts
LOOK_AGAIN_MAX = 2           # steps in a row the arm holds still to look again at an object it does not trust
UNTRUSTED = ("low_confidence", "missing")   # reconstruction statuses the arm must not reach for
OUTLINE_MAX = 0.2            # seen from above, the same outline turned half-way round within this (of its radius)
OUTLINE_BINS = 24            # angular bins of the outline (15 degrees each)
INSIDE_ROBOT_M = 0.02        # a fit that sinks this deep into the arm (not held) is not where the object is
ROUND_MAX = 0.08             # seen from above, an outline this close to a circle (of its radius) is round
ROUND_STILL_M = 0.01         # a round object whose bottom centre moved less than this keeps its last turn
UPRIGHT_COS = 0.98           # its vertical axis within ~11 degrees of the world's
SEPARATE_GAP_M = 0.003       # two objects the fits left touching side by side are set this far apart
SEPARATE_MAX_M = 0.01        # ... by at most this much each (more is a fit error, not a touch)
STACKED_NZ = 0.7             # a contact normal this close to vertical is one object standing on the other
THIN_PINCH_MIN_M = 0.003     # held fingers stopped wider than this still hold: LIBERO's read 1.0-2.2 mm shut on nothing
THIN_PINCH_GRASP_M = 0.0065  # ... and at the grasp itself wider than this (LIBERO's bowl rim: 7.5-8.9 mm)
CARVE_MIN_DEPTH_M = 0.005    # a named object this deep in an unknown obstacle's convex part is swallowed by it
CARVE_MARGIN_M = 0.035       # the column cut out around it: its footprint and this. An open finger reaches ~5 cm
                             # out from a bowl's rim: at 5 cm the twin passed pinches square to LIBERO's drawer
                             # walls (2-4 cm out), which missed; at 3.5 cm only the diagonals into its corners


class LookAgain:
    """Never reach for an object whose pose the reconstruction does not trust: look again (a new observation)
    up to `max_looks` steps in a row; then go ahead, and say so."""

    def __init__(self, max_looks: int = LOOK_AGAIN_MAX) -> None:
        self.max_looks = max_looks
        self.looks = 0   # steps in a row spent looking again

    def check(self, target: str | None, recon: dict, gripper_closed: bool) -> str | None:
        """The hold reason when this step should only look again, else None. target: the object the current
        subtask grasps (None: none); recon: the twin's summary (per object 'status'). A 'going ahead' note is
        put in recon when the looks are spent."""
        entry = recon.get("objects", {}).get(target, {}) if target else {}
        status = entry.get("status")
        if status not in UNTRUSTED or gripper_closed:
            self.looks = 0
            return None
        if status == "low_confidence" and entry.get("turn_only"):
            # only a turn that leaves the outline as it is can be in doubt: the grasps (across the outline) are
            # the same either way, so looking again would change nothing
            self.looks = 0
            recon["note"] = (f"'{target}': position trusted; only a turn that keeps its outline (seen from above) "
                             "is ambiguous")
            return None
        return self.spend(recon, f"look again: the pose of '{target}' is not trusted ({status})",
                          f"'{target}' still {status} after {self.max_looks} looks; going ahead")

    def spend(self, recon: dict, reason: str, spent_note: str) -> str | None:
        """One more look in a row: `reason` (the hold reason) while looks are left, else None with `spent_note`
        in recon's note."""
        self.looks += 1
        if self.looks <= self.max_looks:
            return reason
        recon["note"] = spent_note
        return None


class TwinTracker:
    """Observation -> twin World. models: the twin's object models (geometry and physics; identification may
    replace their physics). The world lives in this tracker's own PyBullet client until close()."""

    def __init__(self, robot: RobotSpec, reconstructor, models: dict[str, ObjectModel], settle_steps: int,
                 fast_render: bool = True, start_hints: dict | None = None) -> None:
        """start_hints: name -> planner.task.StartHint (where an instance started, from the task's words); with
        it, identical instances (same model) are named by it on the first observation, then tracked."""
        self.robot = robot
        self.fast_render = fast_render
        self.reconstructor = reconstructor
        self.models = dict(models)
        self.settle_steps = settle_steps
        self.client = p.connect(p.DIRECT)
        self.world: World | None = None
        self.held: Held | None = None
        self._last_seen: dict[str, Pose] = {}         # where each named object was last found
        cfg = getattr(reconstructor, "config", None)
        self.namer = InstanceNamer(models, start_hints or {}, getattr(cfg, "low_confidence", 0.6))
        self._round_cache: dict[str, bool] = {}

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
        if self.client is not None and p.isConnected(self.client):
            p.disconnect(self.client)

    @property
    def held_name(self) -> str | None:
        return None if self.held is None else self.held.name

    def update(self, obs: Observation, expected: ExpectedHold | None = None) -> tuple[World, dict]:
        """Reconstruct the observation into the twin; returns the world and a summary for the step record.
        expected: what the executed step's rollout left in the hand (None: nothing, or not the first look since)."""
        T_world_tcp = Pose.from_matrix(obs.T_world_tcp)
        if hasattr(self.reconstructor, "remember"):
            # only where a fit once put it, not a start hint
            self.reconstructor.remember({n: q for n, q in self._last_seen.items() if n in self.namer.confident})
        estimate = self.namer.rename(self.reconstructor.update(obs), self._last_seen, T_world_tcp.position)
        rule_width_m = self._rule_width(obs.gripper_width_m, expected)
        holding = self.held_name if self.held_name is not None or expected is None else expected.held.name
        estimate = self.namer.steady(estimate, self._last_seen, T_world_tcp.position, holding,
                                     may_hold(rule_width_m, self.robot.gripper_max_width_m))
        estimate = self._keep_round_turns(estimate)
        before = dict(self._last_seen)
        for name in self.namer.hints:
            # not found, never seen with confidence nor held: where the task says it started (it is no fit: still
            # 'missing'), not where a doubtful fit once put it
            pose = self.namer.hint_pose(name)
            est = estimate.objects.get(name)
            if pose is not None and not self.namer.known(name) and (est is None or not est.found):
                self._last_seen[name] = pose
        scene = estimate.to_scene(self.robot, obs.joint_pos_rad, obs.gripper_width_m, self.models)
        # Unknown clusters at the hand are bits of the gripper or of what it holds that the robot filter and
        # the pose fit left over; as obstacles they would collide with every candidate.
        at_hand = {u.name for u in estimate.unknown
                   if np.linalg.norm(u.pose.position - T_world_tcp.position) < HAND_CLEAR_RADIUS_M}
        if at_hand:
            scene = dataclasses.replace(scene, objects=tuple(o for o in scene.objects if o.name not in at_hand))
        report = estimate.report()
        self._last_seen.update({n: o.pose for n, o in estimate.objects.items() if o.found})
        present = {o.name for o in scene.objects}
        stale = [n for n in self.models if n not in present and n in self._last_seen]
        # not found this step (occluded, or a poor match): keep it where it was last seen
        scene = dataclasses.replace(scene, objects=scene.objects + tuple(
            self.models[n].at(self._last_seen[n]) for n in stale))
        scene = self._carry_held(scene, estimate, T_world_tcp, rule_width_m, expected)
        if self.world is None:
            self.world = World.from_scene(self.client, scene, fast_render=self.fast_render)
        else:
            self.world.update_scene(scene)
        inside = self._inside_robot(estimate)
        if inside:
            self.world.update_scene(self._put_back(scene, inside, before, report))
        carved = carve_swallowed(self.world, set(self.models))
        self.world.step(self.settle_steps)
        separated = separate_touching(self.world)
        self._mark_turn_only(report["objects"], estimate)
        summary = {
            "objects": report["objects"], "issues": report["issues"], "cameras_used": report["cameras_used"],
            "n_unknown": len(estimate.clutter), "unknown": report["unknown"],
            "n_obstacle_parts": len(estimate.unknown) - len(at_hand),
            "held": self.held_name, "last_seen_pose_used": stale,
            "timings_s": getattr(estimate, "timings_s", {}),
        }
        if self.namer.last_note:
            summary["identical_instances"] = self.namer.last_note
        if separated:
            summary["separated"] = separated
        if carved:
            summary["carved"] = carved
        return self.world, summary

    def _inside_robot(self, estimate: SceneEstimate) -> dict[str, float]:
        """Found objects (not held) whose fit sinks over INSIDE_ROBOT_M into the arm at its measured joints: name
        -> depth. Nothing but the held object can be there; LIBERO's cameras leave bits of its arm near the base
        that a black bowl's model fits (task 9: the bowl on the cabinet 'moved' 655 mm onto the arm's base)."""
        out = {}
        for name, body in self.world.body_ids.items():
            est = estimate.objects.get(name)
            if name == self.held_name or est is None or not est.found:
                continue
            pts = p.getClosestPoints(self.world.robot_id, body, 0.0, physicsClientId=self.client)
            depth = -min((c[8] for c in pts), default=0.0)
            if depth > INSIDE_ROBOT_M:
                out[name] = depth
        return out

    def _put_back(self, scene: SceneSpec, inside: dict[str, float], before: dict[str, Pose],
                  report: dict) -> SceneSpec:
        """The scene with each object fitted inside the arm back where it was last seen (or left out, never seen
        before); its report entry says so and is no longer 'ok' (a wrong fit is no 'disturbed' object)."""
        for name, depth in inside.items():
            entry = report["objects"][name]
            entry.update(status="low_confidence", inside_robot_mm=round(1000 * depth, 1))
            report["issues"].append({"kind": "low_confidence", "subject": name, "message": (
                f"'{name}': its fit sinks {1000 * depth:.0f} mm into the arm; kept where it was last seen")})
            if name in before:
                self._last_seen[name] = before[name]
            else:
                self._last_seen.pop(name, None)
        objects = tuple(self.models[o.name].at(before[o.name]) if o.name in inside else o
                        for o in scene.objects if o.name not in inside or o.name in before)
        return dataclasses.replace(scene, objects=objects)

    def _rule_width(self, width_m: float, expected: ExpectedHold | None) -> float:
        """The gripper width the held rule is given. A pinch across a wall thinner than the rule's
        HELD_MIN_WIDTH_M is given as just over that minimum: at the grasp, when the executed rollout left an
        object in the twin's hand and the fingers stopped wider than THIN_PINCH_GRASP_M; once held, while they stay
        wider than THIN_PINCH_MIN_M. LIBERO's fingers stop at 7.5-8.9 mm on its bowl's rim and close to 3.9-6 mm
        as the bowl turns in them, hanging, still held (its own check said grasped at 3.9 mm in 9@0, where a rule
        that wanted the width within 3.5 mm of the grasp's called it dropped at 4.2 mm and the loop spent 9 steps
        with the bowl in its hand); shut on nothing they read 1.0-2.2 mm. The twin's fingers stop at 12-16 mm on
        the same pinch, so the two widths are not compared. Any other width passes unchanged."""
        if not THIN_PINCH_MIN_M < width_m < HELD_MIN_WIDTH_M:
            return width_m
        if self.held is None and (expected is None or width_m < THIN_PINCH_GRASP_M):
            return width_m
        return HELD_MIN_WIDTH_M + 0.0005

    def _keep_round_turns(self, estimate: SceneEstimate) -> SceneEstimate:
        """A round object standing still keeps the turn the twin last had: the cameras cannot see a bowl's turn
        about its axis, so each fit picks one at random, and where the model's root frame lies off that axis
        (LIBERO's converted bowl: 10 cm) the pose jumps by up to twice that between steps with nothing moved,
        which the failure check reads as a disturbed object."""
        changed = {}
        for name, est in estimate.objects.items():
            last = self._last_seen.get(name)
            if not est.found or est.held or last is None or name == self.held_name or not self._round(name):
                continue
            R_new, R_last = est.pose.rotation(), last.rotation()
            if R_new[2, 2] < UPRIGHT_COS or R_last[2, 2] < UPRIGHT_COS:
                continue
            a_new, a_last = self.namer.anchor(name, est.pose), self.namer.anchor(name, last)
            if np.linalg.norm(a_new - a_last) >= ROUND_STILL_M:
                continue
            # turn the new fit about the vertical through its bottom centre onto the last turn
            turn = math.atan2(R_last[1, 0], R_last[0, 0]) - math.atan2(R_new[1, 0], R_new[0, 0])
            c, s_ = math.cos(turn), math.sin(turn)
            Rz = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])
            T = est.pose.matrix()
            T[:3, :3] = Rz @ T[:3, :3]
            T[:3, 3] = a_new + Rz @ (est.pose.matrix()[:3, 3] - a_new)
            changed[name] = dataclasses.replace(est, pose=Pose.from_matrix(T))
        if not changed:
            return estimate
        return dataclasses.replace(estimate, objects={**estimate.objects, **changed})

    def _round(self, name: str) -> bool:
        if name not in self._round_cache:
            self._round_cache[name] = outline_round(self.models[name])
        return self._round_cache[name]

    def _mark_turn_only(self, objects: dict, estimate: SceneEstimate) -> None:
        """Flag `turn_only` on a low-confidence object whose fit alone is confident (the doubt is the ambiguity
        factor: a clearly different pose explains the points nearly as well) and whose outline seen from above
        is the same turned half-way round: a rival that fits as well as the winner then turns it about the
        vertical or flips it (a scanned can is not exactly a solid of revolution, a printed carton not exactly
        a box, so their declared symmetry is 'none' and such turns rank nearly as high)."""
        cfg = getattr(self.reconstructor, "config", None)
        if cfg is None:
            return
        for name, entry in objects.items():
            est = estimate.objects.get(name)
            if entry.get("status") != "low_confidence" or est is None or not est.found or name not in self.models:
                continue
            fit_confidence = est.fitness * min(1.0, est.coverage / cfg.full_coverage)
            if fit_confidence >= cfg.low_confidence and outline_symmetric(self.models[name], est.pose):
                entry["turn_only"] = True

    def _carry_held(self, scene: SceneSpec, estimate: SceneEstimate, T_world_tcp: Pose, width_m: float,
                    expected: ExpectedHold | None = None) -> SceneSpec:
        """Decide which object the gripper holds and pin it to the hand (rigid grasp) in the twin."""
        seen = {n: o.pose for n, o in estimate.objects.items() if o.found}
        self.held, why = track_held(self.held, width_m, self.robot.gripper_max_width_m, T_world_tcp, seen,
                                    expected, estimate.low_confidence)
        if why:
            log.info("%s", why)
        if self.held is None:
            return dataclasses.replace(scene, grasped=None)
        name, pose = self.held.name, self.held.pose(T_world_tcp)
        # where it was last carried: once let go and hidden (in a basket, behind its wall), the twin drops it from
        # there, not from where it stood before the grasp
        self._last_seen[name] = pose
        objects = tuple(dataclasses.replace(o, pose=pose) if o.name == name else o for o in scene.objects)
        if name not in {o.name for o in objects}:
            # not seen this step (hidden by the fingers): keep it where the hand carries it
            objects = objects + (self.models[name].at(pose),)
        return dataclasses.replace(scene, objects=objects, grasped=name)


def carve_swallowed(world: World, named: set[str], min_depth_m: float = CARVE_MIN_DEPTH_M,
                    margin_m: float = CARVE_MARGIN_M) -> list[list]:
    """Cut the column over each named object (the held one too) out of the unknown obstacle parts it sinks more than
    `min_depth_m` into (`sim.carve`): the column over its footprint widened by `margin_m`, from its bottom up.
    A coarse convex part (the hull of an open drawer and the cabinet around it, LIBERO-Spatial task 4) swallows
    the bowl the cameras saw in the drawer, and the twin's physics threw the bowl 11 cm up onto the part: every
    grasp went for a bowl that was not there. The object's model stands for the space it fills. Rebuilds the
    world's scene when something was cut; returns [[part, object, depth_mm], ...] for the step record."""
    specs = {o.name: o for o in world.spec.objects}
    parts = [n for n, o in specs.items() if n not in named and o.fixed and o.mesh_vertices is not None]
    cut: dict[str, list] = {}
    out = []
    # the held object too: pinched in the drawer, the part left round it stopped every lift (its fingers and
    # the held bowl 'collided' with it in every rollout, and the placements lost the bowl in the twin)
    for name in sorted(n for n in named if n in world.body_ids):
        body = world.body_ids[name]
        lo, hi = world.object_aabb(name)
        lo_xyz, hi_xy = (lo[0] - margin_m, lo[1] - margin_m, lo[2]), (hi[0] + margin_m, hi[1] + margin_m)
        for part in parts:
            pts = p.getClosestPoints(body, world.body_ids[part], 0.0, physicsClientId=world.client)
            depth = -min((c[8] for c in pts), default=0.0)
            if depth <= min_depth_m:
                continue
            pieces = []
            for piece in cut.get(part, [specs[part]]):
                carved = carve_part(piece, lo_xyz, hi_xy)
                pieces.extend([piece] if carved is None else carved)
            cut[part] = pieces
            out.append([part, name, round(1000 * depth, 1)])
    if cut:
        objects = tuple(x for o in world.spec.objects for x in (cut.get(o.name, [o])))
        world.update_scene(dataclasses.replace(world.spec, objects=objects))
    return out


def separate_touching(world: World, gap_m: float = SEPARATE_GAP_M, max_m: float = SEPARATE_MAX_M) -> list[list]:
    """Set apart the objects that stand touching side by side in the twin (LIBERO-Spatial's bowl fitted against the
    plate's rim, within a millimetre of it): the fits are good to a few millimetres, so whether two neighbours
    touch is below what the cameras can tell, and a twin that has them touching calls every grasp of one a
    collision with the other (the held object touches it as the fingers close). Each pair closer than `gap_m`
    along a horizontal contact normal is pushed apart along it to `gap_m`, half each (all of it on the free one
    where the other is fixed), at most `max_m` per object; a stacked pair (a near-vertical normal), the held
    object and a fixed pair are left alone. Returns [[a, b, moved_mm], ...] for the step record."""
    held = world.grasped()
    fixed = {o.name: o.fixed for o in world.spec.objects}
    names = [n for n in world.body_ids if n != held]
    out = []
    for a, b in itertools.combinations(sorted(names), 2):
        if fixed.get(a) and fixed.get(b):
            continue
        pts = p.getClosestPoints(world.body_ids[a], world.body_ids[b], gap_m, physicsClientId=world.client)
        if not pts:
            continue
        c = min(pts, key=lambda c: c[8])
        n_b_to_a = np.asarray(c[7], float)            # contactNormalOnB points from B towards A
        if abs(n_b_to_a[2]) > STACKED_NZ:
            continue
        horiz = np.array([n_b_to_a[0], n_b_to_a[1], 0.0])
        horiz /= max(float(np.linalg.norm(horiz)), 1e-9)
        need = gap_m - float(c[8])
        if need < 5e-4:
            continue
        share = {a: 0.0 if fixed.get(a) else 1.0, b: 0.0 if fixed.get(b) else 1.0}
        total = share[a] + share[b]
        for name, sign in ((a, 1.0), (b, -1.0)):
            if share[name] == 0.0:
                continue
            move = min(need * share[name] / total, max_m)
            body = world.body_ids[name]
            pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=world.client)
            p.resetBasePositionAndOrientation(body, tuple(np.asarray(pos) + sign * move * horiz), quat,
                                              physicsClientId=world.client)
            p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=world.client)
        out.append([a, b, round(1000 * need, 1)])
    return out


def _outline(model: ObjectModel, pose: Pose) -> np.ndarray:
    """The largest radius from the centre of the outline seen from above, in each of OUTLINE_BINS directions."""
    pts = model.geometry.points @ pose.rotation().T
    xy = pts[:, :2] - 0.5 * (pts[:, :2].min(axis=0) + pts[:, :2].max(axis=0))
    radius = np.linalg.norm(xy, axis=1)
    bins = ((np.arctan2(xy[:, 1], xy[:, 0]) + np.pi) / (2 * np.pi) * OUTLINE_BINS).astype(int) % OUTLINE_BINS
    outline = np.zeros(OUTLINE_BINS)
    np.maximum.at(outline, bins, radius)
    return outline


def outline_round(model: ObjectModel, max_spread: float = ROUND_MAX) -> bool:
    """Whether the model standing as modelled looks round from above (a bowl, a can, a plate): every direction's
    outline radius within max_spread of their mean."""
    outline = _outline(model, Pose.identity())
    return bool(np.all(outline > 0.0) and (outline.max() - outline.min()) / outline.mean() < max_spread)


def outline_symmetric(model: ObjectModel, pose: Pose, max_spread: float = OUTLINE_MAX) -> bool:
    """Whether the model at `pose`, seen from straight above, looks the same turned half-way round its centre (a
    can, a carton, a box lying flat): the largest radius from the centre in each of OUTLINE_BINS directions and
    in the opposite one differ by less than max_spread of their mean."""
    outline = _outline(model, pose)
    if np.any(outline <= 0.0):
        return False
    opposite = np.roll(outline, OUTLINE_BINS // 2)
    return bool(np.max(np.abs(outline - opposite)) / outline.mean() < max_spread)
