"""The LIBERO lab: LIBERO's task (robosuite on MuJoCo) behind the sim lab's socket protocol.

    <LIBERO venv>/python -m robot_io.libero.lab --spec LIBERO_LAB_SPEC.json --secret-fd FD --seed N [--port 0]

It runs inside the LIBERO virtual environment (`make libero`), builds the task's LIBERO environment, sets the
N-th official initial state (with the fixtures that state does not cover placed from a generator seeded with
N), lets it settle as LIBERO's evaluations do, prints one line `{"port": P}` on
stdout, and then answers the same requests as `robot_io.simlab` (hello, observe, execute, status, trace, stop,
heartbeat, shutdown, evaluate), so `SimRobot` drives it without knowing which lab it is:

- The lab's world frame is the robot base (as a calibrated real arm reports it): cameras, TCP and truth are
  re-expressed there from MuJoCo's world.
- observe: the chosen cameras rendered on demand (rows flipped to top-first, depth in metres), the project's
  sensor model (`sim.camera.apply_sensor_model`) applied with the spec's noise fields, K and T_world_camera
  in the OpenCV frame; joint positions, gripper width (finger separation), the TCP pose (robosuite's grip
  site, expressed in the robot config's TCP convention) and the controller's joint torques with sensor noise.
- execute: the joint path is resampled to the controller's 50 ms period and followed with robosuite's
  JOINT_POSITION controller (kp 300, output_max 0.5 rad) through LIBERO's own env.step; the gripper is binary
  (open only for a commanded width of at least 95% of the opening, the project's rule).
  env.step's reward and `done` are dropped here: they are LIBERO's success check.
- evaluate (evaluation code only): LIBERO's check_success on the live state, object poses, the grasped object;
  each evaluation also goes to the lab's log, so a failed episode's end state can be read afterwards.
The engine/handler threading, the watchdog and the request handling are the sim lab's (`SimLab`), and so is
the front door (`robot_io.lab_server`): the session secrets arrive on the inherited pipe FD (`--secret-fd`,
written by `launch_libero_lab` through `robot_io.sim_robot.spawn_lab`) and every connection authenticates
(control or evaluate role) before anything else.

Controller limits are delegated: this lab announces no `limits` in hello and does not run the sim lab's
`robot_io.lab_limits` checks (those need the sim lab's PyBullet world). robosuite's JOINT_POSITION controller
bounds every commanded step itself (`output_max`, see robot_io/libero/controller.py), and `_check_trajectory`
refuses a path outside the joint limits or the gripper range. The planner's side is unchanged: SimRobot's
safety envelope keeps its own configured limits, as with any lab that announces none.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from robot_io.lab_auth import LabSecrets
from robot_io.lab_server import LabServer, run_lab_process
from robot_io.labspec import LabSpecError
from robot_io.libero.cameras import T_world_camera_cv, depth_buffer_to_m, flip_rows, intrinsics
from robot_io.libero.controller import CONTROL_PERIOD_S, arm_action, gripper_action, resample
from robot_io.libero.spec import LiberoLabSpec
from robot_io.observation import CameraFrame, JointStateTrace, Observation
from robot_io.simlab import EFFORT_BIAS_NM, EFFORT_NOISE_NM, FEATURES, PROTOCOL_VERSION, SimLab, _Execution
from robot_io.trajectory import JointTrajectory
from sim.camera import apply_sensor_model

log = logging.getLogger("robot_io.libero.lab")

# robosuite's grip site sits on the approach axis like the config's TCP, turned -90 deg about it; turning it
# back gives the TCP frame the planner's twin computes (checked against PyBullet FK in the integration test).
R_SITE_TCP = Rotation.from_euler("z", 90.0, degrees=True).as_matrix()
FINAL_HOLD_STEPS = 12          # control steps the last waypoint is held for the arm and gripper to get there
HOLD_TOL_RAD = 0.003
CAMERA_POSE_WARN_M = 0.005


def _pose_matrix(xpos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.asarray(xmat, dtype=float).reshape(3, 3)
    T[:3, 3] = xpos
    return T


def _pose_dict(T: np.ndarray) -> dict[str, list[float]]:
    return {"xyz": [float(v) for v in T[:3, 3]],
            "quat_xyzw": [float(v) for v in Rotation.from_matrix(T[:3, :3]).as_quat()]}


class LiberoLab(SimLab):
    """A LIBERO task as a lab. Build it on the thread that then calls `serve` (MuJoCo's EGL context is bound to
    the thread that created it); everything that touches MuJoCo runs on that engine thread, as in SimLab."""

    def __init__(self, spec: LiberoLabSpec, seed: int, secrets: LabSecrets) -> None:
        # SimLab.__init__ builds a PyBullet world this lab does not have: only its front door is initialised.
        LabServer.__init__(self, secrets)
        from libero.libero.benchmark import get_benchmark_dict
        from robosuite.utils.errors import RandomizationError

        from robot_io.libero.envs import make_env

        self.spec, self.seed = spec, int(seed)
        t0 = time.monotonic()
        states = get_benchmark_dict()[spec.suite]().get_task_init_states(spec.task_id)
        if not 0 <= self.seed < len(states):
            raise LabSpecError(f"seed {self.seed}: {spec.suite} task {spec.task_id} has {len(states)} official "
                               f"initial states (seeds 0..{len(states) - 1})")
        width = max(c.width for c in spec.cameras)
        height = max(c.height for c in spec.cameras)
        # reset() places the fixtures (cabinet, stove...) by drawing from numpy's global generator, and the official
        # initial state does not cover them (they have no joints): seeded, the same seed gives the same scene
        # (unseeded they moved up to 12 mm between two launches, and two runs of one episode differed)
        np.random.seed(self.seed)
        random.seed(self.seed)
        self.env = make_env(spec.bddl_path, spec.camera_names, width, height)
        for _ in range(20):
            try:
                self.env.reset()
                break
            except RandomizationError:
                continue
        sim = self.env.sim
        sim.set_state_from_flattened(states[self.seed])
        sim.forward()
        self.env._post_process()
        self.env._update_observables(force=True)
        self.robot = self.env.robots[0]
        self._arm_q = np.asarray(self.robot._ref_joint_pos_indexes)
        self._finger_q = np.asarray(self.robot._ref_gripper_joint_pos_indexes)
        self.control_steps = 0
        for _ in range(spec.settle_steps):
            self._step(self._joint_pos(), spec.robot.gripper_max_width_m)
        base = self.robot.robot_model.root_body
        # the lab's world: the robot base where the robot spec puts it (LIBERO-Spatial's base is 12 mm above its
        # table; libero_task sets base_pose so that the table top is z = 0, where the twin's table is)
        self.T_base_world = np.asarray(spec.robot.base_pose.matrix(), dtype=float) @ np.linalg.inv(
            _pose_matrix(sim.data.get_body_xpos(base), sim.data.get_body_xmat(base)))
        self._cam_ids = {}
        for cam in spec.cameras:
            try:
                self._cam_ids[cam.name] = sim.model.camera_name2id(cam.name)
            except ValueError as e:
                raise LabSpecError(f"camera {cam.name!r}: not in this LIBERO scene") from e
            T = self._T_base_camera(cam.name)
            if np.linalg.norm(T[:3, 3] - cam.T_world_camera_matrix[:3, 3]) > CAMERA_POSE_WARN_M:
                log.warning("camera %s: the task's pose differs from the scene's by %.1f mm; frames carry the "
                            "scene's", cam.name, 1000 * np.linalg.norm(T[:3, 3] - cam.T_world_camera_matrix[:3, 3]))
        self.initial_poses = self._object_poses()
        self._noise_rng = np.random.default_rng([self.seed, 1])
        self._effort_rng = np.random.default_rng([self.seed, 2])
        self._effort_bias = self._effort_rng.normal(0.0, EFFORT_BIAS_NM, size=len(self._arm_q))
        self._jobs: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._exec: _Execution | None = None
        self._exec_count = 0
        self._q_cache, self._g_cache = self._joint_pos(), self._gripper_width()
        self._protective_stop: str | None = None   # status field; robosuite's controller bounds the steps here
        log.info("LIBERO lab ready in %.2f s: %s task %d, initial state %d, %d camera(s)",
                 time.monotonic() - t0, spec.suite, spec.task_id, self.seed, len(spec.cameras))
        # the truth at the start, in lab.log only (never on the control channel): what the planner first saw
        log.info("initial objects %s", {n: [round(v, 3) for v in p["xyz"]] for n, p in self.initial_poses.items()})

    # ------------------------------------------------------------ MuJoCo state, engine thread only
    def _joint_pos(self) -> np.ndarray:
        return np.array(self.env.sim.data.qpos[self._arm_q], dtype=float)

    def _gripper_width(self) -> float:
        q = self.env.sim.data.qpos[self._finger_q]
        return float(q[0] - q[1])     # finger_joint1 opens to +0.04, finger_joint2 to -0.04

    def _T_base_camera(self, name: str) -> np.ndarray:
        i = self._cam_ids[name]
        return self.T_base_world @ T_world_camera_cv(self.env.sim.data.cam_xpos[i], self.env.sim.data.cam_xmat[i])

    def _tcp(self) -> np.ndarray:
        site = self.robot.eef_site_id if hasattr(self.robot, "eef_site_id") else None
        sid = site if isinstance(site, int | np.integer) else self.env.sim.model.site_name2id(
            self.robot.gripper.important_sites["grip_site"])
        T = self.T_base_world @ _pose_matrix(self.env.sim.data.site_xpos[sid], self.env.sim.data.site_xmat[sid])
        T[:3, :3] = T[:3, :3] @ R_SITE_TCP
        return T

    def _object_poses(self) -> dict[str, dict]:
        sim = self.env.sim
        out = {}
        for name, obj in self.env.objects_dict.items():
            T = _pose_matrix(sim.data.get_body_xpos(obj.root_body), sim.data.get_body_xmat(obj.root_body))
            out[name] = _pose_dict(self.T_base_world @ T)
        return out

    def _step(self, q_target: np.ndarray, width_m: float) -> None:
        action = np.concatenate([arm_action(q_target, self._joint_pos()),
                                 [gripper_action(width_m, self.spec.robot.gripper_max_width_m)]])
        self.env.step(action)       # (obs, reward, done, info): LIBERO's check; never leaves the lab
        self.control_steps += 1

    def _cache_state(self) -> None:
        q, g = self._joint_pos(), self._gripper_width()
        with self._state_lock:
            self._q_cache, self._g_cache = q, g

    def _measured_effort(self) -> np.ndarray:
        tau = np.asarray(getattr(self.robot, "torques", np.zeros(len(self._arm_q))), dtype=float)
        return tau + self._effort_bias + self._effort_rng.normal(0.0, EFFORT_NOISE_NM, size=tau.shape)

    # ------------------------------------------------------------ ops that differ from the sim lab
    def _op_hello(self, conn, msg: dict) -> dict[str, Any]:
        robot = self.spec.robot
        return {"protocol": PROTOCOL_VERSION, "robot": robot.name, "dof": robot.dof,
                "cameras": list(self.spec.camera_names), "robot_spec": robot.to_dict(),
                "control_period_s": CONTROL_PERIOD_S, "heartbeat_timeout_s": self.spec.heartbeat_timeout_s,
                "realtime_factor": self.spec.realtime_factor,
                "features": [f for f in FEATURES if f != "limits"]}   # limits delegated (module docstring)

    def _observe(self) -> Observation:
        sim = self.env.sim
        near, far = sim.model.stat.extent * sim.model.vis.map.znear, sim.model.stat.extent * sim.model.vis.map.zfar
        frames = []
        for cam in self.spec.cameras:
            rgb, depth = sim.render(camera_name=cam.name, width=cam.width, height=cam.height, depth=True)
            rgb, depth_m = flip_rows(rgb), flip_rows(depth_buffer_to_m(depth, near, far))
            fovy = float(sim.model.cam_fovy[self._cam_ids[cam.name]])
            rgb, depth_m = apply_sensor_model(rgb, depth_m, cam, self._noise_rng)
            frames.append(CameraFrame(cam.name, rgb, depth_m, intrinsics(fovy, cam.width, cam.height),
                                      self._T_base_camera(cam.name)))
        return Observation(tuple(frames), self._joint_pos(), self._gripper_width(), self._tcp(), time.time(),
                           joint_effort_nm=self._measured_effort())

    def _evaluate(self) -> dict[str, Any]:
        grasped = None
        for name, obj in self.env.objects_dict.items():
            try:
                if self.env._check_grasp(gripper=self.robot.gripper, object_geoms=obj.contact_geoms):
                    grasped = name
            except (AttributeError, TypeError, ValueError):
                break
        objects, success = self._object_poses(), bool(self.env._check_success())
        # the truth at each evaluation, in lab.log: why an episode failed, read after the run
        log.info("evaluate: success %s, grasped %s, gripper %.1f mm, tcp %s, objects %s", success, grasped,
                 1000 * self._gripper_width(), np.round(self._tcp()[:3, 3], 3).tolist(),
                 {n: np.round(o["xyz"], 3).tolist() for n, o in objects.items()})
        return {"objects": objects, "initial_objects": self.initial_poses, "success": success, "grasped": grasped,
                "joint_pos_rad": self._joint_pos().tolist(), "gripper_width_m": self._gripper_width(),
                "tcp_pose": _pose_dict(self._tcp()), "seed": self.seed, "control_steps": self.control_steps,
                "suite": self.spec.suite, "task_id": self.spec.task_id}

    def _check_trajectory(self, traj: JointTrajectory) -> None:
        robot = self.spec.robot
        q, g = traj.joint_pos_rad, traj.gripper_width_m
        if traj.dof != robot.dof:
            raise ValueError(f"trajectory has {traj.dof} joints, robot {robot.name} has {robot.dof}")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(g)) and np.isfinite(traj.dt_s)) or traj.dt_s <= 0:
            raise ValueError("trajectory contains NaN or inf, or dt_s <= 0")
        lo, hi = np.asarray(robot.joint_lower_rad), np.asarray(robot.joint_upper_rad)
        if np.any(q < lo - 1e-6) or np.any(q > hi + 1e-6):
            raise ValueError("trajectory leaves the joint limits")
        if np.any(g < -1e-6) or np.any(g > robot.gripper_max_width_m + 1e-6):
            raise ValueError(f"gripper widths must be within [0, {robot.gripper_max_width_m}] m")

    def _run(self, ex: _Execution, traj: JointTrajectory) -> None:
        """Engine thread: follow the resampled path one control period at a time, serving queued jobs between."""
        rf, timeout_s = self.spec.realtime_factor, self.spec.heartbeat_timeout_s
        q_path, g_path = resample(traj.joint_pos_rad, traj.gripper_width_m, traj.dt_s)
        t0 = time.monotonic()
        samples: list[tuple[np.ndarray, np.ndarray, float]] = []
        completed, reason = False, None
        try:
            n_hold = 0
            k = 0
            while True:
                if k >= len(q_path):
                    # hold the last waypoint until the arm is there (the gripper gets the same time to act)
                    if n_hold >= FINAL_HOLD_STEPS or (
                            n_hold >= 4 and np.max(np.abs(self._joint_pos() - q_path[-1])) < HOLD_TOL_RAD):
                        completed = True
                        break
                    n_hold += 1
                silent_s = time.monotonic() - ex.conn.last_rx_s
                if ex.abort is None and silent_s > timeout_s:
                    with self._state_lock:
                        if ex.abort is None:
                            ex.abort = "watchdog"
                    log.warning("watchdog: planner silent for %.2f s; arm stopped", silent_s)
                self._serve_jobs(t0 + k * CONTROL_PERIOD_S / rf - time.monotonic() if rf > 0 else 0.0)
                if ex.abort is not None:
                    reason = ex.abort
                    q_hold = self._joint_pos()
                    for _ in range(4):   # hold where it is (the binary gripper keeps its last command)
                        self._step(q_hold, float(g_path[min(k, len(g_path) - 1)]))
                    break
                i = min(k, len(q_path) - 1)
                self._step(q_path[i], float(g_path[i]))
                samples.append((self._joint_pos(), self._measured_effort(), self._gripper_width()))
                if k % 4 == 0:
                    self._cache_state()
                k += 1
        except Exception as e:  # noqa: BLE001 - reported as stopped_reason; the lab keeps serving
            log.exception("trajectory %d failed", ex.exec_id)
            completed, reason = False, f"error: {type(e).__name__}: {e}"
        self._cache_state()
        dof = len(self._arm_q)
        trace = JointStateTrace(np.arange(1, len(samples) + 1) * CONTROL_PERIOD_S,
                                np.array([s[0] for s in samples]).reshape(-1, dof),
                                np.array([s[1] for s in samples]).reshape(-1, dof),
                                np.array([s[2] for s in samples]))
        with self._state_lock:
            ex.completed, ex.stopped_reason, ex.trace, ex.done = completed, reason, trace, True
        log.info("trajectory %d: %s after %.2f s wall, %d control steps", ex.exec_id,
                 "completed" if completed else f"stopped ({reason})", time.monotonic() - t0, len(samples))

    def _close_engine(self) -> None:
        self.env.close()
        log.info("LIBERO lab shut down after %d control steps", self.control_steps)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    # LIBERO prints to stdout; run_lab_process keeps it for the port line alone
    return run_lab_process(argv, "python -m robot_io.libero.lab", __doc__.split("\n\n")[0], "liberolab",
                           LiberoLabSpec.from_json_file, LiberoLab, (LabSpecError, ValueError))


if __name__ == "__main__":
    raise SystemExit(main())
