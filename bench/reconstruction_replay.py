"""Reconstruction on recorded observations: record each task x seed's observation and the lab's truth once, then
reconstruct them again and again without the lab (fast iteration; the same named-object metrics as
bench/reconstruction_lab.py, plus CPU seconds per scene). Not a test; it prints a table.

    python -m bench.reconstruction_replay --record DIR [--tasks T ...] [--seeds 5]   (starts the sim lab)
    python -m bench.reconstruction_replay DIR                                        (reconstructs DIR/*.pkl)

The recordings are pickles this module wrote itself: only replay a directory you recorded.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np

import configs
from bench.reconstruction_lab import DEFAULT_TASKS
from planner.components import object_models
from planner.task import load_task
from reconstruction.accuracy import count_outcomes, format_counts, object_pose_errors, outcome
from reconstruction.reconstructor import Reconstructor
from sim.geometry import Pose


def record(out: Path, tasks: list[str], seeds: range) -> None:
    from robot_io.sim_robot import LabEvaluator, SimRobot, launch_lab

    out.mkdir(parents=True, exist_ok=True)
    for t in tasks:
        path = str(configs.shipped("tasks", f"{t}.yaml"))
        loaded = load_task(path)
        for seed in seeds:
            with launch_lab(loaded.lab, seed) as lab:
                with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=loaded.planner.robot) as robot:
                    obs = robot.observe()
                truth = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth()
            with open(out / f"{t}_{seed}.pkl", "wb") as fh:
                pickle.dump((path, obs, truth), fh)
            print(f"recorded {t} seed {seed}", file=sys.stderr, flush=True)


def replay(directory: Path) -> int:
    files = sorted(directory.glob("*.pkl"))
    if not files:
        print(f"{directory}: no recordings (*.pkl); record them with --record", file=sys.stderr)
        return 2
    rows, walls, cpus, tasks = [], [], [], {}
    for f in files:
        with open(f, "rb") as fh:
            path, obs, truth = pickle.load(fh)
        if path not in tasks:
            task = load_task(path).planner
            tasks[path] = (task, object_models(task))
        task, models = tasks[path]
        with Reconstructor(models, task.robot, cameras=task.cameras) as rec:
            c0, t0 = time.process_time(), time.perf_counter()
            est = rec.update(obs)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        for name in task.objects:
            e = est.objects[name]
            t_mm, r_deg = math.nan, math.nan
            if e.found:
                t_mm, r_deg = object_pose_errors(e.pose, Pose.from_dict(truth["objects"][name]), models[name])
            rows.append((f.stem, name, outcome(e.found, name in est.low_confidence, t_mm, r_deg), t_mm, r_deg,
                         e.confidence))
            print(f"{f.stem:28s} {name:14s} {rows[-1][2]:8s} {t_mm:7.1f} mm {r_deg:6.1f} deg conf {e.confidence:.2f}",
                  flush=True)
        print(f"    {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU", flush=True)
    found = [r for r in rows if r[2] != "missing"]
    t = [r[3] for r in found]
    rot = [r[4] for r in found]

    def q(v, p):
        return float(np.percentile(v, p, method="nearest"))

    print(format_counts(count_outcomes(r[2] for r in rows)))
    print(f"translation mm median {np.median(t):.2f} p95 {q(t, 95):.2f}; rotation deg median {np.median(rot):.2f} "
          f"p95 {q(rot, 95):.2f}")
    print(f"seconds per scene: wall median {np.median(walls):.2f} p95 {q(walls, 95):.2f}; CPU median "
          f"{np.median(cpus):.2f} p95 {q(cpus, 95):.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", type=Path)
    ap.add_argument("--record", action="store_true", help="start the lab and record, instead of replaying")
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    if args.record:
        record(args.dir, args.tasks, range(args.seeds))
        return 0
    return replay(args.dir)


if __name__ == "__main__":
    sys.exit(main())
