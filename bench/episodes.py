"""`antigrounding bench` (episodes): success rate, steps and per-stage seconds per MPC step over seeds, then the
reconstruction table for the same tasks and seeds; `--ablation` runs planner variants instead (bench/ablation.py).

The episodes run through `batch` (planner/batch.py): in parallel (`--parallel`, default the machine's cores),
one line per episode in OUT/episodes/results.jsonl, resumable (the same command again finishes an interrupted
benchmark; a new --out measures afresh), and OUT/episodes/report.html. A benchmark, not a test: it prints tables
(medians over seeds) and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from bench.reconstruction_lab import format_recon_table, run_recon_benchmark
from planner.batch import EpisodeOptions, check_grid, make_grid, run_batch, summarise
from planner.batch_cli import check_parallel, where_episodes_run
from planner.batch_report import write_batch_report
from planner.batch_variants import DEFAULT_VARIANT, grid_variants

STAGES = ("observe", "reconstruct", "sample_rollout", "render", "score", "execute")
DEFAULT_TASKS = ("stack_blocks", "pick_place_tray")


def run_grid(args: argparse.Namespace, variants_file: str | None, folder: str):
    """The tasks x seeds x variants grid through batch; returns (BatchResult, variants, out folder)."""
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    tasks = list(args.tasks or DEFAULT_TASKS)
    variants = grid_variants(variants_file, args.variant, args.planner_option)
    grid = make_grid(tasks, seeds, None, [v.name for v in variants])
    check_grid(grid)
    parallel = check_parallel(args.parallel)
    out = os.path.join(args.out, folder)
    print(f"Episodes: scorer {args.scorer}, seeds {seeds[0]}..{seeds[-1]}, {args.candidates or 16} candidates, "
          f"{len(grid)} episodes on {where_episodes_run(parallel, args.ray_address)}; results in "
          f"{os.path.join(out, 'results.jsonl')} (resumed when it exists)", flush=True)
    for v in variants:
        if len(variants) > 1 or v.name != DEFAULT_VARIANT:
            print(f"  variant {v.name}: {v.describe()}", flush=True)
    options = EpisodeOptions(max_steps=getattr(args, "max_steps", None), n_candidates=args.candidates,
                             scorer=args.scorer, variants=tuple(variants),
                             config_dirs=tuple(os.path.abspath(d) for d in (args.config_dir or [])),
                             fast_render=getattr(args, "fast_render", True))
    result = run_batch(grid, out, options, parallel=parallel, ray_address=args.ray_address)
    print(f"{result.ran} episode(s) run in {result.wall_s:.0f} s = {result.episodes_per_hour:.1f} episodes/hour "
          f"({result.parallel} at once)", file=sys.stderr, flush=True)
    if result.not_finished:
        print(f"{len(result.not_finished)} episode(s) did not finish (their worker died); run the same command "
              "again to retry them", file=sys.stderr, flush=True)
    return result, variants, out


def stage_table(results: list[dict]) -> str:
    """Per task (and variant): success, median steps, median seconds per MPC step by stage."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r.get("task_name") or r["task"], r.get("variant") or DEFAULT_VARIANT), []).append(r)
    with_variant = any(v != DEFAULT_VARIANT for _, v in groups)
    name_w = 40 if with_variant else 18
    lines = [f"{'task':{name_w}s} {'success':>8s} {'steps med':>9s} " + " ".join(f"{s:>14s}" for s in STAGES)
             + f" {'local/step':>11s}"]
    for (task, variant), rs in groups.items():
        per_step = {s: [r.get("stage_time_s", {}).get(s, 0.0) / max(1, r["steps"]) for r in rs] for s in STAGES}
        med = {s: statistics.median(v) for s, v in per_step.items()}
        local = sum(v for s, v in med.items() if s != "score")
        rate = sum(r["success"] is True for r in rs) / len(rs)
        label = f"{task} / {variant}" if with_variant else task
        lines.append(f"{label[:name_w]:{name_w}s} {rate:8.0%} {statistics.median(r['steps'] for r in rs):9.1f} "
                     + " ".join(f"{med[s]:14.3f}" for s in STAGES) + f" {local:11.3f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "ablation", False):
        from bench.ablation import run_ablation

        return run_ablation(args)
    result, _, out = run_grid(args, args.variants, "episodes")
    note = f"scorer backend(s): {args.scorer}; success is the lab's verdict on its truth"
    report = write_batch_report(os.path.abspath(out), summarise(result.results), result.results,
                                "antigrounding bench (episodes)", notes=[note])
    print()
    print(stage_table(result.results))
    print("local/step = every stage but 'score' (VLM time); with simjudge 'score' is local too.")
    print(f"report: {report}", flush=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print("\nReconstruction (one observation per seed; errors symmetry-aware, vs the lab's truth)")
    print(format_recon_table(run_recon_benchmark(list(args.tasks or DEFAULT_TASKS), seeds)), flush=True)
    return 0
