"""simjudge's answer to the failure question, from the twin's facts alone (``FailureEvidence``), never the picture.

Rules, first match wins (the same facts a person reads in the question's text):
- the gripper closed but holds nothing (or something else) although the subtask grasps an object: grasp_missed;
- the gripper held an object, was not told to open, and no longer holds it: dropped;
- the gripper opened, let its object go, and the subtask it worked on is not done: released_away;
- an object moved that the twin kept in place: disturbed;
- the steps without progress reached the limit: no_progress;
- otherwise none.
redo_subtask: the subtask that grasps the object again after the first three; the same subtask otherwise.
Confidence is 9 for a fact the cameras saw directly (held or not) and 6 for the softer ones.
"""

from __future__ import annotations

import json

from scoring.failure import NO_FAILURE, FailureEvidence, FailureQuestion


def classify(ev: FailureEvidence) -> tuple[str, float, str]:
    """(failure type or "none", confidence 0-10, one-sentence explanation)."""
    held_lost = ev.held_before is not None and ev.held_observed != ev.held_before
    if ev.gripper_command == "close" and ev.object is not None and ev.held_observed != ev.object \
            and (ev.held_predicted == ev.object or ev.grasp_subtask_index == ev.subtask_index):
        return "grasp_missed", 9.0, f"the gripper closed to grasp {ev.object} but holds {ev.held_observed or 'nothing'}"
    if held_lost and ev.gripper_command != "open":
        return "dropped", 9.0, f"{ev.held_before} fell out of the gripper although it was not told to open"
    if held_lost and ev.gripper_command == "open" and not ev.subtask_done_observed:
        return "released_away", 8.0, f"{ev.held_before} was let go but the subtask is not done"
    if ev.moved_unexpectedly:
        return "disturbed", 6.0, f"{', '.join(ev.moved_unexpectedly)} moved although nothing should have moved it"
    if ev.steps_without_progress >= ev.no_progress_limit:
        return "no_progress", 6.0, f"{ev.steps_without_progress} steps without progress on the subtask"
    return NO_FAILURE, 7.0, "the step did what the twin predicted"


def answer_failure(question: FailureQuestion) -> str:
    """The answer as JSON text, like a VLM writes it (parsed by ``failure.parse_failure_answer``)."""
    ev = question.evidence
    kind, confidence, why = classify(ev)
    redo = ev.subtask_index
    if kind in ("grasp_missed", "dropped", "released_away") and ev.grasp_subtask_index is not None:
        redo = ev.grasp_subtask_index
    return json.dumps({"failure": kind != NO_FAILURE, "failure_type": kind, "redo_subtask": max(0, redo),
                       "confidence": confidence, "explanation": why})
