"""`python -m bench.optimise_proof`: the optimise proof of docs/batch_replay_optimise.md, from scratch, as one command.

1. Logs: a deliberately biased scoring config (`configs/scoring/biased_efficiency.yaml`: three noisy simjudge
   agents, weights that overvalue efficiency against safety and task alignment) runs the training grid through
   `antigrounding batch`.
2. `antigrounding optimise --runs <those logs>` fits the weights and lambda_C from the logs alone, then reruns a
   held-out grid (tasks and seeds it never saw, and the training tasks on unseen seeds) with the biased config and
   the fitted one, in the sim lab, through batch.
3. One table: success per held-out task before and after, and the fitted weights next to the logged ones.

Only the scoring config changes between "before" and "after": the same agents (same noise), the same planner,
the same labs; success is the lab's verdict. Every stage resumes where it stopped (batch's results files): run
the same command again after an interruption. A benchmark: it prints and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from planner.batch import ResultsFile, parse_seeds
from planner.cli import main as antigrounding
from scoring.schema import DIMENSIONS


def _cli(argv: list[str]) -> None:
    print("$ antigrounding " + " ".join(argv), file=sys.stderr, flush=True)
    code = antigrounding(argv)
    if code != 0:
        raise SystemExit(f"antigrounding {argv[0]} exited with {code}")


def table(report_json: str, rerun_dir: str, train_tasks: list[str], seeds: list[int]) -> str:
    """The proof's table (markdown) from optimise's report and its held-out rerun's results (those seeds only: a
    folder that once ran a larger grid keeps its other lines)."""
    with open(report_json, encoding="utf-8") as f:
        rep = json.load(f)
    results = [r for r in ResultsFile(rerun_dir).read() if int(r["seed"]) in seeds]
    base = os.path.abspath(os.path.join(rerun_dir, "base.yaml"))
    lines = ["| held-out task | seeds | biased: success | biased: mean steps | optimised: success | "
             "optimised: mean steps of successes |", "|---|---|---|---|---|---|"]
    totals = {True: [0, 0], False: [0, 0]}
    for task in sorted({r["task"] for r in results}, key=lambda t: (t not in train_tasks, t)):
        cells = []
        for is_base in (True, False):
            rs = [r for r in results if r["task"] == task and (os.path.abspath(r["config"]) == base) == is_base]
            wins = [r for r in rs if r["success"]]
            totals[is_base][0] += len(wins)
            totals[is_base][1] += len(rs)
            steps = [r["steps"] for r in (rs if is_base else wins)]
            cells += [f"{len(wins)}/{len(rs)}", f"{sum(steps) / len(steps):.1f}" if steps else "-"]
        seeds = sorted({r["seed"] for r in results if r["task"] == task})
        kind = "unseen seeds" if task in train_tasks else "unseen task"
        lines.append(f"| {task} ({kind}) | {seeds[0]}-{seeds[-1]} | " + " | ".join(cells) + " |")
    (bw, bn), (nw, nn) = totals[True], totals[False]
    before, after = 100.0 * bw / max(bn, 1), 100.0 * nw / max(nn, 1)
    lines.append(f"| **all** | | **{bw}/{bn} = {before:.0f} %** | | **{nw}/{nn} = {after:.0f} %** "
                 f"({after - before:+.0f} points) | |")
    lines += ["", "| weights | " + " | ".join(DIMENSIONS) + " | lambda_C |", "|---" * (len(DIMENSIONS) + 2) + "|"]
    logged = rep["weights_logged"]
    fitted = rep["weights_fitted"]
    lines.append("| biased (produced the logs) | " + " | ".join(f"{logged[k]:.2f}" for k in DIMENSIONS)
                 + f" | {rep['lambda_C_logged']:.2f} |")
    lines.append("| fitted by optimise | " + " | ".join(f"{fitted[k]:.2f}" for k in DIMENSIONS)
                 + f" | {rep['lambda_C_fitted']:.2f} |")
    obj = rep["objective"]
    lines += ["", f"Objective (u(chosen) / best u), logged -> fitted weights: training {obj['base_train']:.3f} -> "
              f"{obj['train']:.3f}, validation episodes {obj['base_validation']:.3f} -> {obj['validation']:.3f}."]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    train = os.path.join(args.out, "train")
    out_dir = os.path.join(args.out, "optimised")
    rerun = os.path.join(out_dir, f"rerun-{args.name}")
    par = [] if args.parallel is None else ["--parallel", str(args.parallel)]
    _cli(["batch", "--tasks", *args.train_tasks, "--seeds", args.train_seeds, "--scoring-config", args.biased,
          "--out", train, "--max-steps", str(args.train_max_steps), "--quiet", *par])
    _cli(["optimise", "--runs", train, "--out", args.name, "--out-dir", out_dir, "--rerun-tasks", *args.heldout_tasks,
          "--rerun-seeds", args.heldout_seeds, "--rerun-out", rerun, "--max-steps", str(args.max_steps), *par])
    text = table(os.path.join(out_dir, f"{args.name}-report.json"), rerun, args.train_tasks,
                 parse_seeds(args.heldout_seeds))
    with open(os.path.join(args.out, "proof.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    print(text, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.optimise_proof", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/optimise_proof")
    parser.add_argument("--biased", default="biased_efficiency", help="the config that produces the logs")
    parser.add_argument("--train-tasks", nargs="+", default=["stack_blocks", "pick_place_tray"])
    parser.add_argument("--train-seeds", default="0-2")
    parser.add_argument("--train-max-steps", type=int, default=6)
    parser.add_argument("--heldout-tasks", nargs="+", default=["stack_blocks", "cluttered_touching", "cluttered_five"])
    parser.add_argument("--heldout-seeds", default="100-105")
    parser.add_argument("--max-steps", type=int, default=8, help="held-out episodes: steps at most")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--name", default="unbiased", help="name of the fitted config")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
