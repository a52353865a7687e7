"""FrankaRobot through the real franky client against franky-sim (MuJoCo) in its own process.

What this proves: the driver's franky calls, envelope-first motion, Ruckig dynamics factor, stop, explicit
recovery and link loss in wall time. What it cannot: reflexes (franky-sim enforces no limits), real 1 kHz
timing on a real-time kernel, contact (see docs/real_arms.md).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.robot_io.conftest import require

require("franky", "franka")
require("franky_sim", "franka")

from robot_io.errors import ConnectionLostError  # noqa: E402
from robot_io.franka import FrankaConfig, FrankaRobot  # noqa: E402
from robot_io.trajectory import JointTrajectory  # noqa: E402
from tests.fakes.franky_process import FrankySimProcess  # noqa: E402

pytestmark = [pytest.mark.hardware_sim, pytest.mark.timeout(180)]
MRAD = 1e-3
DELTA = np.array([0.3, -0.2, 0.25, 0.3, -0.2, 0.2, 0.3])


@pytest.fixture(scope="module")
def sim():
    s = FrankySimProcess()
    yield s
    s.close()


@pytest.fixture
def robot(sim):
    r = FrankaRobot(FrankaConfig.load(host=sim.host, realtime=False, relative_dynamics_factor=0.2))
    r.connect()
    yield r
    r.disconnect()


def test_joint_path_ends_within_one_mrad(robot, sim):
    assert robot._robot.relative_dynamics_factor.velocity == pytest.approx(0.2)   # Ruckig scaling reached franky
    q0 = robot.observe().joint_pos_rad
    path = q0 + np.linspace(0.0, 1.0, 20)[:, None] * DELTA
    report = robot.execute(JointTrajectory(path, 0.0, 0.05))
    assert report.completed, report.stopped_reason
    assert np.max(np.abs(report.final_joint_pos_rad - path[-1])) <= MRAD
    assert np.max(np.abs(np.array(sim.state()["q"]) - path[-1])) <= MRAD
    received = sim.state()["received"]
    assert received["commands"] > 100 and received["outside_limits"] == 0 and received["non_finite"] == 0
    back = robot.execute(JointTrajectory(q0[None, :], 0.0, 0.05))              # and back, for the next test
    assert back.completed


def test_stop_mid_motion(robot):
    q0 = robot.observe().joint_pos_rad
    threading.Timer(0.5, robot.stop).start()
    report = robot.execute(JointTrajectory((q0 + DELTA)[None, :], 0.0, 0.05))
    assert not report.completed and report.stopped_reason == "stop"
    assert not robot._robot.has_errors                   # a user stop is no error: nothing to recover
    robot.recover()                                      # explicit recovery is allowed and harmless
    assert robot.execute(JointTrajectory(q0[None, :], 0.0, 0.05)).completed


def test_link_loss_mid_motion_ends_within_one_second():
    sim = FrankySimProcess()
    try:
        r = FrankaRobot(FrankaConfig.load(host=sim.host, realtime=False, relative_dynamics_factor=0.2))
        r.connect()
        q0 = r.observe().joint_pos_rad
        frozen: list[float] = []
        threading.Timer(0.5, lambda: (frozen.append(time.monotonic()), sim.freeze())).start()
        with pytest.raises(ConnectionLostError):
            r.execute(JointTrajectory((q0 + DELTA)[None, :], 0.0, 0.05))
        assert time.monotonic() - frozen[0] <= 1.0
        t0 = time.monotonic()
        r.disconnect()
        assert time.monotonic() - t0 < 5.0
    finally:
        sim.close()
