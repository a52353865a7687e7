"""The rotation question (AntiGrounding's rigid-coupled rotation module): which axis to turn about, which way,
roughly how far.

The planner draws coordinate axes on the end effector ("gripper" frame) and on the object it holds ("object"
frame) in every view and asks each agent, per view: to bring the task closer, about which of those axes should
the gripper and the held object turn together, in which direction (right-hand rule: "positive" is
counter-clockwise seen from the arrow's tip), and by about how many degrees ("none" when no turn is needed).
The answer is JSON validated against ``ROTATION_SCHEMA``; the planner maps it back to a rotation matrix.

It travels through the same machinery as the scoring question: the same backends (``Backend.answer`` receives
a ``RotationRequest`` instead of a ``ScoreRequest``), the same prompt templates folder (``rotation_system.md``
and ``rotation_user.md`` beside a template's ``system.md``), the same executor (retries, rate limits, the Ray
pool). simjudge answers it from the twin: ``RotationRequest.evidence`` holds, for a grid of turns, the
orientation error the task's goal would have after each (computed by the planner in its twin), and
``twin_answer`` picks the turn with the smallest error.

Several answers (agents x views) are fused by a vote: the (frame, axis, direction) most answers name wins,
"none" is a vote too, and the angle is the median of the winners' angles.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scoring.errors import AnswerError, RefusalError
from scoring.request import ViewImage, view_named
from scoring.schema import REFUSAL_MARKER, looks_like_refusal, validate_against_schema
from scoring.scorer import CallSpec

if TYPE_CHECKING:
    from scoring.scorer import Scorer

log = logging.getLogger(__name__)

FRAMES = ("gripper", "object")
AXES = ("x", "y", "z", "none")
DIRECTIONS = ("positive", "negative")
MAX_ANGLE_DEG = 180.0
TOOL_NAME = "submit_rotation"
TOOL_DESCRIPTION = (
    "Submit how the gripper and the object it holds should turn together: the frame whose drawn axes you mean "
    "(gripper or object), the axis (x red, y green, z blue, or none), the direction (right-hand rule) and the "
    "angle in degrees."
)
SCHEMA_NAME = "rotation_answer"

ROTATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "frame": {"type": "string", "enum": list(FRAMES),
                  "description": "whose drawn axes the turn is about: the gripper's or the held object's"},
        "axis": {"type": "string", "enum": list(AXES),
                 "description": "x (red), y (green) or z (blue) arrow of that frame; none if no turn is needed"},
        "direction": {"type": "string", "enum": list(DIRECTIONS),
                      "description": "positive: counter-clockwise seen looking from the arrow's tip back at "
                                     "its base (right-hand rule); negative: clockwise"},
        "angle_deg": {"type": "number", "minimum": 0, "maximum": MAX_ANGLE_DEG,
                      "description": "roughly how far to turn, in degrees"},
    },
    "required": ["frame", "axis", "direction", "angle_deg"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class RotationOutcome:
    """One turn the twin tried: about `axis` of `frame`, `direction`, `angle_deg`; `error_deg` is the goal's
    orientation error after it (what simjudge compares)."""

    frame: str
    axis: str
    direction: str
    angle_deg: float
    error_deg: float

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise ValueError(f"RotationOutcome.frame: expected one of {FRAMES}, got {self.frame!r}")
        if self.axis not in AXES[:3]:
            raise ValueError(f"RotationOutcome.axis: expected one of {AXES[:3]}, got {self.axis!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"RotationOutcome.direction: expected one of {DIRECTIONS}, got {self.direction!r}")
        for name, hi in (("angle_deg", MAX_ANGLE_DEG), ("error_deg", 180.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= hi + 1e-9:
                raise ValueError(f"RotationOutcome.{name}: expected a number in [0, {hi:g}], got {v!r}")


@dataclass(frozen=True)
class RotationRequest:
    """The rotation question about a set of views showing the gripper's and the held object's axes.

    error_now_deg: the goal's orientation error now, as the twin sees it; tolerance_deg: how close counts as
    done; evidence: the twin's outcomes of a grid of turns (None for VLM-only use: simjudge then cannot answer).
    """

    instruction: str
    subtask: str
    held_object: str
    views: tuple[ViewImage, ...]
    error_now_deg: float | None = None
    tolerance_deg: float = 15.0
    evidence: tuple[RotationOutcome, ...] | None = None
    candidate_ids: tuple[int, ...] = field(default=(), repr=False)   # none: nothing numbered is drawn

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError(f"RotationRequest.instruction: expected non-empty text, got {self.instruction!r}")
        if not isinstance(self.held_object, str) or not self.held_object:
            raise ValueError(f"RotationRequest.held_object: expected an object name, got {self.held_object!r}")
        views = tuple(self.views)
        if not views or not all(isinstance(v, ViewImage) for v in views):
            raise ValueError("RotationRequest.views: expected at least one ViewImage")
        names = [v.name for v in views]
        if len(set(names)) != len(names):
            raise ValueError(f"RotationRequest.views: view names must be unique, got {names}")
        object.__setattr__(self, "views", views)
        if self.evidence is not None:
            object.__setattr__(self, "evidence", tuple(self.evidence))
        object.__setattr__(self, "candidate_ids", ())

    def view(self, name: str) -> ViewImage:
        """The view with this name (the agent pool's actors look views up by name, as in a ScoreRequest)."""
        return view_named(self.views, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": "rotation",
            "instruction": self.instruction,
            "subtask": self.subtask,
            "held_object": self.held_object,
            "views": [v.to_dict() for v in self.views],
            "error_now_deg": self.error_now_deg,
            "tolerance_deg": self.tolerance_deg,
            "evidence": None if self.evidence is None else [vars(o) for o in self.evidence],
        }


@dataclass(frozen=True)
class RotationAnswer:
    frame: str
    axis: str
    direction: str
    angle_deg: float

    @property
    def turns(self) -> bool:
        return self.axis != "none" and self.angle_deg > 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "axis": self.axis, "direction": self.direction, "angle_deg": self.angle_deg}


