"""Failure diagnosis over finished batches: failures by type, rewinds, and steps that went on placing with an empty
gripper, read from the run logs (`antigrounding batch` folders). Prints a table; asserts nothing.

    python -m bench.failure_stats /tmp/before /tmp/after [--json]

An "empty place step" is an executed step of a subtask that carries an object (it places what the subtask
before grasped) while the twin says the hand does not hold it: the loop going on "placing" nothing. Runs logged
before the failure diagnosis existed have no failure records; their empty place steps still count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter

from planner.diagnosis import carried_object
from planner.runlog import read_records
from planner.task import load_task
from scoring.failure import FAILURE_TYPES


def run_stats(run_dir: str, subtasks) -> dict:
    """Failures by type (acted on or only logged), rewinds and empty place steps of one run."""
    types: Counter[str] = Counter()
    rewinds = empty = acted = 0
    for rec in read_records(run_dir):
        if rec.get("type") != "step":
            continue
        f = rec.get("failure")
        if f:
            types[f["type"]] += 1
            acted += bool(f.get("acted"))
            rewinds += f.get("subtask_to", 0) < f.get("subtask_from", 0)
        obj = carried_object(subtasks, rec.get("subtask_index", 0))
        executed = rec.get("chosen") is not None and "execute" in rec
        if obj is not None and executed and (rec.get("reconstruction") or {}).get("held") != obj:
            empty += 1
    return {"failures": dict(types), "acted": acted, "rewinds": rewinds, "empty_place_steps": empty}


def batch_stats(folder: str) -> list[dict]:
    rows, subtasks = [], {}
    with open(os.path.join(folder, "results.jsonl")) as f:
        results = [json.loads(line) for line in f if line.strip()]
    for r in results:
        if not r.get("run_dir"):
            continue   # an episode that never started has no log
        name = r.get("task_name") or r["task"]
        if name not in subtasks:
            subtasks[name] = load_task(r["task"]).planner.subtasks
        rows.append({"task": name, "seed": r["seed"], "success": r["success"], "steps": r["steps"],
                     **run_stats(r["run_dir"], subtasks[name])})
    return rows


def table(rows: list[dict], label: str) -> str:
    head = f"{'task':<20}{'seed':>5}{'ok':>4}{'steps':>6}  " + "".join(f"{t[:13]:>14}" for t in FAILURE_TYPES) \
        + f"{'rewinds':>9}{'empty place':>13}"
    lines = [f"== {label}", head]
    for r in rows:
        lines.append(f"{r['task']:<20}{r['seed']:>5}{'y' if r['success'] else 'n':>4}{r['steps']:>6}  "
                     + "".join(f"{r['failures'].get(t, 0):>14}" for t in FAILURE_TYPES)
                     + f"{r['rewinds']:>9}{r['empty_place_steps']:>13}")
    total = Counter()
    for r in rows:
        total.update(r["failures"])
    lines.append(f"{'total':<20}{'':>5}{sum(r['success'] for r in rows):>4}{'':>6}  "
                 + "".join(f"{total.get(t, 0):>14}" for t in FAILURE_TYPES)
                 + f"{sum(r['rewinds'] for r in rows):>9}{sum(r['empty_place_steps'] for r in rows):>13}")
    lines.append(f"runs with an empty place step: {sum(r['empty_place_steps'] > 0 for r in rows)} of {len(rows)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="batch folders (with results.jsonl)")
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args(argv)
    out = {}
    for folder in args.folders:
        rows = batch_stats(folder)
        out[folder] = rows
        sys.stdout.write(table(rows, folder) + "\n\n")
    if args.json:
        sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
