"""bench.optimise_proof's table: success before/after per held-out task from a rerun folder, weights side by side."""

import json

from bench.optimise_proof import table
from planner.batch import ResultsFile


def test_proof_table_counts_each_config_and_marks_unseen_tasks(tmp_path):
    rerun = tmp_path / "rerun"
    base, new = str(rerun / "base.yaml"), str(tmp_path / "scoring" / "fit.yaml")
    results = ResultsFile(str(rerun))
    rows = [("stack_blocks", 100, base, False, 8), ("stack_blocks", 100, new, True, 2),
            ("stack_blocks", 101, base, False, 8), ("stack_blocks", 101, new, False, 8),
            ("cluttered_five", 100, base, True, 4), ("cluttered_five", 100, new, True, 2),
            ("cluttered_five", 999, new, True, 2)]   # a seed outside the grid: left out
    for task, seed, cfg, ok, steps in rows:
        results.append({"key": f"{task}|{seed}|{cfg}", "task": task, "seed": seed, "config": cfg, "success": ok,
                        "steps": steps, "run_dir": "x"})
    report = tmp_path / "fit-report.json"
    w = {"safety": 0.05, "task_alignment": 0.15, "efficiency": 0.6, "feasibility": 0.2}
    fitted = {**w, "efficiency": 0.0, "task_alignment": 0.75}
    report.write_text(json.dumps({"weights_logged": w, "weights_fitted": fitted,
                                  "lambda_C_logged": 0.5, "lambda_C_fitted": 0.0,
                                  "objective": {"base_train": 0.3, "train": 0.9, "base_validation": 0.35,
                                                "validation": 0.8}}))
    text = table(str(report), str(rerun), ["stack_blocks"], [100, 101])
    lines = text.splitlines()
    assert "| stack_blocks (unseen seeds) | 100-101 | 0/2 | 8.0 | 1/2 | 2.0 |" in lines
    assert "| cluttered_five (unseen task) | 100-100 | 1/1 | 4.0 | 1/1 | 2.0 |" in lines
    assert "**1/3 = 33 %**" in text and "**2/3 = 67 %** (+33 points)" in text
    assert "| fitted by optimise | 0.05 | 0.75 | 0.00 | 0.20 | 0.00 |" in lines
