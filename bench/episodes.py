"""`antigrounding bench` (episodes): success rate, steps and per-stage seconds per MPC step over seeds, then the
reconstruction table for the same tasks and seeds.

A benchmark, not a test: it prints tables (medians over seeds) and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import configs
from bench.reconstruction_lab import format_recon_table, run_recon_benchmark
from planner.episode import run_task
from planner.task import load_task

STAGES = ("observe", "reconstruct", "sample_rollout", "render", "score", "execute")
DEFAULT_TASKS = ("stack_blocks", "pick_place_tray")


def run(args: argparse.Namespace) -> int:
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    tasks = args.tasks or [str(configs.shipped("tasks", f"{n}.yaml")) for n in DEFAULT_TASKS]
    print(f"Episodes: scorer {args.scorer}, seeds {seeds[0]}..{seeds[-1]}, "
          f"{args.candidates or 16} candidates x 3 views; seconds per MPC step are medians over seeds", flush=True)
    header = (f"{'task':18s} {'success':>8s} {'steps med':>9s} " + " ".join(f"{s:>14s}" for s in STAGES)
              + f" {'local/step':>11s}")
    rows = []
    for path in tasks:
        loaded = load_task(path)
        outcomes = []
        for seed in seeds:
            out = run_task(path, seed=seed, scorer=args.scorer, out_dir=os.path.join(args.out, loaded.planner.name),
                           n_candidates=args.candidates, loaded=loaded, fast_render=args.fast_render)
            outcomes.append(out)
            print(f"  {loaded.planner.name} seed {seed}: {'success' if out.success else 'FAIL'} in {out.steps} "
                  f"steps, {out.time_s:.1f} s{' (' + out.error + ')' if out.error else ''}", file=sys.stderr,
                  flush=True)
        per_step = {s: [] for s in STAGES}
        for out in outcomes:
            n = max(1, out.steps)
            for s in STAGES:
                per_step[s].append(out.stage_time_s.get(s, 0.0) / n)
        med = {s: statistics.median(v) for s, v in per_step.items()}
        local = sum(v for s, v in med.items() if s != "score")
        rate = sum(o.success is True for o in outcomes) / len(outcomes)
        rows.append(f"{loaded.planner.name:18s} {rate:8.0%} {statistics.median([o.steps for o in outcomes]):9.1f} "
                    + " ".join(f"{med[s]:14.3f}" for s in STAGES) + f" {local:11.3f}")
    print()
    print(header)
    for row in rows:
        print(row)
    print("local/step = every stage but 'score' (VLM time); with simjudge 'score' is local too.")
    print("\nReconstruction (one observation per seed; errors symmetry-aware, vs the lab's truth)")
    print(format_recon_table(run_recon_benchmark(tasks, seeds)), flush=True)
    return 0
