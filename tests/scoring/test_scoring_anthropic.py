"""AnthropicBackend with the real anthropic library against StubVLMServer on 127.0.0.1; api_errors helpers."""

import base64
import io
import json
import logging
import pickle

import anthropic
import httpx2
import pytest
from PIL import Image

from scoring.anthropic_backend import TOOL_NAME, AnthropicBackend
from scoring.api_errors import parse_retry_after_s, public_url, scrub, translate_api_error
from scoring.backend import AgentConfig, make_backend
from scoring.errors import AgentParamError, AnswerError, BackendError, RefusalError, TransientBackendError
from scoring.schema import answer_schema, parse_answer
from tests.fakes.stub_server import ANTHROPIC_PATH, StubVLMServer, make_stub_request, unused_base_url

PLANTED_KEY = "sk-ant-planted-0123456789-NEVER-SHOW-THIS"


@pytest.fixture(autouse=True)
def environment(monkeypatch, direct_localhost):
    # A key that must never show.
    for var in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", PLANTED_KEY)


@pytest.fixture(scope="module")
def request_():
    return make_stub_request(4, ("front", "top"))


AGENT = AgentConfig("claude-0", "anthropic", "claude-test-model")


def ask(server, request, agent=AGENT, **kwargs):
    backend = AnthropicBackend(base_url=server.anthropic_base_url, timeout_s=kwargs.pop("timeout_s", 5.0), **kwargs)
    try:
        return backend.answer(request, request.views[0], agent)
    finally:
        backend.close()


def test_good_answer_parses_and_the_request_is_well_formed(request_):
    with StubVLMServer("good", scores=lambda cid: {"safety": 9, "task_alignment": cid, "efficiency": 5,
                                                    "feasibility": 8}) as server:
        text = ask(server, request_)
        assert server.failed_checks == []
        (seen,) = server.requests
    parsed = parse_answer(text, request_.candidate_ids)
    assert parsed.notes == () and parsed.view_clarity == 7.0
    assert {cid: s["task_alignment"] for cid, s in parsed.scores.items()} == {0: 0, 1: 1, 2: 2, 3: 3}
    # what went over the wire
    assert seen.path == ANTHROPIC_PATH and seen.model == "claude-test-model" and seen.images == 1
    assert seen.auth_present and "authorization" not in seen.headers and "x-api-key" not in seen.headers
    body = seen.body
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME}
    assert body["tools"][0]["input_schema"] == answer_schema(request_.candidate_ids)
    assert body["max_tokens"] == 1024 and "temperature" not in body
    assert "Candidate ids: 0, 1, 2, 3" in seen.user_text and body["system"].startswith("You judge")
    image_block = body["messages"][0]["content"][0]
    png = base64.b64decode(image_block["source"]["data"])
    assert png == request_.views[0].png
    assert Image.open(io.BytesIO(png)).size == (96, 72)


def test_text_answer_without_tool_use_is_returned_as_text(request_):
    with StubVLMServer("chatty") as server:
        text = ask(server, request_)
    assert text.startswith("Here is my assessment") and "```json" in text
    parsed = parse_answer(text, request_.candidate_ids)
    assert set(parsed.scores) == {0, 1, 2, 3} and parsed.notes == ("JSON taken from a fenced code block",)


def test_malformed_answer_is_an_answer_error(request_):
    with StubVLMServer("malformed") as server:
        text = ask(server, request_)
    with pytest.raises(AnswerError, match="not valid JSON") as info:
        parse_answer(text, request_.candidate_ids)
    assert not isinstance(info.value, RefusalError)


def test_out_of_range_scores_are_clamped_with_notes(request_):
    with StubVLMServer("out_of_range") as server:
        parsed = parse_answer(ask(server, request_), request_.candidate_ids)
    assert parsed.scores[0]["safety"] == 10.0 and parsed.scores[3]["efficiency"] == 0.0
    assert parsed.notes == ("candidate 0 safety 14 clamped to 10", "candidate 3 efficiency -3 clamped to 0")


def test_missing_candidate_stays_unscored(request_):
    with StubVLMServer("missing") as server:
        parsed = parse_answer(ask(server, request_), request_.candidate_ids)
    assert set(parsed.scores) == {0, 1, 2}


def test_refusal_stop_reason_becomes_refusal_error(request_):
    with StubVLMServer("refusal") as server:
        text = ask(server, request_)
    with pytest.raises(RefusalError, match="refused: .*sorry"):
        parse_answer(text, request_.candidate_ids)


