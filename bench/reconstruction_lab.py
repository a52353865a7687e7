"""Reconstruction benchmark (not a test; it prints a table and asserts nothing).

For each task and seed: start the sim lab, observe once through the robot interface, reconstruct, then ask the
lab for its truth (evaluation only: the reconstruction never sees it) and measure
- per named object: translation error (mm), symmetry-aware rotation error (deg), found, confidence;
- per true clutter object: the Chamfer distance between the estimated obstacle's visible surface and the true
  object's visible surface (both rendered from the task's cameras, noise-free, in private PyBullet clients:
  only what the cameras can see can be judged), and which true clutter objects no obstacle covers;
- per scene: reconstruction time (one update, after the reconstructor's one-off construction), and whether the
  twin built from the estimate settles (named objects' largest drift over 1 s of simulation).

    antigrounding bench reconstruction --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import pybullet as p
from scipy.spatial import cKDTree

import configs
from planner.components import object_models
from planner.task import LoadedTask, load_task
from reconstruction.accuracy import count_outcomes, format_counts, object_pose_errors, outcome
from reconstruction.config import ReconConfig
from reconstruction.estimate import SceneEstimate
from reconstruction.models import ObjectModel
from reconstruction.reconstructor import Reconstructor
from robot_io.sim_robot import LabEvaluator, SimRobot, launch_lab
from sim.camera import CameraSpec, backproject, render_rgbd
from sim.geometry import Pose
from sim.scene import SceneSpec
from sim.world import World

log = logging.getLogger(__name__)

DEFAULT_TASKS = ("stack_blocks", "pick_place_tray", "cluttered_five", "cluttered_touching", "cluttered_edge_of_view",
                 "duck_into_tray", "stack_textured_blocks", "textured_touching", "textured_edge_of_view")
TARGETS = {"t_med_mm": 3.0, "t_p95_mm": 8.0, "r_med_deg": 3.0, "r_p95_deg": 8.0, "time_s": 1.0, "chamfer_mm": 10.0,
           "settle_mm": 5.0}
MATCH_RADIUS_M = 0.03       # an obstacle's visible point this close to a clutter object's surface belongs to it
MISSED_MM = 20.0            # a clutter object whose surface is on average this far from every obstacle: missed


def truth_scene(loaded: LoadedTask, truth: dict) -> SceneSpec:
    """The lab's scene with the poses, joints and gripper the lab reported (evaluation only)."""
    scene = loaded.lab.scene
    objects = tuple(dataclasses.replace(o, pose=Pose.from_dict(truth["objects"][o.name]))
                    for o in scene.objects if o.name in truth["objects"])
    return dataclasses.replace(scene, objects=objects, joint_pos_rad=tuple(truth["joint_pos_rad"]),
                               gripper_width_m=float(truth["gripper_width_m"]), grasped=truth.get("grasped"))


def visible_surfaces(scene: SceneSpec, cameras: Sequence[CameraSpec], names: set[str] | None = None
                     ) -> dict[str, np.ndarray]:
    """World points of each object's surface that the cameras see in `scene` (exact depth, occlusion included)."""
    client = p.connect(p.DIRECT)
    out: dict[str, list[np.ndarray]] = {}
    try:
        world = World.from_scene(client, scene, fast_render=True)
        try:
            ids = {body: name for name, body in world.body_ids.items() if names is None or name in names}
            for cam in cameras:
                rgbd = render_rgbd(client, cam, renderer=world.renderer)
                pts = backproject(rgbd.depth_m, cam.K)
                T = cam.T_world_camera_matrix
                seg = rgbd.seg.reshape(-1)
                for body, name in ids.items():
                    sel = (seg == body) & np.isfinite(pts[:, 2])
                    if sel.any():
                        out.setdefault(name, []).append(pts[sel] @ T[:3, :3].T + T[:3, 3])
        finally:
            world.close()
    finally:
        p.disconnect(client)
    return {name: np.concatenate(v) for name, v in out.items()}


def twin_settle_mm(twin: SceneSpec, seconds: float = 1.0) -> float:
    """Largest displacement (mm) of any movable object of the twin over `seconds` of simulation."""
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, twin)
        try:
            movable = [o.name for o in twin.objects if not o.fixed and o.name != twin.grasped]
            before = {n: world.object_pose(n).position for n in movable}
            world.step(int(round(seconds * 240)))
            moved = [np.linalg.norm(world.object_pose(n).position - before[n]) for n in movable]
        finally:
            world.close()
    finally:
        p.disconnect(client)
    return 1000.0 * max(moved, default=0.0)


