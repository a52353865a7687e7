"""Measure the issue's "a link cut mid-motion ends the run in <= 1 s" with the shipped driver timing.

Not a test (a speed bound is a measurement, never a timed assertion): the driver tests assert a looser bound
that a loaded CI machine keeps. Run it alone on a quiet machine:

    python tests/robot_io/link_cut_timing.py --trials 5

For each trial: UR (real ur_rtde against the fake controller process, tests/fakes/ur_controller.py, shipped
robot_io/ur/ur5e.yaml timing: stale_after_s 0.1, RTDE watchdog 10 Hz while moving) and xArm (the SDK-shaped
stand-in, tests/fakes/xarm_standin.py, shipped xarm6.yaml: stale_after_s 0.3) start a motion, the link is cut
once the arm moves, and the time from the cut to the driver's ConnectionLostError is printed, with (UR) the time
from the cut to the controller's own watchdog stop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from robot_io.errors import ConnectionLostError  # noqa: E402
from robot_io.trajectory import JointTrajectory  # noqa: E402
from tests.robot_io.conftest import when  # noqa: E402


def ur_trial() -> tuple[float, float]:
    from robot_io.ur import URConfig, URRobot
    from tests.fakes.ur_process import FakeURProcess

    fake = FakeURProcess()
    try:
        with URRobot(URConfig.load(host=fake.host)) as robot:
            q0 = robot.observe().joint_pos_rad
            path = q0 + np.linspace(0.0, 1.0, 60)[:, None] * np.array([1.5, 0, 0, 0, 0, 0])
            cut: list[float] = []
            when(lambda: fake.state()["q"][0] - q0[0] > 0.05, lambda: (cut.append(time.monotonic()), fake.op("cut")))
            try:
                robot.execute(JointTrajectory(path, 0.0, 0.05))
                raise RuntimeError("the motion completed: the cut came too late")
            except ConnectionLostError:
                driver_s = time.monotonic() - cut[0]
            events = fake.state()["events"]
            t_cut = next(e["t"] for e in events if e["event"] == "cut")
            wd = [e["t"] - t_cut for e in events if e["event"] == "watchdog"]
            return driver_s, (wd[0] if wd else float("nan"))
    finally:
        fake.close()


def xarm_trial() -> float:
    from robot_io.driver_config import robot_spec
    from robot_io.xarm import XArmConfig, XArmRobot
    from tests.fakes.xarm_standin import XArmStandIn

    spec = robot_spec("xarm6")
    arm = XArmStandIn(spec.joint_lower_rad, spec.joint_upper_rad, spec.max_joint_speed_rad_s,
                      spec.home_joint_pos_rad)
    robot = XArmRobot(XArmConfig.load(host="127.0.0.1"), api_factory=lambda host: arm)
    robot.connect()
    try:
        q0 = robot.observe().joint_pos_rad
        path = q0 + np.linspace(0.0, 1.0, 60)[:, None] * np.array([0.5, 0, 0, 0, 0, 0])
        cut: list[float] = []
        when(lambda: abs(arm.joint_pos_rad[0] - q0[0]) > 0.02, lambda: (cut.append(time.monotonic()), arm.hang_link()))
        try:
            robot.execute(JointTrajectory(path, 0.0, 0.05))
            raise RuntimeError("the motion completed: the cut came too late")
        except ConnectionLostError:
            return time.monotonic() - cut[0]
    finally:
        arm.unhang()
        robot.disconnect()
        arm.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    ur, wd, xa = [], [], []
    for i in range(args.trials):
        d, w = ur_trial()
        ur.append(d)
        wd.append(w)
        xa.append(xarm_trial())
        print(f"trial {i + 1}/{args.trials}: UR driver {d:.3f} s, UR controller watchdog {w:.3f} s, "
              f"xArm driver {xa[-1]:.3f} s", file=sys.stderr, flush=True)
    print(f"\nlink cut mid-motion -> run ended (s), {args.trials} trials, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':34s} {'min':>7s} {'median':>7s} {'max':>7s}")
    for name, xs in (("UR: ConnectionLostError", ur), ("UR: controller watchdog stop", wd),
                     ("xArm: ConnectionLostError", xa)):
        print(f"{name:34s} {min(xs):7.3f} {statistics.median(xs):7.3f} {max(xs):7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
