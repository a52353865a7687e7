"""The failure question: its versioned prompt, the answer schema and parser, simjudge's answer from the twin's
facts, and the anthropic and openai backends asking it with their real client libraries against the stub server
on 127.0.0.1."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from scoring.anthropic_backend import AnthropicBackend
from scoring.backend import AgentConfig
from scoring.errors import AnswerError
from scoring.failure import (
    DEFAULT_FAILURE_PROMPT,
    FAILURE_SCHEMA,
    FailureEvidence,
    FailureQuestion,
    ask_agents,
    ask_failure,
    build_failure_prompt,
    parse_failure_answer,
)
from scoring.failure_simjudge import classify
from scoring.openai_backend import OpenAIBackend
from scoring.prompts import prompt_variants
from scoring.simjudge import SimJudgeBackend
from tests.fakes.failure_stub import MARKER, FailureStubServer
from tests.fakes.stub_server import png_bytes

SUBTASKS = ("grasp the red block", "place the red block on the blue block and let go")
DROPPED = FailureEvidence("keep", 1, 0, "red_block", "red_block", "red_block", None, False, False)
ANSWER = {"failure": True, "failure_type": "dropped", "redo_subtask": 0, "confidence": 8.5,
          "explanation": "The block lies on the table; the gripper is empty."}


@pytest.fixture(autouse=True)
def environment(monkeypatch, direct_localhost):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-planted-NEVER-SHOW")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-NEVER-SHOW")
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def question(evidence: FailureEvidence = DROPPED) -> FailureQuestion:
    return FailureQuestion("Put the red block on top of the blue block.", SUBTASKS, evidence.subtask_index,
                           png_bytes(96, 72), 96, 72, evidence,
                           ("red crosshair: red_block where the cameras see it now", "gripper ON (closed)",
                            "rewind mark: back to subtask 0: grasp the red block"))


# ------------------------------------------------------------------ prompt
def test_the_prompt_is_versioned_and_says_what_is_drawn_and_known():
    prompt = build_failure_prompt(question())
    assert prompt.version == DEFAULT_FAILURE_PROMPT == "_failure-v1"
    assert prompt.user.startswith(MARKER) and "$" not in prompt.system + prompt.user
    for word in ("crosshair", "arrow", "gripper ON", "rewind", *("grasp_missed", "dropped", "released_away",
                                                                  "disturbed", "no_progress")):
        assert word in prompt.system, word
    assert "0: grasp the red block" in prompt.user and "1: place the red block" in prompt.user
    assert "the cameras now show it holding nothing" in prompt.user
    assert "rewind mark: back to subtask 0" in prompt.user
    # not a scoring prompt variant: the scoring tests and optimise never see it
    assert DEFAULT_FAILURE_PROMPT not in prompt_variants()
    other = build_failure_prompt(question(dataclasses.replace(DROPPED, held_observed="red_block")))
    assert other.sha256 != prompt.sha256


# ------------------------------------------------------------------ answers
def test_a_valid_answer_parses_and_bad_ones_say_why():
    parsed = parse_failure_answer(json.dumps(ANSWER), 2)
    assert parsed.failure and parsed.failure_type == "dropped" and parsed.redo_subtask == 0
    chatty = parse_failure_answer("Looking at the picture:\n```json\n" + json.dumps(ANSWER) + "\n```", 2)
    assert chatty.failure_type == "dropped" and chatty.notes
    assert parse_failure_answer(json.dumps({**ANSWER, "redo_subtask": 7}), 2).redo_subtask == 1
    for bad, why in (({**ANSWER, "failure_type": "exploded"}, "expected one of"),
                     ({**ANSWER, "confidence": 14}, "confidence"),
                     ({**ANSWER, "failure": False}, "contradicts"),
                     ({k: v for k, v in ANSWER.items() if k != "redo_subtask"}, "redo_subtask")):
        with pytest.raises(AnswerError, match=why):
            parse_failure_answer(json.dumps(bad), 2)
    with pytest.raises(AnswerError, match="JSON object"):
        parse_failure_answer("I cannot see a robot.", 2)
    assert set(FAILURE_SCHEMA["required"]) == set(FAILURE_SCHEMA["properties"])   # strict mode needs all


@pytest.mark.parametrize(("evidence", "expected"), [
    (DROPPED, "dropped"),
    (FailureEvidence("close", 0, 0, "red_block", None, "red_block", None, True, False), "grasp_missed"),
    (FailureEvidence("open", 1, 0, "red_block", "red_block", None, None, True, False), "released_away"),
    (FailureEvidence("open", 1, 0, "red_block", "red_block", None, None, True, True), "none"),
    (FailureEvidence("keep", 0, 0, "red_block", None, None, None, False, False, ("blue_block",)), "disturbed"),
    (FailureEvidence("keep", 0, 0, "red_block", None, None, None, False, False, (), 6, 6), "no_progress"),
    (FailureEvidence("keep", 1, 0, "red_block", "red_block", "red_block", "red_block", False, False), "none"),
])
def test_simjudge_types_the_failure_from_the_twin(evidence, expected):
    assert classify(evidence)[0] == expected
    raw, answer = ask_failure(SimJudgeBackend(), question(evidence), AgentConfig("j", "simjudge"))
    assert answer.failure_type == expected and answer.failure == (expected != "none")
    assert answer.redo_subtask == (0 if expected in ("dropped", "grasp_missed", "released_away")
                                   else evidence.subtask_index)


# ------------------------------------------------------------------ VLM backends, real clients, stub server
def test_openai_backend_asks_over_the_picture_with_the_failure_schema():
    with FailureStubServer(answer=ANSWER) as server:
        backend = OpenAIBackend(base_url=server.openai_base_url, timeout_s=5.0)
        try:
            raw, answer = ask_failure(backend, question(), AgentConfig("q", "openai", "Qwen/Qwen2.5-VL-7B"))
        finally:
            backend.close()
        assert server.failed_checks == []
        (seen,) = server.requests
    assert answer.failure_type == "dropped" and answer.redo_subtask == 0 and json.loads(raw) == ANSWER
    fmt = seen.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == FAILURE_SCHEMA
    image = seen.body["messages"][1]["content"][0]["image_url"]["url"]
    assert base64.b64decode(image.split(",", 1)[1]) == question().png and seen.images == 1
    assert MARKER in seen.user_text and "rewind mark" in seen.user_text


def test_anthropic_backend_asks_with_a_forced_failure_tool():
    with FailureStubServer(answer=ANSWER) as server:
        backend = AnthropicBackend(base_url=server.anthropic_base_url, timeout_s=5.0)
        try:
            _, answer = ask_failure(backend, question(), AgentConfig("c", "anthropic", "claude-x"))
        finally:
            backend.close()
        assert server.failed_checks == []
        (seen,) = server.requests
    assert answer.failure_type == "dropped" and answer.confidence == 8.5
    assert seen.body["tool_choice"] == {"type": "tool", "name": "report_failure"}
    assert seen.body["tools"][0]["input_schema"] == FAILURE_SCHEMA


def test_one_agent_failing_leaves_the_others_answers():
    agents = (AgentConfig("q", "openai", "m"), AgentConfig("j", "simjudge"), AgentConfig("t", "transformers", "x"))
    with FailureStubServer(["500", "out_of_range"], answer=ANSWER) as server:
        backends = {"openai": OpenAIBackend(base_url=server.openai_base_url, timeout_s=5.0),
                    "simjudge": SimJudgeBackend()}
        try:
            rows = ask_agents(agents, backends, question())
            again = ask_agents(agents[:1], backends, question())
        finally:
            backends["openai"].close()
    assert "500" in rows[0]["error"] or "server" in rows[0]["error"].lower()
    assert rows[1]["answer"]["failure_type"] == "dropped"
    assert "not asked the failure question" in rows[2]["error"]
    assert "confidence" in again[0]["error"]   # 14 is out of range: the answer is refused, not clamped
