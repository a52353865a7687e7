"""Kinematic queries on a World's arm at given joints, without running physics: Jacobians, gravity torques, how
far the fingers reach. Identification and its probe motions use them; nothing outside `sim` calls PyBullet for
them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pybullet as p

from sim.geometry import Pose


class KinematicQueries:
    """Mixed into `sim.world.World`, which provides the client, the robot's ids and the joint helpers."""

    @contextlib.contextmanager
    def posed(self, q, width_m: float) -> Iterator[list[float]]:
        """The arm at q and the gripper at width_m for kinematic queries; restores every arm and finger joint.

        Yields every movable joint's position, in order (what PyBullet's Jacobian and dynamics calls take)."""
        idx = list(self.arm_idx) + list(self.finger_idx)
        states = p.getJointStates(self.robot_id, idx, physicsClientId=self.client)
        try:
            self._reset_arm(q)
            for j, v in zip(self.finger_idx, self._width_to_finger(width_m)):
                p.resetJointState(self.robot_id, j, float(v), physicsClientId=self.client)
            yield [s[0] for s in p.getJointStates(self.robot_id, self.movable_idx, physicsClientId=self.client)]
        finally:
            for j, s in zip(idx, states):
                p.resetJointState(self.robot_id, j, s[0], s[1], physicsClientId=self.client)

    def _arm_columns(self) -> list[int]:
        """Where the arm joints sit among the movable joints (Jacobian and torque columns)."""
        return [self.movable_idx.index(j) for j in self.arm_idx]

    def tcp_jacobian(self, q, width_m: float) -> np.ndarray:
        """(6, dof) Jacobian of the TCP (linear; angular) in the world frame at q."""
        with self.posed(q, width_m) as pos:
            zeros = [0.0] * len(pos)
            jv, jw = p.calculateJacobian(self.robot_id, self.ee_idx, list(self.spec.robot.tcp_offset_xyz), pos,
                                         zeros, zeros, physicsClientId=self.client)
        cols = self._arm_columns()
        return np.vstack([np.asarray(jv)[:, cols], np.asarray(jw)[:, cols]])

    def point_jacobian(self, q, width_m: float, point_world) -> np.ndarray:
        """(3, dof) linear Jacobian of a point fixed to the hand, given in the world frame at q."""
        with self.posed(q, width_m) as pos:
            ls = p.getLinkState(self.robot_id, self.ee_idx, computeForwardKinematics=True,
                                physicsClientId=self.client)
            local = (Pose(ls[4], ls[5]).inverse() @ Pose(tuple(point_world))).xyz
            zeros = [0.0] * len(pos)
            jv, _ = p.calculateJacobian(self.robot_id, self.ee_idx, list(local), pos, zeros, zeros,
                                        physicsClientId=self.client)
        return np.asarray(jv)[:, self._arm_columns()]

    def gravity_torques(self, q, width_m: float) -> np.ndarray:
        """(dof,) joint torques that hold the arm itself still against gravity at q (its own links only)."""
        with self.posed(q, width_m) as pos:
            zeros = [0.0] * len(pos)
            tau = p.calculateInverseDynamics(self.robot_id, pos, zeros, zeros, physicsClientId=self.client)
        return np.asarray(tau)[self._arm_columns()]

    def finger_reach_below_tcp_m(self, q, width_m: float) -> float:
        """How far the fingers at width_m reach below the TCP with the arm at q."""
        with self.posed(q, width_m):
            tcp_z = self.tcp_pose().position[2]
            low = min(p.getAABB(self.robot_id, j, physicsClientId=self.client)[0][2] for j in self.finger_idx)
        return float(tcp_z - low)
