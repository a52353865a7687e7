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
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Sequence

import numpy as np
import pybullet as p

from robot_io.camera import Camera
from robot_io.envelope import SafetyEnvelope
from robot_io.errors import ConnectionLostError, NotConnectedError, ProtectiveStopError, RobotError, VendorError
from robot_io.franka.config import FrankaConfig
from robot_io.observation import Observation
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from robot_io.vendor_call import FreshState, VendorWorker, run_with_deadline
from sim.scene import SceneSpec
from sim.world import World

log = logging.getLogger(__name__)
_FCI_PORT = 1337
_POLL_S = 0.01


def _import_franky():
    try:
        import franky
    except ImportError as e:
        raise RobotError(f"the Franka driver needs franky: pip install 'antigrounding[franka]' ({e})") from None
    return franky


class FrankaRobot(Robot):
    """An FR3 over libfranka (franky). `cameras` are read on every observe()."""

    def __init__(self, config: FrankaConfig | None = None, *, cameras: Sequence[Camera] = ()) -> None:
        from robot_io.driver_config import robot_spec

        self.config = config or FrankaConfig.load()
        self.robot_spec = robot_spec(self.config.robot, where="FrankaConfig.robot")
        if self.robot_spec.dof != 7:
            raise RobotError(f"FrankaRobot drives 7-joint arms; '{self.robot_spec.name}' has {self.robot_spec.dof}")
        self.cameras = tuple(cameras)
        self.envelope: SafetyEnvelope | None = None
        self._robot = None
        self._franky = None
        self._worker: VendorWorker | None = None
        self._fresh = FreshState()
        self._lost: str | None = None
        self._stop_requested = False
        self._fk_client: int | None = None
        self._fk_world: World | None = None

    def __repr__(self) -> str:
        return f"FrankaRobot({self.config.host}, connected={self.is_connected})"

    @property
    def is_connected(self) -> bool:
        return self._robot is not None and self._lost is None

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
        try:
            self._robot = franky.Robot(cfg.host, relative_dynamics_factor=cfg.relative_dynamics_factor,
                                       realtime_config=rt)
        except franky.RealtimeException as e:
            raise RobotError(f"{e}: libfranka needs a real-time (PREEMPT_RT) kernel for its 1 kHz loop; without "
                             f"one expect communication_constraints_violation reflexes. See docs/real_arms.md "
                             f"('Franka: real-time kernel').") from None
        except franky.Exception as e:
            raise ConnectionLostError(f"Franka at {cfg.host}: {e} (the PyPI franky wheel talks to robot server "
                                      f"version 10 (FR3 system image); an older Panda needs franky built against "
                                      f"its libfranka)") from None
        self._lost, self._fresh = None, FreshState()
        self._worker = VendorWorker(f"franka@{cfg.host}")
        self._fk_client = p.connect(p.DIRECT)
        self._fk_world = World.from_scene(self._fk_client, SceneSpec(robot=self.robot_spec))
        self.envelope = SafetyEnvelope(self.robot_spec, lambda q: self._fk_world.fk(q).position, cfg.envelope)
        log.info("connected to Franka at %s (relative dynamics factor %.2f)", cfg.host, cfg.relative_dynamics_factor)

    def disconnect(self) -> None:
        robot, self._robot = self._robot, None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
        if robot is not None and not run_with_deadline(lambda: robot.stop(), 2.0, "franka-stop"):
            log.warning("franky stop() did not return within 2 s at disconnect")
        if self._fk_client is not None:
            with contextlib.suppress(p.error):
                p.disconnect(physicsClientId=self._fk_client)
        self._fk_client, self._fk_world, self.envelope, self._lost = None, None, None, None

    # ------------------------------------------------------------ state
    def _require(self) -> None:
        if self._lost is not None:
            raise ConnectionLostError(self._lost)
        if self._robot is None:
            raise NotConnectedError(f"{self!r} is not connected; call connect() or use it as a context manager")

    def _call(self, what: str, fn, *args, timeout_s: float | None = None):
        self._require()
        try:
            return self._worker.call(what, fn, *args, timeout_s=timeout_s or self.config.call_timeout_s)
        except ConnectionLostError as e:
            if self._lost is None:
                self._lost = f"Franka at {self.config.host}: {e}"
                log.error("%s", self._lost)
            raise ConnectionLostError(self._lost) from None

    def _state(self):
        st = self._call("read state", lambda: self._robot.state)
        age = self._fresh.update(st.time.to_sec())
        if age > self.config.stale_after_s:
            self._lost = f"Franka at {self.config.host}: robot time has not moved for {age:.3f} s (link down)"
            raise ConnectionLostError(self._lost)
        return st

    def check_ready(self) -> None:
        """Raise ProtectiveStopError if libfranka reports an active error or reflex."""
        self._state()
        if self._call("has_errors", lambda: self._robot.has_errors):
            raise ProtectiveStopError("the Franka has an active error/reflex; inspect it (Desk shows the reflex), "
                                      "then call recover() (`antigrounding robot check --recover`)")

    def joint_pos_rad(self) -> np.ndarray:
        return np.array(self._state().q, dtype=float)

    def observe(self) -> Observation:
        st = self._state()
        q = np.array(st.q, dtype=float)
        frames = tuple(cam.read() for cam in self.cameras)
        return Observation(frames=frames, joint_pos_rad=q, gripper_width_m=0.0,
                           T_world_tcp=self._fk_world.fk(q).matrix(), stamp_s=st.time.to_sec(),
                           joint_effort_nm=np.array(st.tau_J, dtype=float))

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
        self._call("move", lambda: self._robot.move(motion, asynchronous=True))
        deadline = time.monotonic() + budget_s
        while True:
            time.sleep(_POLL_S)
            try:
                moving = not self._call("join_motion", self._robot.join_motion, 0.0)
            except fr.ControlException as e:
                if "preempted" in str(e).lower() and self._stop_requested:
                    return "stop"
                raise ProtectiveStopError(f"Franka reflex/control error: {e}. Inspect the cause, then call "
                                          f"recover() (franky recover_from_errors)") from None
            self._state()
            if not moving:
                return "stop" if self._stop_requested else None
            if time.monotonic() > deadline:
                self._try_stop()
                return "timeout"

    def execute(self, traj: JointTrajectory) -> ExecuteReport:
        cfg = self.config
        st = self._state()
        if self._robot.has_errors:
            raise ProtectiveStopError("the Franka has an active error/reflex; inspect it, then call recover()")
        q_now = np.array(st.q, dtype=float)
        sent, notes = self.envelope.filter(traj, q_now)
        for note in notes:
            log.info("safety envelope: %s", note)
        budget = 3.0 * sent.duration_s / cfg.relative_dynamics_factor + 5.0
        try:
            reason = self._run(self._motion(sent, q_now), budget)
            goal = sent.joint_pos_rad[-1]
            if reason is None:
                reason = self._settle(goal)
        except (ConnectionLostError, KeyboardInterrupt):
            self._try_stop()
            raise
        final = self.joint_pos_rad()
        return ExecuteReport(sent=sent, notes=tuple(notes), completed=reason is None, stopped_reason=reason,
                             final_joint_pos_rad=final)

    def _settle(self, goal: np.ndarray) -> str | None:
        cfg, fr = self.config, self._franky
        lower = np.asarray(self.robot_spec.joint_lower_rad)
        upper = np.asarray(self.robot_spec.joint_upper_rad)
        target = goal.copy()
        for _ in range(cfg.settle_corrections + 1):
            deadline = time.monotonic() + cfg.settle_timeout_s / (cfg.settle_corrections + 1)
            while time.monotonic() < deadline:
                err = goal - self.joint_pos_rad()
                if np.max(np.abs(err)) <= cfg.settle_tol_rad:
                    return None
                time.sleep(_POLL_S)
            # A steady offset remains: aim past the goal by the offset (bounded, inside the limits).
            target = np.clip(target + err, goal - cfg.settle_max_offset_rad, goal + cfg.settle_max_offset_rad)
            target = np.clip(target, lower, upper)
            reason = self._run(fr.JointWaypointMotion([fr.JointWaypoint(fr.JointState(target))]), 5.0)
            if reason is not None:
                return reason
        err = float(np.max(np.abs(goal - self.joint_pos_rad())))
        return None if err <= cfg.settle_tol_rad else f"settled {err * 1e3:.2f} mrad from the last waypoint"

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
