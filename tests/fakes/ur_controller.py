"""A fake Universal Robots controller for tests: speaks the controller's side of UR's public protocols.

Run as its own process (`python tests/fakes/ur_controller.py --host 127.0.0.7`), because the ur_rtde
client holds the GIL while its constructors block: a fake on a thread of the test process would deadlock.

What it implements, written from UR's public RTDE guide and ur_rtde's documented behaviour (no code copied):
- RTDE protocol version 2 on port 30004: protocol negotiation, controller version, output recipes (with the
  guide's variable types), input recipes (IN_USE when another client holds a register), start/pause, data
  packages both ways, at the client's requested frequency.
- A minimal Dashboard server on 29999 (PolyscopeVersion, serial number, remote control, stop, play,
  unlock protective stop with UR's 5 s lockout, safety/robot mode, close safety popup).
- The primary/secondary/real-time script ports 30001-30003: a program `def name(): ... end` that is ur_rtde's
  control script starts the emulation of that script's register handshake (input_int_register_0 = command,
  input_double_register_* = arguments, output_int_register_0 = 1 ready / 2 done, output_int_register_2 =
  async progress). It does NOT interpret URScript: only the commands listed in `_Script.handle` are emulated;
  any other command stops the program with a clear text message, so a test cannot pass on an unemulated call.
- Motion: movej as a synchronised trapezoid (leading-axis speed and acceleration), servoj as a
  lookahead-filtered, speed-limited tracker, stopj as a per-joint deceleration, at a 500 Hz control tick.
- Standard digital outputs DO0-DO7 set over RTDE (standard_digital_output_mask + standard_digital_output, what
  ur_rtde's RTDEIOInterface sends), reported back in actual_digital_output_bits and logged as events.
- Safety: protective stop (on a servoj target jump faster than the joint speed limit allows, on command 31,
  or injected), RTDE input watchdog (rtde_set_watchdog ... "stop"), joint limits.

Test control channel (not part of any UR protocol): JSON lines on stdin, replies/events as JSON lines on
stdout: {"op": "state"}, {"op": "protective_stop"}, {"op": "cut"} (the cable is pulled: the fake goes silent
on every socket, reads and discards, accepts nothing), {"op": "quit"}.
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import struct
import sys
import threading
import time

import numpy as np

RTDE_PORT, DASHBOARD_PORT, SCRIPT_PORTS = 30004, 29999, (30001, 30002, 30003)
TICK_S = 0.002                       # the e-Series controller runs at 500 Hz
_ENDS_SERVO_STREAM = {1, 16, 31, 34, 255}   # movej, servo_stop, protective stop, stopj, stop script
CONTROLLER_VERSION = (5, 11, 1, 108318)
# UR5e, public DH parameters (metres)
_DH_D = (0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996)
_DH_A = (0.0, -0.425, -0.3922, 0.0, 0.0, 0.0)
_DH_ALPHA = (math.pi / 2, 0.0, 0.0, math.pi / 2, -math.pi / 2, 0.0)

_SIZES = {"BOOL": ">B", "UINT8": ">B", "UINT32": ">I", "UINT64": ">Q", "INT32": ">i", "DOUBLE": ">d",
          "VECTOR3D": ">3d", "VECTOR6D": ">6d", "VECTOR6INT32": ">6i", "VECTOR6UINT32": ">6I"}
_V6 = ("target_q target_qd target_qdd target_current target_moment actual_q actual_qd actual_qdd actual_current "
       "actual_moment joint_control_output actual_TCP_pose actual_TCP_speed actual_TCP_force target_TCP_pose "
       "target_TCP_speed joint_temperatures actual_joint_voltage ft_raw_wrench payload_inertia "
       "actual_current_as_torque").split()
_OUTPUT_TYPES = {
    **{n: "VECTOR6D" for n in _V6},
    **{n: "VECTOR3D" for n in ("actual_tool_accelerometer", "payload_cog", "elbow_position", "elbow_velocity")},
    **{n: "DOUBLE" for n in ("timestamp actual_execution_time speed_scaling target_speed_fraction actual_momentum "
                             "actual_main_voltage actual_robot_voltage actual_robot_current standard_analog_input0 "
                             "standard_analog_input1 standard_analog_output0 standard_analog_output1 io_current "
                             "tool_analog_input0 tool_analog_input1 tool_output_current tool_temperature "
                             "tcp_force_scalar payload").split()},
    **{n: "INT32" for n in ("robot_mode", "safety_mode", "safety_status", "tool_output_voltage")},
    **{n: "UINT32" for n in ("runtime_state robot_status_bits safety_status_bits analog_io_types tool_mode "
                             "tool_analog_input_types output_bit_registers0_to_31 output_bit_registers32_to_63 "
                             "script_control_line").split()},
    **{n: "UINT64" for n in ("actual_digital_input_bits", "actual_digital_output_bits")},
    "joint_mode": "VECTOR6INT32",
    **{f"output_int_register_{i}": "INT32" for i in range(48)},
    **{f"output_double_register_{i}": "DOUBLE" for i in range(48)},
    **{f"input_int_register_{i}": "INT32" for i in range(48)},
    **{f"input_double_register_{i}": "DOUBLE" for i in range(48)},
}
_INPUT_TYPES = {**{f"input_int_register_{i}": "INT32" for i in range(48)},
                **{f"input_double_register_{i}": "DOUBLE" for i in range(48)},
                **{f"input_bit_register_{i}": "BOOL" for i in range(64, 128)},
                "external_force_torque": "VECTOR6D", "speed_slider_mask": "UINT32", "speed_slider_fraction": "DOUBLE",
                **{n: "UINT8" for n in ("standard_digital_output_mask standard_digital_output "
                                        "configurable_digital_output_mask configurable_digital_output "
                                        "tool_digital_output_mask tool_digital_output").split()}}
RUNTIME_STOPPED, RUNTIME_PLAYING = 1, 2
ROBOT_MODE_RUNNING = 7
SAFETY_NORMAL, SAFETY_PROTECTIVE_STOP = 1, 3
REALTIME_CMDS = {6, 9, 10, 11, 24, 25, 26, 27, 38, 58, 66, 67, 68, 69, 70, 71}


def fk_ur5e(q: np.ndarray) -> np.ndarray:
    """TCP pose [x, y, z, rx, ry, rz] (rotation vector) of a UR5e with no tool, from the public DH table."""
    T = np.eye(4)
    for qi, d, a, al in zip(q, _DH_D, _DH_A, _DH_ALPHA):
        ct, st, ca, sa = math.cos(qi), math.sin(qi), math.cos(al), math.sin(al)
        T = T @ np.array([[ct, -st * ca, st * sa, a * ct], [st, ct * ca, -ct * sa, a * st], [0, sa, ca, d],
                          [0, 0, 0, 1]])
    R = T[:3, :3]
    angle = math.acos(max(-1.0, min(1.0, (np.trace(R) - 1) / 2)))
    if angle < 1e-9:
        rv = np.zeros(3)
    else:
        axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * math.sin(angle))
        rv = axis * angle
    return np.concatenate([T[:3, 3], rv])


class Arm:
    """Joint-space motion of six joints at the control tick, plus the safety state."""

    def __init__(self, q0, lower, upper, vmax) -> None:
        self.q = np.array(q0, float)
        self.qd = np.zeros(6)
        self.lower, self.upper, self.vmax = np.array(lower), np.array(upper), np.array(vmax)
        self.mode = "idle"                     # idle | movej | servo | stopping
        self.target = self.q.copy()
        self.move: dict | None = None
        self.servo: dict | None = None
        self.stop_decel = 4.0
        self.protective_stop = False
        self.pstop_time = 0.0
        self.pstop_reason = ""

    def start_movej(self, q, v, a) -> None:
        q = np.clip(np.array(q, float), self.lower, self.upper)
        dist = float(np.max(np.abs(q - self.q)))
        self.mode, self.servo = "movej", None
        self.move = {"q0": self.q.copy(), "q1": q, "t": 0.0, "dist": dist, "v": v, "a": a}
        self.target = q

    def servo_target(self, q, t, lookahead) -> None:
        self.mode = "servo"
        self.servo = {"q": np.array(q, float), "t": t, "lookahead": max(0.03, lookahead)}
        self.target = self.servo["q"]

    def stop(self, decel: float) -> None:
        if self.mode != "idle":
            self.mode, self.stop_decel = "stopping", max(0.1, decel)

    def step(self, dt: float) -> None:
        q_prev = self.q.copy()
        if self.mode == "movej":
            m = self.move
            m["t"] += dt
            s = _trapezoid(m["t"], m["dist"], m["v"], m["a"])
            self.q = m["q0"] + (m["q1"] - m["q0"]) * (s / m["dist"] if m["dist"] > 0 else 1.0)
            if s >= m["dist"]:
                self.q, self.mode = m["q1"].copy(), "idle"
        elif self.mode == "servo":
            err = self.servo["q"] - self.q
            step = np.clip(err * min(1.0, dt / self.servo["lookahead"] * 2.0), -self.vmax * dt, self.vmax * dt)
            self.q = self.q + step
        elif self.mode == "stopping":
            speed = np.abs(self.qd)
            new_speed = np.maximum(0.0, speed - self.stop_decel * dt)
            self.q = self.q + np.sign(self.qd) * new_speed * dt
            if np.all(new_speed == 0):
                self.mode = "idle"
        self.q = np.clip(self.q, self.lower, self.upper)
        self.qd = (self.q - q_prev) / dt


def _trapezoid(t: float, dist: float, v: float, a: float) -> float:
    """Distance travelled at time t along a trapezoidal (or triangular) profile covering `dist`."""
    if dist <= 0:
        return 0.0
    t_acc = v / a
    if a * t_acc * t_acc >= dist:                 # triangular: never reaches v
        t_acc = math.sqrt(dist / a)
        v = a * t_acc
        t_flat = 0.0
    else:
        t_flat = (dist - a * t_acc * t_acc) / v
    if t < t_acc:
        return 0.5 * a * t * t
    if t < t_acc + t_flat:
        return 0.5 * a * t_acc * t_acc + v * (t - t_acc)
    td = t - t_acc - t_flat
    if td >= t_acc:
        return dist
    return 0.5 * a * t_acc * t_acc + v * t_flat + v * td - 0.5 * a * td * td


class Controller:
    """Registers, arm, the emulated control script, watchdog and the event log; one lock guards it all."""

    def __init__(self, args) -> None:
        self.lock = threading.RLock()
        self.t0 = time.monotonic()
        self.arm = Arm(args.q0, args.lower, args.upper, args.vmax)
        self.inputs: dict[str, object] = {n: 0 for n in _INPUT_TYPES}
        self.input_stamp: dict[str, float] = {}
        self.outputs: dict[str, object] = {f"output_int_register_{i}": 0 for i in range(48)}
        self.outputs.update({f"output_double_register_{i}": 0.0 for i in range(48)})
        self.runtime_state = RUNTIME_STOPPED
        self.program = ""
        self.script: dict | None = None
        self.watchdog: dict | None = None
        self.cut = False
        self.cut_time: float | None = None
        self.events: list[dict] = []
        self.lockout_s = args.protective_stop_lockout_s
        self.servo_jump_factor = args.servo_jump_factor
        # max_servo_step_rad: between consecutive servoj targets of one stream, package by package;
        # max_servo_first_step_rad: a stream's first target from where the arm was when it arrived
        self.received = {"servo_targets": 0, "movej_targets": 0, "non_finite": 0, "outside_limits": 0,
                         "max_servo_step_rad": 0.0, "max_servo_first_step_rad": 0.0, "servo_streams": 0}
        self.last_servo_target: np.ndarray | None = None   # None: no servoj stream open
        self.digital_out = 0                 # standard digital outputs DO0-DO7 (a gripper's valve, say)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def event(self, kind: str, **kw) -> None:
        self.events.append({"event": kind, "t": round(self.now(), 4), **kw})

    # ------------------------------------------------------------ safety
    def protective_stop(self, reason: str) -> None:
        with self.lock:
            if self.arm.protective_stop:
                return
            self.arm.protective_stop, self.arm.pstop_time, self.arm.pstop_reason = True, self.now(), reason
            self.arm.stop(20.0)
            self.last_servo_target = None
            self.stop_program("protective stop: " + reason)
            self.event("protective_stop", reason=reason)

    def stop_program(self, why: str) -> None:
        if self.runtime_state == RUNTIME_PLAYING:
            self.event("program_stopped", why=why)
        self.runtime_state, self.script, self.watchdog = RUNTIME_STOPPED, None, None
        self.arm.stop(self.arm.stop_decel if self.arm.mode == "stopping" else 4.0)

    def unlock(self) -> str:
        with self.lock:
            if not self.arm.protective_stop:
                return "Protective stop releasing"
            wait = self.lockout_s - (self.now() - self.arm.pstop_time)
            if wait > 0:
                return ("Cannot unlock protective stop until 5s after occurrence. Always inspect cause of "
                        "protective stop before unlocking")
            self.arm.protective_stop = False
            self.event("protective_stop_released")
            return "Protective stop releasing"

    # ------------------------------------------------------------ inputs from RTDE
    def set_inputs(self, values: dict[str, object]) -> None:
        with self.lock:
            t = self.now()
            for k, v in values.items():
                self.inputs[k] = v
                self.input_stamp[k] = t
            mask = int(values.get("standard_digital_output_mask", 0) or 0)
            if mask:   # the RTDE way to switch outputs (ur_rtde's RTDEIOInterface.setStandardDigitalOut)
                bits = int(values.get("standard_digital_output", 0) or 0)
                self.digital_out = (self.digital_out & ~mask) | (bits & mask)
                self.event("digital_out", bits=self.digital_out, q=[round(v, 5) for v in self.arm.q.tolist()])
            off = self.script["off"] if self.script else 0
            cmd = values.get(f"input_int_register_{off}")
            names = [f"input_double_register_{i + off}" for i in range(6)]
            if cmd in (1, 11) and all(n in values for n in names):   # what reached the controller, once per package
                self._record_target(np.array([values[n] for n in names], float),
                                    "movej_targets" if cmd == 1 else "servo_targets")
            if cmd in _ENDS_SERVO_STREAM:
                self.last_servo_target = None

    def load_program(self, text: str) -> None:
        with self.lock:
            name = text.split("(", 1)[0].replace("def", "").strip()
            if "RTDE Control Script" not in text:
                self.event("program_ignored", name=name)
                return
            off = 24 if "reg_offset_int = 24" in text else 0
            if self.runtime_state == RUNTIME_PLAYING:
                self.stop_program("replaced by a new program")
            if self.arm.protective_stop:
                self.event("program_refused", why="protective stop active")
                return
            self.program = name
            self.last_servo_target = None
            self.script = {"off": off, "executing": False, "pending": None, "async_op": 0, "wr": 0}
            self.runtime_state = RUNTIME_PLAYING
            self._out_int(0, 1)
            self._async(-1)
            self.event("program_started", name=name)

    # ------------------------------------------------------------ the emulated control script
    def _in_int(self, i: int) -> int:
        return int(self.inputs[f"input_int_register_{i + self.script['off']}"])

    def _in_dbl(self, i: int) -> float:
        return float(self.inputs[f"input_double_register_{i + self.script['off']}"])

    def _out_int(self, i: int, v: int) -> None:
        self.outputs[f"output_int_register_{i + (self.script['off'] if self.script else 0)}"] = int(v)

    def _async(self, value: int) -> None:
        s = self.script
        s["wr"] = (s["wr"] + 1) % 128
        if value == 0:
            s["async_op"] = (s["async_op"] + 1) % 128
        reg = s["wr"] * 65536 + s["async_op"] * 16777216
        if value >= 0:
            reg += min(value, 32767) + 32768
        self._out_int(2, reg)

    def _record_target(self, q: np.ndarray, kind: str) -> None:
        r = self.received
        r[kind] += 1
        if not np.all(np.isfinite(q)):
            r["non_finite"] += 1
            return
        if np.any(q < self.arm.lower - 1e-9) or np.any(q > self.arm.upper + 1e-9):
            r["outside_limits"] += 1
        # Steps are judged on the packages as they arrive, in order (RTDE over TCP: none lost or merged), not on the
        # emulated script's state: under load two packages can arrive within one script tick, before the first
        # was executed (judging the second against the arm then counted two steps as one).
        if kind == "servo_targets":
            if self.last_servo_target is None:
                r["servo_streams"] += 1
                key, ref = "max_servo_first_step_rad", self.arm.q
            else:
                key, ref = "max_servo_step_rad", self.last_servo_target
            r[key] = max(r[key], float(np.max(np.abs(q - ref))))
            self.last_servo_target = q.copy()
        else:
            self.last_servo_target = None

    def script_tick(self) -> None:
        s = self.script
        if s is None or self.runtime_state != RUNTIME_PLAYING:
            return
        wd = self.watchdog
        if wd is not None:
            last = self.input_stamp.get(wd["var"], wd["armed"])
            if self.now() - max(last, wd["armed"]) > 1.0 / wd["hz"]:
                self.event("watchdog", var=wd["var"], silent_s=round(self.now() - max(last, wd["armed"]), 4))
                self.stop_program("RTDE input watchdog: no update of " + wd["var"])
                return
        if s["pending"] is not None:              # a blocking command in progress: done when the arm is idle
            if self.arm.mode == "idle":
                s["pending"] = None
                self._out_int(0, 2)
            return
        cmd = self._in_int(0)
        if cmd in REALTIME_CMDS:
            self.handle(cmd)
            if self.script is not None:
                self._out_int(0, 1)
        elif cmd == 0:
            s["executing"] = False
            self._out_int(0, 1)
        elif not s["executing"]:
            s["executing"] = True
            done_now = self.handle(cmd)
            if self.script is not None and done_now:
                self._out_int(0, 2)

    def handle(self, cmd: int) -> bool:
        """Run one control-script command; True when it finished at once (False: wait for the arm)."""
        arm = self.arm
        if cmd == 1:                                   # movej(q, a, v), async flag in input_int_register_1
            q = np.array([self._in_dbl(i) for i in range(6)])
            v, a, is_async = self._in_dbl(6), self._in_dbl(7), self._in_int(1)
            if not np.all(np.isfinite(q)):
                self.stop_program("movej: non-finite target")
                return True
            arm.start_movej(q, v, a)
            if is_async == 1:
                self._async(0)
                return True
            self.script["pending"] = "movej"
            return False
        if cmd == 11:                                  # servoj(q, t, lookahead_time, gain)
            q = np.array([self._in_dbl(i) for i in range(6)])
            t, lookahead = self._in_dbl(8), self._in_dbl(9)
            if not np.all(np.isfinite(q)):
                self.protective_stop("servoj: non-finite target")
                return True
            ref = arm.servo["q"] if arm.mode == "servo" else arm.q
            limit = arm.vmax * max(t, TICK_S) * self.servo_jump_factor + 1e-3
            if np.any(np.abs(q - ref) > limit):
                j = int(np.argmax(np.abs(q - ref) / limit))
                self.protective_stop(f"servoj target jump of {abs(q[j] - ref[j]):.3f} rad on joint {j} "
                                     f"exceeds its speed limit")
                return True
            if np.any(q < arm.lower) or np.any(q > arm.upper):
                self.protective_stop("servoj target outside the joint limits")
                return True
            arm.servo_target(q, t, lookahead)
            return True
        if cmd == 16:                                  # servo_stop(a)
            arm.stop(self._in_dbl(0) or 10.0)
            return True
        if cmd == 34:                                  # stopj(a), async flag in input_int_register_1
            arm.stop(self._in_dbl(0) or 2.0)
            if self._in_int(1) == 1:
                return True
            self.script["pending"] = "stopj"
            return False
        if cmd == 35:                                  # rtde_set_watchdog(var, min_frequency, "stop")
            hz = self._in_dbl(0)
            var = f"input_int_register_{self.script['off']}"
            self.watchdog = {"var": var, "hz": hz, "armed": self.now()} if hz > 0 else None
            self.event("watchdog_armed", hz=hz)
            return True
        if cmd == 31:
            self.protective_stop("protective_stop() requested by the client")
            return True
        if cmd == 99:
            return True
        if cmd == 255:
            self.stop_program("stop script command")
            return True
        self.stop_program(f"command {cmd} is not emulated by this fake controller")
        return True

    # ------------------------------------------------------------ outputs to RTDE
    def output_values(self) -> dict[str, object]:
        arm = self.arm
        pstop = arm.protective_stop
        safety_bits = (1 << 2) if pstop else 1
        status_bits = 1 | (2 if self.runtime_state == RUNTIME_PLAYING else 0)
        return {**self.outputs, "timestamp": self.now(), "actual_q": arm.q.tolist(), "target_q": arm.target.tolist(),
                "actual_qd": arm.qd.tolist(), "target_qd": arm.qd.tolist(), "actual_TCP_pose": fk_ur5e(arm.q).tolist(),
                "target_TCP_pose": fk_ur5e(arm.target).tolist(), "robot_mode": ROBOT_MODE_RUNNING,
                "safety_mode": SAFETY_PROTECTIVE_STOP if pstop else SAFETY_NORMAL,
                "safety_status": SAFETY_PROTECTIVE_STOP if pstop else SAFETY_NORMAL,
                "runtime_state": self.runtime_state, "robot_status_bits": status_bits,
                "safety_status_bits": safety_bits, "speed_scaling": 1.0, "target_speed_fraction": 1.0,
                "joint_mode": [253] * 6, "actual_main_voltage": 48.0, "actual_robot_voltage": 48.0,
                "actual_digital_output_bits": self.digital_out}

    def control_loop(self) -> None:
        next_t = time.monotonic()
        while True:
            with self.lock:
                self.script_tick()
                self.arm.step(TICK_S)
            next_t += TICK_S
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_t = time.monotonic()

    def state(self) -> dict:
        with self.lock:
            return {"q": self.arm.q.tolist(), "mode": self.arm.mode, "runtime_state": self.runtime_state,
                    "protective_stop": self.arm.protective_stop, "watchdog": self.watchdog is not None,
                    "speed": float(np.max(np.abs(self.arm.qd))), "received": dict(self.received),
                    "events": list(self.events), "now": self.now(), "digital_out": self.digital_out}


# ---------------------------------------------------------------- sockets
def _recv_exact(sock: socket.socket, n: int, ctl: Controller) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        if ctl.cut:
            continue                                   # the cable is pulled: nothing arrives
        buf += chunk
    return buf


def _send(sock: socket.socket, ctl: Controller, ptype: int, payload: bytes) -> None:
    if ctl.cut:
        return
    sock.sendall(struct.pack(">HB", len(payload) + 3, ptype) + payload)


class RTDEClient:
    """One RTDE connection: negotiation, recipes, then data both ways."""

    def __init__(self, sock: socket.socket, ctl: Controller, claimed: dict) -> None:
        self.sock, self.ctl, self.claimed = sock, ctl, claimed
        self.output_names: list[str] = []
        self.output_hz = 125.0
        self.inputs: dict[int, list[str]] = {}
        self.started = threading.Event()
        self.closed = False
        self.wlock = threading.Lock()

    def send(self, ptype: int, payload: bytes) -> None:
        with self.wlock:
            _send(self.sock, self.ctl, ptype, payload)

    def serve(self) -> None:
        try:
            while True:
                size, ptype = struct.unpack(">HB", _recv_exact(self.sock, 3, self.ctl))
                body = _recv_exact(self.sock, size - 3, self.ctl)
                self.dispatch(ptype, body)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            with self.ctl.lock:
                for name in [n for n, owner in self.claimed.items() if owner is self]:
                    del self.claimed[name]
            self.sock.close()

    def dispatch(self, ptype: int, body: bytes) -> None:
        if ptype == ord("V"):
            (version,) = struct.unpack(">H", body[:2])
            self.send(ord("V"), struct.pack(">B", 1 if version in (1, 2) else 0))
        elif ptype == ord("v"):
            self.send(ord("v"), struct.pack(">IIII", *CONTROLLER_VERSION))
        elif ptype == ord("O"):
            (self.output_hz,) = struct.unpack(">d", body[:8])
            self.output_names = [n for n in body[8:].decode().split(",") if n]
            types = [_OUTPUT_TYPES.get(n, "NOT_FOUND") for n in self.output_names]
            self.send(ord("O"), struct.pack(">B", 0 if "NOT_FOUND" in types else 1) + ",".join(types).encode())
        elif ptype == ord("I"):
            names = [n for n in body.decode().split(",") if n]
            types = []
            with self.ctl.lock:
                for n in names:
                    owner = self.claimed.get(n)
                    types.append("IN_USE" if owner is not None and owner is not self and not owner.closed
                                 else _INPUT_TYPES.get(n, "NOT_FOUND"))
                ok = not any(t in ("IN_USE", "NOT_FOUND") for t in types)
                rid = 0
                if ok:
                    rid = len(self.inputs) + 1
                    self.inputs[rid] = names
                    for n in names:
                        self.claimed[n] = self
            self.send(ord("I"), struct.pack(">B", rid) + ",".join(types).encode())
        elif ptype == ord("S"):
            self.send(ord("S"), struct.pack(">B", 1))
            if not self.started.is_set():
                self.started.set()
                threading.Thread(target=self.stream, daemon=True).start()
        elif ptype == ord("P"):
            self.started.clear()
            self.send(ord("P"), struct.pack(">B", 1))
        elif ptype == ord("U"):
            rid = body[0]
            names = self.inputs.get(rid)
            if names is None:
                return
            off, values = 1, {}
            for n in names:
                fmt = _SIZES[_INPUT_TYPES[n]]
                size = struct.calcsize(fmt)
                if off + size > len(body):
                    break                              # ur_rtde may send fewer fields than the recipe holds
                v = struct.unpack(fmt, body[off:off + size])
                values[n] = v[0] if len(v) == 1 else list(v)
                off += size
            self.ctl.set_inputs(values)

    def stream(self) -> None:
        period = 1.0 / max(1.0, min(500.0, self.output_hz))
        next_t = time.monotonic()
        while not self.closed:
            if self.started.is_set():
                with self.ctl.lock:
                    vals = self.ctl.output_values()
                parts = []
                for n in self.output_names:
                    v = vals.get(n, 0)
                    fmt = _SIZES[_OUTPUT_TYPES[n]]
                    parts.append(struct.pack(fmt, *v) if isinstance(v, list) else struct.pack(fmt, v))
                try:
                    self.send(ord("U"), struct.pack(">B", 1) + b"".join(parts))
                except OSError:
                    return
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))


def dashboard(sock: socket.socket, ctl: Controller) -> None:
    def reply(text: str) -> None:
        if not ctl.cut:
            sock.sendall((text + "\n").encode())
    try:
        reply("Connected: Universal Robots Dashboard Server")
        f = sock.makefile("rb")
        for raw in f:
            if ctl.cut:
                continue
            cmd = raw.decode(errors="replace").strip()
            low = cmd.lower()
            with ctl.lock:
                pstop = ctl.arm.protective_stop
                playing = ctl.runtime_state == RUNTIME_PLAYING
            if low == "polyscopeversion":
                reply("URSoftware 5.11.1.108318 (Mar 22 2021)")
            elif low == "get serial number":
                reply("20235500000")
            elif low == "is in remote control":
                reply("true")
            elif low == "stop":
                with ctl.lock:
                    ctl.stop_program("dashboard stop")
                reply("Stopped")
            elif low == "play":
                reply("Failed to execute: play")
            elif low == "unlock protective stop":
                reply(ctl.unlock())
            elif low == "close safety popup":
                reply("closing safety popup")
            elif low == "close popup":
                reply("closing popup")
            elif low == "safetystatus":
                reply("Safetystatus: " + ("PROTECTIVE_STOP" if pstop else "NORMAL"))
            elif low == "safetymode":
                reply("Safetymode: " + ("PROTECTIVE_STOP" if pstop else "NORMAL"))
            elif low == "robotmode":
                reply("Robotmode: RUNNING")
            elif low == "programstate":
                reply(("PLAYING " if playing else "STOPPED ") + (ctl.program or "<unnamed>"))
            elif low == "running":
                reply("Program running: " + ("true" if playing else "false"))
            elif low == "get robot model":
                reply("UR5")
            elif low == "quit":
                reply("Disconnected")
                break
            else:
                reply(f"could not understand: '{cmd}'")
    except OSError:
        pass
    finally:
        sock.close()


def script_port(sock: socket.socket, ctl: Controller) -> None:
    buf = ""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            if ctl.cut:
                continue
            buf += chunk.decode(errors="replace")
            while True:                                # a program ends with a top-level "end" line
                lines = buf.split("\n")
                end_at = next((i for i, ln in enumerate(lines) if ln.rstrip() == "end" and i > 0), None)
                if end_at is None or not lines[0].startswith("def "):
                    if buf and not buf.startswith("def ") and "\n" in buf:
                        buf = buf.split("\n", 1)[1]     # a one-line script: not emulated, drop it
                        continue
                    break
                ctl.load_program("\n".join(lines[:end_at + 1]))
                buf = "\n".join(lines[end_at + 1:])
    except OSError:
        pass
    finally:
        sock.close()


def listen(host: str, port: int, handler, ctl: Controller) -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(8)

    def accept_loop() -> None:
        while True:
            conn, _ = srv.accept()
            if ctl.cut:
                continue                               # a pulled cable: the connection never gets an answer
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handler, args=(conn, ctl), daemon=True).start()
    threading.Thread(target=accept_loop, daemon=True).start()
    return srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--q0", type=float, nargs=6, default=[0.0, -1.57, 1.57, -1.57, -1.57, 0.0])
    ap.add_argument("--lower", type=float, nargs=6, default=[-2 * math.pi] * 6)
    ap.add_argument("--upper", type=float, nargs=6, default=[2 * math.pi] * 6)
    ap.add_argument("--vmax", type=float, nargs=6, default=[3.14159] * 6)
    ap.add_argument("--protective-stop-lockout-s", type=float, default=5.0)
    ap.add_argument("--servo-jump-factor", type=float, default=1.5)
    args = ap.parse_args(argv)
    ctl = Controller(args)
    claimed: dict = {}
    servers = [listen(args.host, RTDE_PORT, lambda s, c: RTDEClient(s, c, claimed).serve(), ctl),
               listen(args.host, DASHBOARD_PORT, dashboard, ctl)]
    servers += [listen(args.host, p, script_port, ctl) for p in SCRIPT_PORTS]
    threading.Thread(target=ctl.control_loop, daemon=True).start()
    print(json.dumps({"ready": True, "host": args.host}), flush=True)
    for line in sys.stdin:
        try:
            op = json.loads(line).get("op")
        except ValueError:
            continue
        if op == "state":
            out = ctl.state()
        elif op == "protective_stop":
            ctl.protective_stop("injected by the test")
            out = {"ok": True}
        elif op == "cut":
            with ctl.lock:
                ctl.cut, ctl.cut_time = True, ctl.now()
                ctl.event("cut")
            out = {"ok": True, "t": ctl.cut_time}
        elif op == "quit":
            break
        else:
            out = {"error": f"unknown op {op!r}"}
        print(json.dumps(out), flush=True)
    for s in servers:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
