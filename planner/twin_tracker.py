"""The planner's twin, kept in step with what the robot observes: reconstruction, objects remembered where last
seen, the held object carried in the hand (`sim.grasp`'s rule), rebuilt into one PyBullet world each step."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pybullet as p

from reconstruction.estimate import SceneEstimate
from reconstruction.models import ObjectModel
from robot_io.observation import Observation
from sim.geometry import Pose
from sim.grasp import Held, track_held
from sim.scene import RobotSpec, SceneSpec
from sim.world import World

log = logging.getLogger(__name__)

HAND_CLEAR_RADIUS_M = 0.08   # unknown clusters centred this close to the TCP are taken as hand/held parts
LOOK_AGAIN_MAX = 2           # steps in a row the arm holds still to look again at an object it does not trust
UNTRUSTED = ("low_confidence", "missing")   # reconstruction statuses the arm must not reach for
OUTLINE_MAX = 0.2            # seen from above, the same outline turned half-way round within this (of its radius)
OUTLINE_BINS = 24            # angular bins of the outline (15 degrees each)


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
        self.looks += 1
        if self.looks <= self.max_looks:
            return f"look again: the pose of '{target}' is not trusted ({status})"
        recon["note"] = f"'{target}' still {status} after {self.max_looks} looks; going ahead"
        return None


class TwinTracker:
    """Observation -> twin World. models: the twin's object models (geometry and physics; identification may
    replace their physics). The world lives in this tracker's own PyBullet client until close()."""

    def __init__(self, robot: RobotSpec, reconstructor, models: dict[str, ObjectModel], settle_steps: int,
                 fast_render: bool = True) -> None:
        self.robot = robot
        self.fast_render = fast_render
        self.reconstructor = reconstructor
        self.models = dict(models)
        self.settle_steps = settle_steps
        self.client = p.connect(p.DIRECT)
        self.world: World | None = None
        self.held: Held | None = None
        self._last_seen: dict[str, Pose] = {}         # where each named object was last found

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
        if self.client is not None and p.isConnected(self.client):
            p.disconnect(self.client)

    @property
    def held_name(self) -> str | None:
        return None if self.held is None else self.held.name

    def update(self, obs: Observation) -> tuple[World, dict]:
        """Reconstruct the observation into the twin; returns the world and a summary for the step record."""
        estimate = self.reconstructor.update(obs)
        scene = estimate.to_scene(self.robot, obs.joint_pos_rad, obs.gripper_width_m, self.models)
        T_world_tcp = Pose.from_matrix(obs.T_world_tcp)
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
        scene = self._carry_held(scene, estimate, T_world_tcp, obs.gripper_width_m)
        if self.world is None:
            self.world = World.from_scene(self.client, scene, fast_render=self.fast_render)
        else:
            self.world.update_scene(scene)
        self.world.step(self.settle_steps)
        self._mark_turn_only(report["objects"], estimate)
        summary = {
            "objects": report["objects"], "issues": report["issues"], "cameras_used": report["cameras_used"],
            "n_unknown": len(estimate.clutter), "n_obstacle_parts": len(estimate.unknown) - len(at_hand),
            "held": self.held_name, "last_seen_pose_used": stale,
            "timings_s": getattr(estimate, "timings_s", {}),
        }
        return self.world, summary

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

    def _carry_held(self, scene: SceneSpec, estimate: SceneEstimate, T_world_tcp: Pose, width_m: float) -> SceneSpec:
        """Decide which object the gripper holds and pin it to the hand (rigid grasp) in the twin."""
        seen = {n: o.pose for n, o in estimate.objects.items() if o.found}
        self.held, why = track_held(self.held, width_m, self.robot.gripper_max_width_m, T_world_tcp, seen)
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


def outline_symmetric(model: ObjectModel, pose: Pose, max_spread: float = OUTLINE_MAX) -> bool:
    """Whether the model at `pose`, seen from straight above, looks the same turned half-way round its centre (a
    can, a carton, a box lying flat): the largest radius from the centre in each of OUTLINE_BINS directions and
    in the opposite one differ by less than max_spread of their mean."""
    pts = model.geometry.points @ pose.rotation().T
    xy = pts[:, :2] - 0.5 * (pts[:, :2].min(axis=0) + pts[:, :2].max(axis=0))
    radius = np.linalg.norm(xy, axis=1)
    bins = ((np.arctan2(xy[:, 1], xy[:, 0]) + np.pi) / (2 * np.pi) * OUTLINE_BINS).astype(int) % OUTLINE_BINS
    outline = np.zeros(OUTLINE_BINS)
    np.maximum.at(outline, bins, radius)
    if np.any(outline <= 0.0):
        return False
    opposite = np.roll(outline, OUTLINE_BINS // 2)
    return bool(np.max(np.abs(outline - opposite)) / outline.mean() < max_spread)
