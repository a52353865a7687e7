"""End to end through the real sim-lab process: a short episode, the CLI's JSON contract, a killed lab."""

import json
import os
import subprocess
import sys

import pytest

from planner.components import build_reconstructor, build_renderer, build_scorer
from planner.mpc import MPCConfig, MPCPlanner
from planner.report import write_report
from planner.runlog import RunLog, read_records
from planner.sampler import SamplerConfig
from planner.task import load_task
from robot_io.sim_robot import SimRobot, launch_lab
from tests.conftest import REPO

pytestmark = pytest.mark.integration
STACK = os.path.join(REPO, "configs", "tasks", "stack_blocks.yaml")


def test_cli_run_json_contract(tmp_path):
    """`antigrounding run --json`: the last stdout line is the summary; the run dir has log, images, report."""
    proc = subprocess.run(
        [sys.executable, "-m", "planner.cli", "run", "--task", STACK, "--seed", "1", "--scorer", "simjudge",
         "--out", str(tmp_path), "--max-steps", "1", "--candidates", "6", "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"task", "seed", "success", "steps", "time_s", "scorer"} <= set(summary)
    assert summary["task"] == "stack_blocks" and summary["seed"] == 1 and summary["scorer"] == "simjudge"
    # one step cannot stack a block: it takes a grasp, then a placement (with anchored proposals, two can)
    assert summary["steps"] == 1 and summary["success"] is False
    run_dir = summary["run_dir"]
    records = read_records(run_dir)
    steps = [r for r in records if r["type"] == "step"]
    assert len(steps) == 1 and records[-1]["type"] == "end"
    for rec in steps:
        assert set(rec["timings_s"]) == {"observe", "reconstruct", "sample_rollout", "render", "score", "execute",
                                            "diagnose"}
        assert rec["chosen"] is not None and rec["execute"]["completed"]
        for path in rec["images"].values():
            assert os.path.getsize(os.path.join(run_dir, path)) > 1000
    report = open(os.path.join(run_dir, "report.html")).read()
    assert "step_000/front.png" in report and "simjudge" in report


def test_killing_the_lab_ends_the_run_with_a_clear_error(tmp_path):
    loaded = load_task(STACK)
    task = loaded.planner
    scorer, _ = build_scorer(None, "simjudge")
    log = RunLog.create(str(tmp_path), task.name, 0)
    log.write_header({"task": task.name, "seed": 0})
    with launch_lab(loaded.lab, 0) as lab:
        def kill_after_first(record):
            lab.popen.kill()
            lab.popen.wait()

        with SimRobot(lab.host, lab.port, secret=lab.control_secret, robot=task.robot) as robot:
            planner = MPCPlanner(task, robot, build_reconstructor(task), build_renderer(), scorer, log,
                                 MPCConfig(sampler=SamplerConfig(n_candidates=4)), on_step=kill_after_first)
            result = planner.run(5)
            planner.close()
    assert result.steps == 1 and "robot connection lost at step 1" in result.error
    log.close()
    records = read_records(log.path)
    assert [r["type"] for r in records] == ["step", "event"]
    assert "sim lab" in records[-1]["message"]
    assert "connection lost" in open(write_report(log.path)).read()
