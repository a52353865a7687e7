"""`FrankaRobot`: a Franka Research 3 behind `Robot`, through the franky client (`antigrounding[franka]`).

- Every trajectory passes the `SafetyEnvelope`; what survives goes out as one franky `JointWaypointMotion`
  through the corners of that path (Ruckig times it within the FR3's limits scaled by
  `relative_dynamics_factor`).
- The motion runs asynchronously; this thread polls it and the robot state through a `VendorWorker` with a
  deadline, and trusts the state only while libfranka's robot time keeps moving (`stale_after_s`).
- A reflex or control error raises `ProtectiveStopError`; only `recover()` (franky's `recover_from_errors`),
  called by the user, clears it.
- libfranka needs a PREEMPT_RT kernel: without one it raises at connect (`realtime: false` is for simulators).
- After the motion, if the measured joints sit further than `settle_tol_rad` from the last waypoint (a
  simulated joint controller without gravity compensation leaves such an offset), up to `settle_corrections`
  small corrective targets (each offset at most `settle_max_offset_rad`, inside the joint limits) are sent.
- The Franka Hand (`gripper: franka_hand`, `robot_io.franka.gripper`, franky's `Gripper`) is commanded between the
  arm pieces where the planned gripper state changes (`robot_io.vendor_robot.VendorRobot.execute`).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Sequence

import numpy as np

from robot_io.camera import Camera
from robot_io.errors import ConnectionLostError, ProtectiveStopError, RobotError, VendorError
from robot_io.franka.config import FrankaConfig
from robot_io.gripper import Gripper
from robot_io.trajectory import JointTrajectory
from robot_io.vendor_call import FreshState, VendorWorker, run_with_deadline
from robot_io.vendor_robot import VendorRobot

log = logging.getLogger(__name__)
_FCI_PORT = 1337
_POLL_S = 0.01
_CONNECT_S = 15.0
_STILL_POLLS = 5
_SETTLE_GAIN = 0.5


def _import_franky():
    try:
        import franky
    except ImportError as e:
        raise RobotError(f"the Franka driver needs franky: pip install 'antigrounding[franka]' ({e})") from None
    return franky


class FrankaRobot(VendorRobot):
    """An FR3 over libfranka (franky). `cameras` are connected with the arm and read on every observe(); `gripper`
    (default: the config's Franka Hand) is commanded where the planned gripper state changes."""

    vendor = "Franka"
    dofs = (7,)

    def __init__(self, config: FrankaConfig | None = None, *, cameras: Sequence[Camera] = (),
                 gripper: Gripper | None = None) -> None:
        super().__init__(config or FrankaConfig.load(), cameras=cameras, gripper=gripper)
        self._robot = None
        self._franky = None
        self._fresh = FreshState()
        self._stop_requested = False

    def _link_open(self) -> bool:
        return self._robot is not None

    def _make_gripper(self) -> Gripper | None:
        from robot_io.franka.gripper import gripper_from_config

        return gripper_from_config(self.config, self._franky, self.robot_spec.gripper_max_width_m)

    def connect(self) -> None:
        if self._robot is not None:
            raise RobotError(f"{self!r}: already connected (disconnect() first)")
        franky = self._franky = _import_franky()
        cfg = self.config
        try:
            with socket.create_connection((cfg.host, _FCI_PORT), timeout=1.0):
                pass
        except OSError as e:
            raise ConnectionLostError(
                f"cannot reach the Franka control (FCI) at {cfg.host}:{_FCI_PORT} ({e.strerror or e}). Check the "
                f"cable to the Control box's shop-floor port, the IP, and that FCI is activated in Desk."
            ) from None
        rt = franky.RealtimeConfig.Enforce if cfg.realtime else franky.RealtimeConfig.Ignore
        worker = VendorWorker(f"franka@{cfg.host}")
        try:
            # libfranka's connect waits without end while another client holds the FCI (it serves one at a time)
            self._robot = worker.call("connect", lambda: franky.Robot(
                cfg.host, relative_dynamics_factor=cfg.relative_dynamics_factor, realtime_config=rt),
                timeout_s=max(_CONNECT_S, cfg.call_timeout_s))
        except ConnectionLostError:
            worker.close()
            raise ConnectionLostError(f"Franka at {cfg.host}: libfranka's connect did not return within "
                                      f"{max(_CONNECT_S, cfg.call_timeout_s):.0f} s; another client (Desk's "
                                      f"single-point-of-control, another program) may hold the FCI") from None
        except franky.RealtimeException as e:
            worker.close()
            raise RobotError(f"{e}: libfranka needs a real-time (PREEMPT_RT) kernel for its 1 kHz loop; without "
                             f"one expect communication_constraints_violation reflexes. See docs/real_arms.md "
                             f"('Franka: real-time kernel').") from None
        except franky.Exception as e:
            worker.close()
            raise ConnectionLostError(f"Franka at {cfg.host}: {e} (the PyPI franky wheel talks to robot server "
                                      f"version 10 (FR3 system image); an older Panda needs franky built against "
                                      f"its libfranka)") from None
        self._lost, self._fresh = None, FreshState()
        self._worker = worker
        self._open_kinematics()
        try:
            self._open_peripherals()
        except BaseException:
            self.disconnect()
            raise
        log.info("connected to Franka at %s (relative dynamics factor %.2f)", cfg.host, cfg.relative_dynamics_factor)

    def disconnect(self) -> None:
        self._close_peripherals()
        robot, self._robot = self._robot, None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
        if robot is not None and not run_with_deadline(lambda: robot.stop(), 2.0, "franka-stop"):
            log.warning("franky stop() did not return within 2 s at disconnect")
        self._close_kinematics()
        self._lost = None

    # ------------------------------------------------------------ state
    def _state(self):
        st = self._call("read state", lambda: self._robot.state)
        age = self._fresh.update(st.time.to_sec())
        if age > self.config.stale_after_s:
            raise self._mark_lost(f"robot time has not moved for {age:.3f} s (link down)")
        return st

    def check_ready(self) -> None:
        """Raise ProtectiveStopError if libfranka reports an active error or reflex."""
        self._state()
        if self._call("has_errors", lambda: self._robot.has_errors):
            raise ProtectiveStopError("the Franka has an active error/reflex; inspect it (Desk shows the reflex), "
                                      "then call recover() (`antigrounding robot check --recover`)")

    def joint_pos_rad(self) -> np.ndarray:
        return np.array(self._state().q, dtype=float)

    def _joint_state(self) -> tuple[np.ndarray, float, np.ndarray]:
        st = self._state()
        return np.array(st.q, dtype=float), st.time.to_sec(), np.array(st.tau_J, dtype=float)

    def _ready_joint_pos(self) -> np.ndarray:
        st = self._state()
        if self._call("has_errors", lambda: self._robot.has_errors):
            raise ProtectiveStopError("the Franka has an active error/reflex; inspect it, then call recover()")
        return np.array(st.q, dtype=float)

    # ------------------------------------------------------------ motion
    def _motion(self, traj: JointTrajectory, q_now: np.ndarray):
        """One JointWaypointMotion through the corners of the envelope's piecewise-linear path.

        Ruckig stops at each waypoint and moves in a straight joint-space line between them, so the points the
        envelope inserted on straight segments are dropped (the path is unchanged) and the arm does not stop at
        each of them; Ruckig times the path within the FR3's limits scaled by the dynamics factor.
        """
        fr = self._franky
        q = np.vstack([q_now[None, :], traj.joint_pos_rad])
        keep = [len(q) - 1]
        for i in range(len(q) - 2, 0, -1):
            a, b = q[i] - q[i - 1], q[keep[-1]] - q[i]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            if na < 1e-12 or nb < 1e-12 or np.dot(a, b) / (na * nb) < 1 - 1e-9:
                keep.append(i)
        return fr.JointWaypointMotion([fr.JointWaypoint(fr.JointState(q[i])) for i in reversed(keep)])

    def _run(self, motion, budget_s: float) -> str | None:
        """Start `motion` asynchronously and supervise it; the stop reason, or None when it finished."""
        fr = self._franky
        self._stop_requested = False
        try:
            self._call("move", lambda: self._robot.move(motion, asynchronous=True))
        except fr.ControlException as e:
            if "preempted" not in str(e).lower():
                raise ProtectiveStopError(f"Franka refused the motion: {e}. Inspect the cause, then call recover() "
                                          f"(franky recover_from_errors)") from None
            # seen against franky-sim under load: the move right after a finished one raised "Move command
            # preempted" (the earlier motion's ending, reported late) and did not start; the target is absolute,
            # so sending it again is safe
            log.warning("franky: %s on starting a motion; sending it again", e)
            self._call("move", lambda: self._robot.move(motion, asynchronous=True))
        # the budget runs on libfranka's robot time: a controller (or simulator) behind real time stretches the
        # motion in wall time, not in its own; a stopped clock is caught by _state() as a lost link
        t_start = self._state().time.to_sec()
        while True:
            time.sleep(_POLL_S)
            try:
                moving = not self._call("join_motion", self._robot.join_motion, 0.0)
            except fr.ControlException as e:
                if "preempted" in str(e).lower() and self._stop_requested:
                    return "stop"
                raise ProtectiveStopError(f"Franka reflex/control error: {e}. Inspect the cause, then call "
                                          f"recover() (franky recover_from_errors)") from None
            st = self._state()
            if not moving:
                return "stop" if self._stop_requested else None
            if st.time.to_sec() - t_start > budget_s:
                self._try_stop()
                return "timeout"

    def _move_segment(self, seg: JointTrajectory, q_start: np.ndarray) -> str | None:
        budget = 3.0 * seg.duration_s / self.config.relative_dynamics_factor + 5.0
        try:
            reason = self._run(self._motion(seg, q_start), budget)
            if reason is None:
                reason = self._settle(seg.joint_pos_rad[-1])
        except (ConnectionLostError, KeyboardInterrupt):
            self._try_stop()
            raise
        return reason

    def _still_joint_pos(self, timeout_s: float) -> np.ndarray:
        """The joints once the arm has come to rest (every |dq| <= settle_still_rad_s over _STILL_POLLS polls in a
        row), or as they are when timeout_s runs out. libfranka reports a motion done when its generator ends; the
        arm is still closing its tracking lag then (tens of mrad when the controller runs slower than real time)."""
        deadline = time.monotonic() + timeout_s
        still = 0
        while True:
            st = self._state()
            still = still + 1 if np.max(np.abs(st.dq)) <= self.config.settle_still_rad_s else 0
            if still >= _STILL_POLLS or time.monotonic() > deadline:
                return np.array(st.q, dtype=float)
            time.sleep(_POLL_S)

    def _settle(self, goal: np.ndarray) -> str | None:
        """Wait for the arm to rest; while it rests further than settle_tol_rad from the goal (a joint controller's
        steady offset: gravity model error, friction), aim past the goal by the offset and rest again."""
        cfg, fr = self.config, self._franky
        lower = np.asarray(self.robot_spec.joint_lower_rad)
        upper = np.asarray(self.robot_spec.joint_upper_rad)
        target = goal.copy()
        for attempt in range(cfg.settle_corrections + 1):
            # judged at rest only: an error read on the way in is lag, not offset, and aiming past it overshoots
            err = goal - self._still_joint_pos(cfg.settle_timeout_s)
            log.debug("settle %d: error %s mrad, target - goal %s mrad", attempt, np.round(-err * 1e3, 3),
                      np.round((target - goal) * 1e3, 3))
            if np.max(np.abs(err)) <= cfg.settle_tol_rad:
                return None
            if attempt == cfg.settle_corrections:
                break
            target = np.clip(target + _SETTLE_GAIN * err, goal - cfg.settle_max_offset_rad,
                             goal + cfg.settle_max_offset_rad)
            target = np.clip(target, lower, upper)
            # a few mrad: short, but a simulator behind real time (0.3x under load here) stretches it
            reason = self._run(fr.JointWaypointMotion([fr.JointWaypoint(fr.JointState(target))]),
                               5.0 + cfg.settle_timeout_s)
            if reason is not None:
                return reason
        return f"settled {np.max(np.abs(err)) * 1e3:.2f} mrad from the last waypoint"

    def _try_stop(self) -> None:
        if self._worker is None or self._worker.wedged is not None:
            return
        try:
            self._call("stop", self._robot.stop)
        except RobotError as e:
            log.error("stop after an aborted motion failed: %s", e)

    def stop(self) -> None:
        self._require()
        self._stop_requested = True
        self._call("stop", self._robot.stop)

    def recover(self) -> None:
        """franky's recover_from_errors(): only on the user's explicit command, after inspecting the reflex."""
        self._call("recover_from_errors", self._robot.recover_from_errors, timeout_s=5.0)
        if self._robot.has_errors:
            raise VendorError("recover_from_errors() returned but the robot still reports errors")
