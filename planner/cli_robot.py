"""`antigrounding robot check` (connect, read, move a little, stop) and `antigrounding calibrate` (camera extrinsics
from a ChArUco data set). `add_commands(subparsers)` registers both with the main command line (planner/cli.py).

Both catch their own errors: bad input (unknown driver, malformed config or data set) exits 2 with the file and
field; a failed robot check exits 1 after saying what worked and what to do about what did not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

OK, FAIL, SKIP = "ok", "FAIL", "skip"


def add_commands(sub) -> None:
    robot = sub.add_parser("robot", help="real arms: `robot check` connects, reads, moves a little, stops")
    robot_sub = robot.add_subparsers(dest="robot_command", required=True)
    check = robot_sub.add_parser("check", help="connect, read the state, move one joint a little at low speed "
                                 "inside the safety envelope and back, stop; print what worked")
    check.add_argument("--robot", required=True, help="driver: ur | franka | xarm")
    check.add_argument("--host", default=None, help="controller IP (default: the config's)")
    check.add_argument("--robot-config", default=None, metavar="FILE",
                       help="driver config YAML (default: robot_io/<driver>/*.yaml)")
    check.add_argument("--joint", type=int, default=None, help="joint to move, 1-based (default: the last, the "
                       "wrist: the TCP barely moves)")
    check.add_argument("--delta-rad", type=float, default=0.05, help="how far to move it (default 0.05 rad)")
    check.add_argument("--no-move", action="store_true", help="connect and read only")
    check.add_argument("--recover", action="store_true", help="clear an active protective stop / reflex / "
                       "controller error first (only after you inspected its cause)")
    check.add_argument("--json", action="store_true", help="last stdout line: every check as JSON")
    check.set_defaults(func=cmd_robot_check)

    cal = sub.add_parser("calibrate", help="camera extrinsics from ChArUco board images and TCP poses "
                         "(cv2.calibrateHandEye, eye-to-hand or eye-in-hand) -> a camera config")
    cal.add_argument("--data", required=True, metavar="DIR", help="folder with calibration.yaml and the images "
                     "(format: docs/real_arms.md)")
    cal.add_argument("--method", default="best", help="tsai | park | horaud | andreff | daniilidis | best "
                     "(default: all, keep the smallest residual)")
    cal.add_argument("--name", default=None, help="camera name (default: the data set's camera.name)")
    cal.add_argument("--out", default=None, metavar="FILE", help="camera config to write (default: "
                     "calibrated/cameras/<name>.yaml, so that `--config-dir calibrated` finds it by name)")
    cal.add_argument("--json", action="store_true", help="last stdout line: the result as JSON")
    cal.set_defaults(func=cmd_calibrate)


# ------------------------------------------------------------------ robot check
class _Report:
    def __init__(self) -> None:
        self.checks: list[dict] = []

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append({"check": name, "status": status, "detail": detail})
        print(f"  [{status:4s}] {name:10s} {detail}", flush=True)

    @property
    def passed(self) -> bool:
        return all(c["status"] != FAIL for c in self.checks)


def realtime_kernel() -> bool:
    """PREEMPT_RT kernels expose /sys/kernel/realtime = 1 (and say PREEMPT_RT in `uname -v`)."""
    try:
        if Path("/sys/kernel/realtime").read_text().strip() == "1":
            return True
    except OSError:
        pass
    return "PREEMPT_RT" in os.uname().version


def _move(robot, goal: np.ndarray):
    from robot_io.trajectory import JointTrajectory

    if hasattr(robot, "move_joints"):
        return robot.move_joints(goal)
    return robot.execute(JointTrajectory(goal[None, :], 0.0, 1.0))


def cmd_robot_check(args: argparse.Namespace) -> int:
    from robot_io.driver_config import DriverConfigError
    from robot_io.drivers import driver_entry, make_driver
    from robot_io.errors import ProtectiveStopError, RobotError

    rep = _Report()
    try:
        entry = driver_entry(args.robot)
        robot = make_driver(args.robot, args.robot_config, args.host)
    except DriverConfigError as e:
        print(f"antigrounding: error: {e}", file=sys.stderr)
        return 2
    cfg = robot.config
    print(f"antigrounding robot check: {entry.vendor} at {cfg.host} (robot '{robot.robot_spec.name}', config "
          f"{args.robot_config or 'shipped default'})", flush=True)
    rep.add("config", OK, f"envelope speed_scale {cfg.envelope.speed_scale}, max step "
            f"{cfg.envelope.max_joint_step_rad} rad")

    def finish() -> int:
        verdict = "PASSED" if rep.passed else "FAILED"
        print(f"antigrounding robot check: {verdict} ({sum(c['status'] == OK for c in rep.checks)} ok, "
              f"{sum(c['status'] == FAIL for c in rep.checks)} failed)", flush=True)
        if args.json:
            print(json.dumps({"robot": args.robot, "host": cfg.host, "passed": rep.passed, "checks": rep.checks}))
        return 0 if rep.passed else 1

    if args.robot == "franka" and getattr(cfg, "realtime", False) and not realtime_kernel():
        rep.add("kernel", FAIL, f"not a real-time kernel (uname -v: {os.uname().version}). libfranka's 1 kHz loop "
                "needs PREEMPT_RT: install one (e.g. Ubuntu Pro's real-time kernel, or build linux-rt) and reboot; "
                "see docs/real_arms.md. Set realtime: false only for simulators.")
        return finish()

    t0 = time.monotonic()
    unlock = getattr(type(robot), "unlock_protective_stop", None) if args.recover else None
    for attempt in (1, 2):
        try:
            robot.connect()
            break
        except ProtectiveStopError as e:       # UR: refused before its control script starts
            if unlock is None or attempt == 2:
                rep.add("connect", FAIL, str(e))
                return finish()
        except RobotError as e:
            rep.add("connect", FAIL, str(e))
            return finish()
        # outside the except block, so the failed attempt's client objects are gone before connecting again
        rep.add("recover", OK, f"protective stop active at connect; unlocked on request: {unlock(cfg.host)}")
    rep.add("connect", OK, f"{time.monotonic() - t0:.2f} s")
    try:
        obs = robot.observe()
        q0 = obs.joint_pos_rad
        xyz = obs.T_world_tcp[:3, 3]
        rep.add("read", OK, f"joint_pos_rad {np.round(q0, 4).tolist()}, TCP at ({xyz[0]:.3f}, {xyz[1]:.3f}, "
                f"{xyz[2]:.3f}) m")
        try:
            robot.check_ready()
        except ProtectiveStopError as e:
            if not args.recover:
                raise
            rep.add("recover", OK, f"clearing on request: {e}")
            robot.recover()
            robot.check_ready()
        rep.add("ready", OK, "no protective stop, reflex or controller error")
        if args.no_move:
            rep.add("move", SKIP, "--no-move")
        else:
            _check_move(robot, q0, args, rep)
        robot.stop()
        rep.add("stop", OK, "stop command accepted")
    except RobotError as e:
        rep.add(_failed_step(rep), FAIL, f"{type(e).__name__}: {e}")
    finally:
        robot.disconnect()
    return finish()


def _failed_step(rep: _Report) -> str:
    """The first step that has not reported yet: the one that raised."""
    done = {c["check"] for c in rep.checks}
    return next((s for s in ("read", "ready", "move", "stop") if s not in done), "disconnect")


def _check_move(robot, q0: np.ndarray, args: argparse.Namespace, rep: _Report) -> None:
    spec = robot.robot_spec
    j = (args.joint or spec.dof) - 1
    if not 0 <= j < spec.dof:
        rep.add("move", FAIL, f"--joint must be 1..{spec.dof}, got {args.joint}")
        return
    delta = abs(args.delta_rad)
    if not 0 < delta <= 0.2:
        rep.add("move", FAIL, f"--delta-rad must be in (0, 0.2] for a check, got {args.delta_rad}")
        return
    goal = q0.copy()
    goal[j] += delta if q0[j] + delta <= spec.joint_upper_rad[j] else -delta
    out = _move(robot, goal)
    back = _move(robot, q0)
    err_out = float(np.max(np.abs(out.final_joint_pos_rad - out.sent.joint_pos_rad[-1])))
    err_back = float(np.max(np.abs(back.final_joint_pos_rad - q0)))
    ok = out.completed and back.completed
    notes = "; ".join(out.notes)
    rep.add("move", OK if ok else FAIL,
            f"joint {j + 1} {goal[j] - q0[j]:+.3f} rad and back at low speed: final error {err_out * 1e3:.2f} / "
            f"{err_back * 1e3:.2f} mrad" + ("" if ok else f", stopped: {out.stopped_reason or back.stopped_reason}")
            + (f" (envelope: {notes})" if notes else ""))


# ------------------------------------------------------------------ calibrate
def cmd_calibrate(args: argparse.Namespace) -> int:
    from robot_io.calibration import CalibrationError, write_camera_config
    from robot_io.calibration_data import load_dataset, solve_dataset

    try:
        ds = load_dataset(args.data)
        print(f"antigrounding calibrate: {ds.mode}, {len(ds.samples)} samples, board {ds.board.squares_x}x"
              f"{ds.board.squares_y} ({ds.board.dictionary}), method {args.method}", file=sys.stderr, flush=True)
        result, fields, skipped = solve_dataset(ds, args.method)
    except CalibrationError as e:
        print(f"antigrounding: error: {e}", file=sys.stderr)
        return 2
    if args.name:
        fields["name"] = args.name
    out = Path(args.out or Path("calibrated") / "cameras" / f"{fields['name']}.yaml")
    write_camera_config(out, fields, result)
    if skipped:
        print(f"  board not found in {len(skipped)} image(s), left out: {', '.join(skipped)}", flush=True)
    solved = "T_base_camera" if ds.mode == "eye-to-hand" else "T_tcp_camera"
    T = result.T_solved
    print(f"  {solved}: xyz ({T[0, 3]:.4f}, {T[1, 3]:.4f}, {T[2, 3]:.4f}) m, method {result.method}, "
          f"{result.n_samples} samples", flush=True)
    print(f"  residual: {result.residual_rms_mm:.3f} mm / {result.residual_rms_deg:.3f} deg RMS (max "
          f"{result.residual_max_mm:.3f} mm / {result.residual_max_deg:.3f} deg); board reprojection "
          f"{result.reprojection_rms_px:.3f} px RMS", flush=True)
    print(f"  wrote {out}" + (f" (use it by name with --config-dir {out.parent.parent})"
                              if out.parent.name == "cameras" else ""), flush=True)
    if args.json:
        print(json.dumps({**result.summary(), "out": str(out), "skipped": skipped}))
    return 0