NO_TURN = RotationAnswer("gripper", "none", "positive", 0.0)


def _candidate_objects(text: str) -> list[Any]:
    fenced = re.findall(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)```", text, re.DOTALL)
    decoder = json.JSONDecoder()
    found = []
    for chunk in [text, *fenced]:
        for start in [m.start() for m in re.finditer(r"\{", chunk)][:100]:
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "axis" in value:
                found.append(value)
                break
    return found


def parse_rotation_answer(text: str | bytes) -> RotationAnswer:
    """A RotationAnswer from an agent's raw text (bare, fenced or chatty JSON). AnswerError on anything that
    breaks ROTATION_SCHEMA; RefusalError when the text is a refusal."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    stripped = text.strip()
    if stripped.startswith(REFUSAL_MARKER):
        raise RefusalError(f"refused: {stripped[len(REFUSAL_MARKER):].strip()[:160] or '(no text)'}")
    if not stripped:
        raise AnswerError("rotation answer is empty (not valid JSON)")
    objects = _candidate_objects(stripped)
    if not objects:
        if looks_like_refusal(stripped):
            raise RefusalError(f"refused: {stripped[:160]}")
        raise AnswerError(f"rotation answer holds no JSON object with an 'axis': {stripped[:160]!r}")
    obj = dict(objects[0])
    if isinstance(obj.get("axis"), str):   # models write "X" or "none " too
        obj["axis"] = obj["axis"].strip().lower()
    if obj.get("axis") == "none":
        obj.setdefault("frame", "gripper")
        obj.setdefault("direction", "positive")
        obj.setdefault("angle_deg", 0)
    validate_against_schema(obj, ROTATION_SCHEMA, "rotation")
    angle = float(obj["angle_deg"])
    if not math.isfinite(angle):
        raise AnswerError(f"rotation.angle_deg: expected a finite number, got {obj['angle_deg']!r}")
    if obj["axis"] == "none":
        return NO_TURN
    return RotationAnswer(obj["frame"], obj["axis"], obj["direction"], angle)


def twin_answer(request: RotationRequest) -> RotationAnswer:
    """simjudge's answer: the tried turn that leaves the smallest orientation error, if it improves on now.

    Ties go to the smaller angle, then to the order the planner listed the turns in. No turn when the error
    is already within tolerance or no turn reduces it by a degree or more.
    """
    if request.evidence is None:
        raise ValueError("the rotation question needs the twin's evidence (RotationRequest.evidence) for simjudge")
    now = request.error_now_deg
    if now is None or now <= request.tolerance_deg or not request.evidence:
        return NO_TURN
    best = min(enumerate(request.evidence), key=lambda io: (round(io[1].error_deg, 3), io[1].angle_deg, io[0]))[1]
    if best.error_deg > now - 1.0:
        return NO_TURN
    return RotationAnswer(best.frame, best.axis, best.direction, float(best.angle_deg))


@dataclass(frozen=True)
class RotationVerdict:
    """The fused answer and every call behind it (raw text, parsed answer or error), for the run log."""

    answer: RotationAnswer | None       # None: no agent gave a valid answer
    votes: dict[str, int]
    calls: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"answer": None if self.answer is None else self.answer.to_dict(), "votes": dict(self.votes),
                "calls": list(self.calls)}


def _key(a: RotationAnswer) -> str:
    return "none" if not a.turns else f"{a.frame}:{a.axis}:{a.direction}"


def fuse_rotation(answers: Sequence[RotationAnswer]) -> tuple[RotationAnswer | None, dict[str, int]]:
    """Majority vote over (frame, axis, direction) ("none" included), angle = median of the winners'.

    Ties go to the key seen first, so the result does not depend on dict order."""
    if not answers:
        return None, {}
    votes = Counter(_key(a) for a in answers)
    order = {k: i for i, k in reversed(list(enumerate(_key(a) for a in answers)))}
    winner = max(votes, key=lambda k: (votes[k], -order[k]))
    if winner == "none":
        return NO_TURN, dict(votes)
    frame, axis, direction = winner.split(":")
    angle = statistics.median(a.angle_deg for a in answers if _key(a) == winner)
    return RotationAnswer(frame, axis, direction, float(angle)), dict(votes)


def ask_rotation(scorer: Scorer, request: RotationRequest) -> RotationVerdict:
    """Ask every agent of the scorer about every view, through its executor; parse and fuse the answers.

    Never raises for a failing call: failures are recorded and left out of the vote.
    """
    calls = [CallSpec(agent, view) for agent in scorer.agents for view in request.views]
    outcomes = scorer.executor.run(request, calls, scorer.backends)   # type: ignore[arg-type]
    answers, records = [], []
    for call, outcome in zip(calls, outcomes, strict=True):
        parsed, error = None, outcome.error
        if error is None:
            try:
                parsed = parse_rotation_answer(outcome.raw_text or "")
            except AnswerError as err:
                error = f"{type(err).__name__}: {err}"
        if parsed is not None:
            answers.append(parsed)
        else:
            log.warning("rotation question: agent %r on view %r failed: %s", call.agent.name, call.view.name, error)
        records.append({"agent": call.agent.name, "view": call.view.name, "backend": call.agent.backend,
                        "model": call.agent.model, "raw_text": outcome.raw_text,
                        "parsed": None if parsed is None else parsed.to_dict(), "error": error,
                        "latency_s": outcome.latency_s})
    answer, votes = fuse_rotation(answers)
    return RotationVerdict(answer, votes, tuple(records))
