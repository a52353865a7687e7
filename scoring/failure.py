"""The failure question (after ViFailback): did the last executed step fail, how, and what must be redone?

The planner asks it after its twin found the new observation disagreeing with the twin's prediction for the
executed candidate. Each agent sees one picture of the scene with visual symbols drawn on it (a crosshair on
the target, an arrow for the correction, gripper ON/OFF, a rewind mark) and the twin's facts in words, and
answers JSON validated against ``FAILURE_SCHEMA``:
``{"failure": bool, "failure_type": one of FAILURE_TYPES or "none", "redo_subtask": int, "confidence": q,
"explanation": text}``.

The prompt is a versioned template folder under configs/prompts/ whose name starts with "_" (``_failure-v1``)
so the scoring prompt variants (``prompts.prompt_variants``) never list it. simjudge answers from the
facts (``failure_simjudge``); the API backends send the picture and the text with their real clients, the
transformers backend gives both to its local model.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import configs
from scoring.backend import AgentConfig, Backend
from scoring.errors import AgentParamError, AnswerError, BackendError, ConfigError
from scoring.prompts import Prompt
from scoring.schema import REFUSAL_MARKER, validate_against_schema

FAILURE_TYPES: tuple[str, ...] = ("grasp_missed", "dropped", "released_away", "disturbed", "no_progress")
NO_FAILURE = "none"
DEFAULT_FAILURE_PROMPT = "_failure-v1"
TOOL_NAME = "report_failure"
SCHEMA_NAME = "failure_answer"
PLACEHOLDERS = ("instruction", "subtask", "subtasks", "facts", "symbols", "width", "height")

FAILURE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "failure": {"type": "boolean", "description": "true when the last step went wrong"},
        "failure_type": {"type": "string", "enum": [*FAILURE_TYPES, NO_FAILURE]},
        "redo_subtask": {"type": "integer", "minimum": 0,
                         "description": "the 0-based index of the subtask to do next"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 10},
        "explanation": {"type": "string"},
    },
    "required": ["failure", "failure_type", "redo_subtask", "confidence", "explanation"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class FailureEvidence:
    """What the twin predicted for the executed step and what the next observation showed (simjudge's input;
    a VLM reads the same facts as text). Positions in the world frame, metres."""

    gripper_command: str                 # "open", "close" or "keep": what the step ended with
    subtask_index: int                   # the subtask the step worked on
    grasp_subtask_index: int | None      # the subtask that grasps `object` (None: the task has none)
    object: str | None                   # the object the failure is about
    held_before: str | None
    held_predicted: str | None
    held_observed: str | None
    subtask_done_predicted: bool
    subtask_done_observed: bool
    moved_unexpectedly: tuple[str, ...] = ()   # objects the observation shows moved although the twin kept them
    steps_without_progress: int = 0
    no_progress_limit: int = 6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FailureQuestion:
    """One failure question: the task, its subtasks, the picture with symbols, the facts, the symbols' legend."""

    instruction: str
    subtasks: tuple[str, ...]
    subtask_index: int
    png: bytes
    width: int
    height: int
    evidence: FailureEvidence
    symbols: tuple[str, ...] = ()

    @property
    def png_sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


@dataclass(frozen=True)
class FailureAnswer:
    failure: bool
    failure_type: str
    redo_subtask: int
    confidence: float
    explanation: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def facts_text(ev: FailureEvidence, subtasks: Sequence[str]) -> str:
    """The twin's facts in words (one per line), as a VLM reads them."""
    def name(x: str | None) -> str:
        return x or "nothing"

    lines = [f"The step ended with the gripper command: {ev.gripper_command}.",
             f"Before the step the gripper held {name(ev.held_before)}; the twin predicted it would then hold "
             f"{name(ev.held_predicted)}; the cameras now show it holding {name(ev.held_observed)}.",
             f"The twin predicted the subtask {'done' if ev.subtask_done_predicted else 'not yet done'}; "
             f"now it is {'done' if ev.subtask_done_observed else 'not done'}."]
    if ev.moved_unexpectedly:
        lines.append("Objects that moved although nothing should have moved them: "
                     + ", ".join(ev.moved_unexpectedly) + ".")
    if ev.steps_without_progress:
        lines.append(f"Steps in a row without progress on the subtask: {ev.steps_without_progress} "
                     f"(the limit is {ev.no_progress_limit}).")
    if ev.grasp_subtask_index is not None and 0 <= ev.grasp_subtask_index < len(subtasks):
        lines.append(f"The subtask that grasps {name(ev.object)} is number {ev.grasp_subtask_index}: "
                     f"{subtasks[ev.grasp_subtask_index]}.")
    return "\n".join(lines)


