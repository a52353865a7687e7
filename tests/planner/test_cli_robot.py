"""`antigrounding robot check` and `antigrounding calibrate`: robot check against the fake UR controller (real
ur_rtde) and franky-sim (real franky), calibrate on a synthetic ChArUco data set. Exit codes: 0 passed, 1 a check
failed (with the advice), 2 bad input. One call of each command goes through a subprocess of the real CLI (the
wiring in planner/cli.py); the others call the parsed command in this process (the CLI's start-up, ~10 s on the
shared CI machine, is the same every time)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

pytestmark = [pytest.mark.timeout(240)]


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "planner.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


class _Done:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(capsys):
    """The parsed command, called in this process: what main() does after parsing."""
    from planner.cli import build_parser

    def call(*argv: str) -> _Done:
        capsys.readouterr()
        args = build_parser().parse_args(list(argv))
        rc = args.func(args)
        out = capsys.readouterr()
        return _Done(rc, out.out, out.err)

    return call


def _last_json(proc) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def ur_config(tmp_path):
    f = tmp_path / "my_ur.yaml"
    # This shared CI machine needs the relaxed timing of tests/robot_io/test_ur_driver.py
    f.write_text("rtde_frequency_hz: 125.0\nstale_after_s: 0.25\nwatchdog_min_hz: 4.0\n")
    return str(f)


@pytest.mark.hardware_sim
def test_robot_check_against_the_ur_fake(ur_config, run):
    pytest.importorskip("rtde_control", reason="pip install -e '.[ur]'")
    from tests.fakes.ur_process import FakeURProcess

    fake = FakeURProcess("--protective-stop-lockout-s", "0.5")
    try:
        proc = cli("robot", "check", "--robot", "ur", "--host", fake.host, "--robot-config", ur_config, "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = _last_json(proc)
        assert out["passed"] and [c["check"] for c in out["checks"]] == ["config", "connect", "read", "ready",
                                                                         "move", "stop"]
        assert "final error" in out["checks"][4]["detail"]
        assert fake.state()["received"]["movej_targets"] == 2           # out and back, by moveJ

        fake.op("protective_stop")
        proc = run("robot", "check", "--robot", "ur", "--host", fake.host, "--robot-config", ur_config)
        assert proc.returncode == 1
        assert "[FAIL] connect" in proc.stdout and "protective stop is active" in proc.stdout
        assert "--recover" in proc.stdout
        proc = run("robot", "check", "--robot", "ur", "--host", fake.host, "--robot-config", ur_config, "--recover")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "[ok  ] recover" in proc.stdout
    finally:
        fake.close()


@pytest.mark.hardware_sim
@pytest.mark.parametrize("driver,message", [("ur", "cannot reach the UR controller's RTDE port"),
                                            ("xarm", "cannot reach the xArm control box")])
def test_robot_check_unreachable_host(driver, message, run):
    proc = run("robot", "check", "--robot", driver, "--host", "127.0.0.1", "--json")
    assert proc.returncode == 1 and message in proc.stdout and "ping 127.0.0.1" in proc.stdout
    assert not _last_json(proc)["passed"]


@pytest.mark.hardware_sim
def test_robot_check_against_franky_sim(tmp_path, run):
    pytest.importorskip("franky", reason="pip install -e '.[franka]'")
    pytest.importorskip("franky_sim", reason="pip install -e '.[franka]'")
    from planner.cli_robot import realtime_kernel
    from tests.fakes.franky_process import FrankySimProcess

    if not realtime_kernel():      # the shipped config demands PREEMPT_RT: the check says so before connecting
        proc = run("robot", "check", "--robot", "franka", "--host", "127.0.0.1")
        assert proc.returncode == 1 and "[FAIL] kernel" in proc.stdout and "PREEMPT_RT" in proc.stdout
    sim = FrankySimProcess()
    try:
        cfg = tmp_path / "sim_fr3.yaml"
        # the check moves the wrist, the joint franky-sim's friction makes stick-slip within ~1-2 mrad of a target
        # (docs/real_arms.md, "Settling"); the flow is under test here, tests/robot_io checks 1 mrad on a path
        cfg.write_text("realtime: false\nrelative_dynamics_factor: 0.2\nsettle_tol_rad: 0.002\nstale_after_s: 0.5\n")
        proc = run("robot", "check", "--robot", "franka", "--host", sim.host, "--robot-config", str(cfg), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _last_json(proc)["passed"]
    finally:
        sim.close()


def test_robot_check_bad_input_exits_2(tmp_path, run):
    proc = run("robot", "check", "--robot", "urr")
    assert proc.returncode == 2 and "did you mean 'ur'" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("servo_rate_hz: 1000\n")
    proc = run("robot", "check", "--robot", "xarm", "--robot-config", str(bad))
    assert proc.returncode == 2 and "bad.yaml" in proc.stderr and "servo_rate_hz" in proc.stderr


def test_calibrate_writes_a_camera_config(tmp_path, run):
    pytest.importorskip("cv2", reason="pip install -e '.[calibrate]'")
    from tests.fakes.charuco_scenes import write_dataset

    write_dataset(tmp_path / "data", "eye-to-hand", 10, seed=7, name="front")
    out = tmp_path / "mine" / "cameras" / "front.yaml"
    proc = cli("calibrate", "--data", str(tmp_path / "data"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    res = _last_json(proc)
    assert res["mode"] == "eye-to-hand" and res["residual_rms_mm"] < 1.0 and res["out"] == str(out)
    assert "residual:" in proc.stdout and "--config-dir" in proc.stdout
    cam = yaml.safe_load(out.read_text())
    assert cam["name"] == "front" and len(cam["T_world_camera"]) == 16
    (tmp_path / "data" / "calibration.yaml").write_text("mode: eye-to-hand\ncamera: {width: 10}\n")
    proc = run("calibrate", "--data", str(tmp_path / "data"))
    assert proc.returncode == 2 and "camera: missing field 'fx'" in proc.stderr


@pytest.mark.hardware_sim
def test_robot_check_reports_an_xarm_controller_error_and_recovers_on_request(run, monkeypatch):
    """xArm through the stand-in for the SDK's XArmAPI object (NOT protocol-level; see tests/fakes/xarm_standin.py)."""
    pytest.importorskip("xarm", reason="pip install -e '.[xarm]'")
    import robot_io.drivers
    from robot_io.driver_config import robot_spec
    from robot_io.xarm import XArmConfig, XArmRobot
    from tests.fakes.xarm_standin import XArmStandIn

    spec = robot_spec("xarm6")
    arm = XArmStandIn(spec.joint_lower_rad, spec.joint_upper_rad, spec.max_joint_speed_rad_s, spec.home_joint_pos_rad)
    arm.raise_controller_error(31)
    monkeypatch.setattr(robot_io.drivers, "make_driver", lambda name, path, host: XArmRobot(
        XArmConfig.load(path, host=host, mode_switch_wait_s=0.01), api_factory=lambda h: arm))
    try:
        proc = run("robot", "check", "--robot", "xarm", "--host", "192.0.2.7")
        assert proc.returncode == 1 and "[FAIL] ready" in proc.stdout
        assert "C31: Collision Caused Abnormal Current" in proc.stdout and arm.error_code == 31
        assert arm.position_moves == []                                  # nothing moved
        proc = run("robot", "check", "--robot", "xarm", "--host", "192.0.2.7", "--recover", "--json")
        assert proc.returncode == 0, proc.stdout
        assert arm.error_code == 0 and len(arm.position_moves) == 2 and _last_json(proc)["passed"]
        assert all(m["speed"] == pytest.approx(0.2) for m in arm.position_moves)   # the config's check speed
    finally:
        arm.shutdown()
