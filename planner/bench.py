"""`antigrounding bench`: success rate, steps and per-stage seconds per MPC step over seeds; reconstruction errors.

A benchmark, not a test: it prints tables (medians over seeds) and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import configs
from planner.episode import run_task
from planner.task import load_task

STAGES = ("observe", "reconstruct", "sample_rollout", "render", "score", "execute")


def _print(line: str = "") -> None:
    print(line, flush=True)


def recon_table(tasks: list[str], seeds: list[int]) -> None:
    """Per object errors, time per scene, clutter Chamfer and twin settling (planner/recon_benchmark.py)."""
    from planner.recon_benchmark import format_recon_table, run_recon_benchmark

    _print("\nReconstruction (one observation per seed; errors symmetry-aware, vs the lab's truth)")
    _print(format_recon_table(run_recon_benchmark(tasks, seeds)))


def scoring_pool_table(repeats: int) -> None:
    from scoring.pool_benchmark import format_pool_table, run_pool_benchmark

    _print("Agent pool: a stub API server that answers after 1.0 s, the real OpenAI-compatible backend, "
           "3 agents x 3 views per step")
    _print(format_pool_table(run_pool_benchmark(repeats=repeats, delay_s=1.0)))


def identification_table(seeds: list[int]) -> None:
    from planner.ident_benchmark import format_ident_table, run_ident_benchmark

    _print("Identification (probe + fit) vs the sim lab's truth, blocks of different mass and friction")
    _print(format_ident_table(run_ident_benchmark(seeds=seeds)))


def run_bench(args: argparse.Namespace) -> int:
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.scoring_pool:
        scoring_pool_table(args.repeats)
        return 0
    if args.reconstruction:
        from planner.recon_benchmark import DEFAULT_TASKS

        recon_table(args.tasks or [str(configs.shipped("tasks", f"{t}.yaml")) for t in DEFAULT_TASKS], seeds)
        return 0
    if args.identification:
        identification_table(seeds)
        return 0
    args.tasks = args.tasks or [str(configs.shipped("tasks", n)) for n in ("stack_blocks.yaml", "pick_place_tray.yaml")]
    _print(f"Episodes: scorer {args.scorer}, seeds {seeds[0]}..{seeds[-1]}, "
           f"{args.candidates or 16} candidates x 3 views; seconds per MPC step are medians over seeds")
    header = (f"{'task':18s} {'success':>8s} {'steps med':>9s} " + " ".join(f"{s:>14s}" for s in STAGES)
              + f" {'local/step':>11s}")
    rows = []
    for path in args.tasks:
        loaded = load_task(path)
        outcomes = []
        for seed in seeds:
            out = run_task(path, seed=seed, scorer=args.scorer, out_dir=os.path.join(args.out, loaded.planner.name),
                           n_candidates=args.candidates, loaded=loaded)
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
    _print()
    _print(header)
    for row in rows:
        _print(row)
    _print("local/step = every stage but 'score' (VLM time); with simjudge 'score' is local too.")
    recon_table(args.tasks, seeds)
    return 0
