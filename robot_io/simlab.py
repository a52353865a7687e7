"""The sim lab: a separate process that stands in for the real world until an arm is attached.

    python -m robot_io.simlab --spec LAB_SPEC.json --seed N [--port 0] [--host 127.0.0.1]

It builds the task's *true* scene (randomised per seed, the task's masses and friction) in its own
PyBullet DIRECT client, lets the objects settle, prints exactly one line `{"port": P}` on stdout and then
serves length-prefixed msgpack requests (`robot_io.protocol`), exposing only what real hardware would:

    hello      -> robot name, dof, camera names, robot spec, controller period, heartbeat timeout
    observe    -> Observation.to_msg(): every camera rendered with depth noise, joint/gripper/TCP state and
                  measured joint torques (the motors' applied torques with sensor noise and offset)
    execute    -> {trajectory: JointTrajectory.to_msg()} accepted and run asynchronously in a physics thread
    status     -> {executing, completed, stopped_reason, joint_pos_rad, gripper_width_m, exec_id}
    trace      -> {exec_id, trace: JointStateTrace.to_msg()}: the joint states of the last finished trajectory,
                  one sample per physics step (what libfranka / UR RTDE stream from a real arm)
    stop       -> abort the running trajectory, hold the arm where it is
    heartbeat  -> keep-alive (any message counts as one)
    shutdown   -> stop serving and exit
    evaluate   -> truth (object poses, success predicate, grasped object); only LabEvaluator sends it

Watchdog: while a trajectory runs, the connection that sent it must send something at least every
`heartbeat_timeout_s`; otherwise the lab aborts the motion, holds the arm and reports
stopped_reason="watchdog" (a killed or frozen planner must not leave an arm moving).

Threads: the main thread owns the PyBullet client (the *engine*: physics, rendering, truth); one thread
accepts connections and one handler thread per connection decodes requests and hands PyBullet work to the
engine through a queue. The engine answers that work between physics steps while a trajectory runs, so
the client is only ever used by one thread (a plain lock is not enough: the EGL renderer's GL context is
bound to the thread that created it).
Logs go to stderr; C-level prints from PyBullet/EGL are redirected there too so stdout stays clean.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pybullet as p
from scipy.spatial.transform import Rotation

from robot_io.errors import ConnectionLostError
from robot_io.labspec import LabSpec, LabSpecError, Randomize
from robot_io.observation import CameraFrame, JointStateTrace, Observation
from robot_io.protocol import ProtocolError, recv_msg, send_msg
from robot_io.trajectory import JointTrajectory
from sim.camera import render_rgbd
from sim.geometry import Pose
from sim.predicates import evaluate as evaluate_predicate
from sim.scene import SceneSpec, SpecError
from sim.world import TIMESTEP_S, World

log = logging.getLogger("robot_io.simlab")

PROTOCOL_VERSION = 1
OPS = ("hello", "observe", "execute", "status", "stop", "heartbeat", "shutdown", "evaluate", "trace")
FEATURES = ("joint_effort", "trace")   # announced in hello: measured torques in observe, the trace op
MIN_GAP_M = 0.01             # randomised objects keep at least this much xy space between their AABBs
MAX_LAYOUT_TRIES = 200
POST_STOP_SETTLE_S = 0.2     # simulated time the held arm and the objects get after an abort
LIMIT_TOL_RAD = 1e-6
ENGINE_TIMEOUT_S = 60.0     # a handler gives up waiting for the engine after this long
MAX_WAYPOINTS = 1_000_000
# Joint torque "sensor": PyBullet's applied motor torque plus white noise per sample and a constant offset per
# joint (drawn once per seed), the two errors a real torque sensor or current-based estimate has.
EFFORT_NOISE_NM = 0.05
EFFORT_BIAS_NM = 0.1
MAX_TRACE_SAMPLES = 200_000   # ~14 min at 240 Hz; longer motions keep their first samples (logged)


# ---------------------------------------------------------------- per-seed randomisation
def _xy_gap_m(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Separation of two AABBs in the xy plane (negative when their footprints overlap)."""
    gap_x = max(b[0][0] - a[1][0], a[0][0] - b[1][0])
    gap_y = max(b[0][1] - a[1][1], a[0][1] - b[1][1])
    return float(max(gap_x, gap_y))


