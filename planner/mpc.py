"""The MPC loop: observe -> reconstruct the twin -> sample -> roll out -> render -> score -> execute -> log.

The loop sees the world only through a `Robot` (observations in, joint trajectories out). It never asks the
lab for truth; success during the run is the planner's own belief from its twin, and the lab's verdict is
taken afterwards by evaluation code (cli / bench). Its parts live beside it: the twin (`twin_tracker`), the
choice among candidates (`candidates`), the step record (`step_record`) and the identification probe (`probe`);
`twin_tracker.LookAgain` holds the arm still to look again at an object whose pose the twin does not trust.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pybullet as p

from planner.candidates import choose, into_container, reference_objects, score_request
from planner.components import object_models
from planner.diagnosis import (
    Failure,
    Prediction,
    ProgressWatch,
    diagnose,
    empty_gripper,
    failure_marks,
    needs_regrasp,
    no_progress,
)
from planner.errors import RunAborted
from planner.grasps import fit_twin_fingers
from planner.probe import identify_objects
from planner.report import write_report
from planner.rotation import RotationModule
from planner.runlog import RunLog
from planner.sampler import AnnealedSampler, SamplerConfig
from planner.step_record import candidate_row, failure_record, look_again_record, step_record
from planner.task import PlannerTask, Subtask
from planner.twin_tracker import LOOK_AGAIN_MAX, LookAgain, TwinTracker
from planner.twin_view import camera_spec_of, twin_beside_camera_png
from reconstruction.identification import with_identified_physics
from render.failure_view import failure_png, symbols_of
from render.renderer import Renderer
from robot_io.errors import ConnectionLostError, RobotError, SafetyRejected
from robot_io.robot import Robot
from robot_io.trajectory import JointTrajectory
from scoring import Scorer
from scoring.failure import FailureQuestion, ask_agents
from sim import predicates
from sim.bodies import link_T_com
from sim.geometry import Pose
from sim.grasp import ExpectedHold, Held, gripper_closed
from sim.world import World

log = logging.getLogger(__name__)

MAX_SILENT_STEPS = 3           # consecutive steps in which no agent answered before the run is aborted
IDENTIFY_MIN_CONFIDENCE = 0.3  # fitted mass/friction below this confidence leave the catalog prior in the twin
STALL_WIDTH_M = 0.002          # a gripper command that moved the fingers less than this changed nothing


def put_back_let_go(world: World, recon: dict, let_go: dict[str, Pose], held: str | None) -> list[str]:
    """Objects the hand let go of where the twin showed the subtask or the task done (let_go_pose), and that the
    cameras now miss or fit poorly (a flat box hidden in a basket; its name then fitted onto another object 0.5 m
    away), stay in the twin where the rollout left them, until a confident fit or the hand takes them again.
    Forgets those in `let_go` (name -> pose) that are seen again; returns the names put back."""
    objects = recon.get("objects", {})
    used = []
    for name, pose in list(let_go.items()):
        if objects.get(name, {}).get("status") == "ok" or name == held or not world.has_object(name):
            del let_go[name]
            continue
        body = world.body_ids[name]
        com = pose @ link_T_com(world.client, body)
        p.resetBasePositionAndOrientation(body, com.xyz, com.quat_xyzw, physicsClientId=world.client)
        p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=world.client)
        used.append(name)
    if used:
        recon["let_go_pose_used"] = used
    return used


def let_go_pose(roll, held: str | None) -> Pose | None:
    """Where the held object rests after a rollout (sim.rollout.Rollout) that let go of it, when the twin's end
    state shows the subtask done or the task's success there; else None. The success counts too: LIBERO's bowl
    set on its plate nests in the dish, 18 mm below the rim's box, where the subtask's plain on_top never holds
    and only the success's nested rule sees it set down (libero_task.nested_on_top). Without it every release on
    the plate read as 'released away': the hand, still over the bowl, hid it, the twin put it back where it was
    last carried, and the loop took it off the plate again (LIBERO-Spatial 0@2, 4@4)."""
    if held is None or roll.candidate.gripper != "open" or roll.grasped_after is not None:
        return None
    if not (roll.probe.get("done") or roll.probe.get("success")):
        return None
    return roll.object_poses_after.get(held)


def untrusted_for_success(recon: dict, names: set[str]) -> list[str]:
    """The objects a success predicate names whose pose this observation does not trust: fitted with low
    confidence or missing, and not put back where the hand let them go (put_back_let_go). A low-confidence fit
    of a book inside the caddy is no evidence that the book is there (LIBERO-10 task 5 stopped on one)."""
    objects, put_back = recon.get("objects", {}), set(recon.get("let_go_pose_used", ()))
    return sorted(n for n in names if n in objects and objects[n].get("status") != "ok" and n not in put_back)


def expected_hold(roll) -> ExpectedHold | None:
    """What a rollout (sim.rollout.Rollout) left in the twin's hand, for the tracker's next look."""
    name = roll.grasped_after
    if name is None or name not in roll.object_poses_after:
        return None
    return ExpectedHold(Held(name, roll.ee_end_pose.inverse() @ roll.object_poses_after[name]), roll.gripper_after_m)


def _png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


@dataclass(frozen=True)
class MPCConfig:
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    speed_scale: float = 0.5          # fraction of each joint's speed limit used by planned paths
    settle_steps: int = 24            # physics steps to let the rebuilt twin settle before planning
    seed: int = 0
    fast_render: bool = True          # EGL for the twin when available (the command line may force TinyRenderer)
    anchored_proposals: bool = True   # grasps / placements / pushes join the ball (False: the ball alone, ablation)
    failure_recovery: bool = True     # act on diagnosed failures (rewind, re-anneal); False: only log them (ablation)
    rotation_module: bool = True      # ablation switch: the rigid-coupled rotation module (planner/rotation.py)

    def __post_init__(self) -> None:
        if not 0.0 < self.speed_scale <= 1.0:
            raise ValueError(f"MPCConfig.speed_scale: expected a fraction in (0, 1], got {self.speed_scale!r}")
        if self.settle_steps < 0:
            raise ValueError(f"MPCConfig.settle_steps: expected >= 0, got {self.settle_steps!r}")


@dataclass(frozen=True)
class EpisodeResult:
    """How an episode ended: steps logged, whether the twin believed the task done, time per stage; error: why
    it was aborted (None when it ran to success or max_steps)."""

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
        self.renderer = renderer
        self.scorer = scorer
        self.runlog = runlog
        self.config = config or MPCConfig()
        self.on_step = on_step
        spec = task.robot
        self.sampler = AnnealedSampler(self.config.sampler, spec.tcp_down, spec.workspace_min_xyz,
                                       spec.workspace_max_xyz, np.random.default_rng(self.config.seed))
        self.twin = TwinTracker(spec, reconstructor, object_models(task), self.config.settle_steps,
                                self.config.fast_render, start_hints=task.start_hints)
        self.reconstructor = reconstructor
        self.subtask_index = 0
        self._toggle_width_m: float | None = None   # gripper width before the last executed open/close
        self.look_again = LookAgain()
        self.success_look = LookAgain()   # at a success the twin shows on doubtful fits
        self._prediction: Prediction | None = None   # the twin's prediction for the last executed step
        self._expected_hold: ExpectedHold | None = None   # what the executed rollout left in the hand
        self._let_go: dict[str, Pose] = {}   # objects let go where the twin showed the goal reached (let_go_pose)
        self.progress_watch = ProgressWatch()
        self.rotation = RotationModule(task.instruction, renderer, scorer, np.random.default_rng(
            self.config.seed + 1), runlog.save_image) if self.config.rotation_module else None

    def close(self) -> None:
        self.twin.close()

    def _subtask(self, world: World) -> tuple[Subtask, bool]:
        """Advance past finished subtasks; returns the current one and whether it changed."""
        changed = False
        while self.subtask_index < len(self.task.subtasks) and predicates.evaluate(
                world, self.task.subtasks[self.subtask_index].done, predicates.PLAN_INSIDE_MARGIN):
            self.subtask_index += 1
            changed = True
        if self.subtask_index < len(self.task.subtasks):
            return self.task.subtasks[self.subtask_index], changed
        return Subtask(self.task.instruction, self.task.success), changed

    def _diagnose_and_recover(self, k: int, world: World, obs, recon: dict, closed: bool
                              ) -> tuple[Subtask, bool, dict | None]:
        """Compare the last step's prediction with this observation, type a failure, and (failure_recovery) send
        the plan back to the subtask to redo. Returns the current subtask, whether it changed or the annealing
        must restart, and the failure's record (None: no failure)."""
        subtasks, held = self.task.subtasks, self.twin.held_name
        pred, self._prediction = self._prediction, None
        failure: Failure | None = None
        if pred is not None and pred.subtask_index < len(subtasks):
            failure = diagnose(pred, world, held, recon, subtasks, closed, self.progress_watch.stale)
        before = self.subtask_index
        subtask, changed = self._subtask(world)
        if failure is None and self.subtask_index < len(subtasks):
            stuck = self.progress_watch.update(self.subtask_index, predicates.progress(world, subtask.done))
            if stuck:
                failure = no_progress(k - 1, self.subtask_index, subtasks, world, held, closed,
                                      self.progress_watch.stale)
                self.progress_watch.reset(self.subtask_index)
        regrasp = needs_regrasp(subtasks, self.subtask_index, held, world)
        if failure is None and regrasp is not None:
            failure = empty_gripper(k - 1, self.subtask_index, regrasp, subtasks, world, held, closed)
        if failure is None:
            return subtask, changed, None
        redo = failure.redo_subtask if regrasp is None else min(failure.redo_subtask, regrasp)
        if failure.evidence.subtask_done_observed and regrasp is None:
            redo = self.subtask_index   # e.g. dropped right onto the goal: nothing to redo
        acted = self.config.failure_recovery
        if acted:
            self.subtask_index = min(redo, self.subtask_index)
            subtask, _ = self._subtask(world)
            self.progress_watch.reset(self.subtask_index)
            changed = True   # a failure restarts the annealing, whether or not the subtask changed
        redo_say = subtasks[redo].say if redo < len(subtasks) else self.task.instruction
        marks = failure_marks(failure, redo_say)
        png = failure_png(world, camera_spec_of(obs.frames[0]), marks)
        question = FailureQuestion(self.task.instruction, tuple(s.say for s in subtasks),
                                   failure.evidence.subtask_index, png, *_png_size(png), failure.evidence,
                                   symbols_of(marks))
        agents = ask_agents(self.scorer.agents, self.scorer.backends, question) \
            if acted and hasattr(self.scorer, "agents") else []
        record = failure_record(failure, acted, before, self.subtask_index, redo_say, question.symbols,
                                self.runlog.save_image(k, "failure", png), agents)
        log.warning("step %d: failure %s: %s%s", k, failure.type, failure.message,
                    f"; back to subtask {self.subtask_index}" if acted else " (recovery off)")
        return subtask, changed, record

    def _success_doubt(self, recon: dict) -> str | None:
        """The hold reason when the twin shows the task done on fits it does not trust: look again (up to
        LOOK_AGAIN_MAX steps in a row), then believe it and say so in recon's note."""
        doubtful = untrusted_for_success(recon, predicates.objects_of(self.task.success))
        if not doubtful:
            return None
        return self.success_look.spend(
            recon, f"look again: the twin shows the task done, but the poses of {doubtful} are not trusted",
            f"the twin shows the task done; {doubtful} still not trusted after {LOOK_AGAIN_MAX} looks")

    def step(self, k: int) -> dict:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        obs = self.robot.observe()
        timings["observe"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        world, recon = self.twin.update(obs, self._expected_hold)
        self._expected_hold = None
        fit_twin_fingers(world)
        put_back_let_go(world, recon, self._let_go, self.twin.held_name)
        timings["reconstruct"] = time.perf_counter() - t0

        if predicates.evaluate(world, self.task.success, predicates.PLAN_INSIDE_MARGIN):
            doubt = self._success_doubt(recon)
            if doubt is not None:
                return look_again_record(k, self.subtask_index, self.task.instruction, recon, doubt, timings)
            # Believe success only when a second, fresh observation shows it too: one reconstruction can be
            # wrong, and stopping early on a wrong belief ends the run.
            t0 = time.perf_counter()
            world, recon = self.twin.update(self.robot.observe())
            fit_twin_fingers(world)
            put_back_let_go(world, recon, self._let_go, self.twin.held_name)
            timings["confirm"] = time.perf_counter() - t0
            shown = predicates.evaluate(world, self.task.success, predicates.PLAN_INSIDE_MARGIN)
            doubt = self._success_doubt(recon) if shown else None
            if shown and doubt is None:
                return {"type": "step", "step": k, "done": True, "timings_s": timings, "reconstruction": recon}
            recon["note"] = doubt or "a first observation showed the task done; a second did not"
        else:
            self.success_look.looks = 0
        closed = gripper_closed(obs.gripper_width_m, self.task.robot.gripper_max_width_m)
        t0 = time.perf_counter()
        subtask, changed, failure = self._diagnose_and_recover(k, world, obs, recon, closed)
        timings["diagnose"] = time.perf_counter() - t0
        if changed:
            self.sampler.reset()
        target = subtask.done.get("grasped") if isinstance(subtask.done, dict) else None
        look = self.look_again.check(target, recon, closed)
        if look is not None:
            record = look_again_record(k, self.subtask_index, subtask.say, recon, look, timings)
            if failure is not None:
                record["failure"] = failure
            return record

        t0 = time.perf_counter()
        tcp = world.tcp_pose()
        # A gripper command that changed nothing (the lab and the twin disagree about it) must not be
        # repeated in place: without this the loop can toggle at one spot until max_steps.
        stalled = self._toggle_width_m is not None and abs(obs.gripper_width_m - self._toggle_width_m) < STALL_WIDTH_M
        self._toggle_width_m = None
        candidates = self.sampler.propose(tcp, gripper_open=not closed, stay=not stalled,
                                          world=world if self.config.anchored_proposals else None, goal=subtask.done)
        rotation = None
        if self.rotation is not None:   # tilts and rolls that carry the agents' answer to the rotation question
            candidates, rotation = self.rotation.extend(k, world, subtask, candidates, not closed)
        allowed = frozenset(predicates.objects_of(subtask.done))
        success = self.task.success
        margin = predicates.PLAN_INSIDE_MARGIN
        still = {n: world.object_pose(n).position for n in reference_objects(subtask.done) if world.has_object(n)}

        def probe(w: World) -> dict:
            pushed = max((float(np.linalg.norm(w.object_pose(n).position - xyz)) for n, xyz in still.items()),
                         default=0.0)
            return {"progress": predicates.progress(w, subtask.done, margin),
                    "done": predicates.evaluate(w, subtask.done, margin),
                    "success": predicates.evaluate(w, success, margin), "pushed_m": pushed}

        rollouts = [world.rollout(c, allowed, speed_scale=self.config.speed_scale, probe=probe) for c in candidates]
        timings["sample_rollout"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        rendered = self.renderer.render(world, rollouts)
        timings["render"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        request = score_request(self.task.instruction, subtask.say, rollouts, rendered)
        table = self.scorer.score(request)
        timings["score"] = time.perf_counter() - t0

        chosen = choose(rollouts, table, into_container(subtask.done))
        record = step_record(k, self.subtask_index, subtask.say, self.sampler.t,
                             self.config.sampler.radius_m(self.sampler.t), recon, table, chosen, tcp,
                             obs.gripper_width_m, stalled)
        record["images"] = {v.name: self.runlog.save_image(k, v.name, v.png) for v in rendered}
        t0 = time.perf_counter()
        record["twin_view"] = self.runlog.save_image(k, "twin_vs_camera", twin_beside_camera_png(world, obs.frames[0]))
        timings["render"] += time.perf_counter() - t0   # the twin through camera 0, for the report
        record["candidates"] = [candidate_row(r, table) for r in rollouts]
        if rotation is not None:
            record["rotation"] = rotation
        record["request"] = request.to_dict()   # evidence and drawn end points: replay re-asks any backend
        record["progress_now"] = predicates.progress(world, subtask.done, margin)   # what a candidate must beat
        if failure is not None:
            record["failure"] = failure

        t0 = time.perf_counter()
        if chosen is None:
            record["hold_reason"] = table.error or "no feasible candidate was scored"
            log.warning("step %d: holding still: %s", k, record["hold_reason"])
        else:
            roll = next(r for r in rollouts if r.candidate.id == chosen)
            try:
                report = self.robot.execute(JointTrajectory.from_rollout(roll))
            except SafetyRejected as exc:
                record["hold_reason"] = f"safety envelope rejected the trajectory: {exc}"
                record["chosen"] = None
            else:
                record["execute"] = {"completed": report.completed, "stopped_reason": report.stopped_reason,
                                     "notes": list(report.notes), "waypoints_sent": len(report.sent.joint_pos_rad)}
                self.sampler.remember(tcp, candidates, table.S)
                self._prediction = Prediction.of(k, self.subtask_index, world, self.twin.held_name, roll)
                self._expected_hold = expected_hold(roll)
                let_go = let_go_pose(roll, self.twin.held_name)
                if let_go is not None:
                    self._let_go[self.twin.held_name] = let_go
                if roll.candidate.gripper != "keep":
                    self._toggle_width_m = obs.gripper_width_m
        timings["execute"] = time.perf_counter() - t0
        self.sampler.advance()
        record["timings_s"] = timings
        return record

    def identify(self) -> dict:
        """Probe the task's `identify:` objects once (mass, friction) and give the twin the fitted values.

        A miss or a low-confidence fit keeps the catalog prior; either way the record says what happened.
        """
        estimates = identify_objects(self.robot, self.reconstructor, self.task.identify)
        self.twin.models = with_identified_physics(self.twin.models, estimates, IDENTIFY_MIN_CONFIDENCE)
        record = {"type": "identification", "min_confidence": IDENTIFY_MIN_CONFIDENCE,
                  "objects": {n: e.to_dict() for n, e in estimates.items()},
                  "twin_physics": {n: self.twin.models[n].physics() for n in estimates if n in self.twin.models}}
        self.runlog.append(record)
        return record

    def run(self, max_steps: int | None = None) -> EpisodeResult:
        """Identify (if the task asks), then step until the twin believes the task done or max_steps. An abort
        (the robot lost, no agent answering, a bug) is logged and ends the run: the result carries it in error."""
        max_steps = max_steps or self.task.max_steps
        start = time.perf_counter()
        believed, steps, stage = False, 0, {}
        silent = 0   # consecutive steps without one valid agent answer: a dead backend, a bad key, a wrong URL

        def result(error: str | None = None) -> EpisodeResult:
            return EpisodeResult(steps, believed, time.perf_counter() - start, dict(stage), error)

        try:
            if self.task.identify:
                self.identify()
            for k in range(max_steps):
                record = self.step(k)
                for key, v in record.get("timings_s", {}).items():
                    stage[key] = stage.get(key, 0.0) + v
                if record.get("done"):
                    believed = True
                    # with what the twin saw: a success the lab denies is traced from here
                    self.runlog.append({"type": "event", "step": k,
                                        "message": f"step {k}: the twin shows the task done; stopping",
                                        "reconstruction": record.get("reconstruction")})
                    break
                self.runlog.append(record)
                write_report(self.runlog.path)   # readable while running and after a kill
                steps += 1
                if self.on_step is not None:
                    self.on_step(record)
                silent = silent + 1 if record.get("M_prime") == 0 else 0
                if silent >= MAX_SILENT_STEPS:
                    raise RunAborted(f"no agent answered in {silent} steps in a row; the arm held still. Last: "
                                     f"{record.get('hold_reason')}")
        except RunAborted as exc:
            msg, step = str(exc), steps - 1
        except ConnectionLostError as exc:
            msg, step = f"robot connection lost at step {steps}: {exc}", steps
        except RobotError as exc:
            msg, step = f"robot error at step {steps}: {exc}", steps
        except Exception as exc:
            # A bug must not leave a run without its story: log it, leave the arm where it is, end the run.
            log.exception("internal error at step %d", steps)
            msg, step = f"internal error at step {steps}: {type(exc).__name__}: {exc}", steps
            with contextlib.suppress(RobotError):
                self.robot.stop()
        else:
            return result()
        self.runlog.append({"type": "event", "step": step, "message": msg})
        return result(msg)
