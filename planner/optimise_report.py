"""`antigrounding optimise`, part (c): the held-out rerun (base vs optimised config through batch) and the report
that says what changed, why, and by how much (OUT_DIR/NAME-report.md and .json)."""

from __future__ import annotations

import json
import os

from scoring.schema import DIMENSIONS


def rerun_table(args, base_cfg, cfg_path: str) -> dict:
    """Run the held-out tasks x seeds with the base config and the new one; success per config and the gain."""
    import yaml

    from planner.batch import EpisodeOptions, format_summary, make_grid, parse_seeds, run_batch, summarise

    out = args.rerun_out or os.path.join(args.out_dir, f"rerun-{args.out}")
    os.makedirs(out, exist_ok=True)
    base_path = os.path.abspath(os.path.join(out, "base.yaml"))
    with open(base_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(base_cfg.to_dict(), f, sort_keys=False)
    grid = make_grid(args.rerun_tasks, parse_seeds(args.rerun_seeds), [base_path, cfg_path])
    res = run_batch(grid, out, EpisodeOptions(max_steps=args.max_steps), parallel=args.parallel)
    rows = summarise(res.results)
    print(format_summary(rows, "held-out rerun in the sim lab (success: the lab's verdict)"), flush=True)
    rate = {}
    for cfg in (base_path, cfg_path):
        rs = [r for r in res.results if r["config"] == cfg]
        rate[cfg] = sum(bool(r["success"]) for r in rs) / len(rs) if rs else 0.0
    return {"batch": out, "base_success": rate[base_path], "new_success": rate[cfg_path],
            "gain": rate[cfg_path] - rate[base_path], "rows": rows, "episodes": len(res.results)}


def write_report(args, base_cfg, base_name: str, fit, prompt: dict | None, rerun: dict | None, cfg_path: str,
                 runs: list[str]) -> str:
    base_w = base_cfg.normalized_weights
    lines = [f"# optimise: {args.out}", "",
             f"Learned from {len(runs)} runs ({fit.n_train_steps} training steps in {len(fit.train_episodes)} "
             f"episodes, {fit.n_validation_steps} validation steps in {len(fit.validation_episodes)} episodes, "
             f"split by episode, seed {args.seed}). Base config: {base_name}. Agents: "
             + ", ".join(f"{a.name} ({a.backend})" for a in base_cfg.agents) + ".", "",
             "## Weights (what changed)", "", "| dimension | logged | fitted |", "|---|---|---|"]
    lines += [f"| {k} | {base_w[k]:.2f} | {fit.weights[k]:.2f} |" for k in DIMENSIONS]
    lines += [f"| lambda_C | {base_cfg.lambda_C:.2f} | {fit.lambda_C:.2f} |", "",
              "## Why, and by how much", "",
              "Objective: mean over steps of u(chosen) / max u among the candidates the planner may choose, where u "
              "is the subtask progress the twin showed (the executed candidate: what really happened next).", "",
              "| split | logged weights | fitted weights |", "|---|---|---|",
              f"| training | {fit.base_train:.3f} | {fit.train:.3f} |",
              f"| validation (held-out episodes) | {fit.base_validation:.3f} | {fit.validation:.3f} |", "",
              f"Weights {'kept' if fit.improves else 'NOT kept: no gain on the validation episodes'}.", ""]
    if prompt:
        lines += ["## Prompt revision", "", f"New version: `{prompt['dir']}` (revised: "
                  f"{', '.join(prompt['revisions'])}). Meta-agent's rationale: {prompt['rationale'] or '-'}", "",
                  f"Check: {prompt['why']}. {'Kept' if prompt['kept'] else 'Not kept'}.", ""]
    if rerun:
        lines += ["## Held-out rerun in the sim lab", "", "| task | config | episodes | success |", "|---|---|---|---|"]
        lines += [f"| {r['task']} | {os.path.basename(r['config'])} | {r['episodes']} | {r['success_rate']:.0%} |"
                  for r in rerun["rows"]]
        lines += ["", f"Success {rerun['base_success']:.0%} -> {rerun['new_success']:.0%} "
                  f"({100 * rerun['gain']:+.0f} points) on {rerun['episodes']} episodes; batch folder "
                  f"{rerun['batch']}.", ""]
    lines += [f"Config written: `{cfg_path}`", ""]
    path = os.path.join(args.out_dir, f"{args.out}-report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    with open(path.replace(".md", ".json"), "w", encoding="utf-8") as f:
        json.dump({"weights_logged": base_w, "weights_fitted": fit.weights, "lambda_C_logged": base_cfg.lambda_C,
                   "lambda_C_fitted": fit.lambda_C, "objective": {k: getattr(fit, k) for k in (
                       "train", "validation", "base_train", "base_validation")}, "weights_kept": fit.improves,
                   "prompt": prompt, "rerun": rerun, "config": cfg_path}, f, indent=2, default=str)
    return path
