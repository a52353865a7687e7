"""The sim lab: a separate process that stands in for the real world until an arm is attached.

    python -m robot_io.simlab --spec LAB_SPEC.json --secret-fd FD --seed N [--port 0] [--host 127.0.0.1]

It builds the task's *true* scene (randomised per seed, the task's masses and friction) in its own
PyBullet DIRECT client, lets the objects settle, prints exactly one line `{"port": P}` on stdout and then
serves length-prefixed msgpack requests (`robot_io.protocol`), exposing only what real hardware would.

It is a controller, not a servant. Every connection first proves it holds a session secret
(`robot_io.lab_auth`: challenge, auth); the secrets arrive on the inherited pipe FD from the launcher and
nowhere else. The *control* role (one client at a time) may:

    hello      -> robot name, dof, camera names, robot spec, controller period, heartbeat timeout, limits
    observe    -> Observation.to_msg(): every camera rendered with depth noise, joint/gripper/TCP state and
                  measured joint torques (the motors' applied torques with sensor noise and offset)
    execute    -> {trajectory: JointTrajectory.to_msg()} checked against the controller limits
                  (`robot_io.lab_limits`; refused with "protective stop: ..." otherwise) and run
                  asynchronously in the physics loop, which stops it on a measured violation
    status     -> {executing, completed, stopped_reason, joint_pos_rad, gripper_width_m, exec_id, ...}
    trace      -> {exec_id, trace: JointStateTrace.to_msg()}: the joint states of the last finished trajectory,
                  one sample per physics step (what libfranka / UR RTDE stream from a real arm)
    stop       -> abort the running trajectory, hold the arm where it is
    heartbeat  -> keep-alive (any message counts as one)
    shutdown   -> stop serving and exit

The *evaluate* role (LabEvaluator, its own secret) may only ask `evaluate` (the truth: object poses, the
success predicate, the grasped object) and `status`. Connections are capped, frames are bounded per role
before anything is allocated, and a connection that does not authenticate within AUTH_TIMEOUT_S is dropped.

Watchdog: a motion advances only while the controlling client speaks. Each message it sends buys
`heartbeat_timeout_s` of *simulated* motion (less the time the arm needs to stop); when that credit is spent
the physics waits for the next message, and after `heartbeat_timeout_s` of wall-clock silence the lab aborts
the motion, holds the arm and reports stopped_reason="watchdog". So a frozen planner's arm stops within one
heartbeat of simulated time whatever the realtime factor, and within one of wall time. A closed control
connection stops the arm at once (stopped_reason="control_lost").

Threads: the main thread owns the PyBullet client (the *engine*: physics, rendering, truth); one thread
accepts connections and one handler thread per connection decodes requests and hands PyBullet work to the
engine through a queue. The engine answers that work between physics steps while a trajectory runs, so
the client is only ever used by one thread (a plain lock is not enough: the EGL renderer's GL context is
bound to the thread that created it).
Logs go to stderr; C-level prints from PyBullet/EGL are redirected there too so stdout stays clean.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import pybullet as p

from robot_io.lab_auth import LabSecrets
from robot_io.lab_layout import MIN_GAP_M, randomize_scene  # noqa: F401 - re-exported: the lab's layout
from robot_io.lab_limits import LimitViolation, RuntimeMonitor, TcpKinematics, check_command
from robot_io.lab_server import Conn, LabServer, run_lab_process
from robot_io.labspec import LabSpec, LabSpecError
from robot_io.observation import CameraFrame, JointStateTrace, Observation
from robot_io.trajectory import JointTrajectory
from sim.camera import render_rgbd
from sim.predicates import evaluate as evaluate_predicate
from sim.scene import SpecError
from sim.world import TIMESTEP_S, World

log = logging.getLogger("robot_io.simlab")

PROTOCOL_VERSION = 2
FEATURES = ("joint_effort", "trace", "limits")   # announced in hello
POST_STOP_SETTLE_S = 0.2     # simulated time the held arm and the objects get after an abort
STOP_RESERVE_S = 0.1         # of each heartbeat's credit, kept for braking
STILL_RAD_S = 0.01           # an arm whose joints all move slower than this stands still
ENGINE_TIMEOUT_S = 60.0     # a handler gives up waiting for the engine after this long
# Joint torque "sensor": PyBullet's applied motor torque plus white noise per sample and a constant offset per
# joint (drawn once per seed), the two errors a real torque sensor or current-based estimate has.
EFFORT_NOISE_NM = 0.05
EFFORT_BIAS_NM = 0.1
MAX_TRACE_SAMPLES = 200_000   # ~14 min at 240 Hz; longer motions keep their first samples (logged)


# ---------------------------------------------------------------- the lab
@dataclass
class _Execution:
    exec_id: int
    conn: Conn
    abort: str | None = None
    done: bool = False
    completed: bool = False
    stopped_reason: str | None = None
    trace: JointStateTrace | None = None
    silent_steps: int | None = None    # motion steps between the planner's last message and a watchdog stop
    motion_after_last_message_s: float | None = None   # ... plus the braking: simulated time until the arm stood


class SimLab(LabServer):
    """The lab's world and request handling.

    Build it on the thread that will own PyBullet (the EGL renderer's GL context belongs to the thread that
    loaded it, and rendering from any other thread crashes the process), then call `serve(server)` on that
    same thread: it runs the *engine loop* there while connections are handled on their own threads.
    Handlers never touch PyBullet; they hand work to the engine (`_on_engine`) and wait for the answer.
    A running trajectory keeps serving that work between physics steps, so observe/evaluate answer while
    the arm moves, and the client is never used by two threads at once.
    """

    def __init__(self, spec: LabSpec, seed: int, secrets: LabSecrets, fast_render: bool = True) -> None:
        self.spec = spec
        self.seed = int(seed)
        super().__init__(secrets)
        t0 = time.monotonic()
        self.scene = randomize_scene(spec.scene, spec.randomize, self.seed)
        self.client = p.connect(p.DIRECT)
        # EGL when available (sim's choice: faster, exact depth); the spec (the command line) may turn it off.
        self.world = World.from_scene(self.client, self.scene, fast_render=fast_render and spec.fast_render)
        self.initial_poses = {n: pose.to_dict() for n, pose in self.world.object_poses().items()}
        self.world.step(int(round(spec.settle_s / TIMESTEP_S)))
        # Camera noise has its own stream so the number of observations never changes the layout; the torque
        # sensor has another, so reading torques never changes the camera noise.
        self._noise_rng = np.random.default_rng([self.seed, 1])
        self._effort_rng = np.random.default_rng([self.seed, 2])
        self._effort_bias = self._effort_rng.normal(0.0, EFFORT_BIAS_NM, size=len(self.world.arm_idx))
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._exec: _Execution | None = None
        self._exec_count = 0
        self._q_cache = self.world.joint_pos_rad()
        self._g_cache = self.world.gripper_width_m()
        # The controller's own kinematics (robot only) for checking commanded paths; the physics world's TCP is
        # what the runtime monitor watches.
        self._kin = TcpKinematics(spec.scene.robot)
        self._monitor = RuntimeMonitor(spec.scene.robot, spec.limits, TIMESTEP_S)
        self._protective_stop: str | None = None   # the last violation, for status
        log.info("lab ready in %.2f s: robot %s, %d object(s), %d camera(s), seed %d, heartbeat %.2f s, "
                 "realtime factor %g", time.monotonic() - t0, spec.scene.robot.name, len(self.scene.objects),
                 len(spec.cameras), self.seed, spec.heartbeat_timeout_s, spec.realtime_factor)

    # ------------------------------------------------------------ the engine thread
    def _on_engine(self, fn: Callable[[], Any], timeout_s: float = ENGINE_TIMEOUT_S) -> Any:
        """Run `fn` on the engine thread (the only one that touches PyBullet) and return its result."""
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut.result(timeout=timeout_s)

    def _run_job(self, fn: Callable[[], Any], fut: Future) -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn())
        except Exception as e:  # noqa: BLE001 - handed to the waiting handler, which reports it
            fut.set_exception(e)

    def _serve_jobs(self, wait_s: float) -> None:
        """Run jobs as they arrive until wait_s has passed (wait_s <= 0: only those already queued)."""
        deadline = time.monotonic() + wait_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                fn, fut = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
            except queue.Empty:
                return
            self._run_job(fn, fut)

    def _cache_state(self) -> None:
        q, g = self.world.joint_pos_rad(), self.world.gripper_width_m()
        with self._state_lock:
            self._q_cache, self._g_cache = q, g

    # ------------------------------------------------------------ serving
    def _close_engine(self) -> None:
        self._kin.close()
        p.disconnect(physicsClientId=self.client)
        log.info("lab shut down")

    def _conn_closed(self, conn: Conn) -> None:
        ex = self._exec
        if ex is not None and ex.conn is conn and not ex.done:
            log.warning("the control connection closed while trajectory %d runs; stopping the arm", ex.exec_id)
            self._abort("control_lost")

    # ------------------------------------------------------------ ops
    def _op_hello(self, conn: Conn, msg: dict) -> dict[str, Any]:
        robot = self.spec.scene.robot
        return {
            "protocol": PROTOCOL_VERSION,
            "robot": robot.name,
            "dof": robot.dof,
            "cameras": list(self.spec.camera_names),
            "robot_spec": robot.to_dict(),
            "control_period_s": TIMESTEP_S,
            "heartbeat_timeout_s": self.spec.heartbeat_timeout_s,
            "realtime_factor": self.spec.realtime_factor,
            "features": list(FEATURES),
            "limits": self.spec.limits.to_dict(),
        }

    def _op_heartbeat(self, conn: Conn, msg: dict) -> dict[str, Any]:
        return {}

    def _op_observe(self, conn: Conn, msg: dict) -> dict[str, Any]:
        return {"observation": self._on_engine(self._observe).to_msg()}

    def _observe(self) -> Observation:
        world = self.world
        frames = []
        for cam in self.spec.cameras:
            rgbd = render_rgbd(self.client, cam, self._noise_rng, renderer=world.renderer, segmentation=False)
            frames.append(CameraFrame(cam.name, rgbd.rgb, rgbd.depth_m, cam.K, cam.T_world_camera_matrix))
        q, width, T = world.joint_pos_rad(), world.gripper_width_m(), world.tcp_pose().matrix()
        return Observation(tuple(frames), q, width, T, time.time(), joint_effort_nm=self._measured_effort())

    def _measured_effort(self) -> np.ndarray:
        """Engine thread: the arm motors' applied torques of the last physics step, as a torque sensor reads them."""
        states = p.getJointStates(self.world.robot_id, self.world.arm_idx, physicsClientId=self.client)
        tau = np.array([s[3] for s in states])
        return tau + self._effort_bias + self._effort_rng.normal(0.0, EFFORT_NOISE_NM, size=tau.shape)

    def _op_status(self, conn: Conn, msg: dict) -> dict[str, Any]:
        with self._state_lock:
            ex = self._exec
            return {
                "executing": ex is not None and not ex.done,
                "exec_id": None if ex is None else ex.exec_id,
                "completed": ex is not None and ex.done and ex.completed,
                "stopped_reason": None if ex is None else ex.stopped_reason,
                "joint_pos_rad": self._q_cache.copy(),
                "gripper_width_m": float(self._g_cache),
                "protective_stop": self._protective_stop,
                "motion_after_last_message_s": None if ex is None else ex.motion_after_last_message_s,
            }

    def _op_stop(self, conn: Conn, msg: dict) -> dict[str, Any]:
        return {"was_executing": self._abort("stop")}

    def _op_shutdown(self, conn: Conn, msg: dict) -> dict[str, Any]:
        log.info("shutdown requested by %s", conn.peer)
        self._abort("shutdown")
        return {}

    def _op_execute(self, conn: Conn, msg: dict) -> dict[str, Any]:
        if "trajectory" not in msg:
            raise ValueError("execute needs a field 'trajectory' (JointTrajectory.to_msg())")
        traj = JointTrajectory.from_msg(msg["trajectory"])
        with self._state_lock:
            if self._exec is not None and not self._exec.done:
                raise ValueError(
                    f"busy: trajectory {self._exec.exec_id} is still executing (send stop first)")
        try:
            # On the engine: the check runs the controller's kinematics, and the arm cannot move meanwhile.
            self._on_engine(lambda: self._check_trajectory(traj))
        except LimitViolation as e:
            self._protective_stop = f"refused: {e}"
            log.warning("protective stop: refused a trajectory: %s", e)
            raise
        with self._state_lock:
            if self._exec is not None and not self._exec.done:
                raise ValueError(
                    f"busy: trajectory {self._exec.exec_id} is still executing (send stop first)")
            self._exec_count += 1
            ex = _Execution(self._exec_count, conn)
            self._exec = ex
        log.info("trajectory %d: %d waypoints, dt %.4f s, %.2f s", ex.exec_id, traj.n_waypoints, traj.dt_s,
                 traj.duration_s)
        # Asynchronous: the engine runs it; the client polls status.
        self._jobs.put((lambda: self._run(ex, traj), Future()))
        return {"accepted": True, "exec_id": ex.exec_id, "n_waypoints": traj.n_waypoints,
                "duration_s": traj.duration_s}

    def _op_trace(self, conn: Conn, msg: dict) -> dict[str, Any]:
        with self._state_lock:
            ex = self._exec
        if ex is None:
            raise ValueError("no trajectory has run yet; nothing was recorded")
        if not ex.done:
            raise ValueError(f"trajectory {ex.exec_id} is still executing; ask for its trace when it is done")
        if ex.trace is None:
            raise ValueError(f"trajectory {ex.exec_id} left no trace")
        return {"exec_id": ex.exec_id, "trace": ex.trace.to_msg()}

    def _op_evaluate(self, conn: Conn, msg: dict) -> dict[str, Any]:
        return self._on_engine(self._evaluate)

    def _evaluate(self) -> dict[str, Any]:
        world = self.world
        success = None
        if self.spec.success is not None:
            success = bool(evaluate_predicate(world, self.spec.success))
        return {
            "objects": {n: pose.to_dict() for n, pose in world.object_poses().items()},
            "initial_objects": self.initial_poses,
            "success": success,
            "grasped": world.grasped(),
            "joint_pos_rad": world.joint_pos_rad().tolist(),
            "gripper_width_m": world.gripper_width_m(),
            "tcp_pose": world.tcp_pose().to_dict(),
            "seed": self.seed,
        }

    # ------------------------------------------------------------ execution
    def _check_trajectory(self, traj: JointTrajectory) -> None:
        """Engine thread: the lab's own controller checks, like a real arm's; it never trusts the client."""
        check_command(traj.joint_pos_rad, traj.gripper_width_m, traj.dt_s, self.world.joint_pos_rad(),
                      self.spec.scene.robot, self.spec.limits, TIMESTEP_S, self._kin.xyz)

    def _abort(self, reason: str) -> bool:
        with self._state_lock:
            ex = self._exec
            if ex is None or ex.done or ex.abort is not None:
                return ex is not None and not ex.done
            ex.abort = reason
        log.info("trajectory %d: abort requested (%s)", ex.exec_id, reason)
        return True

    def _watchdog(self, ex: _Execution) -> str | None:
        """Engine thread, after every physics step of a motion: None to go on, else the abort reason.

        The motion advances only while the controlling client speaks: its last message bought `credit` steps of
        simulated motion; once they are spent the physics waits (answering other requests) for the next message,
        and `heartbeat_timeout_s` of wall-clock silence ends the motion."""
        timeout_s = self.spec.heartbeat_timeout_s
        # Leave room for the stop itself (the arm brakes in a few tens of ms) inside the heartbeat.
        credit = max(1, int((timeout_s - min(STOP_RESERVE_S, timeout_s / 4)) / TIMESTEP_S))
        while ex.abort is None:
            silent_s = time.monotonic() - ex.conn.last_rx_s
            silent_steps = self._motion_steps - ex.conn.last_rx_step
            if silent_s > timeout_s:
                with self._state_lock:
                    if ex.abort is None:
                        ex.abort = "watchdog"
                        ex.silent_steps = silent_steps
                log.warning("watchdog: planner silent for %.2f s (%.2f s of simulated motion); arm stopped",
                            silent_s, silent_steps * TIMESTEP_S)
                break
            if silent_steps < credit:
                return None
            self._serve_jobs(0.005)
        return ex.abort

    def _run(self, ex: _Execution, traj: JointTrajectory) -> None:
        """Engine thread: execute the trajectory; between physics steps serve queued jobs and pace time."""
        rf = self.spec.realtime_factor
        steps = 0
        t0 = time.monotonic()

        def should_stop() -> str | None:
            nonlocal steps
            steps += 1
            self._motion_steps += 1
            if steps % 4 == 0:
                self._cache_state()
            if self._watchdog(ex) is not None:
                return ex.abort
            # Observe/evaluate requests are answered between steps; with rf > 0 that is also how we wait.
            self._serve_jobs(t0 + steps * TIMESTEP_S / rf - time.monotonic() if rf > 0 else 0.0)
            return ex.abort

        samples: list[tuple[np.ndarray, np.ndarray, float]] = []

        def record() -> None:
            states = p.getJointStates(self.world.robot_id, self.world.arm_idx, physicsClientId=self.client)
            if len(samples) < MAX_TRACE_SAMPLES:
                samples.append((np.array([s[0] for s in states]), np.array([s[3] for s in states]),
                                self.world.gripper_width_m()))
            violation = self._monitor.check(np.array([s[0] for s in states]), self.world.tcp_pose().position)
            if violation is not None and ex.abort is None:
                ex.abort = self._protective_stop = violation
                log.warning("trajectory %d: %s", ex.exec_id, violation)

        completed, reason = False, None
        self._monitor.reset(self.world.joint_pos_rad())
        # The client was waiting for the reply while the lab checked the command (seconds, for a long path on a
        # loaded machine): the watchdog counts from the start of the motion, not from the request.
        ex.conn.last_rx_s, ex.conn.last_rx_step = time.monotonic(), self._motion_steps
        try:
            result = self.world.execute_joint_path(traj.joint_pos_rad, traj.gripper_width_m, traj.dt_s,
                                                   should_stop=should_stop, on_step=record)
            completed, reason = result.completed, result.stopped_reason
            if not completed:
                # execute_joint_path already commands the arm to hold its current position.
                braking_steps = self._settle_after_stop()
                if ex.silent_steps is not None:
                    ex.motion_after_last_message_s = (ex.silent_steps + braking_steps) * TIMESTEP_S
            else:
                reason = self._not_reached(traj)
                completed = reason is None
        except Exception as e:  # noqa: BLE001 - reported to the planner as stopped_reason, lab keeps serving
            log.exception("trajectory %d failed", ex.exec_id)
            completed, reason = False, f"error: {type(e).__name__}: {e}"
        self._cache_state()
        trace = self._trace(samples)
        with self._state_lock:
            ex.completed, ex.stopped_reason, ex.trace, ex.done = completed, reason, trace, True
        log.info("trajectory %d: %s after %.2f s wall, %d physics steps", ex.exec_id,
                 "completed" if completed else f"stopped ({reason})", time.monotonic() - t0, steps)

    def _settle_after_stop(self) -> int:
        """Engine thread: let the held arm and the objects settle; return the physics steps the arm kept moving."""
        moving = 0
        for k in range(int(round(POST_STOP_SETTLE_S / TIMESTEP_S))):
            self.world.step()
            states = p.getJointStates(self.world.robot_id, self.world.arm_idx, physicsClientId=self.client)
            if max(abs(s[1]) for s in states) > STILL_RAD_S:
                moving = k + 1
        return moving

    def _not_reached(self, traj: JointTrajectory) -> str | None:
        """None when every arm joint ended within reach_tol_rad of the last waypoint, else why not."""
        err = np.abs(self.world.joint_pos_rad() - traj.joint_pos_rad[-1])
        tol = self.spec.limits.reach_tol_rad
        if err.max() <= tol:
            return None
        j = int(np.argmax(err))
        return f"not_reached: joint {j} ended {err[j]:.3f} rad from its last waypoint (tolerance {tol:g} rad)"

    def _trace(self, samples: list[tuple[np.ndarray, np.ndarray, float]]) -> JointStateTrace:
        """The recorded physics steps as the torque sensor would have measured them."""
        if len(samples) >= MAX_TRACE_SAMPLES:
            log.warning("trace truncated to its first %d samples", MAX_TRACE_SAMPLES)
        dof = len(self.world.arm_idx)
        q = np.array([s[0] for s in samples]).reshape(-1, dof)
        tau = np.array([s[1] for s in samples]).reshape(-1, dof)
        tau = tau + self._effort_bias + self._effort_rng.normal(0.0, EFFORT_NOISE_NM, size=tau.shape)
        t = np.arange(1, len(samples) + 1) * TIMESTEP_S
        return JointStateTrace(t, q, tau, np.array([s[2] for s in samples]))


# ---------------------------------------------------------------- process entry
def main(argv: list[str] | None = None) -> int:
    return run_lab_process(argv, "python -m robot_io.simlab", __doc__.split("\n\n")[0], "simlab",
                           LabSpec.from_json_file, SimLab, (LabSpecError, SpecError))


if __name__ == "__main__":
    raise SystemExit(main())
