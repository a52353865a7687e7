"""Benchmark of physical-parameter identification: blocks of several masses and frictions x seeds, against the
sim lab's truth. Evaluation code: it sets the lab's physics and reads it back to score; the identification it
measures (`reconstruction.identification`) sees only the robot.

    antigrounding bench identification [--tasks ident_blocks] [--seeds 2] [--no-twin]

A benchmark, not a test: it prints a table (truth vs estimate, % error, confidence, seconds per object, how far
the probe left the object from where it stood) and asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import time
from collections.abc import Sequence

import numpy as np

import configs
from planner.components import build_reconstructor
from planner.probe import identify_objects
from planner.task import LoadedTask, load_task
from reconstruction.identification import IdentificationConfig
from robot_io.sim_robot import LabEvaluator, SimRobot, launch_lab

log = logging.getLogger(__name__)

DEFAULT_TASK = str(configs.shipped("tasks", "ident_blocks.yaml"))
# (mass_kg, friction) pairs: light to heavy, slippery to grippy; paired up two per lab (one per block)
DEFAULT_CASES: tuple[tuple[float, float], ...] = (
    (0.05, 0.3), (0.3, 1.0), (0.12, 0.6), (0.05, 1.0), (0.3, 0.3), (0.12, 0.3), (0.2, 0.8), (0.08, 0.5))


def _with_physics(loaded: LoadedTask, physics: dict[str, tuple[float, float]]) -> LoadedTask:
    scene = loaded.lab.scene
    objects = tuple(dataclasses.replace(o, mass_kg=physics[o.name][0], friction=physics[o.name][1])
                    if o.name in physics else o for o in scene.objects)
    lab = dataclasses.replace(loaded.lab, scene=dataclasses.replace(scene, objects=objects))
    return dataclasses.replace(loaded, lab=lab)


def run_ident_benchmark(task_path: str = DEFAULT_TASK, cases: Sequence[tuple[float, float]] = DEFAULT_CASES,
                        seeds: Sequence[int] = (0,), config: IdentificationConfig | None = None) -> list[dict]:
    """One row per (object, case, seed). The task's `identify` objects take the cases in turn, one lab per group.

    Row keys: task, seed, object, mass_true, mass_est, mass_err_pct, friction_true, friction_est, friction_err_pct,
    confidence, time_s, restore_mm (how far the object ended from where it stood), notes.
    """
    loaded = load_task(task_path)
    names = list(loaded.planner.identify) or list(loaded.planner.objects)
    rows: list[dict] = []
    groups = [cases[i:i + len(names)] for i in range(0, len(cases), len(names))]
    for seed in seeds:
        for group in groups:
            physics = dict(zip(names, group))
            rows.extend(_one_lab(_with_physics(loaded, physics), physics, seed, config))
    return rows


def _one_lab(loaded: LoadedTask, physics: dict[str, tuple[float, float]], seed: int,
             config: IdentificationConfig | None) -> list[dict]:
    task = loaded.planner
    rows = []
    with launch_lab(loaded.lab, seed) as lab:
        evaluator = LabEvaluator(lab.host, lab.port, secret=lab.eval_secret)
        before = evaluator.truth()["objects"]
        reconstructor = build_reconstructor(task)
        try:
            with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
                found = identify_objects(robot, reconstructor, list(physics), config=config)
        finally:
            reconstructor.close()
        after = evaluator.truth()["objects"]
    for name, (mass, friction) in physics.items():
        est = found[name]
        moved = float(np.linalg.norm(np.subtract(after[name]["xyz"], before[name]["xyz"])))
        rows.append({
            "task": task.name, "seed": seed, "object": name,
            "mass_true": mass, "mass_est": est.mass_kg, "mass_err_pct": _err(est.mass_kg, mass),
            "friction_true": friction, "friction_est": est.friction, "friction_err_pct": _err(est.friction, friction),
            "confidence": est.confidence, "time_s": est.time_s, "restore_mm": round(moved * 1000, 1),
            "notes": "; ".join(est.notes) if not est.identified else ""})
    return rows


def _err(est: float | None, truth: float) -> float | None:
    return None if est is None else 100.0 * (est - truth) / truth


def format_ident_table(rows: Sequence[dict]) -> str:
    """A plain-text table of the rows and a summary line (|error| median / max, share within 15 %)."""
    def num(v, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    head = (f"{'object':12s} {'seed':>4s} {'mass true':>9s} {'est':>7s} {'err %':>7s} {'fric true':>9s} {'est':>7s} "
            f"{'err %':>7s} {'conf':>5s} {'time s':>7s} {'restore mm':>10s}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['object']:12s} {r['seed']:>4d} {r['mass_true']:9.3f} {num(r['mass_est'], '7.3f')} "
                     f"{num(r['mass_err_pct'], '+7.1f')} {r['friction_true']:9.2f} {num(r['friction_est'], '7.3f')} "
                     f"{num(r['friction_err_pct'], '+7.1f')} {r['confidence']:5.2f} {r['time_s']:7.1f} "
                     f"{r['restore_mm']:10.1f}" + (f"  MISS: {r['notes']}" if r["notes"] else ""))
    ok = [r for r in rows if r["mass_err_pct"] is not None and r["friction_err_pct"] is not None]
    if ok:
        m = [abs(r["mass_err_pct"]) for r in ok]
        f = [abs(r["friction_err_pct"]) for r in ok]
        within = sum(a <= 15 and b <= 15 for a, b in zip(m, f))
        lines.append(f"identified {len(ok)}/{len(rows)}; |mass err| median {statistics.median(m):.1f} % max "
                     f"{max(m):.1f} %; |friction err| median {statistics.median(f):.1f} % max {max(f):.1f} %; "
                     f"both within 15 %: {within}/{len(rows)}; time per object median "
                     f"{statistics.median(r['time_s'] for r in rows):.1f} s")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """`antigrounding bench identification [--tasks T] [--seeds N] [--first-seed S] [--no-twin]`."""
    config = IdentificationConfig(refine_in_twin=not args.no_twin)
    task = (args.tasks or [DEFAULT_TASK])[0]
    t0 = time.perf_counter()
    rows = run_ident_benchmark(task, seeds=range(args.first_seed, args.first_seed + args.seeds), config=config)
    print(f"Identification vs the sim lab's truth ({task}; the lab's torque sensor noise and offsets; "
          f"{'twin-refined' if config.refine_in_twin else 'formula-only'} friction): {len(rows)} object probes, "
          f"{time.perf_counter() - t0:.0f} s in all", flush=True)
    print(format_ident_table(rows), flush=True)
    return 0
