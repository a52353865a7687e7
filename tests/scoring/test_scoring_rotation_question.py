"""The rotation question: parsing, simjudge's answer from the twin's evidence, the vote, the prompt, and the real
anthropic / openai clients against the stub server on 127.0.0.1."""

import json

import pytest

from scoring.anthropic_backend import AnthropicBackend
from scoring.backend import AgentConfig
from scoring.config import ScoringConfig
from scoring.errors import AnswerError, RefusalError
from scoring.openai_backend import OpenAIBackend
from scoring.prompts import build_prompt
from scoring.request import ViewImage
from scoring.rotation_question import (
    NO_TURN,
    ROTATION_SCHEMA,
    RotationAnswer,
    RotationOutcome,
    RotationRequest,
    ask_rotation,
    fuse_rotation,
    parse_rotation_answer,
    twin_answer,
)
from scoring.scorer import Scorer
from scoring.simjudge import SimJudgeBackend
from tests.fakes.stub_server import ANTHROPIC_PATH, OPENAI_PATH, StubVLMServer, png_bytes

WEIGHTS = {"safety": 0.25, "task_alignment": 0.45, "efficiency": 0.1, "feasibility": 0.2}


def request(evidence=None, error_now=80.0, views=("front", "top")):
    ims = tuple(ViewImage(n, png_bytes(64, 48, seed=i), 64, 48) for i, n in enumerate(views))
    return RotationRequest("Lay the tall block on its side.", "turn it", "tall_block", ims, error_now, 7.5, evidence)


EVIDENCE = (
    RotationOutcome("gripper", "x", "positive", 45.0, 35.0),
    RotationOutcome("gripper", "x", "positive", 90.0, 0.0),
    RotationOutcome("gripper", "y", "negative", 90.0, 0.0),
    RotationOutcome("object", "z", "positive", 90.0, 80.0),
)


@pytest.mark.parametrize("text", [
    '{"frame": "gripper", "axis": "y", "direction": "negative", "angle_deg": 60}',
    'Turn it.\n```json\n{"frame": "gripper", "axis": "Y", "direction": "negative", "angle_deg": 60}\n```',
    'I would say {"frame": "gripper", "axis": "y", "direction": "negative", "angle_deg": 60} here.',
])
def test_answers_parse_bare_fenced_and_chatty(text):
    assert parse_rotation_answer(text) == RotationAnswer("gripper", "y", "negative", 60.0)


def test_none_needs_no_other_field_and_means_no_turn():
    answer = parse_rotation_answer('{"axis": "none"}')
    assert answer == NO_TURN and not answer.turns


@pytest.mark.parametrize("text, words", [
    ('{"frame": "gripper", "axis": "w", "direction": "positive", "angle_deg": 10}', "rotation.axis"),
    ('{"frame": "gripper", "axis": "x", "direction": "left", "angle_deg": 10}', "rotation.direction"),
    ('{"frame": "gripper", "axis": "x", "direction": "positive", "angle_deg": 400}', "rotation.angle_deg"),
    ('{"frame": "elbow", "axis": "x", "direction": "positive", "angle_deg": 10}', "rotation.frame"),
    ('{"frame": "gripper", "axis": "x", "angle_deg": 10}', "direction"),
    ('{"frame": "gripper", "axis": "x"', "no JSON object"),
    ("", "empty"),
])
def test_bad_answers_are_answer_errors_that_say_where(text, words):
    with pytest.raises(AnswerError, match=words):
        parse_rotation_answer(text)


def test_refusals_are_refusal_errors():
    with pytest.raises(RefusalError):
        parse_rotation_answer("I'm sorry, but I can't help with that request.")


def test_twin_answer_takes_the_smallest_error_then_the_smallest_angle_then_the_listed_order():
    assert twin_answer(request(EVIDENCE)) == RotationAnswer("gripper", "x", "positive", 90.0)
    assert twin_answer(request(EVIDENCE, error_now=5.0)) == NO_TURN   # within tolerance already
    worse = tuple(RotationOutcome(o.frame, o.axis, o.direction, o.angle_deg, 85.0) for o in EVIDENCE)
    assert twin_answer(request(worse)) == NO_TURN                      # nothing improves on now
    with pytest.raises(ValueError, match="evidence"):
        twin_answer(request(None))


