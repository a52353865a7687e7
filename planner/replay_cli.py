"""The command lines of `replay` and `optimise` (registered by planner/batch_cli.py)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import yaml

from planner.errors import TaskError


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def expand_runs(paths: list[str]) -> list[str]:
    """Run directories from run dirs, batch folders (their results.jsonl) or folders holding run dirs."""
    out: list[str] = []
    for p in paths:
        if os.path.isfile(os.path.join(p, "steps.jsonl")):
            out.append(p)
        elif os.path.isfile(os.path.join(p, "results.jsonl")):
            from planner.batch import ResultsFile

            for r in ResultsFile(p).read():
                if not r.get("run_dir"):
                    continue
                run_dir = r["run_dir"]
                if not os.path.isdir(run_dir):   # the batch folder was moved: its runs are under it
                    run_dir = os.path.join(p, "runs", *Path(run_dir).parts[-2:])
                out.append(run_dir)
        elif os.path.isdir(p):
            found = sorted(str(f.parent) for f in Path(p).rglob("steps.jsonl"))
            if not found:
                raise TaskError(f"{p}: holds no run directory (no steps.jsonl below it)")
            out += found
        else:
            raise TaskError(f"{p}: not a run directory, batch folder or folder of runs")
    return list(dict.fromkeys(out))


def _scorer(config: str | None, backend: str | None, cache: str | None):
    from planner.components import PoolOptions, build_scorer

    return build_scorer(config, backend, PoolOptions(use_ray=False, cache_path=cache))


# ---------------------------------------------------------------- replay
def cmd_replay(args: argparse.Namespace) -> int:
    from planner.replay import format_replay, logged_episodes, replay_runs, summarise_replay

    runs = expand_runs(args.runs)
    cache = None if args.no_cache else (args.cache or os.path.join(args.out, "answer_cache.sqlite"))
    os.makedirs(args.out, exist_ok=True)
    scorer, name = _scorer(args.scoring_config, args.scorer, cache)
    with scorer:
        verdicts = replay_runs(runs, scorer)
    summary = summarise_replay(verdicts)
    print(format_replay(verdicts, summary, name), flush=True)
    rerun = None
    if args.rerun:
        from planner.batch import Episode, EpisodeOptions, format_summary, run_batch, summarise

        config = args.scoring_config or "default"
        grid = [Episode(t, s, config) for t, s in logged_episodes(runs)]
        res = run_batch(grid, os.path.join(args.out, "rerun"), EpisodeOptions(scorer=args.scorer),
                        parallel=args.parallel)
        rerun = summarise(res.results)
        print(format_summary(rerun, f"rerun in the sim lab with {config}"), flush=True)
    if args.json:
        print(json.dumps({"summary": summary, "steps": [v.to_dict() for v in verdicts], "rerun": rerun,
                          "scorer": name}), flush=True)
    return 0 if summary["errors"] < len(verdicts) or not verdicts else 2


# ---------------------------------------------------------------- optimise
def _base_config(args, runs: list[str]):
    from planner.components import scoring_config_for
    from planner.runlog import read_header
    from scoring.config import scoring_config_from_dict

    if args.base:
        return scoring_config_for(args.base, None), args.base
    content = read_header(runs[0]).get("reproduce", {}).get("configs", {}).get("scoring", {}).get("content")
    if not content:
        raise TaskError(f"{runs[0]}: run.json does not record its scoring config; give --base CONFIG")
    return scoring_config_from_dict(content, source=f"{runs[0]}/run.json"), f"{runs[0]} (logged)"


def cmd_optimise(args: argparse.Namespace) -> int:
    from planner.optimise import fit_weights, load_step_data
    from planner.optimise_report import rerun_table, write_report
    from scoring.schema import DIMENSIONS

    runs = expand_runs(args.runs)
    data = load_step_data(runs)
    if not data:
        raise TaskError("--runs: no logged step with agent answers to learn from")
    base_cfg, base_name = _base_config(args, runs)
    _err(f"antigrounding optimise: {len(data)} steps from {len(runs)} runs; base config {base_name}")
    fit = fit_weights(data, base_cfg.weights, base_cfg.lambda_C, args.validation_fraction, args.seed)
    _err(f"  weights: objective train {fit.base_train:.3f} -> {fit.train:.3f}, validation {fit.base_validation:.3f} "
         f"-> {fit.validation:.3f}: {'kept' if fit.improves else 'not kept (no gain on held-out episodes)'}")
    new_cfg = base_cfg
    if fit.improves:
        new_cfg = dataclasses.replace(base_cfg, weights=fit.weights, lambda_C=fit.lambda_C)
    prompt = None
    if args.meta_config:
        prompt = _prompt_step(args, runs, data, base_cfg)
        if prompt and prompt["kept"]:
            agents = tuple(dataclasses.replace(a, params={**a.params, "prompt": prompt["dir"]})
                           if a.backend != "simjudge" else a for a in new_cfg.agents)
            new_cfg = dataclasses.replace(new_cfg, agents=agents)
    scoring_dir = os.path.join(args.out_dir, "scoring")
    os.makedirs(scoring_dir, exist_ok=True)
    cfg_path = os.path.abspath(os.path.join(scoring_dir, f"{args.out}.yaml"))
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(f"# written by antigrounding optimise from {len(runs)} runs (base: {base_name})\n")
        yaml.safe_dump(new_cfg.to_dict(), f, sort_keys=False)
    rerun = None
    if args.rerun_tasks:
        rerun = rerun_table(args, base_cfg, cfg_path)
        if rerun["gain"] <= 0:
            rejected = cfg_path.replace(".yaml", ".rejected.yaml")
            os.replace(cfg_path, rejected)
            _err(f"  rerun: no gain on held-out tasks/seeds; the config is set aside as {rejected}")
            cfg_path = rejected
    report = write_report(args, base_cfg, base_name, fit, prompt, rerun, cfg_path, runs)
    print(f"{'dimension':16s} {'logged':>8s} {'fitted':>8s}", flush=True)
    base_w = base_cfg.normalized_weights
    for k in DIMENSIONS:
        print(f"{k:16s} {base_w[k]:8.2f} {fit.weights[k]:8.2f}", flush=True)
    print(f"{'lambda_C':16s} {base_cfg.lambda_C:8.2f} {fit.lambda_C:8.2f}", flush=True)
    _err(f"antigrounding optimise: config {cfg_path}; report {report}")
    if args.json:
        print(json.dumps({"config": cfg_path, "report": report, "weights": fit.weights, "lambda_C": fit.lambda_C,
                          "weights_kept": fit.improves, "objective": dataclasses.asdict(fit), "prompt": prompt,
                          "rerun": rerun}, default=str), flush=True)
    return 0


def _prompt_step(args, runs, data, base_cfg) -> dict | None:
    """(b) + the replay half of (c): propose a prompt, replay the validation runs with it, keep it on a gain."""
    from planner.meta_agent import propose_prompt
    from planner.optimise import split_episodes
    from planner.replay import load_steps, replay_runs, summarise_replay
    from scoring.prompts import DEFAULT_PROMPT

    steps = [s for r in runs for s in load_steps(r)]
    meta, _ = _scorer(args.meta_config, None, None)
    vlm_agents = [a for a in base_cfg.agents if a.backend != "simjudge"]
    base_prompt = (vlm_agents[0].params.get("prompt", DEFAULT_PROMPT) if vlm_agents else DEFAULT_PROMPT)
    with meta:
        path, revision, digest = propose_prompt(steps, data, meta, base_prompt, os.path.join(args.out_dir, "prompts"))
    if path is None:
        _err("  prompts: no step was worse than the best candidate; nothing to revise")
        return None
    _, val_eps = split_episodes([d.episode for d in data], args.validation_fraction, args.seed)
    val_runs = [r for r in runs if r in set(val_eps)] or runs
    cache = os.path.join(args.out_dir, "answer_cache.sqlite")
    results = {}
    for label, prompt_dir in (("base", None), ("revised", str(path))):
        cfg = base_cfg if prompt_dir is None else dataclasses.replace(base_cfg, agents=tuple(
            dataclasses.replace(a, params={**a.params, "prompt": prompt_dir}) if a.backend != "simjudge" else a
            for a in base_cfg.agents))
        from planner.components import PoolOptions, build_scorer  # noqa: F401 - keeps one way of building
        from scoring import Scorer

        with Scorer(None, cfg, cache=cache) as scorer:
            results[label] = summarise_replay(replay_runs(val_runs, scorer))
    before = results["base"]["new_choice_makes_progress"] or 0.0
    after = results["revised"]["new_choice_makes_progress"] or 0.0
    kept = bool(vlm_agents) and after > before
    why = ("no agent reads prompts (simjudge answers from rollout metrics)" if not vlm_agents else
           f"replay on held-out runs: progress choices {before:.0%} -> {after:.0%}")
    _err(f"  prompts: {path.name} proposed ({', '.join(revision['revisions'])}); {why}: "
         f"{'kept' if kept else 'not kept'}")
    return {"dir": str(path), "revisions": revision["revisions"], "rationale": revision["rationale"],
            "replay_before": before, "replay_after": after, "kept": kept, "why": why,
            "digest_steps": [f"{os.path.basename(r.step.run_dir)}:{r.step.step}" for r in digest]}


def register(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="re-score logged steps' pictures with another scoring config (no lab)")
    replay.add_argument("runs", nargs="+", help="run directories, batch folders or folders of runs")
    replay.add_argument("--scoring-config", default=None, help="the config to replay with (name or path)")
    replay.add_argument("--scorer", default=None, help="switch every agent to this backend")
    replay.add_argument("--out", default="runs/replay", help="answer cache and --rerun results (default runs/replay)")
    replay.add_argument("--cache", default=None, help="answer cache file (default <out>/answer_cache.sqlite)")
    replay.add_argument("--no-cache", action="store_true")
    replay.add_argument("--rerun", action="store_true", help="also run the logged episodes (same tasks and seeds) "
                        "in the sim lab with the config, through batch")
    replay.add_argument("--parallel", type=int, default=None, help="--rerun episodes at once (default: cores)")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(func=cmd_replay)

    opt = sub.add_parser("optimise", help="fit weights and prompt variants from logged runs, checked on held-out runs")
    opt.add_argument("--runs", nargs="+", required=True, help="run directories, batch folders or folders of runs")
    opt.add_argument("--out", required=True, help="name of the new scoring config (and prompt versions)")
    opt.add_argument("--out-dir", default="optimised", help="a config folder: scoring/NAME.yaml, prompts/, the "
                     "report (default optimised/; use it with --config-dir)")
    opt.add_argument("--base", default=None, help="config to start from (default: the one the runs logged)")
    opt.add_argument("--meta-config", default=None, help="scoring config whose anthropic/openai agent acts as "
                     "meta-agent and proposes revised sub-questions (default: no prompt revision)")
    opt.add_argument("--validation-fraction", type=float, default=0.3)
    opt.add_argument("--seed", type=int, default=0, help="seed of the train/validation split by episode")
    opt.add_argument("--rerun-tasks", nargs="+", default=None, help="held-out tasks to rerun base vs new config on")
    opt.add_argument("--rerun-seeds", nargs="+", default=["100-102"], help="held-out seeds (default 100-102)")
    opt.add_argument("--rerun-out", default=None, help="batch folder of the rerun (default <out-dir>/rerun-NAME)")
    opt.add_argument("--parallel", type=int, default=None)
    opt.add_argument("--max-steps", type=int, default=None)
    opt.add_argument("--json", action="store_true")
    opt.set_defaults(func=cmd_optimise)
