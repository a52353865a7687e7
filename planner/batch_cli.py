"""The command lines of batch, replay, optimise and compare; `register(sub)` adds them to `antigrounding`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from planner.errors import TaskError


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- batch
def cmd_batch(args: argparse.Namespace) -> int:
    from planner.batch import EpisodeOptions, check_grid, format_summary, make_grid, parse_seeds, run_batch, summarise
    from planner.batch_report import write_batch_report
    from planner.batch_variants import grid_variants

    seeds = parse_seeds(args.seeds)
    variants = grid_variants(args.variants, args.variant, args.planner_option)
    grid = make_grid(args.tasks, seeds, args.scoring_config, [v.name for v in variants])
    check_grid(grid)
    parallel = check_parallel(args.parallel)
    _err(f"antigrounding batch: {len(grid)} episodes ({len(args.tasks)} task(s) x {len(seeds)} seed(s) x "
         f"{len(args.scoring_config or ['default'])} config(s) x {len(variants)} variant(s)) on "
         f"{where_episodes_run(parallel, args.ray_address)}; results in {os.path.join(args.out, 'results.jsonl')}")
    for v in variants:
        if len(variants) > 1 or v.describe() != "as configured":
            _err(f"  variant {v.name}: {v.describe()}")
    options = EpisodeOptions(max_steps=args.max_steps, n_candidates=args.candidates,
                             config_dirs=tuple(os.path.abspath(d) for d in (args.config_dir or [])), scorer=args.scorer,
                             variants=tuple(variants), fast_render=getattr(args, "fast_render", True))
    result = run_batch(grid, args.out, options, parallel=parallel, ray_address=args.ray_address,
                       progress=not args.quiet)
    rows = summarise(result.results)
    backends = sorted({r.get("scorer") for r in result.results if r.get("scorer")})
    note = f"scorer backend(s): {', '.join(backends) or '-'}; success is the lab's verdict on its truth"
    print(format_summary(rows, note), flush=True)
    rate = (f"{result.ran} episode(s) in {result.wall_s:.0f} s = {result.episodes_per_hour:.1f} episodes/hour "
            f"({result.parallel} at once)")
    _err(f"antigrounding batch: {rate}")
    report = write_batch_report(os.path.abspath(args.out), rows, result.results, "antigrounding batch",
                                notes=[note, rate])
    _err(f"antigrounding batch: report: {report}")
    if result.not_finished:
        _err(f"antigrounding batch: {len(result.not_finished)} episode(s) did not finish (their worker died); "
             f"run the same command again to retry them: {', '.join(result.not_finished)}")
    if args.json:
        print(json.dumps({"episodes": len(result.results), "ran": result.ran, "wall_s": round(result.wall_s, 1),
                          "episodes_per_hour": round(result.episodes_per_hour, 2), "parallel": result.parallel,
                          "summary": rows, "not_finished": result.not_finished,
                          "results": os.path.join(os.path.abspath(args.out), "results.jsonl"), "report": report}),
              flush=True)
    return 1 if result.not_finished else 0


def check_parallel(value: int | None) -> int:
    """--parallel: episodes at once (default: the machine's cores)."""
    if value is None:
        return os.cpu_count() or 1
    if not 1 <= value <= 1024:
        raise TaskError(None, "--parallel", "an integer from 1 to 1024", value)
    return value


def where_episodes_run(parallel: int, ray_address: str | None) -> str:
    if ray_address:
        return f"the Ray cluster at {ray_address}"
    return f"{parallel} worker processes at once" if parallel > 1 else "serial, in this process"


def add_grid_args(parser: argparse.ArgumentParser, bench: bool = False) -> None:
    """The planner-variant and parallelism flags that batch and bench (episodes) share."""
    parser.add_argument("--variants", default=None, metavar="FILE", help="planner variants YAML (a path, or a name "
                        "such as 'ablations' for configs/ablations.yaml): the grid runs each")
    parser.add_argument("--variant", nargs="+", default=None, metavar="NAME", help="only these variants of --variants")
    parser.add_argument("--planner-option", action="append", default=None, metavar="KEY=VALUE",
                        help="set an MPCConfig field (speed_scale=0.3, sampler.n_candidates=8) or the views "
                        "(views=[front]) on every variant; repeatable")
    if bench:   # batch has these already
        parser.add_argument("--parallel", type=int, default=None, help="episodes at once (default: the machine's "
                            "cores; 1 runs them one after another in this process)")
        parser.add_argument("--ray-address", default=None, help="run the episodes on this Ray cluster")
        parser.add_argument("--max-steps", type=int, default=None, help="episodes: override every task's max_steps")
        parser.add_argument("--ablation", action="store_true", help="episodes: run the planner variants of "
                            "configs/ablations.yaml (or --variants) and print the ablation table and plot")


# ---------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> int:
    from planner.reproduce import diff_runs

    for d in (args.run_a, args.run_b):
        if not os.path.isfile(os.path.join(d, "steps.jsonl")):
            raise TaskError(f"{d}: not a run directory (no steps.jsonl)")
    diffs = diff_runs(args.run_a, args.run_b, args.max_differences)
    for line in diffs:
        print(line, flush=True)
    _err("antigrounding compare: identical apart from timings" if not diffs else
         f"antigrounding compare: {len(diffs)} difference(s) shown")
    if args.json:
        print(json.dumps({"identical": not diffs, "differences": diffs}), flush=True)
    return 0 if not diffs else 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add batch, replay, optimise and compare to the `antigrounding` subcommands."""
    batch = sub.add_parser("batch", help="a task x seed x scoring-config x planner-variant grid of sim episodes, "
                           "in parallel, resumable")
    batch.add_argument("--tasks", nargs="+", required=True, help="task names or YAML paths")
    batch.add_argument("--seeds", nargs="+", default=["0-9"], help="seeds: 0-9, 0,3,5 or 2-4,8 (default 0-9)")
    batch.add_argument("--scoring-config", nargs="+", default=None, help="one or more scoring configs (names or "
                       "paths); the grid runs each (default: the default config)")
    batch.add_argument("--scorer", default=None, help="switch every agent to this backend")
    batch.add_argument("--out", required=True, help="batch folder: results.jsonl, report.html, runs/")
    batch.add_argument("--parallel", type=int, default=None, help="episodes at once (default: the machine's cores, "
                       "as worker processes; 1 runs them one after another in this process)")
    batch.add_argument("--ray-address", default=None, help="run the episodes on this Ray cluster")
    add_grid_args(batch)
    batch.add_argument("--max-steps", type=int, default=None, help="override every task's max_steps")
    batch.add_argument("--candidates", type=int, default=None, help="candidates per step (default 16)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    batch.set_defaults(func=cmd_batch)
    if "bench" in sub.choices:   # bench (episodes) runs its grid through batch: the same grid flags
        add_grid_args(sub.choices["bench"], bench=True)

    compare = sub.add_parser("compare", help="compare two runs step by step, timings left out (reproducibility)")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--max-differences", type=int, default=10)
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)

    try:
        from planner.replay_cli import register as register_replay
    except ImportError:   # while replay/optimise are not there
        return
    register_replay(sub)
