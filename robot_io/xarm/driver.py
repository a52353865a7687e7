"""`XArmRobot`: a UFACTORY xArm behind `Robot`, through the xArm Python SDK (`antigrounding[xarm]`).

How it keeps the arm safe on a real link:
- every command passes the `SafetyEnvelope` first. execute() then switches the controller to servo mode
  (mode 1) and streams `set_servo_angle_j` at `servo_rate_hz` through the envelope's waypoints. The controller
  ignores that call's speed, so the driver paces the targets itself: one target per tick and at least one period
  between two sends, also after a slow call (servo_j was seen blocking ~190 ms) or a late wake-up, so the targets
  never move faster than the envelope's speed cap.
  move_joints() (robot check) uses position mode (mode 0) `set_servo_angle` at `move_speed_rad_s`;
- every SDK call runs on one `VendorWorker` thread with a deadline, and its integer return code goes through
  `robot_io.xarm.codes.check` (link codes -> ConnectionLostError, controller error -> ProtectiveStopError, ...);
- the command channel is request-reply, so a successful joint reply is fresh by construction; during a motion
  no reply for `stale_after_s` means the link is gone: the driver tries `set_state(4)` (stop) within 0.25 s and
  raises. In servo mode the controller executes only the last target, so a silent link leaves the arm holding it;
- a controller error (collision, limit, e-stop) raises `ProtectiveStopError` with the SDK's own title; only
  `recover()`, called by the user, clears it;
- the xArm Gripper (`gripper: xarm_gripper` in the config, `robot_io.xarm.gripper`) is commanded between the arm
  pieces where the planned gripper state changes (`robot_io.vendor_robot.VendorRobot.execute`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot_io.camera import Camera
from robot_io.errors import ConnectionLostError, ProtectiveStopError, RobotError, VendorError
from robot_io.gripper import Gripper
from robot_io.robot import ExecuteReport
from robot_io.trajectory import JointTrajectory
from robot_io.vendor_call import VendorWorker, run_with_deadline
from robot_io.vendor_robot import VendorRobot, servo_ticks
from robot_io.xarm import codes
from robot_io.xarm.config import XArmConfig

log = logging.getLogger(__name__)
CONTROL_PORT = 502
MODE_POSITION, MODE_SERVO = 0, 1
STATE_MOVING, STATE_SLEEPING, STATE_PAUSED, STATE_STOPPED = 1, 2, 3, 4
_POLL_S = 0.005


@dataclass(frozen=True)
class XArmState:
    """One reply set: joints, controller error/warning codes, motion state, and when (this machine's clock)."""

    joint_pos_rad: np.ndarray
    error_code: int
    warn_code: int
    motion_state: int
    stamp_s: float


def probe_port(host: str, timeout_s: float = 1.0) -> None:
    """Fail fast with an actionable message when the control box's command port does not answer."""
    try:
        with socket.create_connection((host, CONTROL_PORT), timeout=timeout_s):
            pass
    except OSError as e:
        raise ConnectionLostError(
            f"cannot reach the xArm control box at {host}:{CONTROL_PORT} ({e.strerror or e}). Check that the control "
            f"box is powered on, the Ethernet cable and IP are right (ping {host}; UFactory Studio shows the IP), "
            f"and that no other program holds the connection."
        ) from None


def _sdk_factory(host: str):
    xarm_api = codes.import_xarm_api()
    return xarm_api(host, is_radian=True, do_not_open=True)


class XArmRobot(VendorRobot):
    """An xArm over the SDK. `api_factory(host)` builds the unconnected SDK object (default:
    `XArmAPI(host, is_radian=True, do_not_open=True)`); tests pass a stand-in. `cameras` are connected with the arm
    and read on observe(); `gripper` (default: the config's) is commanded where the planned gripper state changes."""

    vendor = "xArm"
    dofs = (5, 6, 7)

    def __init__(self, config: XArmConfig | None = None, *, cameras: Sequence[Camera] = (),
                 gripper: Gripper | None = None, api_factory: Callable[[str], Any] | None = None) -> None:
        super().__init__(config or XArmConfig.load(), cameras=cameras, gripper=gripper)
        self._api_factory = api_factory
        self._api = None
        self._last_reply_s = 0.0
        self._latest_q: np.ndarray | None = None

    # ------------------------------------------------------------ link
    def _link_open(self) -> bool:
        return self._api is not None

    def _make_gripper(self) -> Gripper | None:
        from robot_io.xarm.gripper import gripper_from_config

        return gripper_from_config(self.config, self._api, self._code_of, self.robot_spec.gripper_max_width_m)

    def connect(self) -> None:
        if self._api is not None:
            raise RobotError(f"{self!r}: already connected (disconnect() first)")
        cfg = self.config
        factory = self._api_factory
        if factory is None:
            probe_port(cfg.host)
            factory = _sdk_factory
        api = factory(cfg.host)
        worker = VendorWorker(f"xarm@{cfg.host}")
        try:
            worker.call("connect", api.connect, timeout_s=max(5.0, cfg.call_timeout_s))
        except ConnectionLostError as e:
            worker.close()
            raise ConnectionLostError(f"xArm at {cfg.host}: {e}") from None
        except Exception as e:  # noqa: BLE001 - the SDK raises a bare Exception('connect socket failed')
            worker.close()
            raise ConnectionLostError(f"xArm at {cfg.host}: the SDK could not connect ({e}); check power, cable, "
                                      f"IP, and that no other client holds the control box") from None
        if not api.connected:
            worker.close()
            raise ConnectionLostError(f"xArm at {cfg.host}: the SDK reports no connection after connect()")
        self._api, self._worker, self._lost = api, worker, None
        self._open_kinematics()
        try:
            st = self.state()
            if st.error_code:
                # Leave it for the user: enabling would not clear it, and clearing is recover()'s job alone.
                log.error("%s", codes.controller_error(st.error_code, f"xArm at {cfg.host}"))
            else:
                self._checked("motion_enable", lambda: api.motion_enable(enable=True))
                self._set_mode(MODE_POSITION)
            self._open_peripherals()
        except BaseException:
            self.disconnect()
            raise
        log.info("connected to xArm at %s (%s)", cfg.host, self.robot_spec.name)

    def disconnect(self) -> None:
        self._abort.set()
        self._close_peripherals()
        api, self._api = self._api, None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
        if api is not None and not run_with_deadline(api.disconnect, 2.0, "xarm-disconnect"):
            log.warning("xArm SDK disconnect() did not return within 2 s; left behind")
        self._close_kinematics()
        self._lost = None
        self._abort.clear()

    # ------------------------------------------------------------ calls
    def _checked(self, what: str, fn: Callable[[], Any], timeout_s: float | None = None) -> Any:
        """Run an SDK call on the worker with a deadline; check its code; return its value (or the code)."""
        self._require()
        try:
            ret = self._worker.call(what, fn, timeout_s=timeout_s or self.config.call_timeout_s)
        except ConnectionLostError as e:
            raise self._mark_lost(str(e)) from None
        except AssertionError as e:  # the SDK asserts on malformed arguments
            raise VendorError(f"xArm SDK {what}: {e}") from None
        return self._code_of(what, ret)

    def _code_of(self, what: str, ret: Any) -> Any:
        code, value = (ret[0], ret[1]) if isinstance(ret, tuple | list) else (ret, ret)
        try:
            codes.check(code, what, f"xArm at {self.config.host}")
        except ConnectionLostError as e:
            raise self._mark_lost(str(e).split(": ", 1)[-1]) from None
        except ProtectiveStopError:
            err = self._error_code_direct()
            if err:
                raise codes.controller_error(err, f"xArm at {self.config.host}") from None
            raise
        return value

    def _error_code_direct(self) -> int:
        """The controller error code, asked from whatever thread (used while the worker is busy streaming)."""
        with contextlib.suppress(Exception):
            code, (err, _warn) = self._api.get_err_warn_code()
            if code in (codes.OK, codes.HAS_WARN):
                return int(err)
        return 0

    def _set_mode(self, mode: int) -> None:
        api = self._api
        self._checked(f"set_mode({mode})", lambda: api.set_mode(mode))
        self._checked("set_state(0)", lambda: api.set_state(0))
        if self.config.mode_switch_wait_s:
            time.sleep(self.config.mode_switch_wait_s)
        st = self.state()
        if st.error_code:
            raise codes.controller_error(st.error_code, f"xArm at {self.config.host}")
        if st.motion_state == STATE_STOPPED:
            raise VendorError(f"xArm at {self.config.host}: still stopped after set_mode({mode}) + set_state(0); "
                              f"enable the motors (motion_enable) or call recover()")

    # ------------------------------------------------------------ state
    def state(self) -> XArmState:
        """Joints, error/warning codes and motion state, each from a reply within the call deadline."""
        api = self._api
        self._require()
        q = self._checked("get_servo_angle", lambda: api.get_servo_angle(is_radian=True))
        err, warn = self._checked("get_err_warn_code", lambda: api.get_err_warn_code())
        motion_state = self._checked("get_state", lambda: api.get_state())
        now = time.monotonic()
        self._last_reply_s = now
        q = np.asarray(q[: self.robot_spec.dof], dtype=float)
        return XArmState(joint_pos_rad=q, error_code=int(err), warn_code=int(warn), motion_state=int(motion_state),
                         stamp_s=now)

    def _check_ready(self, st: XArmState) -> None:
        if st.error_code:
            raise codes.controller_error(st.error_code, f"xArm at {self.config.host}")

    # ------------------------------------------------------------ motion
    def _move_segment(self, seg: JointTrajectory, q_start: np.ndarray) -> str | None:
        """Servo mode, then `_stream` on the worker while this thread watches for replies and the deadline."""
        cfg = self.config
        self._set_mode(MODE_SERVO)
        ticks = servo_ticks(q_start, seg, 1.0 / cfg.servo_rate_hz)
        self._abort.clear()
        self._latest_q = q_start
        self._last_reply_s = time.monotonic()
        job = self._worker.submit(self._stream, ticks)
        # The stream waits at most one settle_timeout_s; this deadline catches a stream that never returns.
        deadline = time.monotonic() + 2 * len(ticks) / cfg.servo_rate_hz + cfg.settle_timeout_s + 2.0
        reason: str | None = None
        try:
            while not job.done():
                time.sleep(_POLL_S)
                age = time.monotonic() - self._last_reply_s
                if age > cfg.stale_after_s:
                    self._worker.wedged = "the servo stream"
                    raise self._mark_lost(f"no reply from the control box for {age:.3f} s during a motion")
                if time.monotonic() > deadline:
                    self._abort.set()
                    reason = "timeout"
                    break
            if reason is None:
                try:
                    outcome = job.result()
                except ConnectionLostError as e:
                    raise self._mark_lost(str(e).split(": ", 1)[-1]) from None
                reason = {"settled": None, "stopped": "stop"}.get(outcome, outcome)
        except BaseException:
            self._abort.set()
            self._try_stop()
            raise
        if reason == "timeout":
            self._try_stop()
        return reason

    def _stream(self, ticks: np.ndarray) -> str:
        """On the worker: one servo_j target per tick (never a burst), then hold the last until settled."""
        cfg, api = self.config, self._api
        where = f"xArm at {cfg.host}"
        period = 1.0 / cfg.servo_rate_hz
        dof = self.robot_spec.dof
        goal = ticks[-1]
        k, hold_until = 0, None
        while not self._abort.is_set():
            q = ticks[min(k, len(ticks) - 1)]
            sent_at = time.monotonic()
            code = api.set_servo_angle_j(q.tolist(), is_radian=True)
            if code == codes.HAS_ERROR:
                err = self._error_code_direct()
                if err:
                    raise codes.controller_error(err, where)
            codes.check(code, "set_servo_angle_j", where)
            code, q_meas = api.get_servo_angle(is_radian=True)
            codes.check(code, "get_servo_angle", where)
            self._latest_q = np.asarray(q_meas[:dof], dtype=float)
            self._last_reply_s = time.monotonic()
            k += 1
            if k >= len(ticks):
                if np.max(np.abs(self._latest_q - goal)) <= cfg.settle_tol_rad:
                    return "settled"
                hold_until = hold_until or time.monotonic() + cfg.settle_timeout_s
                if time.monotonic() > hold_until:
                    err = float(np.max(np.abs(self._latest_q - goal)))
                    return f"did not settle within {cfg.settle_tol_rad} rad in {cfg.settle_timeout_s} s " \
                           f"({err * 1e3:.2f} mrad off)"
            # At least one period between two targets, measured from the previous send: after a slow call or a late
            # wake-up the motion is delayed, never caught up with targets closer together (faster than the cap).
            time.sleep(max(0.0, sent_at + period - time.monotonic()))
        return "stopped"

    def _try_stop(self) -> None:
        """Best effort set_state(4) within 0.25 s, from a fresh thread if the worker is stuck in a call."""
        api = self._api
        if api is None:
            return
        if not run_with_deadline(lambda: api.set_state(4), 0.25, "xarm-stop"):
            log.error("xArm set_state(4) did not return within 0.25 s after an aborted motion")

    def stop(self) -> None:
        self._require()
        self._abort.set()
        api = self._api
        self._checked("set_state(4)", lambda: api.set_state(4), timeout_s=self.config.call_timeout_s + 1.0)

    def move_joints(self, q_target_rad: Sequence[float]) -> ExecuteReport:
        """One position-mode move to `q_target_rad` at `move_speed_rad_s`, after the envelope; for `robot check`."""
        cfg, api = self.config, self._api
        st = self.state()
        self._check_ready(st)
        traj = JointTrajectory(np.asarray(q_target_rad, float)[None, :], 0.0, 1.0)
        sent, notes = self.envelope.filter(traj, st.joint_pos_rad)
        q_goal = sent.joint_pos_rad[-1]
        self._set_mode(MODE_POSITION)
        self._checked("set_servo_angle", lambda: api.set_servo_angle(
            angle=q_goal.tolist(), speed=cfg.move_speed_rad_s, mvacc=cfg.move_accel_rad_s2, is_radian=True,
            wait=False))
        try:
            st = self._await_joints(q_goal, st.joint_pos_rad, "set_servo_angle", _POLL_S)
        except BaseException:
            self._try_stop()
            raise
        return ExecuteReport(sent=JointTrajectory(q_goal[None, :], 0.0, 1.0), notes=tuple(notes), completed=True,
                             stopped_reason=None, final_joint_pos_rad=st.joint_pos_rad)

    # ------------------------------------------------------------ recovery (explicit only)
    def recover(self) -> None:
        """clean_error + clean_warn, then motion_enable, position mode, state 0. Call it only after inspecting
        the cause; an e-stop must be released on the box first (the error comes back otherwise)."""
        api = self._api
        self._checked("clean_error", lambda: api.clean_error())
        self._checked("clean_warn", lambda: api.clean_warn())
        st = self.state()
        if st.error_code:
            raise codes.controller_error(st.error_code, f"xArm at {self.config.host} (still active after "
                                         f"clean_error)")
        self._checked("motion_enable", lambda: api.motion_enable(enable=True))
        self._set_mode(MODE_POSITION)

