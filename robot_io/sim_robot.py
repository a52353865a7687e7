"""The sim lab's driver: `SimRobot` (a `Robot` over a socket) and `LabEvaluator`; `launch_lab`, which starts the
lab, lives in `robot_io.lab_process` and is importable from here too.

`SimRobot` is what the planner uses; it sees exactly what a vendor driver would give it (frames, joint
state, execute/stop). `LabEvaluator` is the *only* path to the lab's truth (object poses, success) and
exists for evaluation code (benchmarks, tests, run reports). The planner never uses it: a planner
that read truth would be grading its own homework.

`launch_lab` draws the session secrets and hands them to the lab through an inherited pipe; the returned
`LabProcess` holds them (never in its repr): `control_secret` for the one SimRobot that drives the arm,
`eval_secret` for LabEvaluator. Without the right secret a client gets neither motion nor truth.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import socket
import threading
import time
from typing import Any

import numpy as np
import pybullet as p

from robot_io import lab_auth
from robot_io.envelope import EnvelopeConfig, SafetyEnvelope, require_unchanged
from robot_io.errors import ConnectionLostError, NotConnectedError, ProtectiveStopError, RobotError
from robot_io.lab_auth import LabAuthError
from robot_io.lab_limits import ControllerLimits, TcpKinematics
from robot_io.lab_process import LabProcess, LabStartError, launch_lab, spawn_lab
from robot_io.observation import JointStateTrace, Observation
from robot_io.protocol import ProtocolError, recv_msg, send_msg
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from sim.scene import RobotSpec

# the lab's launcher is importable from here, as before it moved (planner, bench and the LIBERO launcher do)
__all__ = ["LabEvaluator", "LabProcess", "LabStartError", "SimRobot", "launch_lab", "spawn_lab"]

log = logging.getLogger(__name__)


class SimRobot(Robot):
    """A `Robot` backed by a sim lab process at host:port.

    execute() runs the trajectory through the `SafetyEnvelope`, sends what survives, then polls the
    lab's status every `poll_period_s` until the motion ends. While connected, a daemon thread sends a
    heartbeat whenever the link has been quiet for a quarter of the lab's heartbeat timeout, so a
    planner busy thinking is not "silent" - but a frozen or killed planner process is, and the lab's
    watchdog then stops the arm.

    `robot` defaults to the spec the lab announces in its hello; pass the planner's own RobotSpec to
    have it checked against the lab's. Every socket failure raises ConnectionLostError; after that the
    robot stays unusable until disconnect() + connect().
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        envelope_config: EnvelopeConfig | None = None,
        *,
        secret: bytes,
        robot: RobotSpec | None = None,
        connect_timeout_s: float = 5.0,
        reply_timeout_s: float = 20.0,
        poll_period_s: float = 0.02,
        execute_timeout_s: float | None = None,
    ) -> None:
        self.host = host
        self.port = int(port)
        self._secret = secret
        self.envelope_config = envelope_config or EnvelopeConfig()
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_s = reply_timeout_s
        self.poll_period_s = poll_period_s
        self.execute_timeout_s = execute_timeout_s
        self._robot_arg = robot
        self.robot_spec: RobotSpec | None = None
        self.camera_names: tuple[str, ...] = ()
        self.hello: dict[str, Any] = {}
        self.envelope: SafetyEnvelope | None = None
        self._sock: socket.socket | None = None
        self._io_lock = threading.Lock()          # one request/reply pair on the socket at a time
        self._lost: ConnectionLostError | None = None
        self._last_tx_s = 0.0
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._fk: TcpKinematics | None = None
        self._last_exec_id: int | None = None

    def __repr__(self) -> str:
        return f"SimRobot({self.host}:{self.port}, connected={self.is_connected})"

    # ------------------------------------------------------------ link
    @property
    def is_connected(self) -> bool:
        return self._sock is not None and self._lost is None

    @property
    def dof(self) -> int:
        self._require()
        return self.robot_spec.dof

    def connect(self) -> None:
        if self._sock is not None:
            raise RobotError(f"{self!r}: already connected (disconnect() first)")
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
        except OSError as e:
            raise ConnectionLostError(f"cannot reach the sim lab at {self.host}:{self.port}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._lost = sock, None
        try:
            try:
                lab_auth.authenticate(self._request, self._secret, "control")
            except LabAuthError as e:
                raise RobotError(f"sim lab at {self.host}:{self.port}: {e}") from None
            hello = self._request({"op": "hello"})
            lab_robot = RobotSpec.from_dict(hello["robot_spec"], where="sim lab hello: robot_spec")
            robot = self._robot_arg or lab_robot
            if robot.name != lab_robot.name or robot.dof != lab_robot.dof:
                raise RobotError(f"robot mismatch: this driver expects {robot.name} ({robot.dof} dof), "
                                 f"the sim lab runs {lab_robot.name} ({lab_robot.dof} dof)")
            self._start_fk(robot)
            config = _within_lab_limits(self.envelope_config, hello)
            self.envelope = SafetyEnvelope(robot, self._fk_xyz, config)
        except BaseException:
            self.disconnect()
            raise
        self.hello, self.robot_spec = hello, robot
        self.camera_names = tuple(hello.get("cameras", ()))
        interval_s = float(hello["heartbeat_timeout_s"]) / 4.0
        self._hb_stop.clear()
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, args=(interval_s,),
                                           name=f"simrobot-heartbeat-{self.port}", daemon=True)
        self._hb_thread.start()
        log.info("connected to sim lab at %s:%d: %s, cameras %s", self.host, self.port, robot.name,
                 list(self.camera_names))

    def disconnect(self) -> None:
        self._hb_stop.set()
        if self._hb_thread is not None and self._hb_thread is not threading.current_thread():
            self._hb_thread.join(timeout=self.reply_timeout_s)
        self._hb_thread = None
        sock, self._sock, self._lost = self._sock, None, None
        self._last_exec_id = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._fk is not None:
            with contextlib.suppress(p.error):
                self._fk.close()
        self._fk = None

    def _start_fk(self, robot: RobotSpec) -> None:
        # A kinematics-only twin (robot, no objects) in its own client gives the envelope its TCP positions.
        self._fk = TcpKinematics(robot)

    def _fk_xyz(self, q: np.ndarray) -> np.ndarray:
        return self._fk.xyz(q)

    def _require(self) -> None:
        if self._lost is not None:
            raise ConnectionLostError(str(self._lost))
        if self._sock is None:
            raise NotConnectedError(
                f"{self!r} is not connected; call connect() or use it as a context manager")

    def _request(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Send one request and return the reply; ok=False replies raise RobotError."""
        self._require()
        op = msg.get("op")
        with self._io_lock:
            self._require()
            try:
                send_msg(self._sock, msg, timeout_s=self.reply_timeout_s)
                self._last_tx_s = time.monotonic()
                reply = recv_msg(self._sock, timeout_s=self.reply_timeout_s)
            except (ConnectionLostError, ProtocolError, OSError) as e:
                raise self._mark_lost(e) from e
        if not isinstance(reply, dict):
            raise self._mark_lost(ProtocolError(f"reply to {op!r} is not a mapping"))
        if not reply.get("ok", False):
            cls = ProtectiveStopError if reply.get("protective_stop") else RobotError
            raise cls(f"sim lab at {self.host}:{self.port} refused {op!r}: {reply.get('error')}")
        return reply

    def _mark_lost(self, cause: Exception) -> ConnectionLostError:
        err = ConnectionLostError(f"sim lab at {self.host}:{self.port} dropped the connection: {cause}")
        if self._lost is None:
            self._lost = err
            log.warning("%s", err)
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
        return ConnectionLostError(str(self._lost))

    def _heartbeat_loop(self, interval_s: float) -> None:
        while not self._hb_stop.wait(interval_s / 2):
            if self._lost is not None or self._sock is None:
                return
            if time.monotonic() - self._last_tx_s < interval_s:
                continue  # a request went out recently; that counts as a heartbeat
            try:
                self._request({"op": "heartbeat"})
            except ConnectionLostError:
                return
            except RobotError as e:
                log.warning("heartbeat refused: %s", e)

    # ------------------------------------------------------------ Robot API
    def observe(self) -> Observation:
        reply = self._request({"op": "observe"})
        try:
            return Observation.from_msg(reply["observation"])
        except (KeyError, TypeError, ValueError, ProtocolError) as e:
            raise RobotError(f"sim lab at {self.host}:{self.port} sent a malformed observation: {e}") from e

    def status(self) -> dict[str, Any]:
        """Lab status: executing, exec_id, completed, stopped_reason, joint_pos_rad, gripper_width_m."""
        return self._request({"op": "status"})

    def execute(self, traj: JointTrajectory, *, exact: bool = False) -> ExecuteReport:
        state = self.status()
        if state["executing"]:
            raise RobotError(f"sim lab at {self.host}:{self.port} is still executing trajectory "
                             f"{state['exec_id']}; stop() it first")
        sent, notes = self.envelope.filter(traj, np.asarray(state["joint_pos_rad"]),
                                           float(state["gripper_width_m"]))
        if exact:
            require_unchanged(traj, sent, notes)
        for note in notes:
            log.info("safety envelope: %s", note)
        reply = self._request({"op": "execute", "trajectory": sent.to_msg()})
        exec_id = reply["exec_id"]
        self._last_exec_id = exec_id
        deadline = time.monotonic() + self._execute_timeout(sent)
        try:
            while True:
                time.sleep(self.poll_period_s)
                state = self.status()
                if state["exec_id"] == exec_id and not state["executing"]:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise RobotError(f"trajectory {exec_id} ({sent.duration_s:.2f} s) did not finish within "
                                     f"{self._execute_timeout(sent):.1f} s; stop sent")
        except KeyboardInterrupt:
            with contextlib.suppress(RobotError):
                self.stop()
            raise
        final = np.asarray(state["joint_pos_rad"], dtype=np.float64)
        completed, reason = bool(state["completed"]), state["stopped_reason"]
        tol = float(self.hello.get("limits", {}).get("reach_tol_rad", ControllerLimits().reach_tol_rad))
        err = float(np.max(np.abs(final - sent.joint_pos_rad[-1])))
        if completed and err > tol:   # the lab's word is checked, not taken: completed means arrived
            completed, reason = False, f"not_reached: a joint ended {err:.3f} rad from its last waypoint"
        return ExecuteReport(sent=sent, notes=tuple(notes), completed=completed, stopped_reason=reason,
                             final_joint_pos_rad=final, reach_tol_rad=tol)

    def _execute_timeout(self, traj: JointTrajectory) -> float:
        if self.execute_timeout_s is not None:
            return self.execute_timeout_s
        rf = float(self.hello.get("realtime_factor", 0.0))
        # rf = 0 runs as fast as physics allows; budget as if it were only a third of real time.
        return 30.0 + 3.0 * traj.duration_s / (rf if rf > 0 else 1.0)

    def stop(self) -> None:
        self._request({"op": "stop"})

    def last_trace(self) -> JointStateTrace | None:
        """The lab's record of the last trajectory this driver executed (one sample per physics step), or None
        when nothing ran yet or the lab does not record (a lab without the 'trace' feature)."""
        if self._last_exec_id is None or "trace" not in self.hello.get("features", ()):
            return None
        reply = self._request({"op": "trace"})
        if reply.get("exec_id") != self._last_exec_id:
            log.warning("the lab's last trace is of trajectory %s, not %s (another client executed since)",
                        reply.get("exec_id"), self._last_exec_id)
            return None
        try:
            return JointStateTrace.from_msg(reply["trace"])
        except (KeyError, TypeError, ValueError, ProtocolError) as e:
            raise RobotError(f"sim lab at {self.host}:{self.port} sent a malformed trace: {e}") from e


def _within_lab_limits(config: EnvelopeConfig, hello: dict[str, Any]) -> EnvelopeConfig:
    """The envelope made at least as strict as the lab controller's announced limits, so what it sends passes."""
    changes: dict[str, Any] = {}
    if config.control_period_s is None and hello.get("control_period_s"):
        changes["control_period_s"] = float(hello["control_period_s"])
    if "limits" in hello:
        lab = ControllerLimits.from_dict(hello["limits"], where="sim lab hello: limits")
        changes["max_joint_step_rad"] = min(config.max_joint_step_rad, lab.max_joint_step_rad)
        changes["workspace_sample_rad"] = min(config.workspace_sample_rad, lab.workspace_sample_rad)
        changes["max_waypoints"] = min(config.max_waypoints, lab.max_waypoints)
        if config.max_joint_accel_rad_s2 is None:
            changes["max_joint_accel_rad_s2"] = lab.max_joint_accel_rad_s2
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------- truth, for evaluation only
class LabEvaluator:
    """Asks the lab for its truth over a separate connection. For evaluation code ONLY.

    The planner never uses this class: it must act on observations alone, like it would with a real arm.
    Success rates, pose errors and run reports use it after (or between) steps.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0, *, secret: bytes) -> None:
        self.host, self.port, self.timeout_s = host, int(port), timeout_s
        self._secret = secret

    def __repr__(self) -> str:
        return f"LabEvaluator({self.host}:{self.port})"

    def _ask(self, op: str) -> dict[str, Any]:
        where = f"sim lab at {self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                def request(msg: dict[str, Any]) -> dict[str, Any]:
                    send_msg(sock, msg, timeout_s=self.timeout_s)
                    reply = recv_msg(sock, timeout_s=self.timeout_s)
                    if not isinstance(reply, dict) or not reply.get("ok"):
                        raise RobotError(f"{where} refused {msg.get('op')!r}: "
                                         f"{reply.get('error') if isinstance(reply, dict) else reply!r}")
                    return reply
                lab_auth.authenticate(request, self._secret, "evaluate")
                reply = request({"op": op})
        except LabAuthError as e:
            raise RobotError(f"{where}: {e}") from None
        except (ConnectionLostError, ProtocolError, OSError) as e:
            raise ConnectionLostError(f"{where} dropped the connection: {e}") from e
        return {k: v for k, v in reply.items() if k not in ("ok", "op")}

    def status(self) -> dict[str, Any]:
        """The lab's execution status (what the controlling client sees), read on the evaluation channel."""
        return self._ask("status")

    def truth(self) -> dict[str, Any]:
        """{"objects": {name: Pose dict}, "initial_objects", "success": bool|None, "grasped": name|None,
        "joint_pos_rad", "gripper_width_m", "tcp_pose", "seed"}."""
        return self._ask("evaluate")