def _groups(names: list[str], touching: set[tuple[str, str]]) -> list[list[str]]:
    """Connected components of the 'footprints already overlap in the task' relation (stacks, nests)."""
    parent = {n: n for n in names}

    def root(n: str) -> str:
        while parent[n] != n:
            n = parent[n]
        return n

    for a, b in touching:
        parent[root(a)] = root(b)
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(root(n), []).append(n)
    return list(out.values())


def randomize_scene(scene: SceneSpec, randomize: Randomize, seed: int) -> SceneSpec:
    """Jitter every movable object's xy within +-xy_m and yaw within +-yaw_deg, deterministically per seed.

    Objects whose footprints already overlap in the task (a block standing on another) form a group that
    moves as one rigid piece, so a stack stays a stack. Layouts in which two groups come closer than
    MIN_GAP_M in xy are resampled; after MAX_LAYOUT_TRIES the task's own layout is kept (logged).
    """
    movable = [o.name for o in scene.objects if not o.fixed]
    if not movable or (randomize.xy_m == 0 and randomize.yaw_deg == 0):
        return scene
    rng = np.random.default_rng(seed)
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, scene)
        names = [o.name for o in scene.objects]
        p.performCollisionDetection(physicsClientId=client)
        boxes = {n: world.object_aabb(n) for n in names}
        touching = {(a, b) for i, a in enumerate(names) for b in names[i + 1:]
                    if _xy_gap_m(boxes[a], boxes[b]) < MIN_GAP_M}
        groups = _groups(names, touching)
        for attempt in range(MAX_LAYOUT_TRIES):
            poses: dict[str, Pose] = {}
            for group in groups:
                # Draw for every group (fixed ones too) so a seed gives the same layout whatever is fixed.
                d_xy = rng.uniform(-randomize.xy_m, randomize.xy_m, size=2)
                d_yaw = float(rng.uniform(-randomize.yaw_deg, randomize.yaw_deg))
                if any(scene.object(n).fixed for n in group):
                    continue
                R = Rotation.from_euler("z", d_yaw, degrees=True)
                centre = np.mean([scene.object(n).pose.position for n in group], axis=0)
                for n in group:
                    pose = scene.object(n).pose
                    xyz = centre + R.apply(pose.position - centre)
                    xyz[:2] += d_xy
                    quat = (R * Rotation.from_quat(pose.quat_xyzw)).as_quat()
                    poses[n] = Pose(tuple(xyz), tuple(quat))
            for n, pose in poses.items():
                p.resetBasePositionAndOrientation(world.body_ids[n], pose.xyz, pose.quat_xyzw,
                                                  physicsClientId=client)
            p.performCollisionDetection(physicsClientId=client)
            boxes = {n: world.object_aabb(n) for n in names}
            clash = next(((a, b) for gi, ga in enumerate(groups) for gb in groups[gi + 1:]
                          for a in ga for b in gb if _xy_gap_m(boxes[a], boxes[b]) < MIN_GAP_M), None)
            if clash is None:
                log.info("seed %d: randomised layout found after %d tr%s", seed, attempt + 1,
                         "y" if attempt == 0 else "ies")
                return replace(scene, objects=tuple(
                    replace(o, pose=poses.get(o.name, o.pose)) for o in scene.objects))
        log.warning("seed %d: no randomised layout keeps %.0f cm between objects after %d tries; "
                    "using the task's layout", seed, MIN_GAP_M * 100, MAX_LAYOUT_TRIES)
        return scene
    finally:
        p.disconnect(physicsClientId=client)