def test_429_is_transient_with_retry_after(request_):
    with StubVLMServer("429") as server:
        with pytest.raises(TransientBackendError) as info:
            ask(server, request_)
        assert server.counts == {ANTHROPIC_PATH: 1}  # max_retries=0: the library did not retry on its own
    assert info.value.retry_after_s == 1.0
    assert "429" in str(info.value) and "rate_limit_error" in str(info.value)


def test_retry_after_value_is_configurable(request_):
    with StubVLMServer("429", retry_after="7") as server:
        with pytest.raises(TransientBackendError) as info:
            ask(server, request_)
    assert info.value.retry_after_s == 7.0


def test_500_is_transient(request_):
    with StubVLMServer("500") as server:
        with pytest.raises(TransientBackendError, match="500") as info:
            ask(server, request_)
        assert server.counts == {ANTHROPIC_PATH: 1}
    assert info.value.retry_after_s is None


def test_400_is_not_transient(request_):
    with StubVLMServer("400") as server:
        with pytest.raises(BackendError, match=r"anthropic API error 400 \(invalid_request_error\): stub") as info:
            ask(server, request_)
    assert not isinstance(info.value, TransientBackendError)


def test_slow_server_times_out_without_retry(request_):
    with StubVLMServer("slow", slow_s=3.0) as server:
        with pytest.raises(BackendError, match=r"no answer within 0.5 s") as info:
            ask(server, request_, timeout_s=0.5)
    assert not isinstance(info.value, TransientBackendError)


def test_refused_connection_is_transient(request_):
    backend = AnthropicBackend(base_url=unused_base_url(), timeout_s=2.0)
    with pytest.raises(TransientBackendError, match="connection failed to http://127.0.0.1:[0-9]+/?: ConnectError"):
        backend.answer(request_, request_.views[0], AGENT)


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(BackendError, match="set the ANTHROPIC_API_KEY environment variable"):
        AnthropicBackend()


def test_base_url_from_environment_is_honoured(monkeypatch, request_):
    with StubVLMServer("good") as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        backend = make_backend("anthropic", timeout_s=5.0)
        assert isinstance(backend, AnthropicBackend)
        parse_answer(backend.answer(request_, request_.views[1], AGENT), request_.candidate_ids)
        backend.close()
        assert server.counts == {ANTHROPIC_PATH: 1}


def test_agent_params_reach_the_request(request_):
    agent = AgentConfig("c", "anthropic", "", {"max_tokens": 300, "temperature": 0.0, "prompt": "v1-terse"})
    with StubVLMServer("good") as server:
        ask(server, request_, agent, model="constructor-model")
        body = server.requests[0].body
    assert body["model"] == "constructor-model" and body["max_tokens"] == 300
    assert body["temperature"] == 0.0  # sent through extra_body only because the agent asked for it
    assert body["system"].startswith("You rate")


def test_check_agent_params():
    AnthropicBackend.check_agent_params({"temperature": 0.5, "max_tokens": 10, "prompt": "v1"})
    for params, message in [
        ({"temprature": 0}, "did you mean 'temperature'"),
        ({"max_tokens": 0}, "max_tokens: expected a positive integer"),
        ({"temperature": 1.5}, r"temperature: expected a number in \[0, 1\]"),
        ({"prompt": "v9"}, "prompt: .*expected a known template name.*got 'v9'"),
    ]:
        with pytest.raises(AgentParamError, match=message):
            AnthropicBackend.check_agent_params(params)
    backend = AnthropicBackend(base_url=unused_base_url())
    with pytest.raises(BackendError, match="agent 'x': params.max_tokens"):
        backend.answer(make_stub_request(2), make_stub_request(2).views[0], AgentConfig("x", "anthropic", "", {
            "max_tokens": -1}))


def test_cache_key_follows_everything_that_changes_the_answer(request_):
    backend = AnthropicBackend(base_url=unused_base_url())
    front, top = request_.views
    key = backend.cache_key(request_, front, AGENT)
    assert key == backend.cache_key(request_, front, AGENT) and len(key) == 64
    others = {
        backend.cache_key(request_, top, AGENT),
        backend.cache_key(request_, front, AgentConfig("claude-0", "anthropic", "other-model")),
        backend.cache_key(request_, front, AgentConfig("claude-0", "anthropic", "claude-test-model",
                                                       {"prompt": "v1-terse"})),
        backend.cache_key(request_, front, AgentConfig("claude-0", "anthropic", "claude-test-model",
                                                       {"max_tokens": 99})),
        backend.cache_key(make_stub_request(3, ("front", "top")), front, AGENT),
    }
    assert key not in others and len(others) == 5
    # the agent's name is not part of the question
    assert backend.cache_key(request_, front, AgentConfig("renamed", "anthropic", "claude-test-model")) == key


