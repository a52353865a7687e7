"""The command line rejects bad input with the file, the field and what was expected; no traceback."""

import json
import os
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
    expected = f"{path}: field 'objects.red_block.asset': expected an asset of the object catalog"
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""


def test_missing_task_file(tmp_path):
    proc = _cli("reconstruct", "--task", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "nope.yaml: --task: expected an existing task file, got no such file" in proc.stderr


def test_help_lists_the_commands():
    proc = _cli("--help")
    assert proc.returncode == 0
    for cmd in ("run", "reconstruct", "bench"):
        assert cmd in proc.stdout


def test_unknown_scorer_is_named_without_a_traceback():
    proc = _cli("run", "--task", f"{REPO}/configs/tasks/stack_blocks.yaml", "--scorer", "simjugde")
    assert proc.returncode == 2
    assert "--scorer: expected a registered backend" in proc.stderr
    assert "did you mean 'simjudge'?" in proc.stderr and "Traceback" not in proc.stderr


def test_version_and_doctor_never_show_a_key():
    proc = _cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("antigrounding ")
    env_key = "sk-ant-doctor-must-not-echo-this-0123456789"
    proc = subprocess.run([sys.executable, "-m", "planner.cli", "doctor", "--json"], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={**os.environ, "ANTHROPIC_API_KEY": env_key})
    assert env_key not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["scorer anthropic"]["ok"] and checks["scorer anthropic"]["detail"] == "ANTHROPIC_API_KEY set"
    assert checks["configs"]["ok"] and checks["import planner.episode"]["ok"]
    assert proc.returncode == (0 if report["ok"] else 1)
    assert report["verdict"].startswith("READY" if report["ok"] else "NOT READY")


def test_doctor_verdict_fails_on_a_required_check_only():
    from planner.doctor import Check, verdict

    assert verdict([Check("a", True, ""), Check("b", False, "", required=False)])[0]
    ok, line = verdict([Check("a", True, ""), Check("lib x", False, "", "apt-get install x")])
    assert not ok and "lib x" in line


def test_user_config_dir_from_the_flag_and_the_environment(tmp_path):
    (tmp_path / "tasks").mkdir()
    task = yaml.safe_load(open(f"{REPO}/configs/tasks/stack_blocks.yaml"))
    task["objects"]["red_block"]["asset"] = "block_rde"
    (tmp_path / "tasks" / "mine.yaml").write_text(yaml.safe_dump(task))
    proc = _cli("--config-dir", str(tmp_path), "reconstruct", "--task", "mine")
    assert proc.returncode == 2 and "mine.yaml: field 'objects.red_block.asset': expected an asset" in proc.stderr
    env = {**os.environ, "ANTIGROUNDING_CONFIG_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "planner.cli", "reconstruct", "--task", "mine"], capture_output=True,
                          text=True, timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 2 and "mine.yaml: field 'objects.red_block.asset'" in proc.stderr
    proc = _cli("--config-dir", str(tmp_path / "nope"), "reconstruct", "--task", "mine")
    assert proc.returncode == 2 and "expected an existing folder" in proc.stderr and "Traceback" not in proc.stderr


def test_bench_picks_the_benchmark_by_name_or_by_an_earlier_versions_flag(monkeypatch):
    import bench
    from planner.cli import build_parser

    ran = []
    monkeypatch.setattr(bench, "run", lambda args: ran.append(args.which) or 0)
    for argv in (["bench"], ["bench", "render"], ["bench", "--reconstruction"], ["bench", "--identification"],
                 ["bench", "render", "--reconstruction"]):
        args = build_parser().parse_args(argv)
        assert args.func(args) == 0
    assert ran == ["episodes", "render", "reconstruction", "identification", "render"]
