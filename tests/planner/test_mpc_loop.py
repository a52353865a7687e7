"""The MPC loop's own logic, with a scripted robot, reconstruction, renderer and scorer around the real loop,
twin, sampler, rollouts and choice: held-object tracking, the twin's veto, the stalled-gripper rule and the silent
abort. No lab process: the robot does exactly what it is told (or, scripted, ignores the gripper)."""

from __future__ import annotations

import dataclasses

import numpy as np

from planner.candidates import choose, evidence, into_container, reference_objects, restless
from planner.components import object_models
from planner.mpc import MAX_SILENT_STEPS, MPCConfig, MPCPlanner, let_go_pose, put_back_let_go
from planner.runlog import RunLog
from planner.sampler import SamplerConfig
from planner.step_record import STALLED_NOTE
from planner.twin_tracker import TwinTracker
from scoring import ScoreTable
from scoring.fusion import fuse
from scoring.schema import DIMENSIONS, Answer
from sim.geometry import Pose
from sim.grasp import HELD_SLIP_M
from sim.rollout import VETOED, Candidate, Rollout
from tests.fakes import scripted_robot
from tests.fakes.scripted_robot import (
    WEIGHTS,
    ScriptedReconstruction,
    ScriptedRenderer,
    ScriptedRobot,
    ScriptedScorer,
    step_records,
)

task, kin = scripted_robot.task, scripted_robot.kin   # the shared fixtures


def _planner(task, robot, scorer, tmp_path, recon=None, n=4, anchored=True):
    log = RunLog.create(str(tmp_path), task.name, 0)
    cfg = MPCConfig(sampler=SamplerConfig(n_candidates=n), anchored_proposals=anchored)
    return MPCPlanner(task, robot, recon or ScriptedReconstruction(task), ScriptedRenderer(), scorer, log, cfg), log


def _records(log) -> list[dict]:
    return step_records(log.path)


# ------------------------------------------------------------------ silent abort
def test_three_steps_without_an_answer_abort_the_run_and_the_arm_holds_still(task, kin, tmp_path):
    robot = ScriptedRobot(task, kin)
    planner, log = _planner(task, robot, ScriptedScorer(silent=True), tmp_path)
    try:
        result = planner.run(10)
    finally:
        planner.close()
    assert result.steps == MAX_SILENT_STEPS and not result.believed_success
    assert result.error.startswith(f"no agent answered in {MAX_SILENT_STEPS} steps in a row")
    assert robot.executed == []
    records = _records(log)
    steps = [r for r in records if r["type"] == "step"]
    assert [r["chosen"] for r in steps] == [None] * MAX_SILENT_STEPS
    assert all(r["M_prime"] == 0 and r["hold_reason"] == "all 1 agent calls failed" for r in steps)
    assert records[-1] == {"type": "event", "step": MAX_SILENT_STEPS - 1, "message": result.error}
    assert set(result.stage_time_s) >= {"observe", "reconstruct", "sample_rollout", "render", "score", "execute"}


def test_a_step_with_an_answer_resets_the_silence_count(task, kin, tmp_path):
    calls = {"n": 0}

    class Flaky(ScriptedScorer):
        def score(self, request):
            calls["n"] += 1
            self.silent = calls["n"] % 3 == 0    # every third step answers
            return super().score(request)

    robot = ScriptedRobot(task, kin)
    planner, _ = _planner(task, robot, Flaky(silent=True), tmp_path)
    try:
        result = planner.run(5)
    finally:
        planner.close()
    assert result.error is None and result.steps == 5 and len(robot.executed) == 4


# ------------------------------------------------------------------ stall
def test_a_gripper_command_that_changed_nothing_is_not_repeated_in_place(task, kin, tmp_path):
    robot = ScriptedRobot(task, kin, ignore_gripper=True)
    # the scorer likes toggling the gripper where the hand is (candidate 0) best
    scorer = ScriptedScorer(lambda ev: 9.0 if ev.id == 0 else 2.0)
    planner, log = _planner(task, robot, scorer, tmp_path)
    try:
        result = planner.run(2)
    finally:
        planner.close()
    assert result.steps == 2
    first, second = (r for r in _records(log) if r["type"] == "step")
    assert first["chosen"] == 0 and first["candidates"][0]["label"].startswith("stay and")
    assert first["note"] == "" and second["note"] == STALLED_NOTE
    # the stalled step offers no stay-and-toggle candidate, so the same useless command is not sent again
    assert not any(c["label"].startswith("stay") for c in second["candidates"])


# ------------------------------------------------------------------ veto
def _rollout(cid: int, feasible: bool = True, clean: bool = True, probe: dict | None = None,
             drop_m: float = 0.0) -> Rollout:
    path = np.zeros((3, 7))
    return Rollout(Candidate(cid, (Pose((0.5, 0.0, 0.3)),)), path, np.full(3, 0.08), 0.05, np.zeros((2, 3)),
                   Pose(), (), (), 0.1, 0.5, 0.0, feasible=feasible, clean=clean,
                   reason="" if clean else VETOED, probe=probe or {}, release_drop_m=drop_m)


