"""`antigrounding run --robot ...`: the MPC loop on a vendor driver instead of the sim lab, end to end.

UR: the real ur_rtde client against the fake UR controller process (tests/fakes/ur_controller.py), with a RealSense
recording (tests/fakes/realsense_recording.py, played by pyrealsense2) of the task's blocks as the camera, and the
gripper on a standard digital output over RTDE. Franka: the real franky client against franky-sim (MuJoCo).

What this proves: `run --robot` builds the driver and its cameras from config files, the planner observes through
them (frames from the recording, joints from the controller), its chosen trajectories reach the controller through
the vendor client after the envelope, gripper commands reach the controller's outputs, and the run log is whole.
What it cannot: a real scene that changes when the arm moves (the recording is a still cell), contact, real timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from planner.runlog import read_header, read_records
from tests.conftest import REPO
from tests.robot_io.conftest import require

require("rtde_control", "ur")
require("pyrealsense2", "realsense")

from robot_io.driver_config import robot_spec  # noqa: E402
from sim.camera import CameraSpec  # noqa: E402
from sim.geometry import Pose  # noqa: E402
from sim.scene import SceneSpec  # noqa: E402
from tests.fakes.realsense_recording import record_scene  # noqa: E402
from tests.fakes.recon_scenes import arm_pose_for, named_object  # noqa: E402
from tests.fakes.ur_process import FakeURProcess  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.hardware_sim, pytest.mark.timeout(600)]
STACK = os.path.join(REPO, "configs", "tasks", "stack_blocks.yaml")
GRIPPER_PIN = 3


def _camera_config(tmp_path, scene: SceneSpec) -> str:
    """A RealSense config playing a recording of `scene` from the lab's front camera pose."""
    with open(os.path.join(REPO, "configs", "cameras", "front.yaml")) as f:
        cam = CameraSpec.from_dict(yaml.safe_load(f), "front")
    rec = record_scene(tmp_path / "front.db3", scene, cam, n_frames=30)
    path = tmp_path / "front_realsense.yaml"
    path.write_text(yaml.safe_dump({"name": "front", "recording": str(rec), "timeout_s": 10.0,
                                    "T_world_camera": [float(v) for v in cam.T_world_camera_matrix.flatten()]}))
    return str(path)


def _blocks(robot):
    return (named_object("red_block", "block_red", (0.50, 0.12, 0.025), 20.0),
            named_object("blue_block", "block_blue", (0.48, -0.12, 0.025), -10.0))


def _run(args: list[str], out) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run([sys.executable, "-m", "planner.cli", "run", "--task", STACK, "--scorer", "simjudge",
                           "--out", str(out), "--max-steps", "2", "--candidates", "6", "--json", "--no-ray", *args],
                          capture_output=True, text=True, timeout=500, cwd=REPO)
    summary = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    return proc, summary


def _check_log(summary: dict, driver: str) -> list[dict]:
    """The run log is whole and both steps executed what they chose, completely; returns the executed steps."""
    assert summary["success"] is None and "real arm" in summary["no_verdict"] and summary["steps"] == 2
    run_dir = summary["run_dir"]
    header = read_header(run_dir)
    assert header["robot_driver"]["name"] == driver and header["robot_driver"]["cameras"] == ["front"]
    records = read_records(run_dir)
    assert records[-1]["type"] == "end" and records[-1]["lab_success"] is None and records[-1]["error"] is None
    steps = [r for r in records if r["type"] == "step"]
    assert len(steps) == 2
    assert os.path.getsize(os.path.join(run_dir, "report.html")) > 1000
    executed = [s for s in steps if s.get("chosen") is not None]
    assert executed, "the planner held still in both steps: nothing reached the arm"
    for rec in executed:
        assert rec["execute"]["completed"], rec["execute"]
    return executed


