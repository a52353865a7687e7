"""The command line rejects bad input with the file, the field and what was expected; no traceback."""

import subprocess
import sys

import yaml

from tests.conftest import REPO


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_bad_task_file_is_rejected_clearly(tmp_path):
    task = yaml.safe_load(open(f"{REPO}/configs/tasks/stack_blocks.yaml"))
    task["objects"]["red_block"]["asset"] = "block_rde"
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(task))
    proc = _cli("run", "--task", str(path), "--json")
    assert proc.returncode == 2
    expected = f"{path}: field 'objects.red_block'.asset: unknown asset 'block_rde'; did you mean 'block_red'"
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""


def test_missing_task_file(tmp_path):
    proc = _cli("reconstruct", "--task", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "nope.yaml: task file not found" in proc.stderr


def test_help_lists_the_commands():
    proc = _cli("--help")
    assert proc.returncode == 0
    for cmd in ("run", "reconstruct", "bench"):
        assert cmd in proc.stdout


def test_unknown_scorer_is_named_without_a_traceback():
    proc = _cli("run", "--task", f"{REPO}/configs/tasks/stack_blocks.yaml", "--scorer", "simjugde")
    assert proc.returncode == 2
    assert "unknown backend 'simjugde'; did you mean 'simjudge'?" in proc.stderr and "Traceback" not in proc.stderr
