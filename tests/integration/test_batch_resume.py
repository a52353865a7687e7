"""batch through the CLI against real sim labs: killed with SIGKILL after its first episode and started again,
it finishes the grid with every episode exactly once; and two runs of one task, seed and config are identical."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from planner.batch import ResultsFile
from planner.episode import run_task
from planner.reproduce import chosen_sequence, diff_runs
from planner.runlog import read_header
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _batch(out, parallel="2"):
    return [sys.executable, "-m", "planner.cli", "batch", "--tasks", "stack_blocks", "cluttered_touching",
            "--seeds", "0-1", "--out", str(out), "--max-steps", "1", "--candidates", "4", "--parallel", parallel,
            "--json"]


def test_killed_batch_resumes_without_repeating_or_losing_an_episode(tmp_path):
    out = tmp_path / "b"
    proc = subprocess.Popen(_batch(out), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results = ResultsFile(str(out))
    deadline = time.monotonic() + 600
    while not results.read() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the batch ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)          # the driver, its Ray and every episode with it
    proc.wait()
    first = {r["key"]: r["run_dir"] for r in results.read()}
    assert 1 <= len(first) < 4
    again = subprocess.run(_batch(out), cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    lines = results.read()
    keys = [r["key"] for r in lines]
    assert len(keys) == 4 and len(set(keys)) == 4                     # every cell once
    assert summary["ran"] == 4 - len(first)                            # the finished ones were not run again
    for r in lines:
        if r["key"] in first:
            assert r["run_dir"] == first[r["key"]]
        assert r["steps"] == 1 and r["error"] is None and os.path.isdir(r["run_dir"])
    assert os.path.isfile(out / "report.html")


def test_two_runs_of_one_task_seed_and_config_are_identical(tmp_path):
    runs = [run_task("cluttered_touching", seed=2, out_dir=str(tmp_path / x), max_steps=3, n_candidates=6)
            for x in ("a", "b")]
    assert all(r.error is None for r in runs)
    assert diff_runs(runs[0].run_dir, runs[1].run_dir) == []
    assert chosen_sequence(runs[0].run_dir) == chosen_sequence(runs[1].run_dir)
    # several steps (the loop's state carries over), the same number both times
    assert runs[0].success == runs[1].success and runs[0].steps == runs[1].steps >= 2
    ident = read_header(runs[0].run_dir)["reproduce"]
    assert ident["seeds"] == {"lab": 2, "planner": 2}
    assert len(ident["configs"]["task"]["sha256"]) == 64 and len(ident["configs"]["scoring"]["sha256"]) == 64
    assert ident["code"]["git_commit"] or ident["code"]["package"]
