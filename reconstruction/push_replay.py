"""One recorded push replayed in a twin at a trial friction: what identification's friction fit compares with
the measured trace. Runs in a private `sim` world; nothing here talks to the robot."""

from __future__ import annotations

import contextlib
import math

import numpy as np
from scipy.spatial.transform import Rotation

from reconstruction.models import ObjectModel
from robot_io.trajectory import JointTrajectory
from sim.geometry import Pose
from sim.scene import RobotSpec, SceneSpec
from sim.world import TIMESTEP_S, private_world

SETTLE_S = 0.2    # the object settles on the table before the replay starts


class PushTwin:
    """One push replayed in a twin: the object at its pose before the push, the arm at the start of the push's
    still hold (sent waypoint `start`), the same commanded waypoints as the robot up to the last compared trace
    sample. A context manager: the twin's client lives as long as the `with` block."""

    def __init__(self, robot: RobotSpec, model: ObjectModel, pose: Pose, mass_kg: float, sent: JointTrajectory,
                 start: int, steps_per_wp: int, end_sample: int) -> None:
        self.name = model.name
        # the twin's friction is set per replay; the table plane's coefficient is 1.0, so the object's counts
        self.scene = SceneSpec(robot, (model.with_physics(mass_kg, 1.0).at(pose),),
                               joint_pos_rad=tuple(sent.joint_pos_rad[start]),
                               gripper_width_m=float(sent.gripper_width_m[start]))
        stop = min(sent.n_waypoints, end_sample // steps_per_wp + 1)
        self.q_path = sent.joint_pos_rad[start:stop]
        self.g_path = sent.gripper_width_m[start:stop]
        self.dt_s = sent.dt_s
        self.first_sample = start * steps_per_wp   # trace sample of the twin's first step
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> PushTwin:
        try:
            self.world = self._stack.enter_context(private_world(self.scene))
            self.world.step(int(SETTLE_S / TIMESTEP_S))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def replay(self, friction: float) -> tuple[np.ndarray, np.ndarray, float]:
        """Motor torques and joint positions (one row per physics step) of a replay with this friction, and how
        far (degrees) the twin's object turned."""
        w = self.world
        tau: list[np.ndarray] = []
        q: list[np.ndarray] = []
        with w.saved_state():
            w.set_object_friction(self.name, friction)
            before = Rotation.from_quat(w.object_pose(self.name).quat_xyzw)

            def record() -> None:
                tau.append(w.arm_motor_torques())
                q.append(w.joint_pos_rad())

            w.execute_joint_path(self.q_path, self.g_path, self.dt_s, on_step=record, settle_s=0.0)
            after = Rotation.from_quat(w.object_pose(self.name).quat_xyzw)
            turned = math.degrees((after * before.inv()).magnitude())
        return np.asarray(tau), np.asarray(q), turned