def _template(version: str) -> tuple[str, str, str]:
    directory = configs.find("prompts", version, "failure prompt")
    texts = []
    for part in ("system.md", "user.md"):
        path = directory / part
        text = configs.read_text(path, "failure prompt template", max_bytes=64 << 10).strip("\n")
        template = string.Template(text)
        unknown = [n for n in template.get_identifiers() if n not in PLACEHOLDERS]
        if not template.is_valid() or unknown:
            raise ConfigError(str(path), "template", f"placeholders among ${', $'.join(PLACEHOLDERS)}",
                              f"${unknown[0]}" if unknown else configs.Said("a '$' that starts no placeholder"))
        texts.append(text)
    return directory.name, texts[0], texts[1]


def build_failure_prompt(question: FailureQuestion, version: str = DEFAULT_FAILURE_PROMPT) -> Prompt:
    """The failure question's words for one agent (template `version` under configs/prompts/)."""
    name, system, user = _template(version)
    values = {
        "instruction": question.instruction.strip(),
        "subtask": f"{question.subtask_index}: {question.subtasks[question.subtask_index]}"
        if 0 <= question.subtask_index < len(question.subtasks) else "(the whole task)",
        "subtasks": "\n".join(f"{i}: {s}" for i, s in enumerate(question.subtasks)) or "(none)",
        "facts": facts_text(question.evidence, question.subtasks),
        "symbols": "\n".join(f"- {s}" for s in question.symbols) or "- (no symbols drawn)",
        "width": str(question.width), "height": str(question.height),
    }
    system_text = string.Template(system).substitute(values)
    user_text = string.Template(user).substitute(values)
    digest = hashlib.sha256(system_text.encode() + b"\0" + user_text.encode()).hexdigest()
    return Prompt(system=system_text, user=user_text, version=name, sha256=digest)


def parse_failure_answer(text: str, n_subtasks: int) -> FailureAnswer:
    """Validate an answer (bare JSON or JSON inside text); AnswerError says what is wrong. A redo_subtask past
    the last subtask is clamped (noted); an unknown failure_type is an error."""
    stripped = (text or "").strip()
    if stripped.startswith(REFUSAL_MARKER):
        raise AnswerError(f"refused: {stripped[len(REFUSAL_MARKER):].strip()[:160]}")
    obj = None
    notes: list[str] = []
    try:
        obj = json.loads(stripped)
    except ValueError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if start >= 0 and end > start:
            try:
                obj = json.loads(stripped[start:end + 1])
                notes.append("JSON taken from the text around it")
            except ValueError:
                obj = None
    if not isinstance(obj, dict):
        raise AnswerError(f"failure answer: expected a JSON object, got {stripped[:160]!r}")
    validate_against_schema(obj, FAILURE_SCHEMA)
    if not math.isfinite(float(obj["confidence"])):
        raise AnswerError("failure answer: confidence: expected a finite number")
    if obj["failure"] != (obj["failure_type"] != NO_FAILURE):
        raise AnswerError(f"failure answer: failure={obj['failure']} contradicts failure_type "
                          f"{obj['failure_type']!r}")
    redo = int(obj["redo_subtask"])
    if n_subtasks and redo >= n_subtasks:
        notes.append(f"redo_subtask {redo} clamped to {n_subtasks - 1}")
        redo = n_subtasks - 1
    return FailureAnswer(bool(obj["failure"]), obj["failure_type"], redo, float(obj["confidence"]),
                         str(obj["explanation"]), tuple(notes))