def clutter_chamfer(true_surfaces: dict[str, np.ndarray], est_surfaces: dict[str, np.ndarray]
                    ) -> tuple[dict[str, dict], list[str]]:
    """Per true clutter object: {chamfer_mm, completeness_mm, accuracy_mm, missed}; and the estimated obstacles
    that lie near no clutter object (spurious: e.g. a named object's leftovers).

    completeness: mean distance from the true visible surface to the nearest obstacle surface; accuracy: mean
    distance from the obstacles' visible points that belong to this object (nearest true clutter surface
    within MATCH_RADIUS_M) to its true surface; chamfer: their mean.
    """
    names = [n for n, v in true_surfaces.items() if len(v)]
    est_names = [n for n, v in est_surfaces.items() if len(v)]
    q_all = np.concatenate([est_surfaces[n] for n in est_names]) if est_names else np.zeros((0, 3))
    q_owner = np.concatenate([np.full(len(est_surfaces[n]), i) for i, n in enumerate(est_names)]) if est_names \
        else np.zeros(0, dtype=int)
    if names and len(q_all):
        d_to = np.stack([cKDTree(true_surfaces[n]).query(q_all)[0] for n in names], axis=1)
        nearest = np.argmin(d_to, axis=1)
        near = d_to[np.arange(len(q_all)), nearest] < MATCH_RADIUS_M
    else:
        d_to, nearest, near = np.zeros((len(q_all), 0)), np.zeros(len(q_all), int), np.zeros(len(q_all), bool)
    spurious = [n for i, n in enumerate(est_names) if not near[q_owner == i].any()]
    tree = cKDTree(q_all) if len(q_all) else None
    out = {}
    for k, name in enumerate(names):
        pts = true_surfaces[name]
        completeness = float(np.mean(tree.query(pts)[0])) * 1000.0 if tree is not None else math.inf
        mine = near & (nearest == k)
        accuracy = float(np.mean(d_to[mine, k])) * 1000.0 if mine.any() else math.nan
        missed = completeness > MISSED_MM or not mine.any()
        chamfer = math.inf if missed else 0.5 * (completeness + accuracy)
        out[name] = {"chamfer_mm": chamfer, "completeness_mm": completeness, "accuracy_mm": accuracy,
                     "missed": missed}
    return out, spurious


def _evaluate(loaded: LoadedTask, seed: int, obs, truth: dict, estimate: SceneEstimate, time_s: float,
              models: dict[str, ObjectModel]) -> list[dict]:
    task = loaded.planner
    base = {"task": task.name, "seed": seed, "time_s": time_s}
    rows = []
    for name in task.objects:
        est = estimate.objects[name]
        true_pose = Pose.from_dict(truth["objects"][name])
        row = {**base, "kind": "named", "object": name, "found": est.found, "confidence": est.confidence,
               "fitness": est.fitness, "t_err_mm": math.nan, "r_err_deg": math.nan}
        if est.found:
            row["t_err_mm"], row["r_err_deg"] = object_pose_errors(est.pose, true_pose, models[name])
        row["outcome"] = outcome(est.found, name in estimate.low_confidence, row["t_err_mm"], row["r_err_deg"])
        rows.append(row)
    truth_spec = truth_scene(loaded, truth)
    clutter_names = {o.name for o in truth_spec.objects if o.name not in task.objects}
    twin = estimate.to_scene(task.robot, obs.joint_pos_rad, obs.gripper_width_m, models)
    true_vis = visible_surfaces(truth_spec, task.cameras, clutter_names)
    part_of = {part.name: u.name for u in estimate.clutter for part in u.parts}
    est_vis_parts = visible_surfaces(twin, task.cameras, set(part_of))
    est_vis: dict[str, list[np.ndarray]] = {}
    for part, pts in est_vis_parts.items():
        est_vis.setdefault(part_of[part], []).append(pts)
    chamfer, spurious = clutter_chamfer(true_vis, {n: np.concatenate(v) for n, v in est_vis.items()})
    for name in sorted(clutter_names):
        c = chamfer.get(name, {"chamfer_mm": math.nan, "completeness_mm": math.nan, "accuracy_mm": math.nan,
                               "missed": None})   # nan: not visible to any camera
        rows.append({**base, "kind": "clutter", "object": name, **c})
    where = {u.name: [round(v, 3) for v in u.centroid] for u in estimate.clutter}
    rows.append({**base, "kind": "scene", "object": "", "settle_mm": twin_settle_mm(twin), "spurious": len(spurious),
                 "spurious_at": {n: where.get(n) for n in spurious},
                 "n_unknown": len(estimate.clutter), "n_parts": len(estimate.unknown),
                 "issues": [i.message for i in estimate.issues],
                 "timings_s": {k: round(v, 4) for k, v in estimate.timings_s.items()}})
    return rows


