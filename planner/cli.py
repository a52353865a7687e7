"""The `antigrounding` command line: run, score, reconstruct, bench, doctor."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import configs

log = logging.getLogger("antigrounding")
CONFIG_DIR_ENV = "ANTIGROUNDING_CONFIG_DIR"


def _version() -> str:
    from planner.doctor import package_version

    return package_version()


def _step_line(rec: dict) -> None:
    chosen = rec.get("chosen")
    s = next((c.get("S") for c in rec.get("candidates", []) if c["id"] == chosen), None)
    what = f"chose {chosen} (S={s:.2f})" if chosen is not None and s is not None else "held still"
    t = sum(rec.get("timings_s", {}).values())
    rate = rec.get("score_cache_hit_rate")
    cache = "" if rate is None else f" | cache {100 * rate:3.0f}%"
    agents = f" | M'={rec.get('M_prime')}" if rec.get("backends") != ["simjudge"] else ""
    print(f"  step {rec['step']:2d} | {rec.get('subtask', '')[:48]:48s} | {what:18s} | {t:5.2f} s{agents}{cache}",
          file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from planner.episode import run_task

    print(f"antigrounding: running {args.task} (seed {args.seed}, scorer {args.scorer or 'from config'})",
          file=sys.stderr, flush=True)
    out = run_task(args.task, seed=args.seed, scorer=args.scorer, out_dir=args.out,
                   scoring_config=args.scoring_config, max_steps=args.max_steps, n_candidates=args.candidates,
                   on_step=None if args.quiet else _step_line, pool=_pool_options(args))
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


def _pool_options(args: argparse.Namespace):
    from planner.components import PoolOptions

    use_ray = False if args.no_ray else (True if args.ray_address else None)
    cache = None if args.no_cache else (args.cache or os.path.join(args.out, "answer_cache.sqlite"))
    return PoolOptions(use_ray=use_ray, ray_address=args.ray_address, cache_path=cache)


def cmd_score(args: argparse.Namespace) -> int:
    from planner.components import build_scorer
    from planner.offline_score import format_table, load_logged_step, parse_image_args, score_images
    from planner.task import load_task

    task = load_task(args.task).planner
    if args.step:
        saved = load_logged_step(args.step)
        images, ids, subtask = saved.images, saved.candidate_ids, saved.subtask
    else:
        images, ids, subtask = parse_image_args(args.images or []), tuple(args.ids or ()), ""
    subtask = args.subtask or subtask or (task.subtasks[0].say if task.subtasks else task.instruction)
    scorer, _ = build_scorer(args.scoring_config, args.scorer, _pool_options(args))
    with scorer:
        table = score_images(scorer, task.instruction, subtask, ids, images)
    print(format_table(table), file=sys.stderr)
    if args.json:
        print(json.dumps(table.to_dict()), flush=True)
    return 0 if table.S else 2


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from planner.episode import reconstruct_once

    result = reconstruct_once(args.task, seed=args.seed, export_dir=args.export)
    if not args.json:
        for o in result["objects"]:
            if o["found"]:
                print(f"{o['name']:16s} t_err {o['t_err_mm']:7.2f} mm   r_err {o['r_err_deg']:6.2f} deg   "
                      f"confidence {o['confidence']:.2f} ({o['status']})", file=sys.stderr)
            else:
                print(f"{o['name']:16s} NOT FOUND", file=sys.stderr)
        for issue in result["issues"]:
            print(f"issue: {issue['kind']} {issue['subject']}: {issue['message']}", file=sys.stderr)
        print(f"time {result['time_s']:.3f} s, {result['n_unknown']} unknown obstacle(s)", file=sys.stderr)
    if result["export"]:
        print(f"twin exported to {args.export} (python {os.path.join(args.export, 'load_scene.py')} --gui)",
              file=sys.stderr)
    else:
        print(json.dumps({"objects": [{k: o[k] for k in ("name", "t_err_mm", "r_err_deg")} for o in result["objects"]],
                          "time_s": result["time_s"]}), flush=True)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from planner.doctor import as_dict, package_version, run_checks, verdict

    checks = run_checks()
    print(f"antigrounding {package_version()}", file=sys.stderr)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.required else "--  ")
        fix = f"  -> {c.fix}" if c.fix and not c.ok else ""
        print(f"  [{mark}] {c.name:28s} {c.detail}{fix}", file=sys.stderr)
    ok, line = verdict(checks)
    print(f"antigrounding: {line}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(as_dict(checks)), flush=True)
    return 0 if ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from planner.bench import run_bench

    return run_bench(args)


def _add_pool_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", default=None, help="run the agents on this Ray cluster (default: a local "
                        "Ray when an agent calls a model; simjudge alone runs in process)")
    parser.add_argument("--no-ray", action="store_true", help="call the agents one by one in this process")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    parser.add_argument("--cache", default=None, help="answer cache file (default <out>/answer_cache.sqlite)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antigrounding", description=__doc__.split("\n")[0] + ": real-to-sim MPC "
                                     "planner with VLM trajectory scoring")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    parser.add_argument("--version", action="version", version=f"antigrounding {_version()}")
    parser.add_argument("--config-dir", action="append", default=None, metavar="DIR",
                        help=f"a folder of your own configs (tasks/, robots/, cameras/, scoring/, prompts/, "
                        f"objects.yaml, views.yaml), searched before the shipped ones; repeatable (default: "
                        f"${CONFIG_DIR_ENV}, {os.pathsep}-separated)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one episode of a task against the sim lab")
    run.add_argument("--task", required=True, help="task name (stack_blocks) or YAML path")
    run.add_argument("--seed", type=int, default=0, help="lab randomisation seed (default 0)")
    run.add_argument("--scorer", default=None, help="backend for every agent (default: the scoring config's; "
                     "simjudge needs no key)")
    run.add_argument("--scoring-config", default=None, help="scoring YAML (default configs/scoring/default.yaml)")
    run.add_argument("--out", default="runs", help="root folder for run directories (default runs/)")
    run.add_argument("--max-steps", type=int, default=None, help="override the task's max_steps")
    run.add_argument("--candidates", type=int, default=None, help="candidates per step (default 16)")
    run.add_argument("--json", action="store_true", help="last stdout line: one JSON summary")
    run.add_argument("--quiet", action="store_true", help="no per-step progress lines")
    _add_pool_args(run)
    run.set_defaults(func=cmd_run)

    score = sub.add_parser("score", help="score saved pictures with the agents (debug prompts and backends)")
    score.add_argument("--task", required=True, help="task YAML: its instruction (and first subtask)")
    score.add_argument("--step", default=None, help="a logged step folder, runs/<run>/step_NNN: its images, "
                       "candidate ids and subtask")
    score.add_argument("--images", nargs="+", default=None, metavar="VIEW=PNG",
                       help="pictures to score, view=path.png (or a path: the view is its file name)")
    score.add_argument("--ids", nargs="+", type=int, default=None, help="candidate ids drawn in the pictures")
    score.add_argument("--subtask", default=None, help="subtask text (default: the step's, or the task's first)")
    score.add_argument("--scorer", default=None, help="anthropic | openai | transformers | a configs/scoring name")
    score.add_argument("--scoring-config", default=None, help="scoring YAML")
    score.add_argument("--out", default="runs", help="where the answer cache lives (default runs/)")
    score.add_argument("--json", action="store_true", help="stdout: the score table with every raw answer")
    _add_pool_args(score)
    score.set_defaults(func=cmd_score)

    rec = sub.add_parser("reconstruct", help="observe once, reconstruct, report pose errors against the lab")
    rec.add_argument("--task", required=True)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--json", action="store_true")
    rec.add_argument("--export", default=None, metavar="DIR", help="write the estimated twin: scene.json, one URDF "
                     "per object with OBJ meshes, and load_scene.py for plain PyBullet")
    rec.set_defaults(func=cmd_reconstruct)

    bench = sub.add_parser("bench", help="success rate and per-stage timings over seeds (prints tables)")
    bench.add_argument("--tasks", nargs="+", default=None, help="task files (default: stack_blocks and "
                       "pick_place_tray; with --reconstruction all five shipped tasks)")
    bench.add_argument("--seeds", type=int, default=10, help="number of seeds per task (default 10)")
    bench.add_argument("--first-seed", type=int, default=0)
    bench.add_argument("--scorer", default="simjudge")
    bench.add_argument("--out", default="runs/bench")
    bench.add_argument("--candidates", type=int, default=None)
    bench.add_argument("--scoring-pool", action="store_true", help="only the agent-pool benchmark (stub server, "
                       "Ray pool vs serial, a killed actor, the answer cache)")
    bench.add_argument("--reconstruction", "--recon-only", dest="reconstruction", action="store_true",
                       help="only the reconstruction benchmark: per object errors, time per scene, clutter Chamfer, "
                       "twin settling (default: all five shipped tasks)")
    bench.add_argument("--identification", action="store_true", help="only the mass/friction identification "
                       "benchmark (configs/tasks/ident_blocks.yaml, 8 mass/friction cases per seed)")
    bench.add_argument("--repeats", type=int, default=5, help="repeats per timed case (default 5)")
    bench.set_defaults(func=cmd_bench)

    doctor = sub.add_parser("doctor", help="check this machine: Python, packages, system libraries, EGL rendering, "
                            "configs, usable scorers (keys reported present or absent, never shown)")
    doctor.add_argument("--json", action="store_true", help="last stdout line: every check as JSON")
    doctor.set_defaults(func=cmd_doctor)
    from planner import cli_robot  # robot check, calibrate

    cli_robot.add_commands(sub)
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


def _input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (imported here: they pull in open3d and PyBullet, which `doctor` must be
    able to diagnose when they cannot load)."""
    from planner.errors import TaskError
    from reconstruction.checks import FrameError
    from scoring import ScoringError
    from sim.scene import SpecError

    return TaskError, SpecError, ScoringError, FrameError, configs.ConfigNotFoundError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _keep_stdout_for_results()
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        input_errors = _input_errors()
    except ImportError as exc:  # a missing system library or package: say so, and where to look
        if args.command != "doctor":
            print(f"antigrounding: error: cannot load a dependency: {exc}\n"
                  f"antigrounding: run 'antigrounding doctor' to see what is missing and how to fix it",
                  file=sys.stderr)
            return 2
        input_errors = (configs.ConfigNotFoundError,)
    try:
        # the environment is read here, in the CLI, and nowhere below it
        config_dirs = args.config_dir or [d for d in os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep) if d]
        configs.set_user_dirs(config_dirs)
        return args.func(args)
    except input_errors as exc:
        # bad input (task, camera, robot, views or scoring config, an unknown --scorer): the message names
        # the file and the field; no traceback
        print(f"antigrounding: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("antigrounding: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