def _table(scores: dict[int, float]) -> ScoreTable:
    answers = {"a": {"front": Answer(8.0, {j: dict.fromkeys(DIMENSIONS, s) for j, s in scores.items()})}}
    fusion = fuse(answers, WEIGHTS, 0.5, tuple(scores))
    return ScoreTable(fusion.S, fusion, (), fusion.M_prime)


def test_the_twin_vetoes_before_any_score_counts():
    rollouts = [_rollout(0, clean=False), _rollout(1), _rollout(2, feasible=False), _rollout(3)]
    # the collision is scored best, the infeasible one next: the best clean one is chosen
    assert choose(rollouts, _table({0: 9.0, 1: 4.0, 2: 8.0, 3: 5.0})) == 3
    # no clean candidate: the best feasible one, never the infeasible one
    dirty = [_rollout(0, clean=False), _rollout(1, clean=False), _rollout(2, feasible=False)]
    assert choose(dirty, _table({0: 3.0, 1: 6.0, 2: 9.0})) == 1
    assert choose([_rollout(2, feasible=False)], _table({2: 9.0})) is None
    # unscored candidates are never chosen
    assert choose(rollouts, _table({0: 9.0, 2: 8.0})) == 0


def test_a_pushed_container_vetoes_and_a_drop_into_it_passes():
    # 0 shoves the basket 10 cm (the twin allows touching it), 1 hovers, 2 lets go above the rim and the object
    # falls in (vetoed by the twin for its drop height alone, the subtask done), 3 drops it beside
    into = {"pushed_m": 0.0, "done": True}
    rollouts = [_rollout(0, probe={"pushed_m": 0.10, "done": True}), _rollout(1, probe={"pushed_m": 0.0}),
                _rollout(2, clean=False, probe=into, drop_m=0.08), _rollout(3, clean=False, drop_m=0.08)]
    table = _table({0: 9.0, 1: 7.0, 2: 6.0, 3: 8.0})
    assert choose(rollouts, table, into=True) == 2
    assert evidence(rollouts[0]).collisions == 1 and evidence(rollouts[1]).collisions == 0
    # not into a container, a drop stays vetoed (a block let go from height bounces off its target)
    assert choose(rollouts, table) == 1
    # a push is sent only when nothing else is feasible
    assert choose([rollouts[0], _rollout(4, feasible=False)], _table({0: 9.0, 4: 9.5})) == 0
    assert into_container({"all": [{"inside": ["a", "b"]}, {"gripper_open": True}]})
    assert not into_container({"on_top": ["a", "b"]})
    assert reference_objects({"all": [{"inside": ["a", "b"]}, {"on_top": ["c", "d"]}]}) == {"b", "d"}


def test_an_object_every_rollout_disturbs_counts_against_none():
    def disturbing(cid, *names):
        return dataclasses.replace(_rollout(cid, clean=False), disturbed=names)

    # the twin's carton tips over whatever the arm does; 1 also knocks the can: 0 is chosen, scored lower
    rollouts = [disturbing(0, "carton"), disturbing(1, "carton", "can"), disturbing(2, "carton")]
    assert restless(rollouts) == {"carton"}
    assert choose(rollouts, _table({0: 5.0, 1: 9.0, 2: 4.0})) == 0
    assert evidence(rollouts[0], restless(rollouts)).collisions == 0
    assert evidence(rollouts[1], restless(rollouts)).collisions == 1


def test_evidence_carries_the_one_verdict():
    ev = evidence(_rollout(4, feasible=False))
    assert ev.id == 4 and not ev.feasible and ev.collisions == 0


def test_the_loop_never_sends_a_vetoed_candidate(task, kin, tmp_path):
    # where the seeded sampler's candidates end from the home pose (a silent look: nothing is executed)
    # the ball alone: anchored grasps would change with the obstacle placed below
    look, log = _planner(task, ScriptedRobot(task, kin), ScriptedScorer(silent=True), tmp_path / "look", n=8,
                         anchored=False)
    try:
        look.run(1)
    finally:
        look.close()
    goal = next(r for r in _records(log) if r["type"] == "step")["candidates"][3]["goal_xyz"]
    # a fixed obstacle where candidate 3 brings the hand (above its TCP goal: open fingers would straddle it),
    # and a scorer that prefers what the twin saw collide (a VLM may miss what the twin sees)
    recon = ScriptedReconstruction(task)
    recon.poses["blue_block"] = Pose((goal[0], goal[1], goal[2] + 0.06))
    scorer = ScriptedScorer(lambda ev: 10.0 if ev.collisions else 1.0)
    robot = ScriptedRobot(task, kin)
    planner, log = _planner(task, robot, scorer, tmp_path / "run", recon=recon, n=8, anchored=False)
    planner.twin.models["blue_block"] = dataclasses.replace(planner.twin.models["blue_block"], fixed=True)
    try:
        planner.run(1)
    finally:
        planner.close()
    rec = next(r for r in _records(log) if r["type"] == "step")
    rows = {c["id"]: c for c in rec["candidates"]}
    assert rows[3]["goal_xyz"] == goal and not rows[3]["clean"] and rows[3]["reason"] == VETOED
    assert rows[3]["S"] == max(c["S"] for c in rows.values())          # scored best, and still not sent
    assert rec["chosen"] is not None and rows[rec["chosen"]]["clean"] and len(robot.executed) == 1
    for c in rows.values():
        assert (c["reason"] == VETOED) == (c["feasible"] and not c["clean"])


