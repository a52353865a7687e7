"""One episode of a task on a vendor driver (`antigrounding run --robot ur --robot-config my_ur.yaml`).

The same MPC loop as against the sim lab (`planner.episode.run_task`), with the lab replaced by a driver from
`robot_io.drivers` and its cameras (RealSense, from `--camera-config` files). What changes with a real arm:
- the twin's robot is the driver's (its config names the robot spec: a UR5e, an FR3, an xArm6), not the task's;
- the cameras are the driver's, with intrinsics from the device and poses from `antigrounding calibrate`;
- nobody holds the truth: the run has no lab verdict (`success` is None, `no_verdict` says so) and its end record
  keeps the planner's own belief. A lost link, a protective stop or a reflex ends the run with the error in the
  log and the arm commanded to stop (the driver's job); the log stays readable.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from planner.components import PoolOptions, build_reconstructor, build_renderer, build_scorer
from planner.episode import RunOutcome, end_run, run_errors
from planner.mpc import MPCConfig, MPCPlanner
from planner.reproduce import run_identity
from planner.runlog import RunLog
from planner.task import LoadedTask, load_task
from robot_io.drivers import driver_entry, load_cameras, make_driver

log = logging.getLogger(__name__)
NO_VERDICT = "a real arm: no lab holds the truth, so nothing judged success (see believed_success)"


def run_on_robot(task_path: str, robot_name: str, robot_config: str | None = None,
                 camera_configs: Sequence[str] = (), host: str | None = None, seed: int = 0,
                 scorer: str | None = None, out_dir: str = "runs", scoring_config: str | None = None,
                 max_steps: int | None = None, n_candidates: int | None = None,
                 on_step: Callable[[dict], None] | None = None, loaded: LoadedTask | None = None,
                 pool: PoolOptions | None = None, fast_render: bool = True) -> RunOutcome:
    """Run one episode on the named driver. Bad driver or camera configs raise InputError (DriverConfigError)
    before anything connects; a robot that fails during the run ends it with `error` set."""
    loaded = loaded or load_task(task_path)
    entry = driver_entry(robot_name)
    cameras = load_cameras(camera_configs)
    robot = make_driver(robot_name, robot_config, host, cameras=cameras)
    if robot.robot_spec.name != loaded.planner.robot.name:
        log.warning("the task names robot '%s'; the driver's config names '%s': the twin plans for the driver's",
                    loaded.planner.robot.name, robot.robot_spec.name)
    # the lab's camera list is the sim lab's; here the frames carry their own intrinsics and poses
    task = dataclasses.replace(loaded.planner, robot=robot.robot_spec, cameras=())
    scorer_obj, scorer_name = build_scorer(scoring_config, scorer, pool)
    runlog = RunLog.create(out_dir, task.name, seed)
    cfg = MPCConfig(seed=seed, fast_render=fast_render)
    if n_candidates is not None:
        cfg = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, n_candidates=n_candidates))
    limit = max_steps or task.max_steps
    runlog.write_header({"task": task.name, "task_path": task.path, "instruction": task.instruction, "seed": seed,
                         "scorer": scorer_name, "agents": [a.name for a in scorer_obj.agents], "max_steps": limit,
                         "n_candidates": cfg.sampler.n_candidates, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "robot_driver": {"name": robot_name, "vendor": entry.vendor, "host": robot.config.host,
                                          "config": robot_config or "shipped default",
                                          "robot": robot.robot_spec.name,
                                          "gripper": type(robot.gripper).__name__,
                                          "cameras": [c.name for c in cameras]},
                         "reproduce": run_identity(task, scorer_obj.config, seed, cfg, limit)})
    start = time.perf_counter()
    steps, stage, believed = 0, {}, None
    with run_errors(f"{robot!r}: ") as end:   # RobotError: connect failed, or the disconnect after a lost link
        end.close_later(scorer_obj)
        reconstructor = end.close_later(build_reconstructor(task))
        with robot:
            renderer = build_renderer(names=tuple(scorer_obj.config.views))
            planner = end.close_later(MPCPlanner(task, robot, reconstructor, renderer, scorer_obj, runlog, cfg,
                                                 on_step=on_step))
            result = planner.run(max_steps)
            steps, stage, end.error, believed = (result.steps, result.stage_time_s, result.error,
                                                 result.believed_success)
    elapsed = time.perf_counter() - start
    end_run(runlog, {"steps": steps, "lab_success": None, "no_verdict": NO_VERDICT, "believed_success": believed,
                     "error": end.error, "time_s": elapsed, "stage_time_s": stage, "robot_driver": robot_name})
    return RunOutcome(task.name, seed, None, steps, elapsed, scorer_name, runlog.path, stage, end.error, NO_VERDICT)