def test_injected_client_and_pickling(request_):
    with StubVLMServer("good") as server:
        client = anthropic.Anthropic(api_key="injected", base_url=server.anthropic_base_url, max_retries=0)
        backend = AnthropicBackend(client=client)
        parse_answer(backend.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        backend.close()  # does not close the caller's client
        parse_answer(backend.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        client.close()
        own = AnthropicBackend(base_url=server.anthropic_base_url)
        own.answer(request_, request_.views[0], AGENT)
        data = pickle.dumps(own)
        assert PLANTED_KEY.encode() not in data
        clone = pickle.loads(data)
        parse_answer(clone.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        own.close()
        clone.close()


@pytest.mark.parametrize(
    "behaviour", ["429", "500", "400", "401", "slow", "malformed", "refusal", "refused_connection"]
)
def test_the_key_leaks_nowhere(behaviour, request_, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with StubVLMServer("good" if behaviour == "refused_connection" else behaviour, slow_s=2.0) as server:
        url = unused_base_url() if behaviour == "refused_connection" else server.anthropic_base_url
        backend = AnthropicBackend(base_url=url, timeout_s=0.5)
        texts.append(repr(backend))
        try:
            raw = backend.answer(request_, request_.views[0], AGENT)
            texts.append(raw)
            parse_answer(raw, request_.candidate_ids)
        except (BackendError, AnswerError) as err:
            texts += [str(err), repr(err)]
            if behaviour == "401":  # the server echoed the key; the message shows it scrubbed
                assert "invalid credential 'Bearer ***'" in str(err) and "check the key" in str(err)
        backend.close()
        assert all(r.auth_present for r in server.requests)
    texts += [record.getMessage() for record in caplog.records]
    assert len(texts) >= 3
    for text in texts:
        assert PLANTED_KEY not in text
        assert "planted-0123456789" not in text


# --- api_errors ---------------------------------------------------------------------------------------------


def _status_error(cls, status, headers=None, body=None):
    request = httpx2.Request("POST", "http://127.0.0.1:1/v1/messages")
    response = httpx2.Response(status, headers=headers or {}, request=request)
    return cls(f"Error code: {status}", response=response, body=body)


def test_translate_status_errors():
    err = _status_error(anthropic.AuthenticationError, 401,
                        body={"type": "error", "error": {"type": "authentication_error",
                                                         "message": f"invalid x-api-key {PLANTED_KEY}"}})
    out = translate_api_error(err, anthropic, provider="anthropic", timeout_s=5, key_env="ANTHROPIC_API_KEY")
    assert type(out) is BackendError and PLANTED_KEY not in str(out)
    assert str(out).startswith("anthropic API error 401 (authentication_error): invalid x-api-key ***")
    assert "check the key in the ANTHROPIC_API_KEY environment variable" in str(out)
    overloaded = _status_error(anthropic.OverloadedError, 529, body={"error": {"message": "busy"}})
    out = translate_api_error(overloaded, anthropic, provider="anthropic", timeout_s=5, key_env="X")
    assert isinstance(out, TransientBackendError) and "529" in str(out)
    limited = _status_error(anthropic.RateLimitError, 429, headers={"retry-after-ms": "250", "retry-after": "9"})
    out = translate_api_error(limited, anthropic, provider="anthropic", timeout_s=5, key_env="X")
    assert out.retry_after_s == 0.25


def test_retry_after_parsing():
    assert parse_retry_after_s({"retry-after": "3"}) == 3.0
    assert parse_retry_after_s({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now_s=1445412470.0) == 10.0
    assert parse_retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now_s=1445412490.0) == 0.0
    assert parse_retry_after_s({"retry-after": "soon"}) is None
    assert parse_retry_after_s({"retry-after": "-4"}) is None
    assert parse_retry_after_s({}) is None and parse_retry_after_s(None) is None


def test_scrub_and_public_url(monkeypatch):
    monkeypatch.setenv("SOME_KEY", "abcdefgh12345")
    text = "key abcdefgh12345, Authorization: Bearer tok.en-1 and sk-ant-api03-XYZxyz12345"
    assert scrub(text, env_vars=("SOME_KEY",)) == "key ***, Authorization: Bearer *** and ***"
    assert scrub("x EMPTYx", secrets=["x"]) == "x EMPTYx"  # too short to be a secret
    assert public_url("https://user:pw@host.example/v1?token=1") == "https://host.example/v1"
    assert public_url(None) == ""


def test_json_dumps_of_tool_input_round_trips(request_):
    # tool_use input is returned as JSON text, exactly what the parser reads
    with StubVLMServer("good") as server:
        text = ask(server, request_)
    assert json.loads(text)["view_clarity"] == 7.0
