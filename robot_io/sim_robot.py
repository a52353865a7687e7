"""The sim lab's driver: `SimRobot` (a `Robot` over a socket), `launch_lab`, and `LabEvaluator`.

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
import ctypes
import dataclasses
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pybullet as p

from robot_io import lab_auth
from robot_io.envelope import EnvelopeConfig, SafetyEnvelope, require_unchanged
from robot_io.errors import ConnectionLostError, NotConnectedError, ProtectiveStopError, RobotError
from robot_io.lab_auth import LabAuthError, LabSecrets
from robot_io.lab_limits import ControllerLimits, TcpKinematics
from robot_io.labspec import LabSpec
from robot_io.observation import JointStateTrace, Observation
from robot_io.protocol import ProtocolError, recv_msg, send_msg
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from sim.scene import RobotSpec

log = logging.getLogger(__name__)


class LabStartError(RobotError):
    """The sim lab process did not come up (bad spec, crash, or no port line in time)."""


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


# ---------------------------------------------------------------- the lab process
@dataclass(frozen=True)
class LabProcess:
    """A running sim lab: where to connect, the process, its stderr log file and the session secrets
    (`control_secret` for the SimRobot that drives it, `eval_secret` for LabEvaluator; never in repr)."""

    host: str
    port: int
    popen: subprocess.Popen
    log_path: Path
    secrets: LabSecrets = dataclasses.field(repr=False, default=None)

    @property
    def control_secret(self) -> bytes:
        return self.secrets.control

    @property
    def eval_secret(self) -> bytes:
        return self.secrets.evaluate

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def log_tail(self, n_lines: int = 20) -> str:
        return _tail(self.log_path, n_lines)


def _tail(path: Path, n_lines: int) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n_lines:])


def _read_port(proc: subprocess.Popen, log_path: Path, timeout_s: float) -> int:
    """Wait for the lab's one stdout line {"port": P}; fail with the tail of its log."""
    deadline = time.monotonic() + timeout_s
    buf = b""
    fd = proc.stdout.fileno()
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.debug("sim lab stdout: %r", line)
                    continue
                if isinstance(msg, dict) and isinstance(msg.get("port"), int):
                    return msg["port"]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabStartError(f"sim lab did not report its port within {timeout_s:.0f} s; "
                                    f"its log ends:\n{_tail(log_path, 20)}")
            if sel.select(timeout=min(remaining, 0.2)):
                chunk = os.read(fd, 4096)
                if chunk:
                    buf += chunk
                    continue
                try:  # EOF without a port line: the lab is exiting; wait for its exit code
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise LabStartError(f"sim lab closed its stdout without reporting a port; its log ends:\n"
                                        f"{_tail(log_path, 20)}") from None
            if proc.poll() is not None:
                raise LabStartError(f"sim lab exited with code {proc.returncode} before listening; "
                                    f"its log ends:\n{_tail(log_path, 20)}")


def _die_with_parent() -> None:
    """In the lab child before exec: ask Linux to SIGTERM it when the planner process dies, even by kill -9,
    so a killed planner never leaves a lab (and its arm) running. (The signal follows the launching thread:
    call launch_lab from a thread that lives as long as the run.) Elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:   # a killed LIBERO lab frees gigabytes: on a loaded machine that can outlast a short wait
                proc.wait(timeout=60.0)
            except subprocess.TimeoutExpired:
                log.warning("lab process %d still exiting 60 s after SIGKILL; left to the OS", proc.pid)
    if proc.stdout is not None:
        proc.stdout.close()


@contextlib.contextmanager
def spawn_lab(cmd: list[str], *, host: str, log_file: Path, env: dict[str, str],
              startup_timeout_s: float) -> Iterator[LabProcess]:
    """Run a lab command (`--secret-fd` is added here) with fresh session secrets, yield its LabProcess once it
    reports its port, terminate it on exit. The secrets go through a pipe the lab inherits, so they appear on no
    command line, in no environment, file or log. Shared by `launch_lab` and the LIBERO lab's launcher."""
    secrets = LabSecrets.generate()
    secret_r, secret_w = os.pipe()
    try:
        os.write(secret_w, secrets.to_line())   # ~150 bytes: fits the pipe buffer before the child reads
    finally:
        os.close(secret_w)
    try:
        with open(log_file, "ab") as log_f:
            proc = subprocess.Popen([*cmd, "--secret-fd", str(secret_r)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=log_f, env=env, preexec_fn=_die_with_parent,
                                    pass_fds=(secret_r,))
    finally:
        os.close(secret_r)
    try:
        yield LabProcess(host, _read_port(proc, log_file, startup_timeout_s), proc, log_file, secrets)
    finally:
        _terminate(proc)


@contextlib.contextmanager
def launch_lab(spec: LabSpec, seed: int | None = None, *, host: str = "127.0.0.1", port: int = 0,
               startup_timeout_s: float = 60.0, log_path: str | os.PathLike | None = None,
               env: dict[str, str] | None = None) -> Iterator[LabProcess]:
    """Start `python -m robot_io.simlab` for `spec` and yield a LabProcess; terminate it on exit.

    The spec goes to a temporary JSON file; the lab's stderr goes to `log_path` (default: a temporary
    file, deleted on exit). `seed` defaults to spec.seed. `env` adds environment variables for the lab.
    The session secrets are drawn and handed over by `spawn_lab`.
    """
    seed = spec.seed if seed is None else int(seed)
    with tempfile.TemporaryDirectory(prefix="simlab-") as tmp:
        spec_path = Path(tmp) / "lab_spec.json"
        spec_path.write_text(spec.to_json())
        log_file = Path(log_path) if log_path is not None else Path(tmp) / "simlab.log"
        cmd = [sys.executable, "-m", "robot_io.simlab", "--spec", str(spec_path), "--seed", str(seed),
               "--port", str(port), "--host", host]
        with spawn_lab(cmd, host=host, log_file=log_file, env={**os.environ, **(env or {})},
                       startup_timeout_s=startup_timeout_s) as lab:
            log.info("sim lab pid %d listening on %s:%d (seed %d)", lab.popen.pid, host, lab.port, seed)
            yield lab


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
