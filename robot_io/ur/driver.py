"""`URRobot`: a Universal Robots arm behind `Robot`, through SDU's ur_rtde client (pinned: `antigrounding[ur]`).

How it keeps the arm safe on a real link:
- every command passes the `SafetyEnvelope` first; what survives is streamed with servoJ at `servo_rate_hz`
  (linear interpolation of the envelope's waypoints), then the last waypoint is held until the arm settles;
- every ur_rtde call runs on one `VendorWorker` thread with a deadline (moveJ/stopJ on a dead link block for
  minutes inside ur_rtde);
- state is trusted only while RTDE's controller timestamp keeps moving (`stale_after_s`): ur_rtde's getters
  keep returning the last packet after the link died;
- on connect the controller's RTDE input watchdog is armed (`setWatchdog`): if the driver's inputs stop (a
  cut cable, a frozen process) the controller itself stops the program and the arm; while idle, the worker
  kicks it;
- a protective stop raises `ProtectiveStopError`; only `recover()` (called by the user) unlocks it through
  the Dashboard server and re-uploads the control script;
- the gripper (`gripper: digital_out` in the config: a standard digital output through RTDE, see
  `robot_io.ur.gripper`) is switched between the arm pieces where the planned gripper state changes
  (`robot_io.vendor_robot.VendorRobot.execute`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_io.camera import Camera
from robot_io.errors import ConnectionLostError, ProtectiveStopError, RobotError, VendorError
from robot_io.gripper import Gripper
from robot_io.robot import ExecuteReport
from robot_io.trajectory import JointTrajectory
from robot_io.ur.config import URConfig
from robot_io.vendor_call import FreshState, VendorWorker, run_with_deadline
from robot_io.vendor_robot import VendorRobot, servo_ticks

log = logging.getLogger(__name__)

_PORTS = {30004: "RTDE", 29999: "Dashboard", 30003: "script (real-time)"}
_RECV_VARIABLES = ["timestamp", "actual_q", "actual_qd", "target_q", "robot_mode", "safety_mode",
                   "safety_status_bits", "runtime_state", "robot_status_bits"]
_PROTECTIVE_STOP_BIT, _EMERGENCY_STOP_BITS = 2, (5, 6, 7)
_RUNTIME_PLAYING = 2
_SUPERVISE_PERIOD_S = 0.005


@dataclass(frozen=True)
class URState:
    """One fresh RTDE sample: controller time, joints, and the safety/program flags decoded from bits."""

    stamp_s: float
    joint_pos_rad: np.ndarray
    joint_vel_rad_s: np.ndarray
    protective_stop: bool
    emergency_stop: bool
    program_running: bool


def _import_ur_rtde():
    try:
        import dashboard_client
        import rtde_control
        import rtde_receive
    except ImportError as e:
        raise RobotError(f"the UR driver needs ur_rtde: pip install 'antigrounding[ur]' ({e})") from None
    return rtde_control, rtde_receive, dashboard_client


def probe_ports(host: str, timeout_s: float = 1.0) -> None:
    """Fail fast with an actionable message when the controller's ports do not answer (ur_rtde's constructors
    cannot be interrupted once they block)."""
    for port, what in _PORTS.items():
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                pass
        except OSError as e:
            raise ConnectionLostError(
                f"cannot reach the UR controller's {what} port at {host}:{port} ({e.strerror or e}). "
                f"Check that the robot is powered on, the cable and IP are right (ping {host}), and on e-Series "
                f"that Remote Control is enabled on the teach pendant."
            ) from None


class URRobot(VendorRobot):
    """A UR arm over RTDE. `cameras` are connected with the arm and read on every observe(); `gripper` (default: the
    config's) is commanded where the planned gripper state changes."""

    vendor = "UR controller"
    dofs = (6,)

    def __init__(self, config: URConfig | None = None, *, cameras: Sequence[Camera] = (),
                 gripper: Gripper | None = None) -> None:
        super().__init__(config or URConfig.load(), cameras=cameras, gripper=gripper)
        self._rc = self._rr = self._db = None
        self._fresh = FreshState()

    # ------------------------------------------------------------ link
    def _link_open(self) -> bool:
        return self._rc is not None

    def _make_gripper(self) -> Gripper | None:
        from robot_io.ur.gripper import gripper_from_config

        return gripper_from_config(self.config, self.robot_spec.gripper_max_width_m)

    def connect(self) -> None:
        if self._rc is not None:
            raise RobotError(f"{self!r}: already connected (disconnect() first)")
        rtde_control, rtde_receive, dashboard_client = _import_ur_rtde()
        cfg = self.config
        probe_ports(cfg.host)
        try:
            self._rr = rtde_receive.RTDEReceiveInterface(cfg.host, cfg.rtde_frequency_hz, _RECV_VARIABLES)
            self._refuse_if_stopped()
            self._rc = rtde_control.RTDEControlInterface(cfg.host, cfg.rtde_frequency_hz)
            self._db = dashboard_client.DashboardClient(cfg.host)
            self._db.connect()
        except RuntimeError as e:
            self.disconnect()
            msg = str(e)
            if "remote control" in msg.lower():
                msg += " (teach pendant: Settings > System > Remote Control, then switch to Remote)"
            raise ConnectionLostError(f"UR controller at {cfg.host}: {msg}") from None
        self._lost = None
        self._fresh = FreshState()
        self._open_kinematics()
        self._worker = VendorWorker(f"ur@{cfg.host}")
        try:
            self._wait_fresh()
            self._arm_watchdog()
            self._open_peripherals()
        except BaseException:
            self.disconnect()
            raise
        log.info("connected to UR controller at %s (%s)", cfg.host, self.robot_spec.name)

    def _refuse_if_stopped(self) -> None:
        """Before ur_rtde uploads its control script: a protective or emergency stop would make it wait 5 s and
        fail with "Failed to start control script"; say what is wrong instead."""
        rr, deadline = self._rr, time.monotonic() + 1.0
        while rr.getTimestamp() == 0.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        bits = int(rr.getSafetyStatusBits())
        # No reference may outlive disconnect() in this frame's traceback: destroying an RTDEReceiveInterface
        # holds the GIL for ~0.5 s, long enough to starve the next connection's watchdog kicks.
        del rr
        if bits >> _PROTECTIVE_STOP_BIT & 1 or any(bits >> b & 1 for b in _EMERGENCY_STOP_BITS):
            kind = "protective stop" if bits >> _PROTECTIVE_STOP_BIT & 1 else "emergency stop"
            self.disconnect()
            raise ProtectiveStopError(
                f"UR {kind} is active on the controller at {self.config.host}: inspect its cause, then "
                f"{'release the e-stop button and ' if kind == 'emergency stop' else ''}unlock it on the teach "
                f"pendant or with URRobot.unlock_protective_stop(host) (`antigrounding robot check --recover`), and "
                f"connect again")

    @staticmethod
    def unlock_protective_stop(host: str, timeout_s: float = 3.0) -> str:
        """Unlock a protective stop through the Dashboard server before connecting (the user's explicit command,
        after inspecting the cause). Returns the controller's answer; raises if it refuses."""
        _, _, dashboard_client = _import_ur_rtde()
        db = dashboard_client.DashboardClient(host)
        try:
            if not run_with_deadline(db.connect, timeout_s, "ur-dashboard"):
                raise ConnectionLostError(f"UR Dashboard server at {host}:29999 did not answer within {timeout_s} s")
            db.send("unlock protective stop\n")
            reply = str(db.receive()).strip()
            if "releasing" not in reply.lower():
                raise ProtectiveStopError(f"the controller refused to unlock the protective stop: {reply!r} (UR "
                                          f"allows it 5 s after the stop at the earliest)")
            db.closeSafetyPopup()
            return reply
        finally:
            run_with_deadline(db.disconnect, 2.0, "ur-dashboard-disconnect")

    def _arm_watchdog(self) -> None:
        """Arm the RTDE input watchdog at its idle frequency (motions raise it: `_stream`), and kick it while idle.

        Between motions the planner computes (reconstruction, rendering, rollouts) in C extensions that can hold
        the GIL for hundreds of milliseconds and starve the kick thread: the idle watchdog then tolerates
        1 / watchdog_idle_min_hz of silence (a frozen or unplugged driver still stops the program), and the strict
        `watchdog_min_hz` applies while the arm moves."""
        rc, hz = self._rc, self.config.watchdog_idle_min_hz
        # Right after a script (re)start, ur_rtde's control interface may not have seen the new runtime state
        # yet and refuses commands for a packet or two: retry briefly.
        deadline = time.monotonic() + 1.0
        while not self._call("setWatchdog", rc.setWatchdog, hz):
            if time.monotonic() > deadline:
                raise VendorError("the UR control script refused setWatchdog (is the program running?)")
            time.sleep(0.02)
        # Kick three times per (motion) watchdog period while idle; servoJ packages count as kicks while moving.
        self._worker.idle(rc.kickWatchdog, period_s=1.0 / (3.0 * self.config.watchdog_min_hz))

    def disconnect(self) -> None:
        self._abort.set()
        self._close_peripherals()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.idle(None)
            if worker.wedged is None and self._lost is None and self._rc is not None:
                with contextlib.suppress(RobotError):
                    worker.call("stopScript", self._rc.stopScript, timeout_s=self.config.call_timeout_s)
            worker.close()
        for client in (self._rc, self._rr, self._db):
            if client is not None and not run_with_deadline(client.disconnect, 3.0, "ur-disconnect"):
                log.warning("ur_rtde %s.disconnect() did not return within 3 s; left behind", type(client).__name__)
        self._rc = self._rr = self._db = None
        self._close_kinematics()
        self._lost = None
        self._abort.clear()

    # ------------------------------------------------------------ state
    def _call(self, what: str, fn, *args: Any, timeout_s: float | None = None) -> Any:
        try:
            return self._worker.call(what, fn, *args, timeout_s=timeout_s or self.config.call_timeout_s)
        except ConnectionLostError as e:
            raise self._mark_lost(str(e)) from None
        except RuntimeError as e:
            raise VendorError(f"ur_rtde {what}: {e}") from None

    def state(self) -> URState:
        """The latest RTDE sample; ConnectionLostError if the controller's timestamp stopped moving."""
        self._require()
        rr = self._rr
        stamp = rr.getTimestamp()
        age = self._fresh.update(stamp)
        if age > self.config.stale_after_s or not rr.isConnected():
            raise self._mark_lost(f"no fresh RTDE state for {age:.3f} s (link down, or the controller stopped "
                                  f"streaming)")
        safety = int(rr.getSafetyStatusBits())
        return URState(stamp_s=stamp, joint_pos_rad=np.array(rr.getActualQ()),
                       joint_vel_rad_s=np.array(rr.getActualQd()),
                       protective_stop=bool(safety >> _PROTECTIVE_STOP_BIT & 1),
                       emergency_stop=any(safety >> b & 1 for b in _EMERGENCY_STOP_BITS),
                       program_running=int(rr.getRuntimeState()) == _RUNTIME_PLAYING)

    def _wait_fresh(self) -> URState:
        deadline = time.monotonic() + max(1.0, 5 * self.config.stale_after_s)
        while True:
            try:
                return self.state()
            except ConnectionLostError:
                if time.monotonic() > deadline:
                    raise
                self._lost = None
                time.sleep(0.01)

    def _check_ready(self, st: URState) -> None:
        if st.emergency_stop:
            raise ProtectiveStopError("UR emergency stop is active: release the e-stop button, then recover()")
        if st.protective_stop:
            raise ProtectiveStopError("UR protective stop is active: inspect its cause (collision, limit, jump), "
                                      "then call recover() (Dashboard unlock + control script re-upload)")
        if not st.program_running:
            raise VendorError("the ur_rtde control script is not running on the controller (stopped by the RTDE "
                              "watchdog, the pendant or the Dashboard); call recover() to re-upload it")

    # ------------------------------------------------------------ motion
    def _move_segment(self, seg: JointTrajectory, q_start: np.ndarray) -> str | None:
        """Stream seg with servoJ on the worker while this thread watches the state (stale link, protective stop,
        script stopped, the user's stop, the deadline)."""
        cfg = self.config
        ticks = servo_ticks(q_start, seg, 1.0 / cfg.servo_rate_hz)
        self._abort.clear()
        settled = threading.Event()
        job = self._worker.submit(self._stream, ticks, settled)
        q_goal = ticks[-1]
        # The stream itself gives up holding after settle_timeout_s; this deadline catches a stream that never returns
        # (a loaded machine can run the 125 Hz stream late: twice its nominal length before calling it hung).
        deadline = time.monotonic() + 2 * len(ticks) / cfg.servo_rate_hz + cfg.settle_timeout_s + 2.0
        reason: str | None = None
        try:
            while not job.done():
                time.sleep(_SUPERVISE_PERIOD_S)
                st = self.state()                      # raises ConnectionLostError on a stale link
                if st.protective_stop or st.emergency_stop:
                    reason = "protective stop" if st.protective_stop else "emergency stop"
                    break
                if not st.program_running:
                    reason = "control script stopped"
                    break
                if self._abort.is_set():
                    reason = "stop"
                    break
                if np.max(np.abs(st.joint_pos_rad - q_goal)) <= cfg.settle_tol_rad:
                    settled.set()
                if time.monotonic() > deadline:
                    reason = "timeout"
                    break
        except ConnectionLostError:
            self._abort.set()
            self._try_stop()
            raise
        except BaseException:
            self._abort.set()
            self._try_stop()
            raise
        if reason is not None:
            self._abort.set()
            if reason != "stop":
                # (after a user stop(), its own stopJ is already queued: a second one would wait behind it and,
                # on a loaded machine, miss the short deadline and be taken for a lost link)
                self._try_stop()
            if reason in ("protective stop", "emergency stop"):
                raise ProtectiveStopError(f"UR {reason} during execute: inspect its cause, then call recover()")
            if reason == "control script stopped":
                raise VendorError("the ur_rtde control script stopped during execute (RTDE watchdog, pendant or "
                                  "Dashboard); call recover()")
        else:
            job.result()
        if reason is None and not settled.is_set():
            reason = f"did not settle within {cfg.settle_tol_rad} rad in {cfg.settle_timeout_s} s"
        return reason

    def _stream(self, ticks: np.ndarray, settled: threading.Event) -> None:
        """On the worker: servoJ every tick, then hold the last target until settled (or the timeout)."""
        cfg, rc = self.config, self._rc
        if not rc.setWatchdog(cfg.watchdog_min_hz):     # strict while moving: a silent driver stops the arm
            raise VendorError("the UR control script refused setWatchdog before a motion")
        try:
            self._servo(ticks, settled)
        finally:
            if self._lost is None and self._worker is not None and self._worker.wedged is None:
                rc.setWatchdog(cfg.watchdog_idle_min_hz)

    def _servo(self, ticks: np.ndarray, settled: threading.Event) -> None:
        cfg, rc = self.config, self._rc
        period = 1.0 / cfg.servo_rate_hz
        hold_until = None
        k = 0
        while not self._abort.is_set():
            t0 = rc.initPeriod()
            q = ticks[min(k, len(ticks) - 1)]
            if not rc.servoJ(q.tolist(), 0.5, 0.5, period, cfg.servo_lookahead_s, cfg.servo_gain):
                raise VendorError("ur_rtde servoJ was refused (control script not ready)")
            k += 1
            if k >= len(ticks):
                hold_until = hold_until or time.monotonic() + cfg.settle_timeout_s
                if settled.is_set() or time.monotonic() > hold_until:
                    break
            rc.waitPeriod(t0)
        rc.servoStop(cfg.stop_decel_rad_s2 * 4)

    def _try_stop(self) -> None:
        """Best effort: servoStop + stopJ within one call deadline (the controller's watchdog covers a dead link)."""
        if self._worker is None or self._worker.wedged is not None:
            return
        try:
            self._call("stopJ", self._rc.stopJ, self.config.stop_decel_rad_s2, False,
                       timeout_s=min(self.config.call_timeout_s, 0.25))
        except RobotError as e:
            log.error("stop after an aborted motion failed: %s (the RTDE watchdog stops the arm)", e)

    def stop(self) -> None:
        self._require()
        self._abort.set()
        self._call("stopJ", self._rc.stopJ, self.config.stop_decel_rad_s2, False,
                   timeout_s=self.config.call_timeout_s + 2.0)

    def move_joints(self, q_target_rad: Sequence[float]) -> ExecuteReport:
        """One moveJ to `q_target_rad` at the config's (slow) speed, after the envelope; for `robot check`.

        Runs asynchronously on the controller so that the worker keeps kicking the watchdog and this thread
        keeps checking that the state is fresh.
        """
        cfg = self.config
        st = self.state()
        self._check_ready(st)
        traj = JointTrajectory(np.asarray(q_target_rad, float)[None, :], 0.0, 1.0)
        sent, notes = self.envelope.filter(traj, st.joint_pos_rad)
        q_goal = sent.joint_pos_rad[-1]
        if not self._call("moveJ", self._rc.moveJ, q_goal.tolist(), cfg.move_speed_rad_s, cfg.move_accel_rad_s2,
                          True):
            raise VendorError("ur_rtde moveJ was refused by the controller")
        try:
            st = self._await_joints(q_goal, st.joint_pos_rad, "moveJ", _SUPERVISE_PERIOD_S, on_timeout=self._try_stop)
        except ConnectionLostError:
            self._try_stop()
            raise
        return ExecuteReport(sent=JointTrajectory(q_goal[None, :], 0.0, 1.0), notes=tuple(notes), completed=True,
                             stopped_reason=None, final_joint_pos_rad=st.joint_pos_rad)

    # ------------------------------------------------------------ recovery (explicit only)
    def _dashboard_ask(self, command: str) -> str:
        self._db.send(command + "\n")
        return str(self._db.receive()).strip()

    def recover(self) -> None:
        """Unlock a protective stop (Dashboard) and re-upload the control script; re-arm the watchdog.

        Call it only after inspecting why the arm stopped. UR refuses to unlock within 5 s of the stop.
        """
        self._require()
        st = self.state()
        if st.emergency_stop:
            raise ProtectiveStopError("UR emergency stop is active: release the e-stop button on the pendant first")
        if st.protective_stop:
            # DashboardClient.unlockProtectiveStop() returns nothing in ur_rtde 1.6.5; ask the raw question to get
            # the controller's own answer (it refuses within 5 s of the stop).
            reply = self._call("unlock protective stop", self._dashboard_ask, "unlock protective stop", timeout_s=2.0)
            if "releasing" not in reply.lower():
                raise ProtectiveStopError(f"the controller refused to unlock the protective stop: {reply!r}; UR allows "
                                          f"it 5 s after the stop at the earliest: wait and call recover() again")
            self._call("closeSafetyPopup", self._db.closeSafetyPopup, timeout_s=2.0)
            deadline = time.monotonic() + 2.0
            while self.state().protective_stop:
                if time.monotonic() > deadline:
                    raise ProtectiveStopError("the protective stop did not clear within 2 s of the unlock")
                time.sleep(0.01)
        self._worker.idle(None)
        if not self._call("reuploadScript", self._rc.reuploadScript, timeout_s=5.0):
            raise VendorError("re-uploading the ur_rtde control script failed")
        deadline = time.monotonic() + 5.0
        while not (st := self.state()).program_running:
            if st.protective_stop:
                raise ProtectiveStopError("a protective stop is active again; the control script was not started")
            if time.monotonic() > deadline:
                raise VendorError("the ur_rtde control script did not start within 5 s of the re-upload")
            time.sleep(0.01)
        self._arm_watchdog()

