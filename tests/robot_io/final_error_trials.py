"""Measure the issue's "a planned joint path executes with final joint error <= 1 mrad" over several trials.

Not a test (a measurement): the driver tests assert 1 mrad on one path each. Run it (any load; the load average is
printed with the table):

    python tests/robot_io/final_error_trials.py --trials 5 [--robot franka|ur|both]

Each trial executes one planned joint path there and back (the driver tests' path: every joint moves 0.15-0.4
rad) through the real vendor client, with the shipped config and the driver tests' overrides (Franka: settle
tolerance 1 mrad, staleness 0.5 s, SIM_SETTLE in tests/robot_io/test_franka_driver.py; UR: the CI staleness and
watchdog timing of tests/robot_io/test_ur_driver.py) and prints per leg: whether the driver
reported the path completed, its final joint error as the driver read it, and the controller's own joint error
measured `--hold-s` later (the arm holding still: does it stay there?), in mrad.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from robot_io.trajectory import JointTrajectory  # noqa: E402

FRANKA_DELTA = np.array([0.3, -0.2, 0.25, 0.3, -0.2, 0.2, 0.3])
UR_DELTA = np.array([0.4, -0.25, 0.3, 0.2, -0.15, 0.35])


def _legs(robot, delta: np.ndarray, n: int, dt: float, controller_q, hold_s: float) -> list[tuple]:
    rows = []
    q0 = robot.observe().joint_pos_rad
    for goal in (q0 + delta, q0):
        start = robot.observe().joint_pos_rad
        path = start + np.linspace(0.0, 1.0, n)[:, None] * (goal - start)
        rep = robot.execute(JointTrajectory(path, 0.0, dt))
        err_driver = float(np.max(np.abs(rep.final_joint_pos_rad - goal)))
        time.sleep(hold_s)
        err_held = float(np.max(np.abs(controller_q() - goal)))
        rows.append((rep.completed, rep.stopped_reason, err_driver * 1e3, err_held * 1e3))
    return rows


def franka_trial(hold_s: float) -> list[tuple]:
    from robot_io.franka import FrankaConfig, FrankaRobot
    from tests.fakes.franky_process import FrankySimProcess

    sim = FrankySimProcess()
    try:
        from tests.robot_io.test_franka_driver import SIM_SETTLE

        cfg = FrankaConfig.load(host=sim.host, realtime=False, relative_dynamics_factor=0.2, gripper="none",
                                **SIM_SETTLE)
        with FrankaRobot(cfg) as robot:
            return _legs(robot, FRANKA_DELTA, 20, 0.05, lambda: np.array(sim.state()["q"]), hold_s)
    finally:
        sim.close()


def ur_trial(hold_s: float) -> list[tuple]:
    from robot_io.ur import URConfig, URRobot
    from tests.fakes.ur_process import FakeURProcess
    from tests.robot_io.test_ur_driver import CI_TIMING

    fake = FakeURProcess()
    try:
        with URRobot(URConfig.load(host=fake.host, rtde_frequency_hz=125.0, **CI_TIMING)) as robot:
            return _legs(robot, UR_DELTA, 25, 0.04, lambda: np.array(fake.state()["q"]), hold_s)
    finally:
        fake.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--robot", choices=("franka", "ur", "both"), default="both")
    ap.add_argument("--hold-s", type=float, default=1.0)
    args = ap.parse_args()
    robots = ("franka", "ur") if args.robot == "both" else (args.robot,)
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"{'robot':7} {'trial':>5} {'leg':>5} {'completed':>9} {'driver mrad':>11} {'held mrad':>9}  stopped_reason")
    worst: dict[str, float] = {}
    for name in robots:
        for t in range(args.trials):
            rows = (franka_trial if name == "franka" else ur_trial)(args.hold_s)
            for leg, (done, reason, e_drv, e_held) in zip(("out", "back"), rows, strict=True):
                print(f"{name:7} {t:5d} {leg:>5} {str(done):>9} {e_drv:11.3f} {e_held:9.3f}  {reason or ''}",
                      flush=True)
                worst[name] = max(worst.get(name, 0.0), e_drv, e_held)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    for name, w in worst.items():
        print(f"{name}: worst final joint error {w:.3f} mrad over {args.trials} trials x 2 legs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
