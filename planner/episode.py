"""One whole episode against the sim lab, and one reconstruction check: what `run`, `reconstruct` and `bench` share.

This is evaluation code: after the planner has finished, it asks the lab for truth (LabEvaluator) to judge
success and pose errors. The planner itself (MPCPlanner) never sees that channel.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from planner.batch_variants import PlannerVariant
from planner.components import PoolOptions, build_reconstructor, build_renderer, build_scorer
from planner.mpc import MPCConfig, MPCPlanner
from planner.report import write_report
from planner.reproduce import run_identity
from planner.runlog import RunLog
from planner.task import LoadedTask, load_task
from reconstruction.accuracy import object_pose_errors
from reconstruction.export import export_scene
from robot_io.errors import RobotError
from robot_io.libero.launcher import launch_any_lab
from robot_io.sim_robot import LabEvaluator, SimRobot
from sim.geometry import Pose

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    task: str
    seed: int
    success: bool | None     # the lab's verdict on its truth; None when the lab did not judge (see no_verdict)
    steps: int
    time_s: float
    scorer: str
    run_dir: str
    stage_time_s: dict
    error: str | None = None
    no_verdict: str | None = None   # why the lab gave no verdict (it died, never started, has no predicate)

    def summary(self) -> dict:
        out = {"task": self.task, "seed": self.seed, "success": self.success, "steps": self.steps,
               "time_s": round(self.time_s, 2), "scorer": self.scorer}
        if self.success is None:
            out["no_verdict"] = self.no_verdict
        return out


def run_task(task_path: str, seed: int = 0, scorer: str | None = None, out_dir: str = "runs",
             scoring_config: str | None = None, max_steps: int | None = None, n_candidates: int | None = None,
             on_step: Callable[[dict], None] | None = None, loaded: LoadedTask | None = None,
             pool: PoolOptions | None = None, fast_render: bool = True,
             variant: PlannerVariant | None = None) -> RunOutcome:
    """Run one episode in a fresh lab process; the result's success is the lab's verdict on its truth, or None
    with `no_verdict` saying why when the lab did not judge (it died or never started). The lab is asked even
    when the planner ended with an error: what the world looks like is still true.

    fast_render=False: TinyRenderer in the twin and the lab (the command line's ANTIGROUNDING_RENDERER=tiny).
    variant: a planner variant (planner/batch_variants.py): MPCConfig fields and the views, set on top."""
    loaded = loaded or load_task(task_path)
    task = loaded.planner
    scorer_obj, scorer_name = build_scorer(scoring_config, scorer, pool,
                                           views=variant.views if variant is not None else None)
    runlog = RunLog.create(out_dir, task.name, seed)
    cfg = MPCConfig(seed=seed, fast_render=fast_render)
    if n_candidates is not None:
        cfg = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, n_candidates=n_candidates))
    if variant is not None:
        cfg = variant.apply(cfg)
    runlog.write_header({"task": task.name, "task_path": task.path, "instruction": task.instruction, "seed": seed,
                         "scorer": scorer_name, "agents": [a.name for a in scorer_obj.agents],
                         "max_steps": max_steps or task.max_steps, "n_candidates": cfg.sampler.n_candidates,
                         "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                         **({"variant": variant.to_dict()} if variant is not None else {}),
                         "reproduce": run_identity(task, scorer_obj.config, seed, cfg, max_steps or task.max_steps)})
    start = time.perf_counter()
    error = None
    steps, stage = 0, {}
    success: bool | None = None
    no_verdict: str | None = "the lab did not start"
    try:
        with launch_any_lab(loaded.lab, seed, fast_render=fast_render,
                            log_path=os.path.join(runlog.path, "lab.log")) as lab:
            with run_errors() as end:
                reconstructor = end.close_later(build_reconstructor(task))
                with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
                    renderer = build_renderer(names=tuple(scorer_obj.config.views))
                    planner = end.close_later(MPCPlanner(task, robot, reconstructor, renderer, scorer_obj,
                                                         runlog, cfg, on_step=on_step))
                    result = planner.run(max_steps)
                    steps, stage, end.error = result.steps, result.stage_time_s, result.error
            error = end.error
            success, no_verdict = _lab_verdict(lab)
    except RobotError as exc:  # the lab did not start
        error = str(exc)
    finally:
        scorer_obj.close()
    elapsed = time.perf_counter() - start
    end_run(runlog, {"steps": steps, "lab_success": success, "no_verdict": no_verdict, "error": error,
                     "time_s": elapsed, "stage_time_s": stage})
    return RunOutcome(task.name, seed, success, steps, elapsed, scorer_name, runlog.path, stage, error, no_verdict)


@dataclass
class RunEnd:
    """What ended a run (`error`: None when the planner ran to its own end) and what to close when it has."""

    error: str | None = None
    to_close: list = dataclasses.field(default_factory=list)

    def close_later(self, obj):
        self.to_close.append(obj)
        return obj


@contextmanager
def run_errors(robot_label: str = "") -> Iterator[RunEnd]:
    """The end of every episode, in the lab or on an arm: a robot that failed (RobotError: a lost link, a
    protective stop) or a bug ends the run with `error` set instead of an exception, so that the run still gets
    its end record, report and verdict; what was registered with close_later is closed in any case, last first.
    robot_label: put in front of a robot's error (which arm said it)."""
    end = RunEnd()
    try:
        yield end
    except RobotError as exc:
        end.error = f"{robot_label}{exc}"
    except Exception as exc:  # a bug: the run still gets its end record and report
        log.exception("run failed")
        end.error = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        for obj in reversed(end.to_close):
            obj.close()


def end_run(runlog: RunLog, record: dict) -> None:
    """The run's end record, then the log closed and its report written."""
    runlog.append({"type": "end", **record})
    runlog.close()
    write_report(runlog.path)


def _lab_verdict(lab) -> tuple[bool | None, str | None]:
    """(the lab's verdict, None), or (None, why there is none): only a lab that answered has judged."""
    if lab.popen.poll() is not None:
        return None, f"the lab process ended (exit code {lab.popen.returncode}) before it could judge"
    try:
        judged = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth().get("success")
    except RobotError as exc:
        return None, f"the lab did not answer: {exc}"
    if judged is None:
        return None, "the task has no success predicate"
    return bool(judged), None


def reconstruct_once(task_path: str, seed: int = 0, loaded: LoadedTask | None = None,
                     export_dir: str | None = None, fast_render: bool = True) -> dict:
    """Observe the lab once, reconstruct, and compare with the lab's truth (evaluation only).

    export_dir: also write the estimated twin there (scene.json, URDFs + meshes, load_scene.py)."""
    loaded = loaded or load_task(task_path)
    task = loaded.planner
    with launch_any_lab(loaded.lab, seed, fast_render=fast_render) as lab:
        with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
            obs = robot.observe()
        with build_reconstructor(task) as reconstructor:
            start = time.perf_counter()
            estimate = reconstructor.update(obs)
            elapsed = time.perf_counter() - start
            exported = None
            if export_dir is not None:
                scene = estimate.to_scene(task.robot, obs.joint_pos_rad, obs.gripper_width_m, reconstructor.models)
                exported = export_scene(scene, export_dir, estimate)
        truth = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth()
    report = estimate.report()
    objects = []
    for name, asset in task.objects.items():
        est = estimate.objects.get(name)
        if est is None or not est.found:
            objects.append({"name": name, "found": False, "t_err_mm": None, "r_err_deg": None})
            continue
        found = {"name": name, "found": True, "t_err_mm": None, "r_err_deg": None,
                 "fitness": round(float(est.fitness), 3), "status": report["objects"][name]["status"],
                 "confidence": report["objects"][name]["confidence"]}
        if name not in truth["objects"]:   # a fixture LIBERO's lab reports no pose for (the wine rack)
            objects.append({**found, "xyz": [round(v, 4) for v in est.pose.xyz]})
            continue
        # up to the mesh's whole symmetry, as bench reconstruction counts it (a lying can's turns are no error)
        t_err, r_err = object_pose_errors(est.pose, Pose.from_dict(truth["objects"][name]), asset)
        objects.append({**found, "t_err_mm": round(t_err, 2), "r_err_deg": round(r_err, 2)})
    return {"objects": objects, "time_s": round(elapsed, 3), "n_unknown": len(estimate.clutter),
            "issues": report["issues"], "export": exported,
            "timings_s": {k: round(v, 3) for k, v in getattr(estimate, "timings_s", {}).items()}}
