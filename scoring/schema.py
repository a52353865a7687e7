"""The answer every agent gives for one (agent, view) call, as a JSON schema, and its parser.

``ANSWER_SCHEMA`` is a plain JSON-schema dict so that API backends can hand it to the model verbatim
(an Anthropic tool ``input_schema``, an OpenAI ``response_format={"type": "json_schema", ...}`` with
``strict: true``: every property is required and ``additionalProperties`` is false for that reason).
``answer_schema(candidate_ids)`` returns a copy whose ``id`` is restricted to the ids drawn in the
picture, for backends that support constrained decoding.

``parse_answer`` validates by walking the schema dict itself (``validate_against_schema``: a small
validator for the keywords the schema uses, no jsonschema dependency), then checks what a schema cannot
say: ids must be among the request's candidate ids and may not repeat. A candidate that is left out of an
answer is allowed; fusion treats it as unscored by that agent in that view.

Models do not always answer with bare JSON, so before the strict check ``parse_answer`` tolerates, and
records in ``Answer.notes``:

- JSON inside a fenced block (```json ... ```) or inside chatty text: the first balanced ``{...}`` that
  parses and has a "candidates" field is taken;
- a score outside [0, 10] (a finite number): clamped into range;
- an id written as a numeric string ("3"): read as the integer.

Everything else stays strict: missing or extra fields, a score that is not a finite number (NaN, "7"),
unknown or repeated ids are AnswerErrors. Text without any JSON object that reads like a refusal ("I'm sorry,
but I can't help with that") raises ``RefusalError`` (an AnswerError), so logs say "refused" instead of
"not JSON"; so does any text starting with ``REFUSAL_MARKER``, which backends put in front of a refusal the
API itself flagged (Anthropic ``stop_reason: refusal``, OpenAI ``message.refusal``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scoring.errors import AnswerError, RefusalError

logger = logging.getLogger(__name__)

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
    """One validated answer: the view's clarity and, per candidate id, a score for every dimension.

    notes: what the parser had to repair to accept the answer (JSON taken from a fenced block, a score
    clamped into [0, 10], a string id), empty for a clean answer.
    """

    view_clarity: float
    scores: dict[int, dict[str, float]]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The answer in ANSWER_SCHEMA's shape, plus "notes" when there are any (JSON-safe).

        parse_answer(to_dict()) gives a note-free answer back; an answer with notes carries an extra
        "notes" field, which the strict schema would reject, so re-parse only note-free answers.
        """
        out: dict[str, Any] = {
            "view_clarity": self.view_clarity,
            "candidates": [
                {"id": cid, **{dim: s[dim] for dim in DIMENSIONS}} for cid, s in self.scores.items()
            ],
        }
        if self.notes:
            out["notes"] = list(self.notes)
        return out


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


# --- parsing: tolerant extraction and repair, then strict validation ---------------------------------------

