"""Failure diagnosis (after ViFailback): the twin's prediction for the executed step against the next observation.

Before the arm moves, `Prediction.of` keeps what the twin's rollout of the chosen candidate predicted: the held
object, every object's position, whether the subtask would be done. After the next observation has been
reconstructed, `diagnose` compares it with what the twin now sees and types what went wrong:

    grasp_missed    the gripper closed to grasp an object and does not hold it
    dropped         a held object was lost without an open command (slipped or fell)
    released_away   the gripper opened and the subtask it worked on (placing) is not done
    disturbed       an object the twin kept in place moved (an unexpected contact)
    no_progress     `ProgressWatch`: several steps in a row without progress on the subtask

and names the subtask that must be redone: the one that grasps the object again after the first three. The
empty-gripper rule (`needs_regrasp`) holds whatever was detected: a subtask that carries an object (placing
it) never continues while the hand does not hold it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from planner.task import Subtask
from render.failure_view import FailureMarks
from scoring.failure import FailureEvidence
from sim import predicates
from sim.world import World

MOVED_M = 0.03             # an object seen this much farther than the twin predicted moved unexpectedly
PREDICTED_STILL_M = 0.01   # ... when the twin predicted it to move less than this
NO_PROGRESS_STEPS = 6      # executed steps in a row without progress before `no_progress`
PROGRESS_EPS = 0.02        # progress must beat the best so far by this much to count


@dataclass(frozen=True)
class Prediction:
    """What the twin predicted for the executed step (world frame, metres)."""

    step: int
    subtask_index: int
    gripper: str                                  # the executed candidate's gripper command
    held_before: str | None
    held_after: str | None
    xyz_before: dict[str, tuple[float, float, float]]
    xyz_after: dict[str, tuple[float, float, float]]
    done_after: bool
    goal_xyz: tuple[float, float, float]

    @classmethod
    def of(cls, step: int, subtask_index: int, world: World, held_before: str | None, roll) -> Prediction:
        """From the world before the step and the chosen rollout (sim.rollout.Rollout)."""
        return cls(step, subtask_index, roll.candidate.gripper, held_before, roll.grasped_after,
                   {n: tuple(map(float, p.position)) for n, p in world.object_poses().items()},
                   {n: tuple(map(float, p.position)) for n, p in roll.object_poses_after.items()},
                   bool(roll.probe.get("done", False)), tuple(map(float, roll.candidate.goal.xyz)))


@dataclass(frozen=True)
class Failure:
    """A typed failure and where the plan goes back to. target_xyz: where the crosshair goes (the object now);
    predicted_xyz: where the twin expected it; from_xyz: the gripper now (the correction arrow starts there)."""

    type: str
    step: int                         # the executed step that failed
    object: str | None
    message: str
    redo_subtask: int
    evidence: FailureEvidence
    target_xyz: tuple[float, float, float] | None = None
    predicted_xyz: tuple[float, float, float] | None = None
    from_xyz: tuple[float, float, float] | None = None
    gripper_closed: bool = False
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"type": self.type, "step": self.step, "object": self.object, "message": self.message,
                "redo_subtask": self.redo_subtask, "evidence": self.evidence.to_dict(),
                "target_xyz": self.target_xyz, "predicted_xyz": self.predicted_xyz, "from_xyz": self.from_xyz,
                "gripper_closed": self.gripper_closed, **self.extra}


def failure_marks(failure: Failure, redo_say: str) -> FailureMarks:
    """What the failure picture (render.failure_view) marks for this failure."""
    return FailureMarks(failure.type, failure.redo_subtask, redo_say, failure.object,
                        failure.extra.get("target_object"), failure.target_xyz, failure.predicted_xyz,
                        failure.from_xyz, failure.gripper_closed)


def grasp_subtask_for(subtasks: Sequence[Subtask], obj: str | None, upto: int) -> int | None:
    """The latest subtask at or before `upto` whose goal is to grasp `obj`."""
    for j in range(min(upto, len(subtasks) - 1), -1, -1):
        if obj is not None and subtasks[j].done == {"grasped": obj}:
            return j
    return None


def carried_object(subtasks: Sequence[Subtask], index: int) -> str | None:
    """The object subtask `index` carries: the one its preceding subtask grasped, when the subtask's goal is about
    it and is not itself a grasp (placing it on, in or near something)."""
    if not 0 < index < len(subtasks):
        return None
    before = subtasks[index - 1].done
    if not (isinstance(before, dict) and set(before) == {"grasped"}):
        return None
    obj = before["grasped"]
    done = subtasks[index].done
    if isinstance(done, dict) and "grasped" in done:
        return None
    return obj if obj in predicates.objects_of(done) else None


def needs_regrasp(subtasks: Sequence[Subtask], index: int, held: str | None, world: World) -> int | None:
    """The empty-gripper rule: the subtask to go back to when subtask `index` carries an object the hand does not
    hold and is not done; None when the subtask may go on."""
    obj = carried_object(subtasks, index)
    if obj is None or held == obj or predicates.evaluate(world, subtasks[index].done):
        return None
    return grasp_subtask_for(subtasks, obj, index)


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)))


def _subject(subtasks: Sequence[Subtask], index: int) -> str | None:
    """The object subtask `index` is about: the grasped one, or the carried one."""
    if 0 <= index < len(subtasks):
        done = subtasks[index].done
        if isinstance(done, dict) and set(done) == {"grasped"}:
            return done["grasped"]
    return carried_object(subtasks, index)


def diagnose(pred: Prediction, world: World, held: str | None, recon: Mapping, subtasks: Sequence[Subtask],
             gripper_closed: bool, watch_steps: int = 0) -> Failure | None:
    """Compare the prediction for the executed step with the twin rebuilt from the next observation.

    held: what the tracker now says the hand holds. recon: the reconstruction summary (objects' status: only
    objects found this step and the step before count for `disturbed`)."""
    index = pred.subtask_index
    sub = subtasks[index] if index < len(subtasks) else None
    done_now = bool(sub is not None and predicates.evaluate(world, sub.done))
    subject = _subject(subtasks, index)
    now = {n: tuple(map(float, p.position)) for n, p in world.object_poses().items()}
    found = {n for n, o in recon.get("objects", {}).items() if o.get("status", "ok") == "ok"}
    moved = tuple(sorted(
        n for n, xyz in now.items()
        if n in found and n in pred.xyz_after and n in pred.xyz_before
        and n not in (pred.held_before, pred.held_after, held)
        and _dist(pred.xyz_after[n], pred.xyz_before[n]) < PREDICTED_STILL_M
        and _dist(xyz, pred.xyz_after[n]) > MOVED_M))
    tcp = tuple(map(float, world.tcp_pose().xyz))

    def failure(kind: str, obj: str | None, message: str, redo: int | None) -> Failure:
        ev = FailureEvidence(pred.gripper, index, grasp_subtask_for(subtasks, obj, index), obj, pred.held_before,
                             pred.held_after, held, pred.done_after, done_now, moved, watch_steps,
                             NO_PROGRESS_STEPS)
        return Failure(kind, pred.step, obj, message, index if redo is None else redo, ev,
                       now.get(obj) if obj else None, pred.xyz_after.get(obj) if obj else None, tcp,
                       gripper_closed)

    lost = pred.held_before is not None and held != pred.held_before
    if pred.gripper == "close" and subject is not None and held != subject and not lost:
        expected = "the twin predicted the grasp" if pred.held_after == subject else "the twin did not expect it"
        return failure("grasp_missed", subject, f"closed the gripper to grasp {subject} but it holds "
                       f"{held or 'nothing'} ({expected})", grasp_subtask_for(subtasks, subject, index))
    if lost and pred.gripper != "open":
        obj = pred.held_before
        return failure("dropped", obj, f"{obj} slipped or dropped out of the gripper (no open command)",
                       grasp_subtask_for(subtasks, obj, index))
    if lost and pred.gripper == "open" and not done_now:
        obj = pred.held_before
        off = _dist(now[obj], pred.xyz_after[obj]) if obj in now and obj in pred.xyz_after else float("nan")
        return failure("released_away", obj, f"released {obj} away from the goal: the subtask is not done "
                       f"(it lies {1000 * off:.0f} mm from where the twin predicted)",
                       grasp_subtask_for(subtasks, obj, index))
    if moved:
        obj = moved[0]
        redo = _undone_by(subtasks, index, obj, world)
        return failure("disturbed", obj, f"unexpected contact moved {', '.join(moved)} "
                       f"({1000 * _dist(now[obj], pred.xyz_after[obj]):.0f} mm from the prediction)", redo)
    return None


def no_progress(step: int, index: int, subtasks: Sequence[Subtask], world: World, held: str | None,
                gripper_closed: bool, stale: int) -> Failure:
    """The `no_progress` failure for subtask `index` (it is redone: the annealing starts again)."""
    obj = _subject(subtasks, index)
    ev = FailureEvidence("keep", index, grasp_subtask_for(subtasks, obj, index), obj, held, held, held, False, False,
                         (), stale, NO_PROGRESS_STEPS)
    aim = obj
    if obj is not None and obj == held and index < len(subtasks):
        # carrying it already: the target is where it must go (the other object of the placing goal)
        others = sorted(predicates.objects_of(subtasks[index].done) - {obj})
        aim = others[0] if others else obj
    target = tuple(map(float, world.object_pose(aim).xyz)) if aim and world.has_object(aim) else None
    return Failure("no_progress", step, obj, f"{stale} steps in a row without progress on the subtask", index, ev,
                   target, None, tuple(map(float, world.tcp_pose().xyz)), gripper_closed, {"target_object": aim})


def empty_gripper(step: int, index: int, redo: int, subtasks: Sequence[Subtask], world: World, held: str | None,
                  gripper_closed: bool) -> Failure:
    """The empty-gripper rule's failure when no comparison typed one (the object was lost while the arm held
    still, or the twin's belief changed): subtask `index` carries an object the hand does not hold."""
    obj = carried_object(subtasks, index)
    ev = FailureEvidence("keep", index, redo, obj, obj, obj, held, False, False, (), 0, NO_PROGRESS_STEPS)
    target = tuple(map(float, world.object_pose(obj).xyz)) if obj and world.has_object(obj) else None
    return Failure("dropped", step, obj, f"subtask {index} carries {obj} but the gripper holds "
                   f"{held or 'nothing'}: grasp it again", redo, ev, target, None,
                   tuple(map(float, world.tcp_pose().xyz)), gripper_closed, {"found_by": "empty-gripper rule"})