def test_the_vote_takes_the_most_named_turn_and_the_median_angle():
    a = [RotationAnswer("gripper", "x", "positive", 60.0), RotationAnswer("gripper", "x", "positive", 90.0),
         RotationAnswer("gripper", "x", "positive", 120.0), RotationAnswer("object", "y", "negative", 30.0), NO_TURN]
    fused, votes = fuse_rotation(a)
    assert fused == RotationAnswer("gripper", "x", "positive", 90.0)
    assert votes == {"gripper:x:positive": 3, "object:y:negative": 1, "none": 1}
    assert fuse_rotation([NO_TURN, NO_TURN, a[0]])[0] == NO_TURN
    assert fuse_rotation([]) == (None, {})


def test_the_prompt_comes_from_the_template_folder_and_falls_back_to_v1():
    req = request(EVIDENCE)
    prompt = build_prompt(req, req.views[0], AgentConfig("a", "anthropic", "m"))
    assert prompt.version == "v1/rotation"
    assert "Held object: tall_block" in prompt.user and "View: front" in prompt.user
    assert "right-hand rule" in prompt.system and "$" not in prompt.user
    terse = build_prompt(req, req.views[0], AgentConfig("a", "anthropic", "m", {"prompt": "v1-terse"}))
    assert terse.version == "v1/rotation" and terse.user == prompt.user


def test_simjudge_answers_through_the_scorers_executor():
    agents = (AgentConfig("judge-0", "simjudge"), AgentConfig("judge-1", "simjudge"))
    config = ScoringConfig(weights=WEIGHTS, lambda_C=0.5, agents=agents, views=("front", "top"))
    with Scorer(None, config) as scorer:
        verdict = ask_rotation(scorer, request(EVIDENCE))
    assert verdict.answer == RotationAnswer("gripper", "x", "positive", 90.0)
    assert verdict.votes == {"gripper:x:positive": 4} and len(verdict.calls) == 4
    assert all(c["error"] is None and c["backend"] == "simjudge" for c in verdict.calls)
    json.dumps(verdict.to_dict())   # the run log takes it as it is
    assert json.loads(SimJudgeBackend().answer(request(EVIDENCE), request().views[0], agents[0]))["axis"] == "x"


@pytest.fixture
def keys(monkeypatch, direct_localhost):
    for var in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-key")


@pytest.mark.parametrize("behaviour", ["good", "chatty"])
def test_anthropic_forces_the_rotation_tool_and_its_answer_parses(keys, behaviour):
    turn = {"frame": "object", "axis": "z", "direction": "negative", "angle_deg": 45}
    with StubVLMServer(behaviour, rotation=turn) as server:
        backend = AnthropicBackend(base_url=server.anthropic_base_url, timeout_s=5.0)
        req = request(EVIDENCE)
        text = backend.answer(req, req.views[0], AgentConfig("claude", "anthropic", "claude-test"))
        backend.close()
        assert server.failed_checks == []
        (seen,) = server.requests
    assert seen.path == ANTHROPIC_PATH and seen.images == 1
    (tool,) = seen.body["tools"]
    assert tool["name"] == "submit_rotation" and tool["input_schema"] == ROTATION_SCHEMA
    assert seen.body["tool_choice"] == {"type": "tool", "name": "submit_rotation"}
    assert "Held object: tall_block" in seen.user_text
    assert parse_rotation_answer(text) == RotationAnswer("object", "z", "negative", 45.0)


@pytest.mark.parametrize("mode", ["json_schema", "none"])
def test_openai_sends_the_rotation_schema_and_its_answer_parses(keys, mode):
    with StubVLMServer("good", expect_response_format=mode) as server:
        backend = OpenAIBackend(base_url=server.openai_base_url, timeout_s=5.0, structured=mode)
        req = request(EVIDENCE)
        text = backend.answer(req, req.views[1], AgentConfig("qwen", "openai", "qwen-test"))
        key = backend.cache_key(req, req.views[1], AgentConfig("qwen", "openai", "qwen-test"))
        backend.close()
        assert server.failed_checks == []
        (seen,) = server.requests
    assert seen.path == OPENAI_PATH and "View: top" in seen.user_text
    if mode == "json_schema":
        assert seen.body["response_format"]["json_schema"]["schema"] == ROTATION_SCHEMA
    assert parse_rotation_answer(text) == RotationAnswer("gripper", "y", "positive", 90.0)
    assert isinstance(key, str) and len(key) == 64


def test_the_pools_actors_find_views_by_name():
    req = request(EVIDENCE)
    assert req.view("top") is req.views[1] and req.candidate_ids == ()
    with pytest.raises(KeyError, match="views"):
        req.view("side")
    with pytest.raises(ValueError, match="unique"):
        request(EVIDENCE, views=("front", "front"))
