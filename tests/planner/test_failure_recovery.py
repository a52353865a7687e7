"""Failure diagnosis and recovery in the real MPC loop, with a scripted robot, reconstruction and scorer around the
real twin, sampler, rollouts, diagnosis and report: a drop after a grasp sends the plan back to the grasp subtask
(never placing with an empty gripper), a missed grasp is typed, no progress is detected and restarts the
annealing, an unexpected push is typed, and failure_recovery=False only logs (the ablation)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from planner.diagnosis import NO_PROGRESS_STEPS, ProgressWatch, carried_object, grasp_subtask_for
from planner.mpc import MPCConfig, MPCPlanner
from planner.runlog import RunLog
from planner.sampler import SamplerConfig
from scoring.backend import AgentConfig
from scoring.simjudge import SimJudgeBackend
from sim.geometry import Pose
from tests.fakes import scripted_robot
from tests.fakes.scripted_robot import (
    RED_XYZ,
    ScriptedReconstruction,
    ScriptedRenderer,
    ScriptedRobot,
    ScriptedScorer,
    step_records,
)

FAR_XYZ = (0.40, 0.25, 0.025)   # where a dropped block lands: far from the hand and from the blue block


task, kin = scripted_robot.task, scripted_robot.kin   # the shared fixtures


class ScriptedHand(ScriptedRobot):
    """A robot holding the red block from the start (fingers closed on 5 cm) that loses it after `drop_after`
    executed steps: the fingers snap shut and the block lies on the table at FAR_XYZ. `frozen`: the arm never
    moves (a stuck arm: no progress)."""

    def __init__(self, task, kin, recon, drop_after: int | None = None, frozen: bool = False, **kw) -> None:
        super().__init__(task, kin, **kw)
        self.recon, self.drop_after, self.frozen = recon, drop_after, frozen

    def execute(self, traj, *, exact: bool = False):
        q, width = self.q.copy(), self.width
        report = super().execute(traj, exact=exact)
        if self.frozen:
            self.q, self.width = q, width
        if self.width < self.spec.gripper_max_width_m and self.recon.poses["red_block"] != Pose(RED_XYZ):
            self.recon.poses["red_block"] = None   # carried: hidden by the fingers, the twin keeps it in the hand
        if self.drop_after is not None and len(self.executed) == self.drop_after:
            self.width = 0.0
            self.recon.poses["red_block"] = Pose(FAR_XYZ)
        return report


def _run(task, robot, recon, scorer, tmp_path, steps: int, recovery: bool = True):
    log = RunLog.create(str(tmp_path), task.name, 0)
    # The ball alone: the scripted hand moves no object, so an anchored placement that lets go would leave the
    # block where the script put it, far from what the twin predicted (a failure the script made, not the loop).
    cfg = MPCConfig(sampler=SamplerConfig(n_candidates=6), failure_recovery=recovery, anchored_proposals=False)
    planner = MPCPlanner(task, robot, recon, ScriptedRenderer(), scorer, log, cfg)
    try:
        result = planner.run(steps)
    finally:
        planner.close()
    records = step_records(log.path)
    return result, [r for r in records if r["type"] == "step"], log


def _holding(task, kin, drop_after: int | None):
    recon = ScriptedReconstruction(task)
    robot = ScriptedHand(task, kin, recon, drop_after=drop_after, width_m=0.05)
    recon.poses["red_block"] = kin.fk(robot.q) @ Pose((0.0, 0.0, 0.01))   # in the hand
    return robot, recon


def keep_only(ev) -> float:
    return 9.0 if ev.gripper == "keep" else 1.0


class JudgingScorer(ScriptedScorer):
    """The scripted scorer with one real simjudge agent, which the loop asks the failure question."""

    agents = (AgentConfig("judge", "simjudge"),)
    backends = {"simjudge": SimJudgeBackend()}


def test_the_subtask_helpers_know_what_a_subtask_carries(task):
    subs = task.subtasks
    assert grasp_subtask_for(subs, "red_block", 1) == 0 and grasp_subtask_for(subs, "blue_block", 1) is None
    assert carried_object(subs, 1) == "red_block" and carried_object(subs, 0) is None


def test_a_drop_after_the_grasp_rewinds_to_the_grasp_subtask(task, kin, tmp_path):
    robot, recon = _holding(task, kin, drop_after=1)
    result, steps, log = _run(task, robot, recon, JudgingScorer(keep_only), tmp_path, 3)
    assert result.error is None and len(steps) == 3
    first, second, third = steps
    assert first["subtask_index"] == 1 and first["reconstruction"]["held"] == "red_block" and "failure" not in first
    assert first["chosen"] is not None
    # the block fell out of a hand told to keep it: typed, and the plan went back to grasping it
    f = second["failure"]
    assert f["type"] == "dropped" and f["object"] == "red_block" and f["step"] == 0 and f["acted"]
    assert f["subtask_from"] == 1 and f["subtask_to"] == 0 and second["subtask_index"] == 0
    assert f["evidence"]["held_before"] == "red_block" and f["evidence"]["held_observed"] is None
    assert np.allclose(f["target_xyz"], FAR_XYZ, atol=0.01)
    assert second["t"] == 0   # the annealing restarted
    # the picture with the symbols was saved, and simjudge's answer to the failure question agrees
    assert Image.open(f"{log.path}/{f['image']}").size[0] > 0
    assert any("rewind mark" in s for s in f["symbols"]) and any("crosshair" in s for s in f["symbols"])
    (agent,) = f["agents"]
    assert agent["backend"] == "simjudge" and agent["answer"]["failure_type"] == "dropped"
    assert agent["answer"]["redo_subtask"] == 0
    # never a place step with an empty gripper
    assert all(not (r["subtask_index"] == 1 and r["reconstruction"]["held"] is None) for r in steps)
    assert third["subtask_index"] == 0
    report = open(f"{log.path}/report.html").read()
    assert "Failure after step 0: dropped" in report and "rewind" in report and "gripper ON" in report


def test_without_recovery_the_drop_is_only_logged_and_placing_goes_on_empty(task, kin, tmp_path):
    robot, recon = _holding(task, kin, drop_after=1)
    _, steps, _ = _run(task, robot, recon, JudgingScorer(keep_only), tmp_path, 3, recovery=False)
    f = steps[1]["failure"]
    assert f["type"] == "dropped" and not f["acted"] and f["agents"] == []
    # the old behaviour: the subtask never goes back, the place subtask runs with nothing in the hand
    assert [r["subtask_index"] for r in steps] == [1, 1, 1]
    assert steps[2]["reconstruction"]["held"] is None


def test_a_missed_grasp_is_typed_and_the_grasp_subtask_stays(task, kin, tmp_path):
    # the fingers close on nothing (the robot does what it is told: width 0); the scorer wants to close
    robot = ScriptedRobot(task, kin)
    scorer = JudgingScorer(lambda ev: 9.0 if ev.gripper == "close" else 1.0)
    _, steps, _ = _run(task, robot, ScriptedReconstruction(task), scorer, tmp_path, 2)
    first, second = steps
    assert first["subtask_index"] == 0 and first["chosen"] is not None
    chosen = next(c for c in first["candidates"] if c["id"] == first["chosen"])
    assert chosen["gripper"] == "close"
    f = second["failure"]
    assert f["type"] == "grasp_missed" and f["object"] == "red_block" and f["subtask_to"] == 0
    assert f["gripper_closed"] and "holds nothing" in f["message"]
    assert f["agents"][0]["answer"]["failure_type"] == "grasp_missed"


class HiddenGrip(ScriptedRobot):
    """Closes on the red block as the twin predicts (the fingers stop on its 5 cm), after which no camera finds it:
    LIBERO-Object's flat pudding box under the hand."""

    def __init__(self, task, kin, recon) -> None:
        super().__init__(task, kin)
        self.recon = recon

    def execute(self, traj, *, exact: bool = False):
        report = super().execute(traj, exact=exact)
        if traj.gripper_width_m[-1] < self.spec.gripper_max_width_m / 2:
            self.width = 0.05
            self.recon.poses["red_block"] = None
        return report