def test_run_on_ur_through_ur_rtde_with_a_realsense_recording(tmp_path):
    spec = robot_spec("ur5e_2f85")   # the UR5e with a 2F-85-sized gripper: the twin can plan grasps
    # from this start the planner (simjudge, seed 0) approaches the red block in step 0 and closes in step 1 (the
    # first subtask grasps it). Starting right above the block or around it made the twin's grasps infeasible (IK,
    # collisions with the reconstruction) and no step closed.
    q0 = arm_pose_for(spec, Pose.from_xyz_rpy_deg((0.45, 0.0, 0.30), spec.tcp_down_rpy_deg))
    fake = FakeURProcess("--q0", *map(str, q0), "--lower", *map(str, spec.joint_lower_rad),
                         "--upper", *map(str, spec.joint_upper_rad), "--vmax", *map(str, spec.max_joint_speed_rad_s))
    try:
        scene = SceneSpec(spec, _blocks(spec), joint_pos_rad=tuple(q0))
        cam = _camera_config(tmp_path, scene)
        cfg = tmp_path / "my_ur.yaml"
        # loopback fake on a shared 2-core machine: relaxed staleness, watchdog and settling, as in the driver tests
        cfg.write_text(yaml.safe_dump({"host": fake.host, "robot": "ur5e_2f85", "rtde_frequency_hz": 125.0,
                                       "stale_after_s": 0.5, "watchdog_min_hz": 2.0, "gripper": "digital_out",
                                       "gripper_digital_out": GRIPPER_PIN, "gripper_action_s": 0.2,
                                       "settle_timeout_s": 10.0}))
        proc, summary = _run(["--robot", "ur", "--robot-config", str(cfg), "--camera-config", cam], tmp_path / "runs")
        assert proc.returncode == 0, proc.stderr[-3000:]
        st = fake.state()
    finally:
        fake.close()
    executed = _check_log(summary, "ur")
    received = st["received"]
    assert received["servo_targets"] > 0 and received["non_finite"] == 0 and received["outside_limits"] == 0
    assert not st["protective_stop"]
    # the planner grasped: the driver closed the gripper, and every switch it reported reached DO3 over RTDE, in
    # order, with the level that closes (1) or opens (0) it; nothing else touched the outputs
    grip_notes = [n for r in executed for n in r["execute"]["notes"] if n in ("gripper closed", "gripper opened")]
    assert "gripper closed" in grip_notes, [r["execute"]["notes"] for r in executed]
    switches = [e for e in st["events"] if e["event"] == "digital_out"]
    assert len(switches) == len(grip_notes)
    for note, ev in zip(grip_notes, switches, strict=True):
        assert ev["bits"] & ~(1 << GRIPPER_PIN) == 0
        assert bool(ev["bits"] >> GRIPPER_PIN & 1) == (note == "gripper closed")
    assert bool(st["digital_out"] >> GRIPPER_PIN & 1) == (grip_notes[-1] == "gripper closed")


def test_run_with_a_bad_robot_config_exits_2_with_file_and_field(tmp_path):
    cfg = tmp_path / "bad_ur.yaml"
    cfg.write_text("host: 10.0.0.2\nservo_gain: 5\n")
    proc, _ = _run(["--robot", "ur", "--robot-config", str(cfg)], tmp_path / "runs")
    assert proc.returncode == 2
    assert "bad_ur.yaml: field 'servo_gain': expected in [100, 2000]" in proc.stderr and "got 5" in proc.stderr
    assert "Traceback" not in proc.stderr
    cfg.write_text("host: 10.0.0.2\ngriper: digital_out\n")
    proc, _ = _run(["--robot", "ur", "--robot-config", str(cfg)], tmp_path / "runs")
    assert proc.returncode == 2 and "field 'griper'" in proc.stderr and "did you mean 'gripper'" in proc.stderr
    proc, _ = _run(["--robot", "ur", "--camera-config", str(tmp_path / "missing.yaml")], tmp_path / "runs")
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr and "Traceback" not in proc.stderr
    proc, _ = _run(["--robot-config", str(cfg)], tmp_path / "runs")
    assert proc.returncode == 2 and "--robot-config" in proc.stderr and "with --robot" in proc.stderr
    proc, _ = _run(["--robot", "urr"], tmp_path / "runs")
    assert proc.returncode == 2 and "did you mean 'ur'" in proc.stderr


def test_run_on_franka_through_franky_against_franky_sim(tmp_path):
    require("franky", "franka")
    require("franky_sim", "franka")
    from tests.fakes.franky_process import FrankySimProcess

    sim = FrankySimProcess()
    try:
        spec = robot_spec("fr3")
        q0 = sim.state()["q"]
        cam = _camera_config(tmp_path, SceneSpec(spec, _blocks(spec), joint_pos_rad=tuple(q0)))
        cfg = tmp_path / "my_fr3.yaml"
        cfg.write_text(yaml.safe_dump({"host": sim.host, "robot": "fr3", "realtime": False,
                                       "relative_dynamics_factor": 0.2, "gripper_timeout_s": 30.0,
                                       "gripper_speed_mps": 0.1, "stale_after_s": 0.5,
                                       # franky-sim's wrist stick-slips within ~1-2 mrad of a target (MuJoCo
                                       # frictionloss; seen: 1.19 mrad after 3 corrections): 2 mrad, not the
                                       # issue's 1 (tests/robot_io checks 1 mrad on a path; docs: "Settling")
                                       "settle_tol_rad": 0.002, "settle_timeout_s": 10.0}))
        proc, summary = _run(["--robot", "franka", "--robot-config", str(cfg), "--camera-config", cam],
                             tmp_path / "runs")
        assert proc.returncode == 0, proc.stderr[-3000:]
        st = sim.state()
    finally:
        sim.close()
    _check_log(summary, "franka")
    received = st["received"]
    assert received["commands"] > 0 and received["non_finite"] == 0 and received["outside_limits"] == 0
