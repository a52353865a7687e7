"""A scripted robot, reconstruction, renderer and scorer around the real MPC loop (no lab process): the robot goes
where it is sent at once, the reconstruction finds the stack_blocks task's blocks where the script says, the
renderer draws nothing, the scorer scores from a rule over the twin's evidence. Shared by the loop's tests
(tests/planner/test_mpc_loop.py, tests/planner/test_failure_recovery.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from planner.components import object_models
from planner.task import load_task
from reconstruction.estimate import EstimatedObject, SceneEstimate
from render.renderer import RenderedView
from robot_io.observation import CameraFrame, Observation
from robot_io.robot import ExecuteReport, Robot
from robot_io.trajectory import JointTrajectory
from scoring import ScoreTable
from scoring.fusion import fuse
from scoring.schema import DIMENSIONS, Answer
from sim.geometry import Pose
from sim.scene import SceneSpec
from sim.world import private_world

RED_XYZ = (0.55, 0.10, 0.025)
BLUE_XYZ = (0.50, -0.12, 0.025)
WEIGHTS = {k: 1.0 for k in DIMENSIONS}


@pytest.fixture(scope="module")
def task():
    """The stack_blocks task as the planner reads it (a fixture: import it into a test module)."""
    return load_task("stack_blocks").planner


@pytest.fixture(scope="module")
def kin(task):
    """A robot-only twin for forward kinematics (a fixture: import it with `task`)."""
    with private_world(SceneSpec(task.robot)) as world:
        yield world


class ScriptedRobot(Robot):
    """Goes where it is sent, at once. ignore_gripper: the fingers never move (a gripper that stalls)."""

    def __init__(self, task, kin, ignore_gripper: bool = False, width_m: float | None = None) -> None:
        self.spec, self.kin, self.ignore_gripper = task.robot, kin, ignore_gripper
        self.q = np.asarray(task.robot.home_joint_pos_rad, dtype=float)
        self.width = task.robot.gripper_max_width_m if width_m is None else width_m
        cam = task.cameras[0]
        scale = 64 / cam.width
        K = np.array([[cam.fx * scale, 0, cam.cx * scale], [0, cam.fy * scale, cam.cy * scale], [0, 0, 1]])
        self.frame = CameraFrame(cam.name, np.zeros((48, 64, 3), np.uint8), np.ones((48, 64), np.float32), K,
                                 np.asarray(cam.T_world_camera, dtype=float).reshape(4, 4))
        self.executed: list[JointTrajectory] = []

    @property
    def is_connected(self) -> bool:
        return True

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def observe(self) -> Observation:
        return Observation((self.frame,), self.q.copy(), self.width, self.kin.fk(self.q).matrix(), 0.0)

    def execute(self, traj: JointTrajectory, *, exact: bool = False) -> ExecuteReport:
        self.executed.append(traj)
        self.q = np.asarray(traj.joint_pos_rad[-1], dtype=float)
        if not self.ignore_gripper:
            self.width = float(traj.gripper_width_m[-1])
        return ExecuteReport(traj, (), True, None, self.q)


class ScriptedReconstruction:
    """Finds the task's blocks where the script says (default: where they stand), never anything else."""

    def __init__(self, task) -> None:
        self.robot, self.models = task.robot, object_models(task)
        self.poses: dict[str, Pose | None] = {"red_block": Pose(RED_XYZ), "blue_block": Pose(BLUE_XYZ)}

    def update(self, obs: Observation) -> SceneEstimate:
        return SceneEstimate({n: EstimatedObject(n, pose or Pose(), 0.9 if pose else 0.0, pose is not None)
                              for n, pose in self.poses.items()})

    def close(self) -> None:
        pass


class ScriptedRenderer:
    def render(self, world, rollouts) -> list[RenderedView]:
        rgb = np.zeros((8, 8, 3), np.uint8)
        return [RenderedView("front", rgb, b"\x89PNG", {r.candidate.id: (4.0, 4.0) for r in rollouts}, None)]


class ScriptedScorer:
    """Scores from a rule over the twin's evidence (one agent, every view); `silent`: no agent answers."""

    def __init__(self, rule=None, silent: bool = False) -> None:
        self.rule, self.silent, self.requests = rule or (lambda ev: 5.0), silent, []

    def score(self, request) -> ScoreTable:
        self.requests.append(request)
        answers = {} if self.silent else {"scripted": {v.name: Answer(8.0, {
            j: dict.fromkeys(DIMENSIONS, float(self.rule(request.evidence[j]))) for j in request.candidate_ids})
            for v in request.views}}
        fusion = fuse(answers, WEIGHTS, 0.5, request.candidate_ids)
        return ScoreTable(fusion.S, fusion, (), fusion.M_prime, None if answers else "all 1 agent calls failed")


def step_records(log_path: str) -> list[dict]:
    """The run log's records (steps.jsonl), in order."""
    with open(f"{log_path}/steps.jsonl") as f:
        return [json.loads(line) for line in f]
