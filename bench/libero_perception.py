"""LIBERO perception benchmark: is every named object found where LIBERO has it, and not swapped with a look-alike?

    python -m bench.libero_perception --suite libero_object [--tasks 0-9] [--inits 0] [--cache DIR] [--json]

Per (task, official initial state): the LIBERO lab is started, observed once (the planner's cameras), the
reconstruction runs on that observation, and its poses are compared with LIBERO's truth (evaluation channel).
An object is *right* within 20 mm of its true position; *swapped* when it landed within 20 mm of another named
object's true position instead (a look-alike taken for it). With --cache the observation and the truth are kept
as .npz files, and a later run with the same --cache reconstructs from them without starting the lab.
With --json the last line is {"suite", "episodes", "objects", "right", "swapped", "targets_right", "per_task"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from bench.libero_suite import parse_range
from planner.errors import TaskError

RIGHT_M = 0.02


def _save(path: Path, obs, truth: dict[str, list]) -> None:
    arrays = {"joint_pos_rad": np.asarray(obs.joint_pos_rad), "gripper_width_m": np.float64(obs.gripper_width_m),
              "T_world_tcp": np.asarray(obs.T_world_tcp), "stamp_s": np.float64(obs.stamp_s),
              "names": np.array([f.name for f in obs.frames]), "truth": np.array(json.dumps(truth))}
    for i, f in enumerate(obs.frames):
        arrays.update({f"rgb{i}": f.rgb, f"depth{i}": f.depth_m, f"K{i}": f.K, f"T{i}": f.T_world_camera})
    np.savez_compressed(path, **arrays)


def _load(path: Path):
    from robot_io.observation import CameraFrame, Observation

    z = np.load(path)
    frames = tuple(CameraFrame(str(n), z[f"rgb{i}"], z[f"depth{i}"], z[f"K{i}"], z[f"T{i}"])
                   for i, n in enumerate(z["names"]))
    obs = Observation(frames, z["joint_pos_rad"], float(z["gripper_width_m"]), z["T_world_tcp"], float(z["stamp_s"]))
    return obs, json.loads(str(z["truth"]))


def observe_once(loaded, seed: int):
    """(Observation, {name: true xyz}) from a fresh LIBERO lab at initial state `seed`."""
    from robot_io.libero.launcher import launch_libero_lab
    from robot_io.sim_robot import LabEvaluator, SimRobot

    task = loaded.planner
    with launch_libero_lab(loaded.lab, seed) as lab:
        with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
            obs = robot.observe()
        truth = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth()
    from sim.geometry import Pose

    return obs, {n: [float(v) for v in Pose.from_dict(truth["objects"][n]).position] for n in task.objects}


def score(estimate, truth: dict[str, list]) -> dict[str, dict]:
    """Per named object: found, error to its own true position, and the look-alike it was taken for (if any)."""
    out = {}
    for name, true_xyz in truth.items():
        est = estimate.objects.get(name)
        if est is None or not est.found:
            out[name] = {"found": False, "err_mm": None, "right": False, "swapped_with": None}
            continue
        pos = np.asarray(est.pose.position)
        err = float(np.linalg.norm(pos - np.asarray(true_xyz)))
        other = None
        if err > RIGHT_M:
            near = [(float(np.linalg.norm(pos - np.asarray(xyz))), n) for n, xyz in truth.items() if n != name]
            d, n = min(near) if near else (1e9, None)
            other = n if d <= RIGHT_M else None
        out[name] = {"found": True, "err_mm": round(err * 1000.0, 1), "right": err <= RIGHT_M, "swapped_with": other}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.libero_perception", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--tasks", default="0-9")
    parser.add_argument("--inits", default="0")
    parser.add_argument("--cache", default=None, help="keep/reuse observations here (.npz)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from planner.components import build_reconstructor
    from planner.libero_task import LiberoNotInstalledError, load_libero_task, n_init_states, suite_size

    try:
        tasks = parse_range(args.tasks, "--tasks", suite_size(args.suite))
        refs = [f"libero:{args.suite}/{t}" for t in tasks]
        loaded = {r: load_libero_task(r) for r in refs}
        grid = [(r, s) for r, t in zip(refs, tasks)
                for s in parse_range(args.inits, "--inits", n_init_states(args.suite, t))]
    except (TaskError, LiberoNotInstalledError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cache = Path(args.cache) if args.cache else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    rows, per_task = [], {}
    for i, (ref, seed) in enumerate(grid):
        task = loaded[ref].planner
        path = cache / f"{ref.split(':')[1].replace('/', '_')}_{seed}.npz" if cache else None
        if path is not None and path.is_file():
            obs, truth = _load(path)
        else:
            obs, truth = observe_once(loaded[ref], seed)
            if path is not None:
                _save(path, obs, truth)
        t0 = time.perf_counter()
        with build_reconstructor(task) as rec:
            est = rec.update(obs)
        elapsed = time.perf_counter() - t0
        res = score(est, truth)
        goal_objects = [n for n in task.objects if n in json.dumps(task.success) and n != "basket_1"]
        target = next(iter(goal_objects), None)
        right = sum(r["right"] for r in res.values())
        swapped = sorted(f"{n}->{r['swapped_with']}" for n, r in res.items() if r["swapped_with"])
        t_err = res[target]["err_mm"] if target else None
        rows.append({"task": ref, "seed": seed, "target": target, "target_err_mm": t_err,
                     "target_right": bool(target and res[target]["right"]), "right": right, "objects": len(res),
                     "swapped": swapped, "time_s": round(elapsed, 2)})
        k = ref.rsplit("/", 1)[1]
        per_task.setdefault(k, [0, 0])
        per_task[k][0] += int(rows[-1]["target_right"])
        per_task[k][1] += 1
        print(f"[{i + 1}/{len(grid)}] {ref} init {seed}: target {target} err {t_err} mm, {right}/{len(res)} objects "
              f"within {RIGHT_M * 1000:.0f} mm, swapped {swapped or '-'} ({elapsed:.1f} s)", file=sys.stderr,
              flush=True)
    summary = {"suite": args.suite, "episodes": len(rows), "objects": sum(r["objects"] for r in rows),
               "right": sum(r["right"] for r in rows), "swapped": sum(len(r["swapped"]) for r in rows),
               "targets_right": sum(r["target_right"] for r in rows), "per_task": per_task}
    print(f"targets right {summary['targets_right']}/{len(rows)}, objects right {summary['right']}/"
          f"{summary['objects']}, swapped {summary['swapped']}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
