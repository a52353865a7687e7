"""`antigrounding bench batch-throughput` (or `python -m bench.batch_throughput`): episodes per hour of one grid
run serially (`--parallel 1`, in this process) and with `--parallel N` (default 2, worker processes), in one run.

Both passes run the same grid (tasks x seeds, `--max-steps`, `--candidates`) into fresh folders under OUT; the
speedup is the ratio of the two rates. The load average before and after each pass is printed with it: on a
machine shared with other work a pass gets whatever CPU share the others leave. A benchmark: it prints and
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from planner.batch import EpisodeOptions, make_grid, run_batch

DEFAULT_TASKS = ("stack_blocks", "pick_place_tray")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def measure(tasks: list[str], seeds: list[int], out: str, parallel: int, max_steps: int, candidates: int,
            scorer: str | None) -> list[dict]:
    grid = make_grid(tasks, seeds)
    options = EpisodeOptions(max_steps=max_steps, n_candidates=candidates, scorer=scorer)
    rows = []
    for p in (1, parallel):
        folder = os.path.join(out, f"parallel{p}")
        shutil.rmtree(folder, ignore_errors=True)   # a fresh grid: nothing resumed
        before = _load()
        print(f"pass --parallel {p}: {len(grid)} episodes, load average {before}", file=sys.stderr, flush=True)
        result = run_batch(grid, folder, options, parallel=p)
        rows.append({"parallel": p, "episodes": result.ran, "wall_s": result.wall_s,
                     "episodes_per_hour": result.episodes_per_hour, "load_before": before, "load_after": _load(),
                     "successes": sum(bool(r["success"]) for r in result.results)})
    return rows


def format_rows(rows: list[dict]) -> str:
    base = rows[0]["episodes_per_hour"] or float("nan")
    lines = [f"{'mode':28s} {'episodes':>8s} {'wall s':>8s} {'episodes/h':>10s} {'vs serial':>9s}  load avg "
             "(1/5/15 min) before -> after"]
    for r in rows:
        mode = "serial, in process" if r["parallel"] == 1 else f"{r['parallel']} worker processes"
        lines.append(f"{mode:28s} {r['episodes']:8d} {r['wall_s']:8.1f} {r['episodes_per_hour']:10.1f} "
                     f"{r['episodes_per_hour'] / base:8.2f}x  {r['load_before']} -> {r['load_after']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    rows = measure(list(args.tasks or DEFAULT_TASKS), seeds, os.path.join(args.out, "batch_throughput"),
                   args.parallel or 2, args.max_steps or 2, args.candidates or 8, args.scorer)
    print(format_rows(rows), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--scorer", default="simjudge")
    parser.add_argument("--out", default="runs/bench")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