def run_recon_benchmark(task_paths: Sequence[str], seeds: Sequence[int], config: ReconConfig | None = None,
                        progress: Callable[[str], None] | None = None) -> list[dict]:
    """Rows (dicts) of kind 'named', 'clutter' and 'scene' for every task x seed; see the module docstring."""
    rows: list[dict] = []
    for path in task_paths:
        loaded = load_task(path)
        task = loaded.planner
        models = object_models(task)
        for seed in seeds:
            with launch_lab(loaded.lab, seed) as lab:
                with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
                    obs = robot.observe()
                truth = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret).truth()
            with Reconstructor(models, task.robot, cameras=task.cameras, config=config) as rec:
                start, cpu0 = time.perf_counter(), time.process_time()
                estimate = rec.update(obs)
                elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
            scene_rows = _evaluate(loaded, seed, obs, truth, estimate, elapsed, models)
            for r in scene_rows:
                r["cpu_s"] = cpu
            rows.extend(scene_rows)
            if progress is not None:
                named = [r for r in scene_rows if r["kind"] == "named"]
                progress(f"{task.name} seed {seed}: {elapsed:.2f} s, " + ", ".join(
                    f"{r['object']} {r['t_err_mm']:.1f} mm {r['r_err_deg']:.1f} deg" if r["found"]
                    else f"{r['object']} MISSING" for r in named))
    return rows


# ---------------------------------------------------------------------------------------------- table
def _pct(values: list[float], q: float) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.percentile(np.asarray(v, dtype=float), q, method="nearest")) if v else math.nan


