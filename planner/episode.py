"""One whole episode against the sim lab, and one reconstruction check: what `run`, `reconstruct` and `bench` share.

This is evaluation code: after the planner has finished, it asks the lab for truth (LabEvaluator) to judge
success and pose errors. The planner itself (MPCPlanner) never sees that channel.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from planner.components import PoolOptions, build_reconstructor, build_renderer, build_scorer, physics_priors
from planner.errors import RunAborted
from planner.mpc import MPCConfig, MPCPlanner
from planner.report import write_report
from planner.runlog import RunLog
from planner.task import LoadedTask, load_task
from reconstruction.export import export_scene
from robot_io.errors import RobotError
from robot_io.libero.launcher import launch_any_lab
from robot_io.sim_robot import LabEvaluator, SimRobot
from sim.geometry import Pose, rotation_error_deg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    task: str
    seed: int
    success: bool
    steps: int
    time_s: float
    scorer: str
    run_dir: str
    stage_time_s: dict
    error: str | None = None

    def summary(self) -> dict:
        return {"task": self.task, "seed": self.seed, "success": self.success, "steps": self.steps,
                "time_s": round(self.time_s, 2), "scorer": self.scorer}


def run_task(task_path: str, seed: int = 0, scorer: str | None = None, out_dir: str = "runs",
             scoring_config: str | None = None, max_steps: int | None = None, n_candidates: int | None = None,
             on_step: Callable[[dict], None] | None = None, loaded: LoadedTask | None = None,
             pool: PoolOptions | None = None) -> RunOutcome:
    """Run one episode in a fresh lab process; the result's success is the lab's verdict on its truth."""
    loaded = loaded or load_task(task_path)
    task = loaded.planner
    scorer_obj, scorer_name = build_scorer(scoring_config, scorer, pool)
    runlog = RunLog.create(out_dir, task.name, seed)
    cfg = MPCConfig(seed=seed)
    if n_candidates is not None:
        cfg = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, n_candidates=n_candidates))
    runlog.write_header({"task": task.name, "task_path": task.path, "instruction": task.instruction, "seed": seed,
                         "scorer": scorer_name, "agents": [a.name for a in scorer_obj.agents],
                         "max_steps": max_steps or task.max_steps, "n_candidates": cfg.sampler.n_candidates,
                         "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    start = time.perf_counter()
    error = None
    steps, stage = 0, {}
    success = False
    try:
        with launch_any_lab(loaded.lab, seed, log_path=os.path.join(runlog.path, "lab.log")) as lab:
            planner = None
            reconstructor = build_reconstructor(task)
            try:
                with SimRobot(lab.host, lab.port, robot=task.robot) as robot:
                    renderer = build_renderer(names=tuple(scorer_obj.config.views))
                    planner = MPCPlanner(task, robot, reconstructor, renderer, scorer_obj,
                                         runlog, cfg, on_step=on_step)
                    planner.run(max_steps)
            except (RunAborted, RobotError) as exc:
                error = str(exc)
            except Exception as exc:  # a bug: the run still gets its end record and report
                log.exception("run failed")
                error = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                if planner is not None:
                    steps, stage = planner.steps_done, planner.stage_time_s
                    planner.close()
                reconstructor.close()
            if error is None:
                try:
                    success = bool(LabEvaluator(lab.host, lab.port).truth().get("success"))
                except RobotError as exc:
                    error = f"could not ask the lab for its verdict: {exc}"
    except RobotError as exc:  # the lab did not start
        error = str(exc)
    finally:
        scorer_obj.close()
    elapsed = time.perf_counter() - start
    runlog.append({"type": "end", "steps": steps, "lab_success": None if error else success, "error": error,
                   "time_s": elapsed, "stage_time_s": stage})
    runlog.close()
    write_report(runlog.path)
    return RunOutcome(task.name, seed, success, steps, elapsed, scorer_name, runlog.path, stage, error)


def reconstruct_once(task_path: str, seed: int = 0, loaded: LoadedTask | None = None,
                     export_dir: str | None = None) -> dict:
    """Observe the lab once, reconstruct, and compare with the lab's truth (evaluation only).

    export_dir: also write the estimated twin there (scene.json, URDFs + meshes, load_scene.py)."""
    loaded = loaded or load_task(task_path)
    task = loaded.planner
    with launch_any_lab(loaded.lab, seed) as lab:
        with SimRobot(lab.host, lab.port, robot=task.robot) as robot:
            obs = robot.observe()
        with build_reconstructor(task) as reconstructor:
            start = time.perf_counter()
            estimate = reconstructor.update(obs)
            elapsed = time.perf_counter() - start
            exported = None
            if export_dir is not None:
                scene = estimate.to_scene(task.robot, obs.joint_pos_rad, obs.gripper_width_m, reconstructor.models,
                                          physics_priors(task))
                exported = export_scene(scene, export_dir, estimate)
        truth = LabEvaluator(lab.host, lab.port).truth()
    report = estimate.report()
    objects = []
    for name, asset in task.objects.items():
        est = estimate.objects.get(name)
        true_pose = Pose.from_dict(truth["objects"][name])
        if est is None or not est.found:
            objects.append({"name": name, "found": False, "t_err_mm": None, "r_err_deg": None})
            continue
        t_err = float(np.linalg.norm(est.pose.position - true_pose.position)) * 1000.0
        r_err = rotation_error_deg(est.pose.rotation(), true_pose.rotation(), asset.symmetry)
        objects.append({"name": name, "found": True, "t_err_mm": round(t_err, 2), "r_err_deg": round(r_err, 2),
                        "fitness": round(float(est.fitness), 3), "status": report["objects"][name]["status"],
                        "confidence": report["objects"][name]["confidence"]})
    return {"objects": objects, "time_s": round(elapsed, 3), "n_unknown": len(estimate.clutter),
            "issues": report["issues"], "export": exported,
            "timings_s": {k: round(v, 3) for k, v in getattr(estimate, "timings_s", {}).items()}}