def test_a_grasp_the_cameras_cannot_see_is_held_where_the_twin_left_it(task, kin, tmp_path):
    recon = ScriptedReconstruction(task)
    robot = HiddenGrip(task, kin, recon)
    scorer = JudgingScorer(lambda ev: 9.0 if ev.subtask_done else 1.0)   # the twin's rollout grasps the block
    log = RunLog.create(str(tmp_path), task.name, 0)
    planner = MPCPlanner(task, robot, recon, ScriptedRenderer(), scorer, log,
                         MPCConfig(sampler=SamplerConfig(n_candidates=6)))
    try:
        planner.run(2)
    finally:
        planner.close()
    first, second = [r for r in step_records(log.path) if r["type"] == "step"]
    chosen = next(c for c in first["candidates"] if c["id"] == first["chosen"])
    assert chosen["gripper"] == "close" and recon.poses["red_block"] is None
    # held, where the rollout left it in the hand: no "grasp missed", and the plan moves on to placing it
    assert second["reconstruction"]["held"] == "red_block"
    assert "failure" not in second and second["subtask_index"] == 1


def test_an_unexpected_push_is_typed_disturbed(task, kin, tmp_path):
    recon = ScriptedReconstruction(task)

    class Pushing(ScriptedRobot):
        def execute(self, traj, *, exact: bool = False):
            report = super().execute(traj, exact=exact)
            recon.poses["blue_block"] = Pose((0.50, -0.05, 0.025))   # 7 cm from where it stood
            return report

    _, steps, _ = _run(task, Pushing(task, kin), recon, JudgingScorer(keep_only), tmp_path, 2)
    f = steps[1]["failure"]
    assert f["type"] == "disturbed" and f["object"] == "blue_block" and f["subtask_to"] == 0
    assert f["evidence"]["moved_unexpectedly"] == ["blue_block"]


