"""URRobot through the real ur_rtde client against the fake UR controller process (tests/fakes/ur_controller.py).

What this proves: the driver speaks ur_rtde correctly (recipes, script handshake, servoJ stream, moveJ,
stopJ, watchdog, Dashboard unlock + re-upload) and reacts to protective stops and a dead link in wall time.
What it cannot: real servo dynamics, physical contact, real network timing (see docs/real_arms.md).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.robot_io.conftest import require, when

require("rtde_control", "ur")

from robot_io.errors import ConnectionLostError, ProtectiveStopError, VendorError  # noqa: E402
from robot_io.trajectory import JointTrajectory  # noqa: E402
from robot_io.ur import URConfig, URRobot  # noqa: E402
from tests.fakes.ur_process import FakeURProcess  # noqa: E402

# This machine shares 2 cores with other jobs: 100 ms thresholds trip on scheduler hiccups, so the tests use
# 500 ms (a real cell keeps the defaults in robot_io/ur/ur5e.yaml). Faults are injected once the arm moves
# (`when`), and wall-clock bounds that are not the property under test are generous.
CI_TIMING = {"stale_after_s": 0.5, "watchdog_min_hz": 2.0, "watchdog_idle_min_hz": 1.0}
# The bound for a cut link is 1 s; tests/robot_io/link_cut_timing.py measures it with the shipped
# timing. Here, under a loaded CI machine, the test asserts 3 s.
CUT_BOUND_S = 3.0
pytestmark = [pytest.mark.hardware_sim, pytest.mark.timeout(120)]
MRAD = 1e-3


@pytest.fixture
def fake():
    f = FakeURProcess("--protective-stop-lockout-s", "0.5")
    yield f
    f.close()


@pytest.fixture
def robot(fake):
    r = URRobot(URConfig.load(host=fake.host, rtde_frequency_hz=125.0, **CI_TIMING))
    r.connect()
    yield r
    r.disconnect()


def _path(q0: np.ndarray, n: int = 25) -> np.ndarray:
    return q0 + np.linspace(0.0, 1.0, n)[:, None] * np.array([0.4, -0.25, 0.3, 0.2, -0.15, 0.35])


def test_planned_joint_path_ends_within_one_mrad(robot, fake):
    q0 = robot.observe().joint_pos_rad
    path = _path(q0)
    report = robot.execute(JointTrajectory(path, 0.0, 0.04))
    assert report.completed and report.stopped_reason is None
    err_driver = np.max(np.abs(report.final_joint_pos_rad - path[-1]))
    err_controller = np.max(np.abs(np.array(fake.state()["q"]) - path[-1]))
    assert err_driver <= MRAD and err_controller <= MRAD, (err_driver, err_controller)
    received = fake.state()["received"]
    assert received["servo_targets"] > 50 and received["outside_limits"] == 0 and received["non_finite"] == 0


def test_movej_reaches_target(robot, fake):
    q0 = robot.observe().joint_pos_rad
    goal = q0 + np.array([0.1, -0.05, 0.05, 0.0, 0.0, -0.1])
    report = robot.move_joints(goal)
    assert np.max(np.abs(report.final_joint_pos_rad - goal)) <= MRAD
    assert fake.state()["received"]["movej_targets"] == 1


def _moved(fake, q0, rad: float = 0.05):
    return lambda: fake.state()["q"][0] - q0[0] > rad


def test_stop_mid_motion_halts_the_arm(robot, fake):
    q0 = robot.observe().joint_pos_rad
    path = q0 + np.linspace(0.0, 1.0, 60)[:, None] * np.array([1.5, 0, 0, 0, 0, 0])
    when(_moved(fake, q0), robot.stop)
    report = robot.execute(JointTrajectory(path, 0.0, 0.05))
    assert not report.completed and report.stopped_reason == "stop"
    st = fake.wait_for(lambda s: s["speed"] == 0.0, 10.0)
    assert st["speed"] == 0.0
    assert 0.05 < st["q"][0] - q0[0] < 1.45        # stopped part-way


def test_protective_stop_is_reported_and_cleared_only_by_recover(robot, fake):
    q0 = robot.observe().joint_pos_rad
    path = q0 + np.linspace(0.0, 1.0, 60)[:, None] * np.array([1.5, 0, 0, 0, 0, 0])
    when(_moved(fake, q0), lambda: fake.op("protective_stop"))
    with pytest.raises(ProtectiveStopError, match="recover"):
        robot.execute(JointTrajectory(path, 0.0, 0.05))
    time.sleep(0.7)                                  # past the (test-shortened) unlock lockout
    assert fake.state()["protective_stop"], "the driver must not unlock on its own"
    with pytest.raises(ProtectiveStopError):
        robot.execute(JointTrajectory(path[:2], 0.0, 0.05))
    assert fake.state()["protective_stop"]
    robot.recover()
    assert not fake.state()["protective_stop"]
    here = robot.observe().joint_pos_rad
    report = robot.execute(JointTrajectory(here + np.array([[0.05, 0, 0, 0, 0, 0]]), 0.0, 0.1))
    assert report.completed


def test_recover_refused_within_lockout():
    fake = FakeURProcess("--protective-stop-lockout-s", "4.0")      # long enough for a loaded machine
    try:
        r = URRobot(URConfig.load(host=fake.host, rtde_frequency_hz=125.0, **CI_TIMING))
        with r:
            fake.op("protective_stop")
            deadline = time.monotonic() + 3.0                       # let the stop reach the driver over RTDE
            while not r.state().protective_stop and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(ProtectiveStopError, match="5 s"):
                r.recover()
            time.sleep(4.1)
            r.recover()
            assert not fake.state()["protective_stop"]
    finally:
        fake.close()


def test_link_cut_mid_motion_ends_the_run_and_stops_the_arm(robot, fake):
    q0 = robot.observe().joint_pos_rad
    path = q0 + np.linspace(0.0, 1.0, 60)[:, None] * np.array([1.5, 0, 0, 0, 0, 0])
    cut_at: list[float] = []
    when(_moved(fake, q0), lambda: (cut_at.append(time.monotonic()), fake.op("cut")))
    with pytest.raises(ConnectionLostError, match="no fresh RTDE state"):
        robot.execute(JointTrajectory(path, 0.0, 0.05))
    elapsed = time.monotonic() - cut_at[0]
    assert elapsed <= CUT_BOUND_S, elapsed
    st = fake.state()
    cut_t = next(e["t"] for e in st["events"] if e["event"] == "cut")
    wd = [e for e in st["events"] if e["event"] == "watchdog"]
    assert wd and wd[0]["t"] - cut_t <= CUT_BOUND_S, st["events"]   # the controller stopped the arm itself
    assert fake.wait_for(lambda s: s["speed"] == 0.0, 10.0)["speed"] == 0.0
    with pytest.raises(ConnectionLostError):
        robot.observe()
    t0 = time.monotonic()
    robot.disconnect()
    assert time.monotonic() - t0 < 10.0


def test_watchdog_stops_program_when_driver_goes_silent(robot, fake):
    robot._worker.idle(None)              # simulate a frozen driver: no more inputs reach the controller
    st = fake.wait_for(lambda s: s["runtime_state"] != 2, 10.0)
    assert st["runtime_state"] != 2 and any(e["event"] == "watchdog" for e in st["events"])
    q0 = robot.observe().joint_pos_rad
    with pytest.raises(VendorError, match="recover"):
        robot.execute(JointTrajectory(q0[None, :] + 0.01, 0.0, 0.1))
    robot.recover()
    assert robot.execute(JointTrajectory(q0[None, :] + 0.01, 0.0, 0.1)).completed


def test_unreachable_controller_gives_actionable_error():
    r = URRobot(URConfig.load(host="127.251.252.253", rtde_frequency_hz=125.0, **CI_TIMING))   # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ConnectionLostError, match="cannot reach .*ping"):
        r.connect()
    assert time.monotonic() - t0 < 5.0


def test_digital_out_gripper_switches_after_the_arm_arrives(fake):
    """A twin rollout plans a grasp as: move (gripper as it is), then hold while it closes. The driver streams the
    arm piece, then switches DO3 through ur_rtde's RTDEIOInterface; the controller logs where the arm was."""
    r = URRobot(URConfig.load(host=fake.host, rtde_frequency_hz=125.0, gripper="digital_out", gripper_digital_out=3,
                              gripper_action_s=0.05, gripper_closed_width_m=0.02, **CI_TIMING))
    with r:
        q0 = r.observe().joint_pos_rad
        assert r.observe().gripper_width_m == pytest.approx(0.085)       # no command yet: reads open
        path = _path(q0, 12)
        widths = np.r_[np.full(12, 0.085), np.zeros(3)]
        report = r.execute(JointTrajectory(np.vstack([path, np.repeat(path[-1:], 3, axis=0)]), widths, 0.04))
        assert report.completed and "gripper closed" in report.notes
        assert r.observe().gripper_width_m == pytest.approx(0.02)        # commanded, not measured (no feedback)
        st = fake.state()
        closes = [e for e in st["events"] if e["event"] == "digital_out"]
        assert len(closes) == 1 and closes[0]["bits"] == 1 << 3
        assert np.max(np.abs(np.array(closes[0]["q"]) - path[-1])) <= MRAD   # switched after the arm arrived
        again = r.execute(JointTrajectory(path[-1:], 0.0, 0.04))        # already closed: nothing switched
        assert again.completed and "gripper closed" not in again.notes
        back = r.execute(JointTrajectory(np.vstack([q0, q0]), [0.0, 0.085], 0.04))
        assert back.completed and "gripper opened" in back.notes and fake.state()["digital_out"] == 0


def test_no_gripper_configured_says_so_and_moves_unbroken(robot, fake):
    q0 = robot.observe().joint_pos_rad
    report = robot.execute(JointTrajectory(_path(q0, 6), 0.0, 0.04))
    assert report.completed and any("no gripper is configured" in n for n in report.notes)
    assert not [e for e in fake.state()["events"] if e["event"] == "digital_out"]
