"""LIBERO suite benchmark: every (task, official initial state) of a suite run by the planner in the LIBERO lab.

    antigrounding bench --suite libero_object [--tasks 0-9] [--inits 0-4] [--scorer simjudge] [--json]
    python -m bench.libero_suite --suite libero_object ...

Success is LIBERO's own check_success on the lab's live state after the planner stops (through the evaluation
channel; the planner never sees it). Prints success per task and for the suite, median MPC steps and seconds
per step; with --json the last line is {"suite", "episodes", "successes", "success_rate", "per_task"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter

from planner.errors import TaskError


def parse_range(text: str, where: str, upper: int) -> list[int]:
    """'0-9', '1,3,5', '2' -> sorted indices, each in [0, upper)."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise TaskError(f"{where}: expected indices like 0-9 or 1,3,5, got {text!r}") from None
    bad = sorted(i for i in out if not 0 <= i < upper)
    if not out or bad:
        raise TaskError(f"{where}: indices must be within 0..{upper - 1}, got {text!r}")
    return sorted(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", required=True, help="LIBERO suite: libero_object, libero_spatial, libero_goal, "
                        "libero_10")
    parser.add_argument("--tasks", default="0-9", help="task indices (default 0-9)")
    parser.add_argument("--inits", default="0-4", help="official initial states per task (default 0-4)")
    parser.add_argument("--scorer", default="simjudge", help="scoring backend (default simjudge)")
    parser.add_argument("--scoring-config", default=None)
    parser.add_argument("--max-steps", type=int, default=None, help="MPC steps per episode (default: the task's)")
    parser.add_argument("--candidates", type=int, default=None)
    parser.add_argument("--out", default="runs/libero", help="run directories go here")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")


def run_suite(args: argparse.Namespace) -> int:
    """Run the grid; 0 when every episode ran (whatever its outcome), 2 on a setup error."""
    from planner.components import PoolOptions
    from planner.episode import run_task
    from planner.libero_task import LiberoNotInstalledError, load_libero_task, n_init_states, suite_size

    # `antigrounding bench` shares this namespace: its --tasks is a list, and it may lack some of our options
    task_arg = getattr(args, "tasks", None) or "0-9"
    task_text = ",".join(task_arg) if isinstance(task_arg, list | tuple) else str(task_arg)
    scoring_config = getattr(args, "scoring_config", None)
    max_steps, as_json = getattr(args, "max_steps", None), bool(getattr(args, "json", False))
    try:
        tasks = parse_range(task_text, "--tasks", suite_size(args.suite))
        n_inits = min(n_init_states(args.suite, t) for t in tasks)
        inits = parse_range(str(getattr(args, "inits", None) or "0-4"), "--inits", n_inits)
    except TaskError as exc:
        print(f"antigrounding bench: {exc}", file=sys.stderr)
        return 2
    per_task: dict[str, list[int]] = {}
    steps, step_time, errors = [], [], Counter()
    total = len(tasks) * len(inits)
    print(f"LIBERO {args.suite}: {len(tasks)} task(s) x {len(inits)} initial state(s), scorer {args.scorer}",
          file=sys.stderr, flush=True)
    t_start = time.perf_counter()
    done = 0
    for t in tasks:
        ref = f"libero:{args.suite}/{t}"
        per_task[str(t)] = [0, 0]
        try:
            loaded = load_libero_task(ref)
        except LiberoNotInstalledError as exc:
            print(f"antigrounding bench: {exc}", file=sys.stderr)
            return 2
        except TaskError as exc:      # e.g. a goal on an articulated fixture: counted as failed episodes
            errors[f"task not translatable: {exc}"] += len(inits)
            per_task[str(t)][1] = len(inits)
            done += len(inits)
            print(f"  [{done:3d}/{total}] task {t}: not run ({exc})", file=sys.stderr, flush=True)
            continue
        for n in inits:
            out = run_task(ref, seed=n, scorer=args.scorer, out_dir=args.out, scoring_config=scoring_config,
                           max_steps=max_steps, n_candidates=getattr(args, "candidates", None), loaded=loaded,
                           pool=PoolOptions(use_ray=False))
            done += 1
            per_task[str(t)][0] += int(out.success)
            per_task[str(t)][1] += 1
            steps.append(out.steps)
            if out.steps:
                step_time.append(out.time_s / out.steps)
            if out.error:
                errors[out.error.splitlines()[0][:120]] += 1
            print(f"  [{done:3d}/{total}] task {t} init {n}: {'SUCCESS' if out.success else 'failed '} "
                  f"{out.steps:2d} steps {out.time_s:6.1f} s{'  ' + out.error[:80] if out.error else ''}",
                  file=sys.stderr, flush=True)
    successes = sum(s for s, _ in per_task.values())
    episodes = sum(e for _, e in per_task.values())
    print(f"\nLIBERO {args.suite} with {args.scorer} (LIBERO's check_success; lab physics unchanged)", file=sys.stderr)
    print(f"{'task':>5} {'success':>9}  instruction", file=sys.stderr)
    for t in tasks:
        s, e = per_task[str(t)]
        try:
            instr = load_libero_task(f"libero:{args.suite}/{t}").planner.instruction
        except TaskError as exc:
            instr = f"(not translatable: {str(exc)[:60]})"
        print(f"{t:>5} {s:>4}/{e:<4}  {instr}", file=sys.stderr)
    rate = successes / episodes if episodes else 0.0
    med = statistics.median(steps) if steps else 0
    sps = statistics.median(step_time) if step_time else 0.0
    print(f"suite {successes}/{episodes} = {100 * rate:.1f}%, median {med} steps, {sps:.1f} s per step, "
          f"{time.perf_counter() - t_start:.0f} s in all", file=sys.stderr)
    for err, k in errors.most_common(5):
        print(f"  {k} x {err}", file=sys.stderr)
    if as_json:
        print(json.dumps({"suite": args.suite, "episodes": episodes, "successes": successes,
                          "success_rate": round(rate, 4), "per_task": per_task, "scorer": args.scorer,
                          "median_steps": med, "s_per_step": round(sps, 2)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.libero_suite", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_suite(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