def test_no_progress_is_detected_and_restarts_the_annealing(task, kin, tmp_path):
    recon = ScriptedReconstruction(task)
    robot = ScriptedHand(task, kin, recon, frozen=True)
    _, steps, _ = _run(task, robot, recon, JudgingScorer(keep_only), tmp_path, NO_PROGRESS_STEPS + 2)
    typed = [(i, r["failure"]["type"]) for i, r in enumerate(steps) if "failure" in r]
    assert typed == [(NO_PROGRESS_STEPS, "no_progress")]
    stuck = steps[NO_PROGRESS_STEPS]
    assert stuck["t"] == 0 and steps[NO_PROGRESS_STEPS - 1]["t"] == NO_PROGRESS_STEPS - 1
    assert stuck["failure"]["subtask_to"] == 0 and stuck["failure"]["evidence"]["steps_without_progress"] == 6


def test_the_progress_watch_counts_steps_without_progress():
    watch = ProgressWatch(limit=3)
    assert not watch.update(0, 0.2)
    assert not watch.update(0, 0.21) and not watch.update(0, 0.5)   # 0.21 does not beat 0.2 by enough
    assert not watch.update(0, 0.5) and not watch.update(0, 0.49)
    assert watch.update(0, 0.5)
    assert not watch.update(1, 0.0)   # a new subtask starts counting again


def test_holding_the_block_near_its_goal_is_no_failure(task, kin, tmp_path):
    robot, recon = _holding(task, kin, drop_after=None)
    _, steps, _ = _run(task, robot, recon, JudgingScorer(keep_only), tmp_path, 3)
    assert all("failure" not in r for r in steps) and {r["subtask_index"] for r in steps} == {1}
    assert all(r["reconstruction"]["held"] == "red_block" for r in steps)
