"""The answer every agent gives for one (agent, view) call, as a JSON schema, and its strict parser.

``ANSWER_SCHEMA`` is a plain JSON-schema dict so that API backends can hand it to the model verbatim
(an Anthropic tool ``input_schema``, an OpenAI ``response_format={"type": "json_schema", ...}`` with
``strict: true``: every property is required and ``additionalProperties`` is false for that reason).
``answer_schema(candidate_ids)`` returns a copy whose ``id`` is restricted to the ids drawn in the
picture, for backends that support constrained decoding.

``parse_answer`` validates by walking the schema dict itself (``validate_against_schema``: a small
validator for the keywords the schema uses, no jsonschema dependency), then checks what a schema cannot
say: ids must be among the request's candidate ids and may not repeat. A candidate that is left out of an
answer is allowed; fusion treats it as unscored by that agent in that view.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.errors import AnswerError

DIMENSIONS: tuple[str, ...] = ("safety", "task_alignment", "efficiency", "feasibility")
SCORE_MIN = 0.0
SCORE_MAX = 10.0

_DIMENSION_HELP = {
    "safety": "0 = collides or passes dangerously close to obstacles, 10 = clearly collision-free",
    "task_alignment": "0 = does not advance the task, 10 = completes the current subtask",
    "efficiency": "0 = long detour, 10 = short direct path",
    "feasibility": "0 = the robot cannot follow it (reach, joint limits, grasp), 10 = easily executable",
}


def _score_schema(description: str) -> dict[str, Any]:
    return {"type": "number", "minimum": SCORE_MIN, "maximum": SCORE_MAX, "description": description}


ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "view_clarity": _score_schema(
            "How well this view shows the candidate trajectories: 0 = curves hidden or overlapping, "
            "10 = every numbered curve clearly distinguishable"
        ),
        "candidates": {
            "type": "array",
            "description": "One entry per numbered candidate trajectory drawn in the image",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "description": "The candidate number as drawn in the image"},
                    **{dim: _score_schema(_DIMENSION_HELP[dim]) for dim in DIMENSIONS},
                },
                "required": ["id", *DIMENSIONS],
                "additionalProperties": False,
            },
        },
    },
    "required": ["view_clarity", "candidates"],
    "additionalProperties": False,
}


def answer_schema(candidate_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """A deep copy of ANSWER_SCHEMA; with candidate_ids, ``id`` is restricted to them with ``enum``."""
    schema = copy.deepcopy(ANSWER_SCHEMA)
    if candidate_ids is not None:
        schema["properties"]["candidates"]["items"]["properties"]["id"]["enum"] = sorted(
            int(i) for i in candidate_ids
        )
    return schema


@dataclass(frozen=True)
class Answer:
    """One validated answer: the view's clarity and, per candidate id, a score for every dimension."""

    view_clarity: float
    scores: dict[int, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        """The answer in ANSWER_SCHEMA's shape (JSON-safe; parse_answer(to_dict()) gives it back)."""
        return {
            "view_clarity": self.view_clarity,
            "candidates": [
                {"id": cid, **{dim: s[dim] for dim in DIMENSIONS}} for cid, s in self.scores.items()
            ],
        }


# --- a small JSON-schema validator for the keywords ANSWER_SCHEMA uses -------------------------------------

_KNOWN_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "enum",
        "description",
        "title",
        "minItems",
        "maxItems",
    }
)


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but true/false are not numbers in JSON.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_ok(value: Any, type_name: str) -> bool:
    if type_name == "object":
        return isinstance(value, Mapping)
    if type_name == "array":
        return isinstance(value, (list, tuple))
    if type_name == "number":
        return _is_number(value) and math.isfinite(value)
    if type_name == "integer":
        # 3.0 is a valid JSON-schema integer; 3.5 is not.
        return _is_number(value) and math.isfinite(value) and float(value).is_integer()
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "null":
        return value is None
    raise ValueError(f"schema uses unsupported type {type_name!r}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def validate_against_schema(value: Any, schema: Mapping[str, Any], path: str = "") -> None:
    """Raise AnswerError naming the first place where ``value`` breaks ``schema``.

    Supports type, properties, required, additionalProperties (bool), items, minimum, maximum, enum,
    minItems, maxItems; any other keyword is a programming error (ValueError), so the schema and this
    validator cannot drift apart silently.
    """
    unknown = set(schema) - _KNOWN_KEYWORDS
    if unknown:
        raise ValueError(f"validate_against_schema does not support keywords {sorted(unknown)}")
    where = path or "answer"
    type_name = schema.get("type")
    if type_name is not None and not _type_ok(value, type_name):
        article = "an" if type_name[0] in "aeiou" else "a"
        extra = " (finite)" if type_name in ("number", "integer") else ""
        raise AnswerError(f"{where}: expected {article} {type_name}{extra}, got {_show(value)}")
    if "enum" in schema and value not in schema["enum"]:
        raise AnswerError(f"{where}: expected one of {schema['enum']}, got {_show(value)}")
    if "minimum" in schema or "maximum" in schema:
        lo, hi = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
        if not lo <= value <= hi:
            raise AnswerError(f"{where}: expected a number in [{lo:g}, {hi:g}], got {_show(value)}")
    if isinstance(value, Mapping):
        for key in schema.get("required", ()):
            if key not in value:
                raise AnswerError(f"{where}: missing required field '{key}'")
        properties = schema.get("properties", {})
        if schema.get("additionalProperties", True) is False:
            extra_keys = [k for k in value if k not in properties]
            if extra_keys:
                raise AnswerError(
                    f"{where}: unexpected field(s) {', '.join(repr(k) for k in extra_keys)}; "
                    f"allowed: {', '.join(properties)}"
                )
        for key, sub_schema in properties.items():
            if key in value:
                validate_against_schema(value[key], sub_schema, _field(path, key))
    if isinstance(value, (list, tuple)):
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise AnswerError(f"{where}: expected at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise AnswerError(f"{where}: expected at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for index, item in enumerate(value):
                validate_against_schema(item, schema["items"], _field(path, index))


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN / Infinity by default; a score of NaN must never reach fusion.
    raise AnswerError(f"answer: non-finite number {name} is not valid JSON")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        snippet = text[max(0, err.pos - 20) : err.pos + 20]
        raise AnswerError(
            f"answer is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} (near {snippet!r})"
        ) from None


def parse_answer(obj_or_text: Mapping[str, Any] | str | bytes, candidate_ids: Iterable[int]) -> Answer:
    """Validate one agent's answer (a dict or its JSON text) strictly; AnswerError says what is wrong.

    Checks ANSWER_SCHEMA (every score a finite number in [0, 10], all fields present, no extra fields),
    then that every id is one of ``candidate_ids`` and appears at most once. Candidates may be left out.
    """
    allowed = {int(i) for i in candidate_ids}
    if isinstance(obj_or_text, bytes):
        try:
            obj_or_text = obj_or_text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AnswerError(f"answer is not UTF-8 text: {err}") from None
    obj = _load_json(obj_or_text) if isinstance(obj_or_text, str) else obj_or_text
    validate_against_schema(obj, ANSWER_SCHEMA)
    scores: dict[int, dict[str, float]] = {}
    for index, item in enumerate(obj["candidates"]):
        cid = int(item["id"])
        if cid not in allowed:
            raise AnswerError(
                f"candidates[{index}].id: {cid} is not a candidate in this request "
                f"(expected one of {sorted(allowed)})"
            )
        if cid in scores:
            raise AnswerError(f"candidates[{index}].id: candidate {cid} is scored more than once")
        scores[cid] = {dim: float(item[dim]) for dim in DIMENSIONS}
    return Answer(view_clarity=float(obj["view_clarity"]), scores=scores)