def _ask_anthropic(backend: Any, question: FailureQuestion, agent: AgentConfig, prompt: Prompt) -> str:
    import anthropic

    from scoring.api_errors import translate_api_error

    model, max_tokens, temperature = backend._settings(agent)
    kwargs: dict[str, Any] = {
        "model": model, "max_tokens": max_tokens, "system": prompt.system,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(question.png).decode("ascii")}},
            {"type": "text", "text": prompt.user}]}],
        "tools": [{"name": TOOL_NAME, "description": "Report whether the last step failed and what to redo.",
                   "input_schema": FAILURE_SCHEMA}],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }
    if temperature is not None:
        kwargs["extra_body"] = {"temperature": temperature}
    try:
        message = backend._get_client().messages.create(**kwargs)
    except anthropic.AnthropicError as err:
        raise translate_api_error(err, anthropic, provider="anthropic", timeout_s=backend.timeout_s,
                                  key_env="ANTHROPIC_API_KEY") from None
    for block in getattr(message, "content", None) or []:
        if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) == TOOL_NAME:
            return json.dumps(block.input)
    # no tool call: a refusal or plain text, as the scoring answers are read
    return backend._answer_text(message, agent, max_tokens)


def _ask_openai(backend: Any, question: FailureQuestion, agent: AgentConfig, prompt: Prompt) -> str:
    import openai

    model, max_tokens, temperature, structured = backend._settings(agent)
    url = "data:image/png;base64," + base64.b64encode(question.png).decode("ascii")
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "system", "content": prompt.system},
                     {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                  {"type": "text", "text": prompt.user}]}],
        backend.max_tokens_param: max_tokens,
    }
    if temperature is not None:
        kwargs["temperature"] = temperature
    if structured == "json_schema" and not backend._no_response_format:
        kwargs["response_format"] = {"type": "json_schema", "json_schema": {
            "name": SCHEMA_NAME, "strict": True, "schema": FAILURE_SCHEMA}}
    elif structured == "json_object" and not backend._no_response_format:
        kwargs["response_format"] = {"type": "json_object"}
    client = backend._get_client()
    try:
        completion = client.chat.completions.create(**kwargs)
    except openai.OpenAIError as err:
        raise backend._translate(err, openai, client) from None
    return backend._answer_text(completion, agent, kwargs)


def _ask_simjudge(backend: Any, question: FailureQuestion, agent: AgentConfig, prompt: Prompt) -> str:
    from scoring.failure_simjudge import answer_failure

    return answer_failure(question)


def _ask_transformers(backend: Any, question: FailureQuestion, agent: AgentConfig, prompt: Prompt) -> str:
    # A local model has no tool or schema mode: the template's own words ask for the JSON shape, and the
    # strict parser judges what comes back.
    try:
        backend.check_agent_params(agent.params)
    except AgentParamError as err:
        raise BackendError(f"agent {agent.name!r}: params.{err}") from None
    return backend.generate(prompt, question.png, agent, label="the failure picture")


# backend name -> how that backend is asked the failure question (its real client or model, the failure schema)
ASKERS = {"anthropic": _ask_anthropic, "openai": _ask_openai, "simjudge": _ask_simjudge,
          "transformers": _ask_transformers}


def ask_failure(backend: Backend, question: FailureQuestion, agent: AgentConfig,
                version: str = DEFAULT_FAILURE_PROMPT) -> tuple[str, FailureAnswer]:
    """Ask one agent with the prompt template `version`; returns (raw text, parsed answer). BackendError for a
    backend that cannot be asked; AnswerError for an unusable answer."""
    asker = ASKERS.get(backend.name)
    if asker is None:
        raise BackendError(f"the {backend.name} backend is not asked the failure question "
                           f"(supported: {', '.join(sorted(ASKERS))})")
    prompt = build_failure_prompt(question, version)
    raw = asker(backend, question, agent, prompt)
    return raw, parse_failure_answer(raw, len(question.subtasks))


def ask_agents(agents: Sequence[AgentConfig], backends: Mapping[str, Backend],
               question: FailureQuestion) -> list[dict[str, Any]]:
    """Ask every agent whose backend can answer; one row per agent (answer or error), never raises for an
    agent's failure: the planner's own diagnosis stands whatever the agents say."""
    rows = []
    for agent in agents:
        backend = backends.get(agent.backend)
        row: dict[str, Any] = {"agent": agent.name, "backend": agent.backend}
        if backend is None or backend.name not in ASKERS:
            row["error"] = f"backend {agent.backend!r} is not asked the failure question"
            rows.append(row)
            continue
        try:
            raw, parsed = ask_failure(backend, question, agent)
        except (AnswerError, BackendError, configs.InputError) as err:
            row["error"] = str(err)
        else:
            row.update(raw_text=raw, answer=parsed.to_dict())
        rows.append(row)
    return rows
