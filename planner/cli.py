"""The `antigrounding` command line: run, reconstruct, bench."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from planner.errors import TaskError
from planner.paths import config_path
from scoring import ScoringError
from sim.scene import SpecError

log = logging.getLogger("antigrounding")


def _step_line(rec: dict) -> None:
    chosen = rec.get("chosen")
    s = next((c.get("S") for c in rec.get("candidates", []) if c["id"] == chosen), None)
    what = f"chose {chosen} (S={s:.2f})" if chosen is not None and s is not None else "held still"
    t = sum(rec.get("timings_s", {}).values())
    print(f"  step {rec['step']:2d} | {rec.get('subtask', '')[:48]:48s} | {what:18s} | {t:5.2f} s",
          file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from planner.episode import run_task

    print(f"antigrounding: running {args.task} (seed {args.seed}, scorer {args.scorer or 'from config'})",
          file=sys.stderr, flush=True)
    out = run_task(args.task, seed=args.seed, scorer=args.scorer, out_dir=args.out,
                   scoring_config=args.scoring_config, max_steps=args.max_steps, n_candidates=args.candidates,
                   on_step=None if args.quiet else _step_line)
    verdict = "SUCCESS" if out.success else "FAILED"
    print(f"antigrounding: {verdict} (lab's verdict) after {out.steps} steps in {out.time_s:.1f} s",
          file=sys.stderr)
    if out.error:
        print(f"antigrounding: error: {out.error}", file=sys.stderr)
    print(f"antigrounding: report: {os.path.join(out.run_dir, 'report.html')}", file=sys.stderr, flush=True)
    if args.json:
        summary = out.summary()
        if out.error:
            summary["error"] = out.error
        summary["run_dir"] = out.run_dir
        print(json.dumps(summary), flush=True)
    return 0 if out.error is None else 2


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from planner.episode import reconstruct_once

    result = reconstruct_once(args.task, seed=args.seed)
    if not args.json:
        for o in result["objects"]:
            if o["found"]:
                print(f"{o['name']:16s} t_err {o['t_err_mm']:7.2f} mm   r_err {o['r_err_deg']:6.2f} deg   "
                      f"fitness {o['fitness']:.2f}", file=sys.stderr)
            else:
                print(f"{o['name']:16s} NOT FOUND", file=sys.stderr)
        print(f"time {result['time_s']:.3f} s, {result['n_unknown']} unknown obstacle(s)", file=sys.stderr)
    else:
        print(json.dumps({"objects": [{k: o[k] for k in ("name", "t_err_mm", "r_err_deg")} for o in result["objects"]],
                          "time_s": result["time_s"]}), flush=True)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from planner.bench import run_bench

    return run_bench(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antigrounding", description=__doc__.split("\n")[0] + ": real-to-sim MPC "
                                     "planner with VLM trajectory scoring")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one episode of a task against the sim lab")
    run.add_argument("--task", required=True, help="task YAML (any path)")
    run.add_argument("--seed", type=int, default=0, help="lab randomisation seed (default 0)")
    run.add_argument("--scorer", default=None, help="backend for every agent (default: the scoring config's; "
                     "simjudge needs no key)")
    run.add_argument("--scoring-config", default=None, help="scoring YAML (default configs/scoring/default.yaml)")
    run.add_argument("--out", default="runs", help="root folder for run directories (default runs/)")
    run.add_argument("--max-steps", type=int, default=None, help="override the task's max_steps")
    run.add_argument("--candidates", type=int, default=None, help="candidates per step (default 16)")
    run.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    run.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    run.set_defaults(func=cmd_run)

    rec = sub.add_parser("reconstruct", help="observe once, reconstruct, report pose errors against the lab")
    rec.add_argument("--task", required=True)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--json", action="store_true")
    rec.set_defaults(func=cmd_reconstruct)

    bench = sub.add_parser("bench", help="success rate and per-stage timings over seeds (prints tables)")
    bench.add_argument("--tasks", nargs="+", default=[config_path("tasks", "stack_blocks.yaml"),
                                                      config_path("tasks", "pick_place_tray.yaml")])
    bench.add_argument("--seeds", type=int, default=10, help="number of seeds per task (default 10)")
    bench.add_argument("--first-seed", type=int, default=0)
    bench.add_argument("--scorer", default="simjudge")
    bench.add_argument("--out", default="runs/bench")
    bench.add_argument("--recon-only", action="store_true", help="only the reconstruction error table")
    bench.add_argument("--candidates", type=int, default=None)
    bench.set_defaults(func=cmd_bench)
    return parser


def _keep_stdout_for_results() -> None:
    """PyBullet and its EGL plugin printf diagnostics to fd 1; send those to stderr so that stdout holds only
    our own lines (tables, the --json summary)."""
    try:
        sys.stdout.flush()
        results = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = os.fdopen(results, "w", buffering=1)
    except (OSError, ValueError):  # no real file descriptors (e.g. captured in-process): leave as is
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _keep_stdout_for_results()
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except (TaskError, SpecError, ScoringError) as exc:
        # bad input (task, camera, robot, views or scoring config, an unknown --scorer): the message names
        # the file and the field; no traceback
        print(f"antigrounding: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("antigrounding: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
