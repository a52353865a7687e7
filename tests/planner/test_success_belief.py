"""When the loop believes the task done: only on fits it trusts (or, after LOOK_AGAIN_MAX looks, saying so), and the
run log keeps what the twin saw when it stopped. The real loop and twin around a scripted robot and reconstruction
that puts the red block on the blue one (stack_blocks' success), with or without a low-confidence issue."""

from __future__ import annotations

from planner.mpc import MPCConfig, MPCPlanner, untrusted_for_success
from planner.runlog import RunLog
from planner.sampler import SamplerConfig
from planner.twin_tracker import LOOK_AGAIN_MAX
from reconstruction.estimate import EstimatedObject, Issue, SceneEstimate
from sim.geometry import Pose
from tests.fakes import scripted_robot
from tests.fakes.scripted_robot import BLUE_XYZ, ScriptedRenderer, ScriptedRobot, ScriptedScorer, step_records

task, kin = scripted_robot.task, scripted_robot.kin   # the shared fixtures
BLOCK_M = 0.05                                        # stack_blocks' cubes


class StackedReconstruction:
    """Red fitted on blue (the task looks done); `doubt`: the red fit carries a low-confidence issue."""

    def __init__(self, doubt: bool) -> None:
        self.doubt = doubt

    def update(self, obs) -> SceneEstimate:
        red = Pose((BLUE_XYZ[0], BLUE_XYZ[1], BLUE_XYZ[2] + BLOCK_M))
        objects = {"red_block": EstimatedObject("red_block", red, 0.9, True),
                   "blue_block": EstimatedObject("blue_block", Pose(BLUE_XYZ), 0.9, True)}
        issues = (Issue("low_confidence", "red_block", "red_block: fitness 0.3"),) if self.doubt else ()
        return SceneEstimate(objects, issues=issues)

    def close(self) -> None:
        pass


def _run(task, kin, tmp_path, doubt: bool, steps: int = 6):
    robot = ScriptedRobot(task, kin)
    log = RunLog.create(str(tmp_path), task.name, 0)
    planner = MPCPlanner(task, robot, StackedReconstruction(doubt), ScriptedRenderer(), ScriptedScorer(), log,
                         MPCConfig(sampler=SamplerConfig(n_candidates=4)))
    try:
        result = planner.run(steps)
    finally:
        planner.close()
    return result, robot, step_records(log.path)


def test_a_success_on_trusted_fits_is_believed_at_once_and_logged_with_what_the_twin_saw(task, kin, tmp_path):
    result, robot, records = _run(task, kin, tmp_path, doubt=False)
    assert result.believed_success and result.steps == 0 and robot.executed == []
    end = next(r for r in records if r["type"] == "event")
    assert end["message"] == "step 0: the twin shows the task done; stopping"
    assert end["reconstruction"]["objects"]["red_block"]["status"] == "ok"


def test_a_success_on_a_doubtful_fit_looks_again_then_is_believed_and_says_so(task, kin, tmp_path):
    result, robot, records = _run(task, kin, tmp_path, doubt=True)
    looks = [r for r in records if r["type"] == "step"]
    assert len(looks) == LOOK_AGAIN_MAX and robot.executed == []   # the arm held still while it looked
    assert all(r["chosen"] is None and "['red_block'] are not trusted" in r["hold_reason"] for r in looks)
    assert result.believed_success and result.steps == LOOK_AGAIN_MAX
    end = next(r for r in records if r["type"] == "event")
    assert end["reconstruction"]["note"] == (f"the twin shows the task done; ['red_block'] still not trusted after "
                                             f"{LOOK_AGAIN_MAX} looks")


def test_untrusted_for_success_spares_what_the_hand_let_go_there():
    recon = {"objects": {"book": {"status": "low_confidence"}, "caddy": {"status": "ok"},
                         "mug": {"status": "missing"}}, "let_go_pose_used": ["mug"]}
    assert untrusted_for_success(recon, {"book", "caddy", "mug", "table"}) == ["book"]
