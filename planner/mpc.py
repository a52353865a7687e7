"""The MPC loop: observe -> reconstruct the twin -> sample -> roll out -> render -> score -> execute -> log.

The loop sees the world only through a `Robot` (observations in, joint trajectories out). It never asks the
lab for truth; success during the run is the planner's own belief from its twin, and the lab's verdict is
taken afterwards by evaluation code (cli / bench).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from planner.components import physics_priors
from planner.errors import RunAborted
from planner.report import write_report
from planner.runlog import RunLog
from planner.sampler import AnnealedSampler, SamplerConfig
from planner.task import PlannerTask, Subtask
from planner.twin_view import twin_beside_camera_png
from reconstruction.identification import identify_objects, merge_priors
from render.renderer import Renderer
from robot_io.errors import ConnectionLostError, RobotError, SafetyRejected
from robot_io.observation import Observation
from robot_io.robot import Robot
from robot_io.trajectory import JointTrajectory
from scoring import CandidateEvidence, Scorer, ScoreRequest, ViewImage
from sim import predicates
from sim.geometry import Pose
from sim.rollout import Rollout
from sim.scene import ObjectSpec, SceneSpec
from sim.world import GRIPPER_OPEN_FRACTION, World

log = logging.getLogger(__name__)

HELD_MAX_DIST_M = 0.05       # a found object this close to a closed gripper's TCP is taken as held
HELD_MIN_WIDTH_M = 0.008     # a closed gripper wider than this has something between its fingers
HELD_SLIP_M = 0.03           # a held object seen farther than this from its place in the hand is not held
MAX_RELEASE_DROP_M = 0.04    # a release from higher than this is vetoed while another candidate is clean
MAX_SILENT_STEPS = 3           # consecutive steps in which no agent answered before the run is aborted
IDENTIFY_MIN_CONFIDENCE = 0.3  # fitted mass/friction below this confidence leave the catalog prior in the twin
HAND_CLEAR_RADIUS_M = 0.08   # unknown clusters centred this close to the TCP are taken as hand/held parts
LOOK_AGAIN_MAX = 2           # steps in a row the arm holds still to look again at an object it does not trust


@dataclass(frozen=True)
class MPCConfig:
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    speed_scale: float = 0.5          # fraction of each joint's speed limit used by planned paths
    settle_steps: int = 24            # physics steps to let the rebuilt twin settle before planning
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.speed_scale <= 1.0:
            raise ValueError(f"MPCConfig.speed_scale: expected a fraction in (0, 1], got {self.speed_scale!r}")
        if self.settle_steps < 0:
            raise ValueError(f"MPCConfig.settle_steps: expected >= 0, got {self.settle_steps!r}")


@dataclass(frozen=True)
class EpisodeResult:
    steps: int
    believed_success: bool
    time_s: float
    stage_time_s: dict[str, float]
    error: str | None = None


class MPCPlanner:
    """Runs one episode of a task on a robot. Components are passed in; nothing global."""

    def __init__(self, task: PlannerTask, robot: Robot, reconstructor, renderer: Renderer, scorer: Scorer,
                 runlog: RunLog, config: MPCConfig | None = None,
                 on_step: Callable[[dict], None] | None = None) -> None:
        self.task = task
        self.robot = robot
        self.reconstructor = reconstructor
        self.renderer = renderer
        self.scorer = scorer
        self.runlog = runlog
        self.config = config or MPCConfig()
        self.on_step = on_step
        spec = task.robot
        self.sampler = AnnealedSampler(self.config.sampler, spec.tcp_down, spec.workspace_min_xyz,
                                       spec.workspace_max_xyz, np.random.default_rng(self.config.seed))
        self.client = p.connect(p.DIRECT)
        self.world: World | None = None
        self.subtask_index = 0
        self.gripper_closed = False          # from the last observation's width, not from what was commanded
        self.held: str | None = None
        self.T_tcp_held: Pose | None = None
        self.stage_time_s: dict[str, float] = {}
        self.steps_done = 0
        self.priors = physics_priors(task)
        self._toggle_width_m: float | None = None   # gripper width before the last executed open/close
        self._last_seen: dict[str, Pose] = {}         # where each named object was last found
        self._looks = 0                               # steps in a row spent looking again (LOOK_AGAIN_MAX)

    def close(self) -> None:
        if self.world is not None:
            self.world.close()
        if self.client is not None and p.isConnected(self.client):
            p.disconnect(self.client)

    # ------------------------------------------------------------------ twin
    def _twin(self, obs: Observation) -> tuple[World, dict]:
        estimate = self.reconstructor.update(obs)
        scene = estimate.to_scene(self.task.robot, obs.joint_pos_rad, obs.gripper_width_m, self.reconstructor.models,
                                  self.priors)
        T_world_tcp = Pose.from_matrix(obs.T_world_tcp)
        # Unknown clusters at the hand are bits of the gripper or of what it holds that the robot filter and
        # the pose fit left over; as obstacles they would collide with every candidate.
        at_hand = {u.name for u in estimate.unknown
                   if np.linalg.norm(u.pose.position - T_world_tcp.position) < HAND_CLEAR_RADIUS_M}
        if at_hand:
            scene = dataclasses.replace(scene, objects=tuple(o for o in scene.objects if o.name not in at_hand))
        self._last_seen.update({n: o.pose for n, o in estimate.objects.items() if o.found})
        present = {o.name for o in scene.objects}
        stale = [n for n in self.task.objects if n not in present and n in self._last_seen]
        # not found this step (occluded, or a poor match): keep it where it was last seen
        scene = dataclasses.replace(scene, objects=scene.objects + tuple(
            self._object_spec(n, self._last_seen[n]) for n in stale))
        scene = self._track_held(scene, estimate, T_world_tcp, obs.gripper_width_m)
        if self.world is None:
            self.world = World.from_scene(self.client, scene, fast_render=True)
        else:
            self.world.update_scene(scene)
        self.world.step(self.config.settle_steps)
        report = estimate.report()
        summary = {
            "objects": report["objects"], "issues": report["issues"], "cameras_used": report["cameras_used"],
            "n_unknown": len(estimate.clutter), "n_obstacle_parts": len(estimate.unknown) - len(at_hand),
            "held": self.held, "last_seen_pose_used": stale, "timings_s": getattr(estimate, "timings_s", {}),
        }
        return self.world, summary

    def _track_held(self, scene: SceneSpec, estimate, T_world_tcp: Pose, width_m: float) -> SceneSpec:
        """Decide which object the gripper holds and pin it to the hand (rigid grasp) in the twin."""
        holding = self.gripper_closed and width_m > HELD_MIN_WIDTH_M
        if not holding:
            self.held, self.T_tcp_held = None, None
            return dataclasses.replace(scene, grasped=None)
        if self.held is None:
            near = [(np.linalg.norm(o.pose.position - T_world_tcp.position), n)
                    for n, o in estimate.objects.items() if o.found]
            near = [x for x in near if x[0] < HELD_MAX_DIST_M]
            if not near:
                return dataclasses.replace(scene, grasped=None)
            self.held = min(near)[1]
            self.T_tcp_held = T_world_tcp.inverse() @ estimate.objects[self.held].pose
        pose = T_world_tcp @ self.T_tcp_held
        seen = estimate.objects.get(self.held)
        if seen is not None and seen.found and np.linalg.norm(seen.pose.position - pose.position) > HELD_SLIP_M:
            # the cameras see it elsewhere than in the hand: it slipped or was never held
            log.info("%s is seen %.0f mm from where the hand would carry it: not held", self.held,
                     1000 * np.linalg.norm(seen.pose.position - pose.position))
            self.held, self.T_tcp_held = None, None
            return dataclasses.replace(scene, grasped=None)
        objects = tuple(dataclasses.replace(o, pose=pose) if o.name == self.held else o for o in scene.objects)
        if self.held not in {o.name for o in objects}:
            # not seen this step (hidden by the fingers): keep it where the hand carries it
            objects = objects + (self._object_spec(self.held, pose),)
        return dataclasses.replace(scene, objects=objects, grasped=self.held)

    def _object_spec(self, name: str, pose: Pose) -> ObjectSpec:
        """A named object of the task as the twin models it: catalog model and physics prior at `pose`."""
        asset, prior = self.task.objects[name], self.priors[name]
        return ObjectSpec(name, pose, urdf=asset.urdf, scale=asset.scale, rgba=asset.rgba, symmetry=asset.symmetry,
                          mass_kg=prior["mass_kg"], friction=prior["friction"], fixed=prior["fixed"])

    # ------------------------------------------------------------------ one step
    def _subtask(self, world: World) -> tuple[Subtask, bool]:
        """Advance past finished subtasks; returns the current one and whether it changed."""
        changed = False
        while self.subtask_index < len(self.task.subtasks) and predicates.evaluate(
                world, self.task.subtasks[self.subtask_index].done):
            self.subtask_index += 1
            changed = True
        if self.subtask_index < len(self.task.subtasks):
            return self.task.subtasks[self.subtask_index], changed
        return Subtask(self.task.instruction, self.task.success), changed

    def step(self, k: int) -> dict:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        obs = self.robot.observe()
        timings["observe"] = time.perf_counter() - t0

        self.gripper_closed = obs.gripper_width_m < GRIPPER_OPEN_FRACTION * self.task.robot.gripper_max_width_m
        t0 = time.perf_counter()
        world, recon = self._twin(obs)
        timings["reconstruct"] = time.perf_counter() - t0

        if predicates.evaluate(world, self.task.success):
            # Believe success only when a second, fresh observation shows it too: one reconstruction can be
            # wrong, and stopping early on a wrong belief ends the run.
            t0 = time.perf_counter()
            world, recon = self._twin(self.robot.observe())
            timings["confirm"] = time.perf_counter() - t0
            if predicates.evaluate(world, self.task.success):
                return {"type": "step", "step": k, "done": True, "timings_s": timings, "reconstruction": recon}
            recon["note"] = "a first observation showed the task done; a second did not"
        subtask, changed = self._subtask(world)
        if changed:
            self.sampler.reset()
        # Never reach for an object whose pose the reconstruction does not trust: look again (a new observation)
        # up to LOOK_AGAIN_MAX steps in a row; then go ahead, and say so.
        target = subtask.done.get("grasped") if isinstance(subtask.done, dict) else None
        status = recon.get("objects", {}).get(target, {}).get("status") if target else None
        if status in ("low_confidence", "missing") and not self.gripper_closed:
            self._looks += 1
            if self._looks <= LOOK_AGAIN_MAX:
                return {"type": "step", "step": k, "done": False, "subtask_index": self.subtask_index,
                        "subtask": subtask.say, "reconstruction": recon, "chosen": None, "timings_s": timings,
                        "hold_reason": f"look again: the pose of '{target}' is not trusted ({status})"}
            recon["note"] = f"'{target}' still {status} after {LOOK_AGAIN_MAX} looks; going ahead"
        else:
            self._looks = 0

        t0 = time.perf_counter()
        tcp = world.tcp_pose()
        # A gripper command that changed nothing (the lab and the twin disagree about it) must not be
        # repeated in place: without this the loop can toggle at one spot until max_steps.
        stalled = self._toggle_width_m is not None and abs(obs.gripper_width_m - self._toggle_width_m) < 0.002
        self._toggle_width_m = None
        candidates = self.sampler.propose(tcp, gripper_open=not self.gripper_closed, stay=not stalled)
        allowed = frozenset(predicates.objects_of(subtask.done))
        success = self.task.success

        def probe(w: World) -> dict:
            return {"progress": predicates.progress(w, subtask.done), "done": predicates.evaluate(w, subtask.done),
                    "success": predicates.evaluate(w, success)}

        rollouts = [world.rollout(c, allowed, speed_scale=self.config.speed_scale, probe=probe) for c in candidates]
        timings["sample_rollout"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rendered = self.renderer.render(world, rollouts)
        timings["render"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        request = ScoreRequest(
            instruction=self.task.instruction, subtask=subtask.say,
            candidate_ids=tuple(r.candidate.id for r in rollouts),
            views=tuple(ViewImage(v.name, v.png, v.rgb.shape[1], v.rgb.shape[0], v.endpoints_px) for v in rendered),
            evidence={r.candidate.id: _evidence(r) for r in rollouts})
        table = self.scorer.score(request)
        timings["score"] = time.perf_counter() - t0

        # The twin's own verdicts veto before any score counts: a candidate that collides, knocks something
        # over or drops what it holds from height is not sent while a clean one exists.
        feasible = [r.candidate.id for r in rollouts if r.feasible]
        clean = [r.candidate.id for r in rollouts if r.feasible and _clean(r)]
        chosen = table.best(clean)
        if chosen is None:
            chosen = table.best(feasible)
        record = {"type": "step", "step": k, "done": False, "subtask_index": self.subtask_index,
                  "subtask": subtask.say, "t": self.sampler.t, "radius_m": self.config.sampler.radius_m(self.sampler.t),
                  "reconstruction": recon, "backends": sorted({c.backend for c in table.calls}),
                  "M_prime": table.M_prime, "view_confidence": table.view_confidence,
                  "scores": table.to_dict(), "chosen": chosen, "score_cache_hit_rate": table.cache_hit_rate,
                  "tcp_xyz": list(tcp.xyz), "gripper_width_m": obs.gripper_width_m,
                  "note": "the last gripper command changed nothing: no stay-and-toggle candidate" if stalled else ""}
        record["images"] = {v.name: self.runlog.save_image(k, v.name, v.png) for v in rendered}
        t0 = time.perf_counter()
        record["twin_view"] = self.runlog.save_image(k, "twin_vs_camera", twin_beside_camera_png(world, obs.frames[0]))
        timings["render"] += time.perf_counter() - t0   # the twin through camera 0, for the report
        record["candidates"] = [_candidate_row(r, table) for r in rollouts]

        t0 = time.perf_counter()
        if chosen is None:
            record["hold_reason"] = table.error or "no feasible candidate was scored"
            log.warning("step %d: holding still: %s", k, record["hold_reason"])
        else:
            roll = next(r for r in rollouts if r.candidate.id == chosen)
            traj = JointTrajectory(roll.joint_path_rad, roll.gripper_width_m, roll.dt_s)
            try:
                report = self.robot.execute(traj)
            except SafetyRejected as exc:
                record["hold_reason"] = f"safety envelope rejected the trajectory: {exc}"
                record["chosen"] = None
            else:
                record["execute"] = {"completed": report.completed, "stopped_reason": report.stopped_reason,
                                     "notes": list(report.notes), "waypoints_sent": len(report.sent.joint_pos_rad)}
                self.sampler.remember(tcp, candidates, table.S)
                if roll.candidate.gripper != "keep":
                    self._toggle_width_m = obs.gripper_width_m
        timings["execute"] = time.perf_counter() - t0
        self.sampler.advance()
        record["timings_s"] = timings
        return record

    # ------------------------------------------------------------------ episode
    def identify(self) -> dict:
        """Probe the task's `identify:` objects once (mass, friction) and give the twin the fitted values.

        A miss or a low-confidence fit keeps the catalog prior; either way the record says what happened.
        """
        estimates = identify_objects(self.robot, self.reconstructor, self.task.identify)
        self.priors = merge_priors(self.priors, estimates, min_confidence=IDENTIFY_MIN_CONFIDENCE)
        record = {"type": "identification", "min_confidence": IDENTIFY_MIN_CONFIDENCE,
                  "objects": {n: e.to_dict() for n, e in estimates.items()},
                  "twin_physics": {n: self.priors[n] for n in estimates if n in self.priors}}
        self.runlog.append(record)
        return record

    def run(self, max_steps: int | None = None) -> EpisodeResult:
        max_steps = max_steps or self.task.max_steps
        start = time.perf_counter()
        believed = False
        silent = 0   # consecutive steps without one valid agent answer: a dead backend, a bad key, a wrong URL
        try:
            if self.task.identify:
                self.identify()
            for k in range(max_steps):
                record = self.step(k)
                for key, v in record.get("timings_s", {}).items():
                    self.stage_time_s[key] = self.stage_time_s.get(key, 0.0) + v
                if record.get("done"):
                    believed = True
                    self.runlog.append({"type": "event", "step": k,
                                        "message": f"step {k}: the twin shows the task done; stopping"})
                    break
                self.runlog.append(record)
                write_report(self.runlog.path)   # readable while running and after a kill
                self.steps_done += 1
                if self.on_step is not None:
                    self.on_step(record)
                silent = silent + 1 if record.get("M_prime") == 0 else 0
                if silent >= MAX_SILENT_STEPS:
                    msg = (f"no agent answered in {silent} steps in a row; the arm held still. Last: "
                           f"{record.get('hold_reason')}")
                    self.runlog.append({"type": "event", "step": k, "message": msg})
                    raise RunAborted(msg)
        except RunAborted:
            raise
        except ConnectionLostError as exc:
            msg = f"robot connection lost at step {self.steps_done}: {exc}"
            self.runlog.append({"type": "event", "step": self.steps_done, "message": msg})
            raise RunAborted(msg) from exc
        except RobotError as exc:
            msg = f"robot error at step {self.steps_done}: {exc}"
            self.runlog.append({"type": "event", "step": self.steps_done, "message": msg})
            raise RunAborted(msg) from exc
        except Exception as exc:
            # A bug must not leave a run without its story: log it, leave the arm where it is, end the run.
            log.exception("internal error at step %d", self.steps_done)
            msg = f"internal error at step {self.steps_done}: {type(exc).__name__}: {exc}"
            self.runlog.append({"type": "event", "step": self.steps_done, "message": msg})
            with contextlib.suppress(RobotError):
                self.robot.stop()
            raise RunAborted(msg) from exc
        return EpisodeResult(self.steps_done, believed, time.perf_counter() - start, dict(self.stage_time_s))


def _collisions(r: Rollout) -> int:
    """Unexpected contacts plus objects knocked out of place, as the twin saw them."""
    return len(r.contacts) + len(r.disturbed)


def _clean(r: Rollout) -> bool:
    return _collisions(r) == 0 and r.release_drop_m <= MAX_RELEASE_DROP_M


def _evidence(r: Rollout) -> CandidateEvidence:
    return CandidateEvidence(
        id=r.candidate.id, feasible=r.feasible, collisions=_collisions(r),
        min_clearance_m=r.min_clearance_m, joint_limit_margin_rad=r.joint_limit_margin_rad,
        ik_error_m=r.ik_error_m, path_length_m=r.path_length_m, duration_s=r.duration_s,
        progress=float(r.probe.get("progress", 0.0)), subtask_done=bool(r.probe.get("done", False)),
        task_success=bool(r.probe.get("success", False)), gripper=r.candidate.gripper,
        drop_height_m=r.release_drop_m)


def _candidate_row(r: Rollout, table) -> dict:
    cid = r.candidate.id
    dims: dict[str, list[float]] = {}
    for call in table.calls:
        if call.parsed is None:
            continue
        for c in call.parsed.get("candidates", []):
            if c.get("id") == cid:
                for d in ("safety", "task_alignment", "efficiency", "feasibility"):
                    dims.setdefault(d, []).append(float(c[d]))
    return {"id": cid, "S": table.S.get(cid), "gripper": r.candidate.gripper, "label": r.candidate.label,
            "goal_xyz": list(r.candidate.goal.xyz), "feasible": r.feasible,
            "reason": r.reason or ("" if _clean(r) else "twin: collision or high release, vetoed"),
            "collisions": _collisions(r), "clean": _clean(r),
            "contacts": [f"{c.a}-{c.b}" for c in r.contacts], "disturbed": list(r.disturbed),
            "progress": r.probe.get("progress"), "path_length_m": r.path_length_m, "drop_m": r.release_drop_m,
            "mean_scores": {d: float(np.mean(v)) for d, v in dims.items()}}
