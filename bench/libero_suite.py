"""LIBERO suite benchmark: every (task, official initial state) of a suite run by the planner in the LIBERO lab.

    antigrounding bench --suite libero_object [--tasks 0-9] [--inits 0-4] [--scorer simjudge] [--json]
    python -m bench.libero_suite --suite libero_object ... [--parallel N]

Success is LIBERO's own check_success on the lab's live state after the planner stops (through the evaluation
channel; the planner never sees it). Prints success per task and for the suite, median MPC steps and seconds
per step; with --json the last line is {"suite", "episodes", "successes", "success_rate", "per_task"}.
--parallel N runs N episodes side by side on worker processes (planner.batch_pool's pool: each worker runs its
planner and its own LIBERO lab, and dies with this process); each needs about one core.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections import Counter

from planner.errors import TaskError

log = logging.getLogger(__name__)


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
    parser.add_argument("--parallel", type=int, default=1, help="episodes side by side, on worker processes "
                        "(default 1: one after another in this process); about one core each")
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
    parallel = getattr(args, "parallel", None)
    parallel = 1 if parallel is None else int(parallel)
    if parallel < 1:
        print(f"antigrounding bench: --parallel: expected a number of worker processes >= 1, got {parallel}",
              file=sys.stderr)
        return 2
    per_task: dict[str, list[int]] = {}
    steps, step_time, errors = [], [], Counter()
    total = len(tasks) * len(inits)
    print(f"LIBERO {args.suite}: {len(tasks)} task(s) x {len(inits)} initial state(s), scorer {args.scorer}"
          f"{f', {parallel} in parallel' if parallel > 1 else ''}", file=sys.stderr, flush=True)
    t_start = time.perf_counter()
    done = 0

    def record(t: int, n: int, success: bool, n_steps: int, time_s: float, error: str | None) -> None:
        nonlocal done
        done += 1
        per_task[str(t)][0] += int(success)
        per_task[str(t)][1] += 1
        steps.append(n_steps)
        if n_steps:
            step_time.append(time_s / n_steps)
        if error:
            errors[error.splitlines()[0][:120]] += 1
        print(f"  [{done:3d}/{total}] task {t} init {n}: {'SUCCESS' if success else 'failed '} "
              f"{n_steps:2d} steps {time_s:6.1f} s{'  ' + error[:80] if error else ''}", file=sys.stderr, flush=True)

    runnable: dict[int, object] = {}
    for t in tasks:
        ref = f"libero:{args.suite}/{t}"
        per_task[str(t)] = [0, 0]
        try:
            runnable[t] = load_libero_task(ref)
        except LiberoNotInstalledError as exc:
            print(f"antigrounding bench: {exc}", file=sys.stderr)
            return 2
        except TaskError as exc:      # e.g. a goal on an articulated fixture: counted as failed episodes
            errors[f"task not translatable: {exc}"] += len(inits)
            per_task[str(t)][1] = len(inits)
            done += len(inits)
            print(f"  [{done:3d}/{total}] task {t}: not run ({exc})", file=sys.stderr, flush=True)
    if parallel > 1:
        _run_parallel(args, runnable, inits, parallel, scoring_config, max_steps, record)
    else:
        for t, loaded in runnable.items():
            for n in inits:
                start = time.perf_counter()
                try:
                    out = run_task(f"libero:{args.suite}/{t}", seed=n, scorer=args.scorer, out_dir=args.out,
                                   scoring_config=scoring_config, max_steps=max_steps,
                                   n_candidates=getattr(args, "candidates", None), loaded=loaded,
                                   pool=PoolOptions(use_ray=False))
                except Exception as exc:  # noqa: BLE001 - one broken episode (a lab that would not stop) is a
                    # failed row, not the end of the grid; the parallel path's run_episode does the same
                    log.exception("libero:%s/%s init %s failed to run", args.suite, t, n)
                    record(t, n, False, 0, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
                    continue
                record(t, n, bool(out.success), out.steps, out.time_s, out.error)
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


def _run_parallel(args: argparse.Namespace, runnable: dict, inits: list[int], parallel: int,
                  scoring_config: str | None, max_steps: int | None, record) -> None:
    """The episodes on planner.batch_pool's worker processes; record() gets each as it finishes. An episode whose
    worker died counts as failed, with the reason."""
    from planner.batch import DEFAULT_CONFIG, Episode, EpisodeOptions
    from planner.batch_pool import run_in_processes

    eps = {(t, n): Episode(f"libero:{args.suite}/{t}", n, scoring_config or DEFAULT_CONFIG)
           for t in runnable for n in inits}
    cells = {ep.key: tn for tn, ep in eps.items()}
    options = EpisodeOptions(max_steps=max_steps, n_candidates=getattr(args, "candidates", None),
                             scorer=args.scorer)

    def finish(rec: dict) -> None:
        t, n = cells[rec["key"]]
        record(t, n, bool(rec.get("success")), int(rec.get("steps") or 0), float(rec.get("time_s") or 0.0),
               rec.get("error"))

    for key in run_in_processes(list(eps.values()), args.out, options, parallel, finish, None):
        t, n = cells[key]
        record(t, n, False, 0, 0.0, "worker process died (killed or out of memory); the episode did not finish")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.libero_suite", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_suite(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
