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

    seeds = parse_seeds(args.seeds)
    grid = make_grid(args.tasks, seeds, args.scoring_config)
    check_grid(grid)
    parallel = args.parallel or os.cpu_count() or 1
    where = args.ray_address or (f"local Ray, {parallel} at once" if parallel > 1 else "serial, in this process")
    _err(f"antigrounding batch: {len(grid)} episodes ({len(args.tasks)} task(s) x {len(seeds)} seed(s) x "
         f"{len(args.scoring_config or ['default'])} config(s)) on {where}; results in "
         f"{os.path.join(args.out, 'results.jsonl')}")
    options = EpisodeOptions(max_steps=args.max_steps, n_candidates=args.candidates,
                             config_dirs=tuple(os.path.abspath(d) for d in (args.config_dir or [])), scorer=args.scorer)
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
    batch = sub.add_parser("batch", help="a task x seed x scoring-config grid of sim episodes on Ray, resumable")
    batch.add_argument("--tasks", nargs="+", required=True, help="task names or YAML paths")
    batch.add_argument("--seeds", nargs="+", default=["0-9"], help="seeds: 0-9, 0,3,5 or 2-4,8 (default 0-9)")
    batch.add_argument("--scoring-config", nargs="+", default=None, help="one or more scoring configs (names or "
                       "paths); the grid runs each (default: the default config)")
    batch.add_argument("--scorer", default=None, help="switch every agent to this backend")
    batch.add_argument("--out", required=True, help="batch folder: results.jsonl, report.html, runs/")
    batch.add_argument("--parallel", type=int, default=None, help="episodes at once (default: the machine's cores; "
                       "1 runs them one after another in this process)")
    batch.add_argument("--ray-address", default=None, help="run the episodes on this Ray cluster")
    batch.add_argument("--max-steps", type=int, default=None, help="override every task's max_steps")
    batch.add_argument("--candidates", type=int, default=None, help="candidates per step (default 16)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")
    batch.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    batch.set_defaults(func=cmd_batch)

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