def _med(values: list[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(statistics.median(v)) if v else math.nan


def _mark(value: float, target: float) -> str:
    return "ok" if value <= target else "MISS"


def format_recon_table(rows: list[dict], config_note: str = "") -> str:
    """The benchmark's table: per task and object, then per task's scenes, then all scenes against the targets."""
    lines = []
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    seeds = sorted({r["seed"] for r in rows})
    lines.append(f"Reconstruction benchmark: {len(tasks)} task(s) x {len(seeds)} seed(s) (seeds {seeds[0]}.."
                 f"{seeds[-1]}), one observation per scene, the task's cameras with their sensor model"
                 + (f"; {config_note}" if config_note else ""))
    lines.append("Errors vs the lab's truth; rotation error symmetry-aware; Chamfer: obstacle vs true visible surface.")
    lines.append("")
    lines.append(f"{'task':24s} {'object':14s} {'found':>7s} {'low/miss/wrong':>14s} {'t_err mm med':>12s} "
                 f"{'p95':>6s} {'r_err deg med':>13s} "
                 f"{'p95':>6s} {'conf med':>8s} {'chamfer mm med':>14s} {'p95':>6s}")
    for task in tasks:
        trs = [r for r in rows if r["task"] == task]
        for name in dict.fromkeys(r["object"] for r in trs if r["kind"] == "named"):
            rs = [r for r in trs if r["kind"] == "named" and r["object"] == name]
            found = [r for r in rs if r["found"]]
            t = [r["t_err_mm"] for r in found]
            rot = [r["r_err_deg"] for r in found]
            c = count_outcomes(r["outcome"] for r in rs)
            lines.append(f"{task:24s} {name:14s} {len(found):>3d}/{len(rs):<3d} "
                         f"{c['doubtful']:>6d}/{c['missing']}/{c['wrong']:<4d} {_med(t):12.2f} {_pct(t, 95):6.2f} "
                         f"{_med(rot):13.2f} {_pct(rot, 95):6.2f} {_med([r['confidence'] for r in found]):8.2f} "
                         f"{'':>14s} {'':>6s}")
        for name in dict.fromkeys(r["object"] for r in trs if r["kind"] == "clutter"):
            rs = [r for r in trs if r["kind"] == "clutter" and r["object"] == name and r["missed"] is not None]
            covered = [r for r in rs if not r["missed"]]
            ch = [r["chamfer_mm"] for r in covered]
            lines.append(f"{task:24s} {name + ' (unk)':14s} {len(covered):>3d}/{len(rs):<3d} {'':>14s} {'':>12s} "
                         f"{'':>6s} "
                         f"{'':>13s} {'':>6s} {'':>8s} {_med(ch):14.2f} {_pct(ch, 95):6.2f}")
    lines.append("")
    lines.append(f"{'task':24s} {'scenes':>6s} {'time s med':>10s} {'p95':>6s} {'max':>6s} {'cpu s med':>9s} "
                 f"{'p95':>6s} {'settle mm max':>13s} "
                 f"{'unknown med':>11s} {'parts med':>9s} {'spurious':>8s}")
    for task in tasks:
        ss = [r for r in rows if r["task"] == task and r["kind"] == "scene"]
        times = [r["time_s"] for r in ss]
        cpus = [r["cpu_s"] for r in ss]
        lines.append(f"{task:24s} {len(ss):>6d} {_med(times):10.3f} {_pct(times, 95):6.3f} {max(times):6.3f} "
                     f"{_med(cpus):9.3f} {_pct(cpus, 95):6.3f} "
                     f"{max(r['settle_mm'] for r in ss):13.2f} {_med([r['n_unknown'] for r in ss]):11.1f} "
                     f"{_med([r['n_parts'] for r in ss]):9.1f} {sum(r['spurious'] for r in ss):8d}")
    named = [r for r in rows if r["kind"] == "named"]
    found = [r for r in named if r["found"]]
    t = [r["t_err_mm"] for r in found]
    rot = [r["r_err_deg"] for r in found]
    scenes = [r for r in rows if r["kind"] == "scene"]
    clutter = [r for r in rows if r["kind"] == "clutter" and r["missed"] is not None]
    ch = [r["chamfer_mm"] for r in clutter if not r["missed"]]
    times = [r["time_s"] for r in scenes]
    settle = max((r["settle_mm"] for r in scenes), default=math.nan)
    lines.append("")
    lines.append(f"ALL: named objects found {len(found)}/{len(named)}; "
                 f"clutter objects covered {len(ch)}/{len(clutter)}")
    lines.append(f"  named objects: {format_counts(count_outcomes(r['outcome'] for r in named))}")
    summary = [("translation mm median", _med(t), TARGETS["t_med_mm"]),
               ("translation mm p95", _pct(t, 95), TARGETS["t_p95_mm"]),
               ("rotation deg median", _med(rot), TARGETS["r_med_deg"]),
               ("rotation deg p95", _pct(rot, 95), TARGETS["r_p95_deg"]),
               ("time per scene s median", _med(times), TARGETS["time_s"]),
               ("time per scene s p95", _pct(times, 95), TARGETS["time_s"]),
               ("CPU per scene s p95", _pct([r["cpu_s"] for r in scenes], 95), TARGETS["time_s"]),
               ("unknown Chamfer mm median", _med(ch), TARGETS["chamfer_mm"]),
               ("twin settle mm max", settle, TARGETS["settle_mm"])]
    for label, value, target in summary:
        lines.append(f"  {label:28s} {value:8.2f}   target <= {target:g}   {_mark(value, target)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """`antigrounding bench reconstruction [--tasks ...] [--seeds N] [--first-seed S] [--clutter-mesh M]`."""
    config = None
    note = ""
    if args.clutter_mesh:
        base = ReconConfig()
        config = dataclasses.replace(base, clutter=dataclasses.replace(base.clutter, method=args.clutter_mesh))
        note = f"unknown objects meshed by '{args.clutter_mesh}'"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    tasks = args.tasks or [str(configs.shipped("tasks", f"{t}.yaml")) for t in DEFAULT_TASKS]
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print("Reconstruction (one observation per seed; errors symmetry-aware, vs the lab's truth); load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start", flush=True)
    rows = run_recon_benchmark(tasks, seeds, config, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(format_recon_table(rows, note), flush=True)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (wall time counts the other processes "
          "sharing the CPUs; CPU time is this process's own, all its threads)", flush=True)
    return 0
