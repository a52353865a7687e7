"""`VendorRobot`: what the UR, xArm and Franka drivers share behind `Robot`.

The shared part: the robot spec named by the driver config, the forward-kinematics twin that the safety envelope
and `observe()` use, the link bookkeeping (`_require`, `_mark_lost`: a lost link is sticky until disconnect), the
cameras and the gripper a driver carries, and `execute()` itself: envelope first, then the envelope's path cut
where the planned gripper state changes (open / closed), each arm piece handed to the driver's own
`_move_segment` and each gripper change to the gripper, one after the other, as the twin simulated them.

A driver supplies the vendor calls: `_link_open`, `state` (a fresh state with `joint_pos_rad` and `stamp_s`) and
`_check_ready` (refusing a protective stop / reflex) -- or its own `_joint_state`, `_ready_joint_pos` and
`check_ready` --, `_move_segment`, `_make_gripper` and `_call`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pybullet as p

from robot_io.camera import Camera
from robot_io.envelope import SafetyEnvelope, require_unchanged
from robot_io.errors import ConnectionLostError, NotConnectedError, RobotError, VendorError
from robot_io.gripper import Gripper, NoGripper, wants_closed
from robot_io.observation import Observation
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from robot_io.vendor_call import VendorWorker, run_with_deadline
from sim.scene import SceneSpec
from sim.world import World

log = logging.getLogger(__name__)


class VendorRobot(Robot):
    """A vendor arm behind `Robot`. Subclasses set `vendor` ("UR controller", ...) and `dofs` (accepted joint
    counts) and implement the vendor calls listed in the module docstring."""

    vendor = "arm"
    dofs: tuple[int, ...] = (6,)

    def __init__(self, config: Any, *, cameras: Sequence[Camera] = (), gripper: Gripper | None = None) -> None:
        from robot_io.driver_config import robot_spec

        self.config = config
        self.robot_spec = robot_spec(config.robot, where="robot")
        if self.robot_spec.dof not in self.dofs:
            raise RobotError(f"{type(self).__name__} drives {'/'.join(map(str, self.dofs))}-joint arms; robot "
                             f"'{self.robot_spec.name}' has {self.robot_spec.dof}")
        self.cameras = tuple(cameras)
        self._gripper_given = gripper
        self.gripper: Gripper = gripper or NoGripper(self.robot_spec.gripper_max_width_m)
        self._grip_closed: bool | None = None      # the last commanded gripper state (None: not commanded yet)
        self.envelope: SafetyEnvelope | None = None
        self._worker: VendorWorker | None = None
        self._lost: str | None = None
        self._abort = threading.Event()
        self._fk_client: int | None = None
        self._fk_world: World | None = None
        self._opened_cameras: list[Camera] = []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.host}, connected={self.is_connected})"

    # ------------------------------------------------------------ vendor calls (the subclass)
    @abstractmethod
    def _link_open(self) -> bool:
        """True while the vendor client objects exist (between a successful connect and disconnect)."""

    def state(self) -> Any:
        """The latest fresh controller state with `joint_pos_rad` and `stamp_s` (the UR and xArm drivers' own
        types); raises ConnectionLostError on a stale link. A driver either gives this and `_check_ready`, or
        overrides `_joint_state`, `_ready_joint_pos` and `check_ready` itself (Franka)."""
        raise NotImplementedError(f"{type(self).__name__} reads its state through _joint_state")

    def _check_ready(self, st: Any) -> None:
        """Raise ProtectiveStopError / VendorError if state st says the arm cannot move now."""

    def check_ready(self) -> None:
        """Raise if the arm cannot move now (a protective stop, reflex or controller error)."""
        self._check_ready(self.state())

    def _joint_state(self) -> tuple[np.ndarray, float, np.ndarray | None]:
        """(joint_pos_rad, controller stamp in s, measured joint torques or None); raises on a stale link."""
        st = self.state()
        return st.joint_pos_rad, st.stamp_s, None

    def _ready_joint_pos(self) -> np.ndarray:
        """The current joints, after refusing a protective stop, reflex or controller error."""
        st = self.state()
        self._check_ready(st)
        return st.joint_pos_rad

    @abstractmethod
    def _move_segment(self, seg: JointTrajectory, q_start: np.ndarray) -> str | None:
        """Run the arm through seg's waypoints (already through the envelope) from q_start; None when it arrived,
        else why it stopped. Raises on a lost link or a protective stop (after commanding the arm to stop)."""

    def _await_joints(self, q_goal: np.ndarray, q_from: np.ndarray, what: str, poll_s: float,
                      on_timeout: Callable[[], None] | None = None) -> Any:
        """Poll the state until every joint is within settle_tol_rad of q_goal (a position-mode move at the config's
        move_speed_rad_s / move_accel_rad_s2); the state then. Raises what `_check_ready` raises, and VendorError
        (after on_timeout) when twice the move's trapezoid time plus 2 s has passed."""
        cfg = self.config
        dist = float(np.max(np.abs(q_goal - q_from)))
        budget_s = 2 * (dist / cfg.move_speed_rad_s + cfg.move_speed_rad_s / cfg.move_accel_rad_s2) + 2
        deadline = time.monotonic() + budget_s
        while True:
            time.sleep(poll_s)
            st = self.state()
            self._check_ready(st)
            if np.max(np.abs(st.joint_pos_rad - q_goal)) <= cfg.settle_tol_rad:
                return st
            if time.monotonic() > deadline:
                if on_timeout is not None:
                    on_timeout()
                raise VendorError(f"{what} did not reach its target within {budget_s:.1f} s")

    def _make_gripper(self) -> Gripper | None:
        """The gripper the config names, built once the arm's link is open (None: none configured)."""
        return None

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None) -> Any:
        """One vendor call on the worker with a deadline; a missed deadline marks the link lost."""
        self._require()
        try:
            return self._worker.call(what, fn, *args, timeout_s=timeout_s or self.config.call_timeout_s)
        except ConnectionLostError as e:
            fn = args = None
            raise self._mark_lost(str(e)) from None
        except BaseException:
            # This frame stays in the error's traceback for as long as the caller keeps the error: it must not hold
            # the vendor client (a bound method in `fn`), or the client outlives disconnect() and keeps the
            # controller's single connection (franka-sim never answered the next connect).
            fn = args = None
            raise

    # ------------------------------------------------------------ link bookkeeping
    @property
    def is_connected(self) -> bool:
        return self._link_open() and self._lost is None

    def _require(self) -> None:
        if self._lost is not None:
            raise ConnectionLostError(self._lost)
        if not self._link_open():
            raise NotConnectedError(f"{self!r} is not connected; call connect() or use it as a context manager")

    def _mark_lost(self, why: str) -> ConnectionLostError:
        if self._lost is None:
            self._lost = f"{self.vendor} at {self.config.host}: {why}"
            log.error("%s", self._lost)
        return ConnectionLostError(self._lost)

    def _open_kinematics(self) -> None:
        """The FK twin (its own PyBullet client) and the safety envelope that uses it."""
        self._fk_client = p.connect(p.DIRECT)
        self._fk_world = World.from_scene(self._fk_client, SceneSpec(robot=self.robot_spec))
        self.envelope = SafetyEnvelope(self.robot_spec, lambda q: self._fk_world.fk(q).position, self.config.envelope)

    def _close_kinematics(self) -> None:
        if self._fk_client is not None:
            with contextlib.suppress(p.error):
                p.disconnect(physicsClientId=self._fk_client)
        self._fk_client, self._fk_world, self.envelope = None, None, None

    def _open_peripherals(self) -> None:
        """The gripper (the one given, or the config's) and every camera not already streaming."""
        if self._gripper_given is None:
            self.gripper = self._make_gripper() or NoGripper(self.robot_spec.gripper_max_width_m)
        self._grip_closed = None
        self._call("gripper connect", self.gripper.connect, timeout_s=max(5.0, self.config.call_timeout_s))
        for cam in self.cameras:
            if not cam.is_connected:
                cam.connect()
                self._opened_cameras.append(cam)

    def _close_peripherals(self) -> None:
        for cam in self._opened_cameras:
            try:
                cam.disconnect()
            except RobotError as e:
                log.warning("%s: disconnect: %s", cam.name, e)
        self._opened_cameras = []
        # a gripper's client on a dead link may block in its disconnect: never wait for it longer than this
        if not run_with_deadline(self.gripper.disconnect, 3.0, "gripper-disconnect"):
            log.warning("%s: the gripper's disconnect did not return within 3 s; left behind", self)

    # ------------------------------------------------------------ observe
    def observe(self) -> Observation:
        q, stamp, effort = self._joint_state()
        frames = tuple(cam.read() for cam in self.cameras)
        return Observation(frames=frames, joint_pos_rad=q, gripper_width_m=self._gripper_width(),
                           T_world_tcp=self._fk_world.fk(q).matrix(), stamp_s=stamp, joint_effort_nm=effort)

    def _gripper_width(self) -> float:
        g = self.gripper
        if isinstance(g, NoGripper) or not g.measured:
            return g.width_m()
        return float(self._call("gripper width", g.width_m))

    # ------------------------------------------------------------ execute
    def execute(self, traj: JointTrajectory, *, exact: bool = False) -> ExecuteReport:
        q_now = self._ready_joint_pos()
        sent, notes = self.envelope.filter(traj, q_now, self._gripper_width())
        if exact:
            require_unchanged(traj, sent, notes)
        for note in notes:
            log.info("safety envelope: %s", note)
        notes = list(notes)
        reason: str | None = None
        q_planned, first = q_now, True
        max_w = self.robot_spec.gripper_max_width_m
        if isinstance(self.gripper, NoGripper):
            pieces: Iterable[tuple[JointTrajectory, bool | None]] = [(sent, None)]   # nothing to do between pieces
            if any(wants_closed(w, max_w) for w in sent.gripper_width_m):
                self._grip(True, notes)   # the note only: there is no gripper to close
        else:
            pieces = gripper_segments(sent, max_w)
        for seg, close in pieces:
            if close is not None:
                if self._grip_closed is None:
                    self._grip_closed = wants_closed(self._gripper_width(), max_w)
                if close != self._grip_closed:
                    self._grip(close, notes)
            if np.max(np.abs(seg.joint_pos_rad - q_planned[None, :])) > 0.0:
                # each piece starts where the arm is (it settled within tolerance of the last piece's end)
                q_from = q_now if first else self._joint_state()[0]
                reason = self._move_segment(seg, q_from)
                if reason is not None:
                    break
                first = False
            q_planned = seg.joint_pos_rad[-1]
        final = self._joint_state()[0]
        return ExecuteReport(sent=sent, notes=tuple(notes), completed=reason is None, stopped_reason=reason,
                             final_joint_pos_rad=final)

    def _grip(self, close: bool, notes: list[str]) -> None:
        word = "close" if close else "open"
        g = self.gripper
        if isinstance(g, NoGripper):
            notes.append(f"gripper '{word}' not executed: no gripper is configured ({type(self.config).__name__}"
                         f".gripper)")
            log.warning("%s", notes[-1])
            return
        self._call(f"gripper {word}", g.command, close, timeout_s=g.action_timeout_s)
        settle_s = getattr(g, "settle_s", 0.0)
        if settle_s:
            # on this thread: the worker stays free for the controller's watchdog kicks while the fingers move
            time.sleep(settle_s)
        self._grip_closed = close
        notes.append("gripper closed" if close else "gripper opened")


def gripper_segments(traj: JointTrajectory, max_width_m: float) -> Iterator[tuple[JointTrajectory, bool]]:
    """Cut traj where its planned gripper state (open / closed, the twin's rule) changes: (piece, closed)."""
    closed = [wants_closed(w, max_width_m) for w in traj.gripper_width_m]
    start = 0
    for i in range(1, len(closed) + 1):
        if i == len(closed) or closed[i] != closed[start]:
            yield JointTrajectory(traj.joint_pos_rad[start:i], traj.gripper_width_m[start:i], traj.dt_s), \
                closed[start]
            start = i


def servo_ticks(q_now: np.ndarray, traj: JointTrajectory, period_s: float) -> np.ndarray:
    """Joint targets every `period_s`, linearly interpolated through the waypoints (reached one per dt)."""
    times = np.arange(0, traj.n_waypoints + 1) * traj.dt_s
    knots = np.vstack([q_now[None, :], traj.joint_pos_rad])
    n_ticks = max(1, math.ceil(traj.duration_s / period_s - 1e-9))
    t = np.minimum(np.arange(1, n_ticks + 1) * period_s, traj.duration_s)
    return np.stack([np.interp(t, times, knots[:, j]) for j in range(knots.shape[1])], axis=1)
