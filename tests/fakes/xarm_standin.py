"""A stand-in for the xArm SDK's `XArmAPI` object. NOT PROTOCOL-LEVEL.

No xArm simulator exists (UFACTORY points to a control box or their Docker image), so this object replaces the
SDK's *connection object* (what `XArmAPI(host, is_radian=True, do_not_open=True)` returns), not the xArm
protocol: the SDK's own code (its socket protocol, report parsing, its argument checks) never runs against it.
What it does model, from the SDK 1.18.4 sources and docs:
- the same method names and parameter lists as `XArmAPI` (tests compare them with `inspect.signature`);
- the return conventions: an integer code, or `(code, value)`; -1 when not connected; a motion command returns
  1 while the controller holds an error (a query returns 0, as the SDK's `_check_code` maps it); -8 for a
  servo_j target outside the joint range (the SDK's own check);
- modes (0 position, 1 servo) and states (1 moving, 2 sleeping, 4 stopped): set_mode takes effect at
  set_state(0), which needs the motors enabled; a motion command in the wrong mode returns 0 and is ignored
  (the SDK only logs "the mode may be incorrect");
- servo mode: joints chase the last servo_j target at the arm's top joint speed, ignoring the call's speed
  argument (as the controller does); position mode: `set_servo_angle` moves every joint in sync at `speed`;
- faults: a controller error code (state 4, motion halts, cleared by clean_error unless the e-stop is still
  pressed), a link that drops (-1) or hangs (calls block), servo_j calls that block for a while.
It records every command it accepted, so tests can check what reached the "vendor".
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

NOT_CONNECTED = -1
OUT_OF_RANGE = -8
HAS_ERROR = 1
_RATE_HZ = 250.0


class XArmStandIn:
    """An XArmAPI look-alike for one arm; joint limits and top speed come from the robot config."""

    def __init__(self, joint_lower_rad, joint_upper_rad, max_joint_speed_rad_s, q0_rad) -> None:
        self.lower = np.asarray(joint_lower_rad, float)
        self.upper = np.asarray(joint_upper_rad, float)
        self.top_speed = float(np.min(max_joint_speed_rad_s))
        self.dof = len(self.lower)
        self._q = np.asarray(q0_rad, float).copy()
        self._lock = threading.RLock()
        self._connected = False
        self._enabled = False
        self.mode, self._pending_mode, self.motion_state = 0, 0, 4
        self.error_code, self.warn_code = 0, 0
        self.estop_pressed = False
        self._servo_target: np.ndarray | None = None
        self._pos_target: np.ndarray | None = None
        self._pos_speed = 0.0
        # faults
        self._hang = threading.Event()
        self._hang.set()                     # set = calls go through
        self.stall_servo_every = 0
        self.stall_s = 0.19
        self.next_codes: dict[str, int] = {}
        # records
        self.servo_targets: list[np.ndarray] = []
        self.position_moves: list[dict] = []
        self.calls: list[str] = []
        self._servo_calls = 0
        # the xArm Gripper: 0 (closed) .. 850 (open) pulses, moved on the same connection
        self.gripper_pulses, self.gripper_enabled, self.gripper_mode = 850.0, False, None
        self.gripper_moves: list[dict] = []
        self._alive = True
        self._thread = threading.Thread(target=self._physics, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ faults (test side)
    def raise_controller_error(self, code: int, estop: bool = False) -> None:
        with self._lock:
            self.error_code, self.motion_state = int(code), 4
            self.estop_pressed = estop
            self._servo_target = self._pos_target = None

    def release_estop(self) -> None:
        self.estop_pressed = False

    def drop_link(self) -> None:
        self._connected = False

    def hang_link(self) -> None:
        self._hang.clear()

    def unhang(self) -> None:
        self._hang.set()

    def shutdown(self) -> None:
        self._alive = False
        self._hang.set()

    @property
    def joint_pos_rad(self) -> np.ndarray:
        with self._lock:
            return self._q.copy()

    # ------------------------------------------------------------ simulated controller
    def _physics(self) -> None:
        dt = 1.0 / _RATE_HZ
        while self._alive:
            time.sleep(dt)
            with self._lock:
                if self.error_code or self.motion_state == 4:
                    continue
                if self.mode == 1 and self._servo_target is not None:
                    d = self._servo_target - self._q
                    self._q += np.clip(d, -self.top_speed * dt, self.top_speed * dt)
                elif self.mode == 0 and self._pos_target is not None:
                    d = self._pos_target - self._q
                    lead = float(np.max(np.abs(d)))
                    if lead <= self._pos_speed * dt:
                        self._q, self._pos_target, self.motion_state = self._pos_target.copy(), None, 2
                    else:
                        self._q += d * (self._pos_speed * dt / lead)

    def _enter(self, name: str) -> int | None:
        """Common gate of every call: hang, link, forced code. Returns a code to answer with, or None."""
        self._hang.wait()
        self.calls.append(name)
        if not self._connected:
            return NOT_CONNECTED
        if name in self.next_codes:
            return self.next_codes.pop(name)
        return None

    # ------------------------------------------------------------ XArmAPI surface
    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self, port=None, baudrate=None, timeout=None, axis=None, **kwargs):
        self._connected = True

    def disconnect(self):
        self._connected = False

    def get_servo_angle(self, servo_id=None, is_radian=None, is_real=False):
        code = self._enter("get_servo_angle")
        q = [float(f"{v:.6f}") for v in self.joint_pos_rad] + [0.0] * (7 - self.dof)
        if not is_radian:
            q = [math.degrees(v) for v in q]
        return (code if code is not None else 0), q

    def get_err_warn_code(self, show=False, lang='en'):
        code = self._enter("get_err_warn_code")
        return (code if code is not None else 0), [self.error_code, self.warn_code]

    def get_state(self):
        code = self._enter("get_state")
        return (code if code is not None else 0), self.motion_state

    def set_gripper_mode(self, mode, **kwargs):
        code = self._enter("set_gripper_mode")
        if code is not None:
            return code
        self.gripper_mode = int(mode)
        return 0

    def set_gripper_enable(self, enable, **kwargs):
        code = self._enter("set_gripper_enable")
        if code is not None:
            return code
        self.gripper_enabled = bool(enable)
        return 0

    def set_gripper_position(self, pos, wait=False, speed=None, auto_enable=False, timeout=None, **kwargs):
        """Moves at `speed` pulses/s; with wait=True returns when the fingers stopped (the SDK polls the same)."""
        code = self._enter("set_gripper_position")
        if code is not None:
            return code
        if self.error_code:
            return HAS_ERROR
        if not (self.gripper_enabled or auto_enable):
            return 0                       # the SDK answers 0 and the fingers do not move (the documented pitfall)
        target = float(min(850.0, max(0.0, pos)))
        self.gripper_moves.append({"target": target, "speed": speed, "wait": wait,
                                   "q": self.joint_pos_rad.tolist(), "mode": self.mode})
        if wait:
            time.sleep(min(2.0, abs(target - self.gripper_pulses) / float(speed or 1500.0)))
        self.gripper_pulses = target
        return 0

    def get_gripper_position(self, **kwargs):
        code = self._enter("get_gripper_position")
        return (code if code is not None else 0), self.gripper_pulses

    def set_mode(self, mode=0, detection_param=0):
        code = self._enter("set_mode")
        if code is not None:
            return code
        with self._lock:
            self._pending_mode, self.motion_state = int(mode), 4
        return 0

    def set_state(self, state=0):
        code = self._enter("set_state")
        if code is not None:
            return code
        with self._lock:
            if state == 4:
                self.motion_state, self._servo_target, self._pos_target = 4, None, None
            elif state == 0 and self._enabled and not self.error_code:
                self.mode, self.motion_state = self._pending_mode, 2
                self._servo_target = self._pos_target = None
        return 0

    def motion_enable(self, enable=True, servo_id=None):
        code = self._enter("motion_enable")
        if code is not None:
            return code
        self._enabled = bool(enable)
        return 0

    def clean_error(self):
        code = self._enter("clean_error")
        if code is not None:
            return code
        with self._lock:
            if not self.estop_pressed:
                self.error_code = 0
        return 0

    def clean_warn(self):
        code = self._enter("clean_warn")
        if code is not None:
            return code
        self.warn_code = 0
        return 0

    def _motion_gate(self, name: str) -> int | None:
        code = self._enter(name)
        if code is not None:
            return code
        if self.error_code:
            return HAS_ERROR
        return None

    def set_servo_angle_j(self, angles, speed=None, mvacc=None, mvtime=None, is_radian=None, **kwargs):
        code = self._motion_gate("set_servo_angle_j")
        if code is not None:
            return code
        self._servo_calls += 1
        if self.stall_servo_every and self._servo_calls % self.stall_servo_every == 0:
            time.sleep(self.stall_s)
        q = np.asarray(angles[: self.dof], float)
        if not is_radian:
            q = np.radians(q)
        if not np.all(np.isfinite(q)) or np.any(q < self.lower - 1e-9) or np.any(q > self.upper + 1e-9):
            return OUT_OF_RANGE
        with self._lock:
            if self.mode != 1 or self.motion_state == 4:
                return 0                      # accepted and ignored, as the SDK only warns
            self.servo_targets.append(q.copy())
            self._servo_target, self.motion_state = q, 1
        return 0

    def set_servo_angle(self, servo_id=None, angle=None, speed=None, mvacc=None, mvtime=None,
                        relative=False, is_radian=None, wait=False, timeout=None, radius=None, **kwargs):
        code = self._motion_gate("set_servo_angle")
        if code is not None:
            return code
        q = np.asarray(angle[: self.dof], float)
        spd = float(speed)
        if not is_radian:
            q, spd = np.radians(q), math.radians(spd)
        if np.any(q < self.lower - 1e-9) or np.any(q > self.upper + 1e-9):
            return OUT_OF_RANGE
        with self._lock:
            if self.mode != 0 or self.motion_state == 4:
                return 0
            self.position_moves.append({"angle": q.copy(), "speed": spd, "mvacc": mvacc, "wait": wait})
            self._pos_target, self._pos_speed, self.motion_state = q, min(spd, self.top_speed), 1
        return 0
