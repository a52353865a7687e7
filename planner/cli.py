"""The `antigrounding` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import configs

log = logging.getLogger("antigrounding")
CONFIG_DIR_ENV = "ANTIGROUNDING_CONFIG_DIR"
RENDERER_ENV = "ANTIGROUNDING_RENDERER"     # "tiny" forces TinyRenderer in the twin and the lab
MAX_SEED = 2**32 - 1
MAX_CANDIDATES = 256
MAX_STEPS = 1000


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


def _load_task(name_or_path: str):
    """The task, validated before the heavy imports (open3d, Ray): bad input is rejected in about a second."""
    from planner.task import load_task

    return load_task(name_or_path)


def cmd_run(args: argparse.Namespace) -> int:
    loaded = _load_task(args.task)
    from planner.components import scoring_config_for

    scoring_config_for(args.scoring_config, args.scorer)   # bad scoring input fails here, before the heavy imports
    common = dict(seed=args.seed, scorer=args.scorer, out_dir=args.out, scoring_config=args.scoring_config,
                  max_steps=args.max_steps, n_candidates=args.candidates,
                  on_step=None if args.quiet else _step_line, pool=_pool_options(args), fast_render=args.fast_render,
                  loaded=loaded)
    if args.robot is not None:   # a vendor driver instead of the sim lab
        from planner.robot_run import run_on_robot

        print(f"antigrounding: running {args.task} on --robot {args.robot} (scorer {args.scorer or 'from config'})",
              file=sys.stderr, flush=True)
        out = run_on_robot(args.task, args.robot, args.robot_config, args.camera_config or (), args.host, **common)
    else:
        from planner.episode import run_task

        print(f"antigrounding: running {args.task} (seed {args.seed}, scorer {args.scorer or 'from config'})",
              file=sys.stderr, flush=True)
        out = run_task(args.task, **common)
    if out.success is None:
        print(f"antigrounding: NO VERDICT ({out.no_verdict}) after {out.steps} steps in {out.time_s:.1f} s",
              file=sys.stderr)
    else:
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
    task = _load_task(args.task).planner
    from planner.components import build_scorer
    from planner.offline_score import format_table, load_logged_step, parse_image_args, score_images

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
    loaded = _load_task(args.task)
    from planner.episode import reconstruct_once

    result = reconstruct_once(args.task, seed=args.seed, export_dir=args.export, fast_render=args.fast_render,
                              loaded=loaded)
    if not args.json:
        for o in result["objects"]:
            if o["found"] and o["t_err_mm"] is None:
                print(f"{o['name']:16s} at {o['xyz']} (the lab gives no truth for it)   "
                      f"confidence {o['confidence']:.2f} ({o['status']})", file=sys.stderr)
            elif o["found"]:
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
    import bench  # outside the product; imported here only (product packages never import it)

    # an earlier version's flag (--reconstruction) picks the benchmark as the name does; the name wins
    args.which = args.which or args.which_flag or "episodes"
    if args.suite is not None:   # a LIBERO suite on the LIBERO lab (needs `make libero`)
        from bench.libero_suite import run_suite

        return run_suite(args)
    return bench.run(args)


# Benchmarks (bench.BENCHMARKS; listed here so that --help needs no import of bench).
BENCH_NAMES = ("episodes", "reconstruction", "reconstruction-scenes", "identification", "scoring-pool", "render",
               "batch-throughput", "malformed-inputs")


def _add_pool_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", default=None, help="run the agents on this Ray cluster (default: in this "
                        "process, model calls in flight together on threads; nothing listens on the network)")
    parser.add_argument("--no-ray", action="store_true", help="call the agents one by one in this process")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the answer cache")
    parser.add_argument("--cache", default=None, help="answer cache file (default <out>/answer_cache.sqlite)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="antigrounding", description="antigrounding: real-to-sim MPC "
                                     "planner with VLM trajectory scoring")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    parser.add_argument("--version", action="version", version=f"antigrounding {_version()}")
    parser.add_argument("--config-dir", action="append", default=None, metavar="DIR",
                        help=f"a folder of your own configs (tasks/, robots/, cameras/, scoring/, prompts/, "
                        f"objects.yaml, views.yaml), searched before the shipped ones; repeatable (default: "
                        f"${CONFIG_DIR_ENV}, {os.pathsep}-separated)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run one episode of a task against the sim lab (or a real arm: --robot)")
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
    run.add_argument("--robot", default=None, help="run on a real arm through this driver (ur | franka | xarm) "
                     "instead of the sim lab; see docs/real_arms.md")
    run.add_argument("--robot-config", default=None, metavar="FILE", help="with --robot: the driver config YAML "
                     "(default: robot_io/<driver>/*.yaml)")
    run.add_argument("--camera-config", action="append", default=None, metavar="FILE", help="with --robot: a "
                     "RealSense config YAML (serial or recording, pose or the `calibrate` output); repeatable")
    run.add_argument("--host", default=None, help="with --robot: the controller IP (default: the config's)")
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

    bench = sub.add_parser("bench", help="benchmarks: success rate and per-stage timings over seeds, "
                           "reconstruction, identification, the scoring pool, rendering (prints tables)")
    bench.add_argument("which", nargs="?", choices=BENCH_NAMES, default=None,
                       help="which benchmark (default episodes): " + ", ".join(BENCH_NAMES))
    bench.add_argument("--tasks", nargs="+", default=None, help="task names or files (default: stack_blocks and "
                       "pick_place_tray; reconstruction: all five shipped tasks; identification: ident_blocks)")
    bench.add_argument("--seeds", type=int, default=10, help="number of seeds per task (default 10)")
    bench.add_argument("--first-seed", type=int, default=0)
    bench.add_argument("--scorer", default="simjudge")
    bench.add_argument("--out", default="runs/bench")
    bench.add_argument("--candidates", type=int, default=None)
    bench.add_argument("--repeats", type=int, default=None, help="repeats per timed case (scoring-pool 5, render "
                       "20, reconstruction-scenes 3)")
    bench.add_argument("--scenes", type=int, default=12, help="reconstruction-scenes: random scenes (default 12)")
    bench.add_argument("--views", default=None, help="render: views file (default views.yaml)")
    bench.add_argument("--tiny", action="store_true", help="render: TinyRenderer instead of EGL")
    bench.add_argument("--no-twin", action="store_true", help="identification: friction from the quasi-static "
                       "formula only")
    bench.add_argument("--clutter-mesh", default=None, choices=("columns", "hull", "coacd"),
                       help="reconstruction: how unknown objects are meshed (default columns)")
    bench.add_argument("--suite", default=None, help="a LIBERO suite (libero_object, libero_spatial, libero_goal, "
                       "libero_10) on the LIBERO lab; --tasks are then task indices (default 0-9)")
    bench.add_argument("--inits", default=None, help="with --suite: official initial states per task (default 0-4)")
    bench.add_argument("--json", action="store_true", help="with --suite: end with one JSON summary line")
    # the flags of earlier versions, kept: they pick a benchmark
    bench.add_argument("--scoring-pool", dest="which_flag", action="store_const", const="scoring-pool",
                       help=argparse.SUPPRESS)
    bench.add_argument("--reconstruction", "--recon-only", dest="which_flag", action="store_const",
                       const="reconstruction", help=argparse.SUPPRESS)
    bench.add_argument("--identification", dest="which_flag", action="store_const", const="identification",
                       help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)

    doctor = sub.add_parser("doctor", help="check this machine: Python, packages, system libraries, EGL rendering, "
                            "configs, usable scorers (keys reported present or absent, never shown)")
    doctor.add_argument("--json", action="store_true", help="last stdout line: every check as JSON")
    doctor.set_defaults(func=cmd_doctor)

    from planner import cli_robot  # robot check, calibrate
    from planner.batch_cli import register as register_batch  # batch, replay, optimise, compare

    register_batch(sub)
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


def _fail(flag: str, expected: str, got) -> None:
    raise configs.InputError(None, flag, expected, got)


def _integer_flag(args: argparse.Namespace, name: str, lo: int, hi: int) -> None:
    value = getattr(args, name, None)
    if value is not None and not lo <= value <= hi:
        _fail("--" + name.replace("_", "-"), f"an integer in [{lo}, {hi}]", value)


def _folder_flag(args: argparse.Namespace, name: str) -> None:
    """A folder the command writes into: absent (it is created) or a folder, never a file."""
    value = getattr(args, name, None)
    flag = "--" + name.replace("_", "-")
    if value is None:
        return
    if not value.strip() or "\0" in value:
        _fail(flag, "a folder path", value)
    if os.path.exists(value) and not os.path.isdir(value):
        _fail(flag, "a folder (or a path to create one), not a file", value)
    parent = os.path.dirname(os.path.abspath(value))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        _fail(flag, "a folder this user can create or write", value)


def check_flags(args: argparse.Namespace) -> None:
    """Every flag once, here at the edge, before anything starts (InputError: the flag, expected, got)."""
    for name in ("task", "scorer", "scoring_config", "ray_address", "subtask"):
        value = getattr(args, name, None)
        for item in value if isinstance(value, list) else [value]:   # batch takes several scoring configs
            if item is not None and (not item.strip() or len(item) > 4096 or "\0" in item):
                _fail("--" + name.replace("_", "-"), "a non-empty value of at most 4096 characters", item)
    _integer_flag(args, "seed", 0, MAX_SEED)
    _integer_flag(args, "first_seed", 0, MAX_SEED)
    _integer_flag(args, "max_steps", 1, MAX_STEPS)
    _integer_flag(args, "candidates", 2, MAX_CANDIDATES)   # one candidate leaves nothing to choose
    _integer_flag(args, "repeats", 1, 1000)
    _integer_flag(args, "scenes", 1, 1000)
    if isinstance(getattr(args, "seeds", None), int):   # bench's count (batch's seed ranges: planner.batch)
        _integer_flag(args, "seeds", 1, 10_000)
        if args.first_seed + args.seeds - 1 > MAX_SEED:
            _fail("--seeds", f"seeds that stay below {MAX_SEED + 1}", args.seeds)
    for name in ("out", "export"):
        _folder_flag(args, name)
    if getattr(args, "command", None) == "run" and args.robot is None:
        for name in ("robot_config", "camera_config", "host"):
            if getattr(args, name) is not None:
                _fail("--" + name.replace("_", "-"), "to be given with --robot (a real arm)", getattr(args, name))
    cache = getattr(args, "cache", None)
    if cache is not None and (not cache.strip() or os.path.isdir(cache)):
        _fail("--cache", "a cache file path, not a folder", cache)
    ids = getattr(args, "ids", None)
    if ids is not None and (len(set(ids)) != len(ids) or any(not 0 <= i < 10_000 for i in ids)):
        _fail("--ids", "distinct candidate ids in [0, 9999]", ids)
    if getattr(args, "step", None) is not None and not os.path.isdir(args.step):
        _fail("--step", "a logged step folder (runs/<run>/step_NNN)", args.step)
    for item in getattr(args, "images", None) or []:
        path = item.partition("=")[2] or item
        if not os.path.isfile(path):
            _fail("--images", "view=path.png pairs of existing image files", item)


def _renderer_from_environment() -> bool:
    """Whether EGL may be used: ANTIGROUNDING_RENDERER is read here, in the command line, and nowhere below."""
    value = os.environ.get(RENDERER_ENV, "").strip().lower()
    if value not in ("", "auto", "egl", "tiny"):
        _fail(RENDERER_ENV, "auto, egl or tiny (environment variable)", value)
    return value != "tiny"


def main(argv: list[str] | None = None) -> int:
    """The `antigrounding` process: results alone on stdout, then `run_cli`."""
    return run_cli(argv, keep_stdout=True)


def run_cli(argv: list[str] | None = None, keep_stdout: bool = False) -> int:
    """Parse, check every flag, run the command; bad input exits 2 with one message line and no traceback.

    keep_stdout: send the libraries' fd-1 chatter to stderr (the process entry does; an in-process caller, such
    as the malformed-input corpus test, leaves its file descriptors alone)."""
    args = build_parser().parse_args(argv)
    if keep_stdout:
        _keep_stdout_for_results()
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        # the environment is read here, in the CLI, and nowhere below it (API keys aside: client libraries)
        config_dirs = args.config_dir or [d for d in os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep) if d]
        configs.set_user_dirs(config_dirs)
        args.fast_render = _renderer_from_environment()
        check_flags(args)
        return args.func(args)
    except configs.InputError as exc:
        # the one place bad input is caught: a task, catalog, robot, camera, views, scoring or prompt file, a
        # flag, the environment; the message names the file and the field; no traceback
        print(f"antigrounding: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # a missing system library or package: say so, and where to look
        print(f"antigrounding: error: cannot load a dependency: {exc}\n"
              f"antigrounding: run 'antigrounding doctor' to see what is missing and how to fix it",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("antigrounding: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