# ------------------------------------------------------------------ held tracking
def test_the_twin_carries_the_held_object_until_the_cameras_see_it_elsewhere(task, kin):
    robot = ScriptedRobot(task, kin, width_m=0.05)          # closed on a 5 cm block
    recon = ScriptedReconstruction(task)
    tcp = kin.fk(robot.q)
    in_hand = tcp @ Pose((0.0, 0.0, 0.01))
    recon.poses["red_block"] = in_hand
    tracker = TwinTracker(task.robot, recon, object_models(task), settle_steps=0)
    try:
        world, summary = tracker.update(robot.observe())
        assert summary["held"] == "red_block" and world.grasped() == "red_block"
        # hidden by the fingers: still held, where the hand carries it
        recon.poses["red_block"] = None
        world, summary = tracker.update(robot.observe())
        assert summary["held"] == "red_block" and world.grasped() == "red_block"
        assert np.linalg.norm(world.object_pose("red_block").position - in_hand.position) < 0.005
        # seen farther from the hand than the slip tolerance: no longer held
        recon.poses["red_block"] = Pose(tuple(in_hand.position + (HELD_SLIP_M + 0.02, 0.0, 0.0)))
        world, summary = tracker.update(robot.observe())
        assert summary["held"] is None and world.grasped() is None
        # an open hand holds nothing, whatever is near it
        recon.poses["red_block"] = in_hand
        robot.width = task.robot.gripper_max_width_m
        world, summary = tracker.update(robot.observe())
        assert summary["held"] is None and world.grasped() is None
    finally:
        tracker.close()


def test_an_object_let_go_into_its_goal_stays_there_while_unseen(client, panda_spec):
    import pybullet_data

    from sim.scene import ObjectSpec, SceneSpec
    from sim.world import World

    cube = f"{pybullet_data.getDataPath()}/cube_small.urdf"
    world = World.from_scene(client, SceneSpec(panda_spec, (
        ObjectSpec("box", Pose((0.5, 0.0, 0.025)), urdf=cube), ObjectSpec("can", Pose((0.4, 0.2, 0.025)), urdf=cube))))
    dropped_at = Pose((0.6, -0.1, 0.025))
    # hidden in the basket: the tracker put it back where it was last seen (here 0.5, 0, 0.025); the twin keeps it
    # where the rollout let it go
    let_go = {"box": dropped_at}
    assert put_back_let_go(world, {"objects": {"box": {"status": "missing"}}}, let_go, None) == ["box"]
    assert np.allclose(world.object_pose("box").position, dropped_at.position, atol=1e-6)
    assert let_go == {"box": dropped_at}
    # a confident fit wins and the memory is forgotten; so is an object the hand holds again
    world.update_scene(world.spec)
    assert put_back_let_go(world, {"objects": {"box": {"status": "ok"}}}, let_go, None) == [] and not let_go
    let_go = {"box": dropped_at}
    assert put_back_let_go(world, {"objects": {"box": {"status": "low_confidence"}}}, let_go, "box") == []
    assert not let_go and np.allclose(world.object_pose("box").position, (0.5, 0.0, 0.025), atol=1e-3)


def test_a_release_is_remembered_where_the_twin_shows_the_subtask_or_the_task_done():
    on_plate = Pose((0.7, 0.2, 0.01))

    def release(probe: dict, gripper: str = "open", grasped_after: str | None = None) -> Rollout:
        roll = _rollout(0, probe=probe)
        return dataclasses.replace(roll, candidate=Candidate(0, roll.candidate.waypoints, gripper=gripper),
                                   object_poses_after={"bowl": on_plate}, grasped_after=grasped_after)

    assert let_go_pose(release({"done": True, "success": False}), "bowl") == on_plate
    # set in the plate's dish: the subtask's plain on_top does not hold, the task's nested success does
    assert let_go_pose(release({"done": False, "success": True}), "bowl") == on_plate
    assert let_go_pose(release({"done": False, "success": False}), "bowl") is None      # let go short of the goal
    assert let_go_pose(release({"done": True}, grasped_after="bowl"), "bowl") is None   # still in the hand
    assert let_go_pose(release({"done": True}, gripper="keep"), "bowl") is None         # no release
    assert let_go_pose(release({"done": True}), None) is None                           # nothing was held