# ---------------------------------------------------------------- the lab
@dataclass
class _Conn:
    sock: socket.socket
    peer: str
    last_rx_s: float = field(default_factory=time.monotonic)


@dataclass
class _Execution:
    exec_id: int
    conn: _Conn
    abort: str | None = None
    done: bool = False
    completed: bool = False
    stopped_reason: str | None = None
    trace: JointStateTrace | None = None


class SimLab:
    """The lab's world and request handling.

    Build it on the thread that will own PyBullet (the EGL renderer's GL context belongs to the thread that
    loaded it, and rendering from any other thread crashes the process), then call `serve(server)` on that
    same thread: it runs the *engine loop* there while connections are handled on their own threads.
    Handlers never touch PyBullet; they hand work to the engine (`_on_engine`) and wait for the answer.
    A running trajectory keeps serving that work between physics steps, so observe/evaluate answer while
    the arm moves, and the client is never used by two threads at once.
    """

    def __init__(self, spec: LabSpec, seed: int, fast_render: bool = True) -> None:
        self.spec = spec
        self.seed = int(seed)
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
        self._state_lock = threading.Lock()       # execution bookkeeping and the cached arm state
        self._exec: _Execution | None = None
        self._exec_count = 0
        self._q_cache = self.world.joint_pos_rad()
        self._g_cache = self.world.gripper_width_m()
        self._shutdown = threading.Event()
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
    def serve(self, server: socket.socket) -> None:
        """Serve until a shutdown request: accept connections on a thread, run the engine loop here."""
        acceptor = threading.Thread(target=self._accept_loop, args=(server,), name="accept", daemon=True)
        acceptor.start()
        try:
            while not self._shutdown.is_set():
                self._serve_jobs(0.1)
        finally:
            self._shutdown.set()
            acceptor.join(timeout=2.0)
            server.close()
            p.disconnect(physicsClientId=self.client)
            log.info("lab shut down")

    def _accept_loop(self, server: socket.socket) -> None:
        server.settimeout(0.2)
        while not self._shutdown.is_set():
            try:
                sock, addr = server.accept()
            except TimeoutError:
                continue
            except OSError as e:
                if not self._shutdown.is_set():
                    log.error("accept failed: %s; shutting down", e)  # noqa: TRY400
                    self._shutdown.set()
                return
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, f"{addr[0]}:{addr[1]}")
            threading.Thread(target=self._serve_conn, args=(conn,), name=f"conn-{conn.peer}",
                             daemon=True).start()

    def _serve_conn(self, conn: _Conn) -> None:
        log.info("connection from %s", conn.peer)
        try:
            while not self._shutdown.is_set():
                try:
                    msg = recv_msg(conn.sock)
                except ConnectionLostError as e:
                    log.info("connection from %s closed: %s", conn.peer, e)
                    break
                except ProtocolError as e:
                    log.warning("dropping connection from %s: %s", conn.peer, e)
                    break
                conn.last_rx_s = time.monotonic()
                reply = self.handle(conn, msg)
                try:
                    send_msg(conn.sock, reply)
                except ConnectionLostError as e:
                    log.info("connection from %s closed while replying: %s", conn.peer, e)
                    break
                if isinstance(msg, dict) and msg.get("op") == "shutdown" and reply.get("ok"):
                    self._shutdown.set()
        finally:
            conn.sock.close()
            ex = self._exec
            if ex is not None and ex.conn is conn and not ex.done:
                log.warning("the planner connection closed while trajectory %d runs; the watchdog stops the "
                            "arm within %.2f s", ex.exec_id, self.spec.heartbeat_timeout_s)

    def handle(self, conn: _Conn, msg: Any) -> dict[str, Any]:
        """Answer one request; errors become {"ok": False, "error": ...} and never end the lab."""
        if not isinstance(msg, dict) or not isinstance(msg.get("op"), str):
            return {"ok": False, "error": "expected a mapping with a string field 'op'"}
        op = msg["op"]
        if op not in OPS:
            return {"ok": False, "error": f"unknown op {op!r}; expected one of {list(OPS)}"}
        try:
            return {"ok": True, "op": op, **getattr(self, f"_op_{op}")(conn, msg)}
        except (ValueError, TypeError, KeyError, ProtocolError) as e:
            return {"ok": False, "op": op, "error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001 - a bug in one request must not take the "real world" down
            log.exception("request %r failed", op)
            return {"ok": False, "op": op, "error": f"internal lab error: {type(e).__name__}: {e}"}

    # ------------------------------------------------------------ ops
    def _op_hello(self, conn: _Conn, msg: dict) -> dict[str, Any]:
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
        }

    def _op_heartbeat(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        return {}

    def _op_observe(self, conn: _Conn, msg: dict) -> dict[str, Any]:
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

    def _op_status(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        with self._state_lock:
            ex = self._exec
            return {
                "executing": ex is not None and not ex.done,
                "exec_id": None if ex is None else ex.exec_id,
                "completed": ex is not None and ex.done and ex.completed,
                "stopped_reason": None if ex is None else ex.stopped_reason,
                "joint_pos_rad": self._q_cache.copy(),
                "gripper_width_m": float(self._g_cache),
            }

    def _op_stop(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        return {"was_executing": self._abort("stop")}

    def _op_shutdown(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        log.info("shutdown requested by %s", conn.peer)
        self._abort("shutdown")
        return {}

    def _op_execute(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        if "trajectory" not in msg:
            raise ValueError("execute needs a field 'trajectory' (JointTrajectory.to_msg())")
        traj = JointTrajectory.from_msg(msg["trajectory"])
        self._check_trajectory(traj)
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

    def _op_trace(self, conn: _Conn, msg: dict) -> dict[str, Any]:
        with self._state_lock:
            ex = self._exec
        if ex is None:
            raise ValueError("no trajectory has run yet; nothing was recorded")
        if not ex.done:
            raise ValueError(f"trajectory {ex.exec_id} is still executing; ask for its trace when it is done")
        if ex.trace is None:
            raise ValueError(f"trajectory {ex.exec_id} left no trace")
        return {"exec_id": ex.exec_id, "trace": ex.trace.to_msg()}

    def _op_evaluate(self, conn: _Conn, msg: dict) -> dict[str, Any]:
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
        """The lab's own controller checks, like a real arm's: it never trusts the client's envelope."""
        robot = self.spec.scene.robot
        q, g = traj.joint_pos_rad, traj.gripper_width_m
        if traj.dof != robot.dof:
            raise ValueError(f"trajectory has {traj.dof} joints, robot {robot.name} has {robot.dof}")
        if traj.n_waypoints > MAX_WAYPOINTS:
            raise ValueError(f"trajectory has {traj.n_waypoints} waypoints, more than {MAX_WAYPOINTS}")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(g)) and np.isfinite(traj.dt_s)):
            raise ValueError("trajectory contains NaN or inf")
        if traj.dt_s <= 0:
            raise ValueError(f"dt_s must be > 0, got {traj.dt_s}")
        lo, hi = np.asarray(robot.joint_lower_rad), np.asarray(robot.joint_upper_rad)
        if np.any(q < lo - LIMIT_TOL_RAD) or np.any(q > hi + LIMIT_TOL_RAD):
            raise ValueError("trajectory leaves the joint limits")
        if np.any(g < -LIMIT_TOL_RAD) or np.any(g > robot.gripper_max_width_m + LIMIT_TOL_RAD):
            raise ValueError(f"gripper widths must be within [0, {robot.gripper_max_width_m}] m")

    def _abort(self, reason: str) -> bool:
        with self._state_lock:
            ex = self._exec
            if ex is None or ex.done or ex.abort is not None:
                return ex is not None and not ex.done
            ex.abort = reason
        log.info("trajectory %d: abort requested (%s)", ex.exec_id, reason)
        return True

    def _run(self, ex: _Execution, traj: JointTrajectory) -> None:
        """Engine thread: execute the trajectory; between physics steps serve queued jobs and pace time."""
        rf = self.spec.realtime_factor
        timeout_s = self.spec.heartbeat_timeout_s
        steps = 0
        t0 = time.monotonic()

        def should_stop() -> str | None:
            nonlocal steps
            steps += 1
            if steps % 4 == 0:
                self._cache_state()
            silent_s = time.monotonic() - ex.conn.last_rx_s
            if ex.abort is None and silent_s > timeout_s:
                with self._state_lock:
                    if ex.abort is None:
                        ex.abort = "watchdog"
                log.warning("watchdog: planner silent for %.2f s; arm stopped", silent_s)
            if ex.abort is not None:
                return ex.abort
            # Observe/evaluate requests are answered between steps; with rf > 0 that is also how we wait.
            self._serve_jobs(t0 + steps * TIMESTEP_S / rf - time.monotonic() if rf > 0 else 0.0)
            return ex.abort

        samples: list[tuple[np.ndarray, np.ndarray, float]] = []

        def record() -> None:
            if len(samples) < MAX_TRACE_SAMPLES:
                states = p.getJointStates(self.world.robot_id, self.world.arm_idx, physicsClientId=self.client)
                samples.append((np.array([s[0] for s in states]), np.array([s[3] for s in states]),
                                self.world.gripper_width_m()))

        completed, reason = False, None
        try:
            result = self.world.execute_joint_path(traj.joint_pos_rad, traj.gripper_width_m, traj.dt_s,
                                                   should_stop=should_stop, on_step=record)
            completed, reason = result.completed, result.stopped_reason
            if not completed:
                # execute_joint_path already commands the arm to hold its current position.
                self.world.step(int(round(POST_STOP_SETTLE_S / TIMESTEP_S)))
        except Exception as e:  # noqa: BLE001 - reported to the planner as stopped_reason, lab keeps serving
            log.exception("trajectory %d failed", ex.exec_id)
            completed, reason = False, f"error: {type(e).__name__}: {e}"
        self._cache_state()
        trace = self._trace(samples)
        with self._state_lock:
            ex.completed, ex.stopped_reason, ex.trace, ex.done = completed, reason, trace, True
        log.info("trajectory %d: %s after %.2f s wall, %d physics steps", ex.exec_id,
                 "completed" if completed else f"stopped ({reason})", time.monotonic() - t0, steps)


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
    parser = argparse.ArgumentParser(prog="python -m robot_io.simlab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="LabSpec JSON file (LabSpec.to_dict())")
    parser.add_argument("--seed", type=int, default=None,
                        help="randomisation seed (default: the spec's seed)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s simlab[%(process)d] %(levelname)s %(message)s")
    # stdout carries exactly one line, {"port": P}. PyBullet and its EGL plugin print from C, so point fd 1
    # at stderr and keep a private copy of the real stdout for that line.
    sys.stdout.flush()
    port_fd = os.dup(1)
    os.dup2(2, 1)
    try:
        spec = LabSpec.from_json_file(args.spec)
        lab = SimLab(spec, spec.seed if args.seed is None else args.seed)
    except (OSError, LabSpecError, SpecError) as e:
        log.error("cannot start the lab: %s", e)  # noqa: TRY400 - a bad spec needs no traceback
        return 2
    server = socket.create_server((args.host, args.port))
    port = server.getsockname()[1]
    os.write(port_fd, (json.dumps({"port": port}) + "\n").encode())
    os.close(port_fd)
    log.info("listening on %s:%d", args.host, port)
    lab.serve(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