# Backends put this in front of a refusal that the API flagged itself (Anthropic stop_reason "refusal",
# OpenAI message.refusal), so the parser reports it as a refusal whatever the model's words were.
REFUSAL_MARKER = "[refusal]"

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_REFUSAL_RE = re.compile(
    r"\bi(?:'m| am)? (?:sorry|afraid),? (?:but )?i (?:can't|cannot|can not|won't|will not|am unable|'m unable)"
    r"|\bi'?m sorry,? but\b|\bi am sorry,? but\b"
    r"|\bi (?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist|provide|comply|do that|fulfil|fulfill|complete|support|answer|evaluate|score|rate|judge)"
    r"|\bi (?:must|have to|need to) (?:respectfully )?decline\b",
    re.IGNORECASE,
)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_INT_TEXT_RE = re.compile(r"[+-]?\d+")
_MAX_OBJECT_STARTS = 200  # '{' positions tried in chatty text; answers are short, this only bounds bad input


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN / Infinity by default; a score of NaN must never reach fusion.
    raise AnswerError(f"answer: non-finite number {name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _json_error(what: str, text: str, err: json.JSONDecodeError) -> AnswerError:
    near = text[max(0, err.pos - 20) : err.pos + 20]
    return AnswerError(
        f"{what} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno} (near {near!r})"
    )


def looks_like_refusal(text: str) -> bool:
    """True when text reads like a model declining to answer (used only for text holding no JSON object)."""
    return bool(_REFUSAL_RE.search(text.translate(_APOSTROPHES)))


def _is_answer_object(value: Any) -> bool:
    return isinstance(value, dict) and "candidates" in value


def extract_json(text: str) -> tuple[Any, tuple[str, ...]]:
    """The JSON value an answer text holds, and notes on where it was found.

    Bare JSON first; then the first fenced block (```json ... ```) holding an object with "candidates";
    then the first balanced {...} in the text that parses and has "candidates". NaN or Infinity anywhere
    in a candidate object fails (AnswerError). No object found: RefusalError when the text reads like a
    refusal, else AnswerError with the JSON error of the most likely candidate.
    """
    stripped = text.strip()
    if stripped.startswith(REFUSAL_MARKER):
        raise RefusalError(f"refused: {_snippet(stripped[len(REFUSAL_MARKER) :].strip() or '(no text)')}")
    if not stripped:
        raise AnswerError("answer is empty (not valid JSON)")
    try:
        return _DECODER.decode(stripped), ()
    except json.JSONDecodeError as err:
        first_error = _json_error("answer", stripped, err)

    for match in _FENCE_RE.finditer(stripped):
        block = match.group(1).strip()
        try:
            value = _DECODER.decode(block)
        except json.JSONDecodeError as err:
            first_error = _json_error("the fenced JSON block of the answer", block, err)
            break  # the model meant this block; report its error rather than hunting further
        if _is_answer_object(value):
            return value, ("JSON taken from a fenced code block",)

    for count, match in enumerate(re.finditer(r"\{", stripped)):
        if count >= _MAX_OBJECT_STARTS:
            break
        try:
            value, end = _DECODER.raw_decode(stripped, match.start())
        except json.JSONDecodeError:
            continue
        if _is_answer_object(value):
            ignored = len(stripped) - (end - match.start())
            return value, (f"JSON taken from the text around it ({ignored} characters ignored)",)

    if looks_like_refusal(stripped):
        raise RefusalError(f"refused: {_snippet(stripped)}")
    raise first_error


def _clamp(value: Any, where: str, notes: list[str]) -> Any:
    if _is_number(value) and math.isfinite(value) and not SCORE_MIN <= value <= SCORE_MAX:
        clamped = min(SCORE_MAX, max(SCORE_MIN, float(value)))
        notes.append(f"{where} {value:g} clamped to {clamped:g}")
        return clamped
    return value


def repair_answer(obj: Any) -> tuple[Any, tuple[str, ...]]:
    """A copy of a decoded answer with out-of-range scores clamped and numeric-string ids made integers.

    Anything else is left as it is for the strict validation to judge (a score of "7" or NaN stays wrong).
    """
    if not isinstance(obj, Mapping):
        return obj, ()
    obj = copy.deepcopy(dict(obj))
    notes: list[str] = []
    if "view_clarity" in obj:
        obj["view_clarity"] = _clamp(obj["view_clarity"], "view_clarity", notes)
    candidates = obj.get("candidates")
    if isinstance(candidates, list):
        for index, item in enumerate(candidates):
            if not isinstance(item, dict):
                continue
            cid = item.get("id")
            if isinstance(cid, str) and _INT_TEXT_RE.fullmatch(cid.strip()):
                item["id"] = int(cid.strip())
                notes.append(f"candidates[{index}].id {cid!r} read as {item['id']}")
            for dim in DIMENSIONS:
                if dim in item:
                    item[dim] = _clamp(item[dim], f"candidate {item.get('id')!s} {dim}", notes)
    return obj, tuple(notes)


def parse_answer(obj_or_text: Mapping[str, Any] | str | bytes, candidate_ids: Iterable[int]) -> Answer:
    """Parse one agent's answer (a dict, or the text a model wrote); AnswerError says what is wrong.

    Text: bare JSON, a fenced block or JSON inside chatty text (see extract_json); a refusal raises
    RefusalError. Then out-of-range scores are clamped and string ids read as integers (repair_answer),
    with a note each. Then strict: ANSWER_SCHEMA (every score a finite number, all fields present, no
    extra fields), every id one of ``candidate_ids`` and at most once. Candidates may be left out.
    """
    allowed = {int(i) for i in candidate_ids}
    if isinstance(obj_or_text, bytes):
        try:
            obj_or_text = obj_or_text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise AnswerError(f"answer is not UTF-8 text: {err}") from None
    notes: tuple[str, ...] = ()
    if isinstance(obj_or_text, str):
        obj, notes = extract_json(obj_or_text)
    else:
        obj = obj_or_text
    obj, repairs = repair_answer(obj)
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
    if repairs:
        logger.warning("answer accepted after repair: %s", "; ".join(repairs))
    elif notes:
        logger.info("answer accepted: %s", "; ".join(notes))
    return Answer(view_clarity=float(obj["view_clarity"]), scores=scores, notes=notes + repairs)
