"""A PyBullet world built from a SceneSpec: the twin the planner simulates in, and the lab's truth.

The same class serves both, so "does this trajectory work?" is answered by the same physics code that the
lab uses to judge success. The client is always passed in; a World never creates or owns a global client.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pybullet as p
import pybullet_data

from configs import did_you_mean
from sim import grasp
from sim.bodies import link_T_com, load_object, mesh_dir_for, same_model
from sim.camera import load_fast_renderer
from sim.collisions import CollisionQueries
from sim.finger_contacts import finger_lever_m, squeezed_bodies
from sim.geometry import Pose
from sim.kinematics import KinematicQueries
from sim.rollout import ROBOT, TABLE, Candidate, Rollout, plan_joint_path, simulate
from sim.scene import SceneSpec, SpecError

log = logging.getLogger(__name__)

TIMESTEP_S = 1.0 / 240.0


@dataclass(frozen=True)
class ExecResult:
    completed: bool
    stopped_reason: str | None
    ee_path_xyz: np.ndarray
    steps: int


class World(KinematicQueries, CollisionQueries):
    """Robot, table (the plane z = 0) and objects in one PyBullet client."""

    def __init__(self, client: int, scene: SceneSpec, robot_id: int, body_ids: dict[str, int],
                 table_id: int, renderer: int = p.ER_TINY_RENDERER, mesh_dir: str | None = None) -> None:
        self.client = client
        self.mesh_dir = mesh_dir      # OBJ files of mesh objects; removed by close()
        self.spec = scene
        self.robot_id = robot_id
        self.body_ids = dict(body_ids)
        self.table_id = table_id
        self.renderer = renderer
        self._names = {v: k for k, v in body_ids.items()}
        self._names[table_id] = TABLE
        robot = scene.robot
        joints = {}
        links = {}
        for j in range(p.getNumJoints(robot_id, physicsClientId=client)):
            info = p.getJointInfo(robot_id, j, physicsClientId=client)
            joints[info[1].decode()] = j
            links[info[12].decode()] = j
        for field_name in ("arm_joints", "finger_joints"):
            missing = [n for n in getattr(robot, field_name) if n not in joints]
            if missing:
                raise SpecError(f"robot '{robot.name}'", field_name, f"joint names of {robot.urdf}", missing,
                                hint=did_you_mean(missing[0], joints))
        if robot.ee_link not in links:
            raise SpecError(f"robot '{robot.name}'", "ee_link", f"a link of {robot.urdf}", robot.ee_link,
                            hint=did_you_mean(robot.ee_link, links))
        self.arm_idx = [joints[n] for n in robot.arm_joints]
        self.finger_idx = [joints[n] for n in robot.finger_joints]
        self.ee_idx = links[robot.ee_link]
        self.movable_idx = [j for j in range(p.getNumJoints(robot_id, physicsClientId=client))
                            if p.getJointInfo(robot_id, j, physicsClientId=client)[2] != p.JOINT_FIXED]
        self.lower = np.asarray(robot.joint_lower_rad)
        self.upper = np.asarray(robot.joint_upper_rad)
        # PyBullet's null-space IK ignores limit lists unless they cover every movable joint (fingers too).
        self._ik_lower, self._ik_upper = [], []
        for j in self.movable_idx:
            info = p.getJointInfo(robot_id, j, physicsClientId=client)
            if j in self.arm_idx:
                k = self.arm_idx.index(j)
                lo, hi = self.lower[k], self.upper[k]
            else:
                lo, hi = (info[8], info[9]) if info[9] > info[8] else (-2 * np.pi, 2 * np.pi)
            self._ik_lower.append(float(lo))
            self._ik_upper.append(float(hi))
        self._ik_ranges = [hi - lo for lo, hi in zip(self._ik_lower, self._ik_upper)]
        self._open = np.asarray(robot.finger_open_pos)
        self._closed = np.asarray(robot.finger_closed_pos)
        # Everything past the last arm joint (flange, hand, fingers) may touch the object being handled.
        self._finger_links = set(range(max(self.arm_idx) + 1, p.getNumJoints(robot_id, physicsClientId=client)))
        # a turn of the hand by angle a moves its farthest finger by a * lever (IK's pose error)
        self.orientation_lever_m = finger_lever_m(client, robot_id, self.finger_idx, self.tcp_pose().position,
                                                  robot.gripper_max_width_m)
        self._grasp: tuple[str, int] | None = None
        self._gripper_target_m = robot.gripper_max_width_m
        self.last_drop_m = 0.0    # how far the last released object was above whatever is below it

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_scene(cls, client: int, scene: SceneSpec, fast_render: bool = False) -> World:
        """Build the scene into an empty client. fast_render loads the EGL renderer first (it only sees bodies
        created after it is loaded): ~5x faster than TinyRenderer, exact depth (TinyRenderer's is off by mm).
        """
        renderer = load_fast_renderer(client) if fast_render else p.ER_TINY_RENDERER
        p.setGravity(0, 0, -9.81, physicsClientId=client)
        p.setTimeStep(TIMESTEP_S, physicsClientId=client)
        table_id = p.loadURDF(f"{pybullet_data.getDataPath()}/plane.urdf", physicsClientId=client)
        p.changeVisualShape(table_id, -1, rgbaColor=(0.72, 0.62, 0.5, 1), physicsClientId=client)
        robot = scene.robot
        robot_id = p.loadURDF(robot.urdf, robot.base_pose.xyz, robot.base_pose.quat_xyzw, useFixedBase=True,
                              physicsClientId=client)
        mesh_dir = mesh_dir_for(scene.objects, None)
        body_ids = {obj.name: load_object(client, obj, mesh_dir) for obj in scene.objects}
        world = cls(client, scene, robot_id, body_ids, table_id, renderer, mesh_dir)
        for j in world.finger_idx:
            p.changeDynamics(robot_id, j, lateralFriction=1.5, physicsClientId=client)
        q = np.asarray(scene.joint_pos_rad if scene.joint_pos_rad is not None else robot.home_joint_pos_rad)
        world.set_joint_pos(q)
        width = robot.gripper_max_width_m if scene.gripper_width_m is None else scene.gripper_width_m
        world.set_gripper_width(width)
        if scene.grasped is not None:
            world._attach(scene.grasped)
        return world

    def close(self) -> None:
        """Delete this world's mesh files (the client belongs to the caller and stays connected)."""
        if self.mesh_dir is not None:
            shutil.rmtree(self.mesh_dir, ignore_errors=True)
            self.mesh_dir = None

    def update_scene(self, scene: SceneSpec) -> None:
        """Move this world to a new scene with the same robot, reusing loaded bodies where the model is unchanged.

        Rebuilding from scratch costs ~0.25 s (the robot's meshes); an MPC step re-poses instead.
        """
        if scene.robot != self.spec.robot:
            raise ValueError("update_scene needs the same robot; build a new World for another robot")
        self._detach()
        old = {o.name: o for o in self.spec.objects}
        keep = {}
        for obj in scene.objects:
            prev = old.get(obj.name)
            if prev is not None and same_model(prev, obj):
                body = self.body_ids[obj.name]
                com = obj.pose @ link_T_com(self.client, body)
                p.resetBasePositionAndOrientation(body, com.xyz, com.quat_xyzw, physicsClientId=self.client)
                p.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), physicsClientId=self.client)
                keep[obj.name] = body
        for name, body in self.body_ids.items():
            if name not in keep:
                p.removeBody(body, physicsClientId=self.client)
        self.mesh_dir = mesh_dir_for([o for o in scene.objects if o.name not in keep], self.mesh_dir)
        self.body_ids = {o.name: keep[o.name] if o.name in keep else load_object(self.client, o, self.mesh_dir)
                         for o in scene.objects}
        self._names = {v: k for k, v in self.body_ids.items()}
        self._names[self.table_id] = TABLE
        self.spec = scene
        robot = scene.robot
        self.set_joint_pos(np.asarray(scene.joint_pos_rad if scene.joint_pos_rad is not None
                                      else robot.home_joint_pos_rad))
        self.set_gripper_width(robot.gripper_max_width_m if scene.gripper_width_m is None else scene.gripper_width_m)
        if scene.grasped is not None:
            self._attach(scene.grasped)

    # ---------------------------------------------------------------- state
    def name_of(self, body_id: int) -> str:
        return ROBOT if body_id == self.robot_id else self._names.get(body_id, f"body{body_id}")

    def joint_pos_rad(self) -> np.ndarray:
        states = p.getJointStates(self.robot_id, self.arm_idx, physicsClientId=self.client)
        return np.array([s[0] for s in states])

    def set_joint_pos(self, q) -> None:
        """Teleport the arm (no dynamics) and make the motors hold there."""
        q = np.asarray(q, dtype=float)
        if q.shape != (len(self.arm_idx),):
            raise ValueError(f"expected {len(self.arm_idx)} joint positions, got shape {q.shape}")
        for j, v in zip(self.arm_idx, q):
            p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)
        self._command_arm(q)

    def gripper_width_m(self) -> float:
        if not self.finger_idx:   # an arm without finger joints (a UR's flange): the width is what was commanded
            return self._gripper_target_m
        pos = np.array([s[0] for s in p.getJointStates(self.robot_id, self.finger_idx, physicsClientId=self.client)])
        return float(self._finger_to_width(pos))

    def set_gripper_width(self, width_m: float) -> None:
        pos = self._width_to_finger(width_m)
        for j, v in zip(self.finger_idx, pos):
            p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)
        self._command_gripper(width_m)

    def _width_to_finger(self, width_m: float) -> np.ndarray:
        frac = np.clip(width_m / self.spec.robot.gripper_max_width_m, 0.0, 1.0)
        return self._closed + frac * (self._open - self._closed)

    def _finger_to_width(self, pos: np.ndarray) -> float:
        span = self._open - self._closed
        k = int(np.argmax(np.abs(span)))
        frac = (pos[k] - self._closed[k]) / span[k]
        return float(np.clip(frac, 0.0, 1.0) * self.spec.robot.gripper_max_width_m)

    def _command_arm(self, q) -> None:
        # One call per joint: only setJointMotorControl2 takes maxVelocity, which keeps the simulated motors
        # within the robot's joint speed limits whatever they are asked to do (as a real arm's drives are).
        for j, target, v_max in zip(self.arm_idx, q, self.spec.robot.max_joint_speed_rad_s):
            force = p.getJointInfo(self.robot_id, j, physicsClientId=self.client)[10] or 100.0
            p.setJointMotorControl2(self.robot_id, j, p.POSITION_CONTROL, targetPosition=float(target), force=force,
                                    positionGain=0.3, maxVelocity=float(v_max), physicsClientId=self.client)

    def _command_gripper(self, width_m: float) -> None:
        self._gripper_target_m = float(width_m)
        pos = self._width_to_finger(width_m)
        force = self.spec.robot.finger_force_n
        p.setJointMotorControlArray(self.robot_id, self.finger_idx, p.POSITION_CONTROL, targetPositions=list(pos),
                                    forces=[force] * len(pos), physicsClientId=self.client)

    def tcp_pose(self) -> Pose:
        state = p.getLinkState(self.robot_id, self.ee_idx, computeForwardKinematics=True,
                               physicsClientId=self.client)
        return Pose(state[4], state[5]) @ self._link_T_tcp()

    def _link_T_tcp(self) -> Pose:
        return Pose(self.spec.robot.tcp_offset_xyz)

    @contextlib.contextmanager
    def _kinematic_probe(self) -> Iterator[None]:
        """Restore the arm joints after kinematic queries; cheaper than a full saveState (no physics runs)."""
        states = p.getJointStates(self.robot_id, self.arm_idx, physicsClientId=self.client)
        try:
            yield
        finally:
            for j, s in zip(self.arm_idx, states):
                p.resetJointState(self.robot_id, j, s[0], s[1], physicsClientId=self.client)

    def _reset_arm(self, q) -> None:
        for j, v in zip(self.arm_idx, q):
            p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)

    @property
    def gripper_target_m(self) -> float:
        """The width the gripper is commanded to (it may not have got there yet)."""
        return self._gripper_target_m

    def arm_motor_torques(self) -> np.ndarray:
        """(dof,) the torques the arm's motors applied in the last physics step."""
        states = p.getJointStates(self.robot_id, self.arm_idx, physicsClientId=self.client)
        return np.array([s[3] for s in states])

    def set_object_friction(self, name: str, friction: float) -> None:
        p.changeDynamics(self.body_ids[name], -1, lateralFriction=float(friction), physicsClientId=self.client)

    def fk(self, q) -> Pose:
        with self._kinematic_probe():
            self._reset_arm(q)
            return self.tcp_pose()

    def ik(self, target: Pose, q_seed=None, iterations: int = 4) -> tuple[np.ndarray, float]:
        """Joint positions reaching the TCP target pose; returns (q, pose error in metres). Restores the arm.

        Pose error: the larger of the position error and the orientation error times `orientation_lever_m` (how
        far a turned hand moves its farthest finger). The first pass is null-space IK (joint limits, posture near
        the seed); its null-space pull stops ~1 mm short, so later passes refine with damped least squares.
        """
        link_target = target @ self._link_T_tcp().inverse()
        R_target = target.rotation()
        with self._kinematic_probe():
            q = np.asarray(q_seed if q_seed is not None else self.joint_pos_rad(), dtype=float)
            states = p.getJointStates(self.robot_id, self.movable_idx, physicsClientId=self.client)
            rest = [float(q[self.arm_idx.index(j)]) if j in self.arm_idx else s[0]
                    for j, s in zip(self.movable_idx, states)]
            err = np.inf
            for it in range(iterations):
                self._reset_arm(q)
                null_space = {"lowerLimits": self._ik_lower, "upperLimits": self._ik_upper,
                              "jointRanges": self._ik_ranges, "restPoses": rest} if it == 0 else {}
                sol = p.calculateInverseKinematics(
                    self.robot_id, self.ee_idx, link_target.xyz, link_target.quat_xyzw,
                    maxNumIterations=60, residualThreshold=1e-5, physicsClientId=self.client, **null_space)
                full = dict(zip(self.movable_idx, sol))
                q = np.clip(np.array([full[j] for j in self.arm_idx]), self.lower, self.upper)
                self._reset_arm(q)
                reached = self.tcp_pose()
                angle = np.arccos(np.clip((np.trace(R_target.T @ reached.rotation()) - 1.0) / 2.0, -1.0, 1.0))
                err = max(float(np.linalg.norm(reached.position - target.position)), angle * self.orientation_lever_m)
                if err < 1e-3:
                    break
        return q, err

    def object_pose(self, name: str) -> Pose:
        """The object's URDF base-link frame (PyBullet reports the centre-of-mass frame; they differ by the
        link's inertial origin)."""
        body = self.body_ids[name]
        pos, quat = p.getBasePositionAndOrientation(body, physicsClientId=self.client)
        return Pose(pos, quat) @ link_T_com(self.client, body).inverse()

    def has_object(self, name: str) -> bool:
        return name in self.body_ids

    def object_aabb(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = p.getAABB(self.body_ids[name], physicsClientId=self.client)
        return np.asarray(lo), np.asarray(hi)

    def object_poses(self) -> dict[str, Pose]:
        return {name: self.object_pose(name) for name in self.body_ids}

    def grasped(self) -> str | None:
        return None if self._grasp is None else self._grasp[0]

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            p.stepSimulation(physicsClientId=self.client)

    # ---------------------------------------------------------------- grasping
    def _attach(self, name: str) -> None:
        body = self.body_ids[name]
        # constraint frames are relative to each body's centre of mass, not to its link frame
        T_world_parent = Pose(*p.getLinkState(self.robot_id, self.ee_idx, physicsClientId=self.client)[0:2])
        T_world_child = Pose(*p.getBasePositionAndOrientation(body, physicsClientId=self.client))
        T_link_obj = T_world_parent.inverse() @ T_world_child
        cid = p.createConstraint(self.robot_id, self.ee_idx, body, -1, p.JOINT_FIXED, (0, 0, 0),
                                 T_link_obj.xyz, (0, 0, 0), T_link_obj.quat_xyzw, (0, 0, 0, 1),
                                 physicsClientId=self.client)
        p.changeConstraint(cid, maxForce=300.0, physicsClientId=self.client)
        self._grasp = (name, cid)

    def _detach(self) -> None:
        if self._grasp is not None:
            p.removeConstraint(self._grasp[1], physicsClientId=self.client)
            self._grasp = None

    def _update_grasp(self) -> None:
        """Apply the held-object rule (`sim.grasp`) after a physics step: attach or let go.

        The fixed constraint stands in for a real gripper's friction grip, which PyBullet models poorly.
        """
        max_width = self.spec.robot.gripper_max_width_m
        if self._grasp is None and not grasp.gripper_closed(self._gripper_target_m, max_width):
            # commanded open, nothing held: nothing can be taken (closing onto a held width needs a closed target),
            # so skip the joint-state query, which rollouts would otherwise pay on every physics step
            return
        width = self.gripper_width_m()
        if self._grasp is not None:
            if grasp.releases(width, self._gripper_target_m):
                self.last_drop_m = self._drop_height_m(self._grasp[0])
                self._detach()
            return
        if not grasp.closing(width, self._gripper_target_m):
            return
        if not grasp.may_hold(width, max_width):   # nearly shut fingers have nothing between them
            return
        tcp = self.tcp_pose()
        # both fingers must press on the object from between them (sim.finger_contacts), not merely touch it
        squeezed = squeezed_bodies(self.client, self.robot_id, self.finger_idx, tcp, exclude=(self.table_id,))
        for body in squeezed:
            if body not in self._names:
                continue
            top_z = p.getAABB(body, physicsClientId=self.client)[1][2]
            if grasp.holds_by_contact(width, self._gripper_target_m, max_width, 2, tcp.position[2], top_z):
                self._attach(self._names[body])
                return

    def _objects_resting(self, speed_mps: float = 0.01) -> bool:
        return all(np.linalg.norm(p.getBaseVelocity(body, physicsClientId=self.client)[0]) < speed_mps
                   for body in self.body_ids.values())

    def _drop_height_m(self, name: str) -> float:
        """Gap between the bottom of `name` and the first surface straight below its centre."""
        lo, hi = self.object_aabb(name)
        x, y = (lo[:2] + hi[:2]) / 2
        start, end = (x, y, lo[2] - 1e-3), (x, y, lo[2] - 1.0)
        hit = p.rayTest(start, end, physicsClientId=self.client)[0]
        gap = float(hit[2]) * (start[2] - end[2]) if hit[0] >= 0 else float(lo[2])
        return max(0.0, gap)   # resting contact can read a fraction of a millimetre below zero

    # ---------------------------------------------------------------- saving state
    @contextlib.contextmanager
    def saved_state(self) -> Iterator[None]:
        """Restore bodies, joints, motor targets and the grasp on exit (pybullet-planning's WorldSaver idea)."""
        state = p.saveState(physicsClientId=self.client)
        grasp = self._grasp
        target = self._gripper_target_m
        q = self.joint_pos_rad()
        try:
            yield
        finally:
            if self._grasp != grasp:
                self._detach()
                p.restoreState(stateId=state, physicsClientId=self.client)
                if grasp is not None:
                    self._attach(grasp[0])
            else:
                p.restoreState(stateId=state, physicsClientId=self.client)
            p.removeState(state, physicsClientId=self.client)
            self._command_arm(q)
            self._command_gripper(target)

    # ---------------------------------------------------------------- execution
    def execute_joint_path(self, joint_path_rad, gripper_width_m, dt_s: float,
                           should_stop: Callable[[], str | None] | None = None,
                           on_step: Callable[[], None] | None = None,
                           settle_s: float = 0.5) -> ExecResult:
        """Track a joint path with position control, stepping physics; returns the TCP path reached.

        should_stop is polled every physics step; a non-None answer aborts and the arm holds where it is.
        """
        path = np.asarray(joint_path_rad, dtype=float)
        grip = np.asarray(gripper_width_m, dtype=float).reshape(-1)
        if path.ndim != 2 or path.shape[1] != len(self.arm_idx) or len(grip) != len(path):
            raise ValueError(f"joint path {path.shape} / gripper {grip.shape} do not match dof {len(self.arm_idx)}")
        # Round up: a waypoint may take a little longer than asked, never less (speed limits hold).
        substeps = max(1, int(np.ceil(dt_s / TIMESTEP_S - 1e-9)))
        ee = [self.tcp_pose().position]
        steps = 0
        for i in range(len(path)):
            self._command_arm(path[i])
            if abs(grip[i] - self._gripper_target_m) > 1e-6:
                self._command_gripper(grip[i])
            for _ in range(substeps):
                p.stepSimulation(physicsClientId=self.client)
                self._update_grasp()
                steps += 1
                if on_step is not None:
                    on_step()
                reason = should_stop() if should_stop is not None else None
                if reason is not None:
                    self._command_arm(self.joint_pos_rad())
                    ee.append(self.tcp_pose().position)
                    return ExecResult(False, reason, np.asarray(ee), steps)
            ee.append(self.tcp_pose().position)
        # Settle until the arm has arrived and nothing is still moving (a released object may be falling),
        # at most settle_s: an observation or a verdict must not catch an object in mid-air.
        for k in range(int(settle_s / TIMESTEP_S)):
            p.stepSimulation(physicsClientId=self.client)
            self._update_grasp()
            steps += 1
            if k % 12 == 11 and np.max(np.abs(self.joint_pos_rad() - path[-1])) < 2e-3 and self._objects_resting():
                break
        ee.append(self.tcp_pose().position)
        return ExecResult(True, None, np.asarray(ee), steps)

    def plan_joint_path(self, candidate: Candidate, speed_scale: float = 0.5) -> tuple:
        """IK along the candidate's TCP path and its gripper action (see `sim.rollout.plan_joint_path`)."""
        return plan_joint_path(self, candidate, speed_scale)

    def rollout(self, candidate: Candidate, allowed_contacts: frozenset[str] = frozenset(),
                speed_scale: float = 0.5, max_ik_error_m: float = 0.01,
                probe: Callable[[World], dict] | None = None) -> Rollout:
        """Simulate a candidate here and restore the state afterwards (see `sim.rollout.simulate`)."""
        return simulate(self, candidate, allowed_contacts, speed_scale, max_ik_error_m, probe)


@contextlib.contextmanager
def private_world(scene: SceneSpec) -> Iterator[World]:
    """A World in a DIRECT client of its own (a short-lived twin); closed and disconnected on exit."""
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, scene)
        try:
            yield world
        finally:
            world.close()
    finally:
        p.disconnect(client)