def _undone_by(subtasks: Sequence[Subtask], index: int, obj: str, world: World) -> int | None:
    """After `obj` was moved: the grasp subtask of the earliest finished placing of `obj` that no longer holds;
    None (stay) when nothing finished was undone."""
    for j in range(min(index, len(subtasks))):
        done = subtasks[j].done
        if "grasped" in done or obj not in predicates.objects_of(done):
            continue
        if not predicates.evaluate(world, done):
            return grasp_subtask_for(subtasks, carried_object(subtasks, j), j)
    return None


class ProgressWatch:
    """Counts executed steps in a row in which the subtask's progress did not beat its best by PROGRESS_EPS."""

    def __init__(self, limit: int = NO_PROGRESS_STEPS) -> None:
        self.limit = limit
        self.reset(None)

    def reset(self, subtask_index: int | None) -> None:
        self.subtask_index, self.best, self.stale = subtask_index, -1.0, 0

    def update(self, subtask_index: int, progress: float) -> bool:
        """Record this step's progress; True when the limit of steps without progress is reached."""
        if subtask_index != self.subtask_index:
            self.reset(subtask_index)
        if progress > self.best + PROGRESS_EPS:
            self.best, self.stale = progress, 0
            return False
        self.stale += 1
        return self.stale >= self.limit
