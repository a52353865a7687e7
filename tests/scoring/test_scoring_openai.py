"""OpenAIBackend with the real openai library against StubVLMServer on 127.0.0.1 (vLLM / SGLang / Ollama shape)."""

import base64
import io
import logging
import pickle

import openai
import pytest
from PIL import Image

from scoring.backend import AgentConfig, make_backend
from scoring.errors import AgentParamError, AnswerError, BackendError, RefusalError, TransientBackendError
from scoring.openai_backend import PLACEHOLDER_KEY, SCHEMA_NAME, OpenAIBackend
from scoring.schema import answer_schema, parse_answer
from tests.fakes.stub_server import OPENAI_PATH, StubVLMServer, make_stub_request, unused_base_url

PLANTED_KEY = "sk-planted-9876543210-NEVER-SHOW-THIS"
CONFIG_KEY = "cfg-key-5555-NEVER-SHOW-THIS-EITHER"


@pytest.fixture(autouse=True)
def environment(monkeypatch, direct_localhost):
    for var in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)


@pytest.fixture(scope="module")
def request_():
    return make_stub_request(4, ("front", "top"))


AGENT = AgentConfig("qwen-0", "openai", "Qwen/Qwen2.5-VL-7B-Instruct")


def ask(server, request, agent=AGENT, **kwargs):
    backend = OpenAIBackend(base_url=server.openai_base_url, timeout_s=kwargs.pop("timeout_s", 5.0), **kwargs)
    try:
        return backend.answer(request, request.views[0], agent)
    finally:
        backend.close()


def test_good_answer_parses_and_the_request_is_well_formed(request_):
    with StubVLMServer("good", scores=lambda cid: 10 - cid) as server:
        text = ask(server, request_)
        assert server.failed_checks == []
        (seen,) = server.requests
    parsed = parse_answer(text, request_.candidate_ids)
    assert parsed.notes == () and {cid: s["safety"] for cid, s in parsed.scores.items()} == {0: 10, 1: 9, 2: 8, 3: 7}
    assert seen.path == OPENAI_PATH and seen.model == "Qwen/Qwen2.5-VL-7B-Instruct" and seen.images == 1
    assert seen.auth_present and "authorization" not in seen.headers
    body = seen.body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": answer_schema(request_.candidate_ids)},
    }
    assert body["temperature"] == 0.0 and body["max_tokens"] == 1024
    assert body["messages"][0] == {"role": "system", "content": body["messages"][0]["content"]}
    assert body["messages"][0]["content"].startswith("You judge")
    url = body["messages"][1]["content"][0]["image_url"]["url"]
    png = base64.b64decode(url.removeprefix("data:image/png;base64,"))
    assert png == request_.views[0].png and Image.open(io.BytesIO(png)).format == "PNG"
    assert "Candidate ids: 0, 1, 2, 3" in seen.user_text


def test_chatty_answer_parses(request_):
    with StubVLMServer("chatty") as server:
        parsed = parse_answer(ask(server, request_), request_.candidate_ids)
    assert set(parsed.scores) == {0, 1, 2, 3} and parsed.notes == ("JSON taken from a fenced code block",)


def test_malformed_answer_is_an_answer_error(request_):
    with StubVLMServer("malformed") as server:
        text = ask(server, request_)
    with pytest.raises(AnswerError, match="not valid JSON"):
        parse_answer(text, request_.candidate_ids)


def test_out_of_range_scores_are_clamped(request_):
    with StubVLMServer("out_of_range") as server:
        parsed = parse_answer(ask(server, request_), request_.candidate_ids)
    assert parsed.scores[0]["safety"] == 10.0 and parsed.scores[3]["efficiency"] == 0.0 and len(parsed.notes) == 2


def test_missing_candidate_stays_unscored(request_):
    with StubVLMServer("missing") as server:
        parsed = parse_answer(ask(server, request_), request_.candidate_ids)
    assert set(parsed.scores) == {0, 1, 2}


def test_refusal_field_becomes_refusal_error(request_):
    with StubVLMServer("refusal") as server:
        text = ask(server, request_)
    with pytest.raises(RefusalError, match="refused: .*sorry"):
        parse_answer(text, request_.candidate_ids)


def test_429_is_transient_with_retry_after(request_):
    with StubVLMServer("429") as server:
        with pytest.raises(TransientBackendError) as info:
            ask(server, request_)
        assert server.counts == {OPENAI_PATH: 1}
    assert info.value.retry_after_s == 1.0 and "openai API error 429" in str(info.value)


def test_500_is_transient(request_):
    with StubVLMServer("500") as server:
        with pytest.raises(TransientBackendError, match="openai API error 500"):
            ask(server, request_)
        assert server.counts == {OPENAI_PATH: 1}


def test_400_is_not_transient(request_):
    with StubVLMServer("400") as server:
        with pytest.raises(BackendError, match="openai API error 400") as info:
            ask(server, request_)
    assert not isinstance(info.value, TransientBackendError)


def test_slow_server_times_out(request_):
    with StubVLMServer("slow", slow_s=3.0) as server:
        with pytest.raises(BackendError, match=r"no answer within 0.5 s") as info:
            ask(server, request_, timeout_s=0.5)
    assert not isinstance(info.value, TransientBackendError)


def test_refused_connection_is_transient(request_):
    backend = OpenAIBackend(base_url=unused_base_url("/v1"), timeout_s=2.0)
    with pytest.raises(TransientBackendError, match="connection failed to http://127.0.0.1:[0-9]+/v1/?: ConnectError"):
        backend.answer(request_, request_.views[0], AGENT)


@pytest.mark.parametrize("mode", ["json_object", "none"])
def test_other_structured_modes(mode, request_):
    with StubVLMServer("good", expect_response_format=mode) as server:
        parsed = parse_answer(ask(server, request_, structured=mode), request_.candidate_ids)
        assert server.failed_checks == []
        body = server.requests[0].body
    assert set(parsed.scores) == {0, 1, 2, 3}  # with no schema, the stub read the ids from the prompt
    assert body.get("response_format") == ({"type": "json_object"} if mode == "json_object" else None)


def test_agent_param_overrides_structured_mode(request_):
    agent = AgentConfig("o", "openai", "m", {"structured": "none", "temperature": None, "max_tokens": 64})
    with StubVLMServer("good", expect_response_format="none") as server:
        ask(server, request_, agent, max_tokens_param="max_completion_tokens")
        assert server.failed_checks == []
        body = server.requests[0].body
    assert "temperature" not in body and body["max_completion_tokens"] == 64 and "max_tokens" not in body


def test_rejected_response_format_falls_back_once_and_remembers(request_, caplog):
    caplog.set_level(logging.WARNING, logger="scoring.openai_backend")
    with StubVLMServer("reject_response_format", expect_response_format="any") as server:
        backend = OpenAIBackend(base_url=server.openai_base_url, timeout_s=5.0)
        for view in request_.views:
            parse_answer(backend.answer(request_, view, AGENT), request_.candidate_ids)
        backend.close()
        sent = [r.body.get("response_format", {}).get("type") for r in server.requests]
    assert sent == ["json_schema", None, None]  # one rejection, one retry, then none sent again
    warnings = [r for r in caplog.records if "rejected response_format" in r.getMessage()]
    assert len(warnings) == 1


def test_other_400_does_not_trigger_the_fallback(request_):
    with StubVLMServer("400") as server:
        with pytest.raises(BackendError):
            ask(server, request_)
        assert server.counts == {OPENAI_PATH: 1}


def test_keys_and_urls_from_config_and_environment(monkeypatch, request_):
    with StubVLMServer("good") as server:
        # base URL from the environment, key from the environment
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        backend = make_backend("openai", model="m")
        assert isinstance(backend, OpenAIBackend)
        parse_answer(backend.answer(request_, request_.views[0], AgentConfig("a", "openai")), request_.candidate_ids)
        assert backend._get_client().api_key == PLANTED_KEY
        backend.close()
        # a local server without any key: the vLLM placeholder
        monkeypatch.delenv("OPENAI_API_KEY")
        local = OpenAIBackend(base_url=server.openai_base_url)
        assert local._get_client().api_key == PLACEHOLDER_KEY
        parse_answer(local.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        local.close()
        # a key from the config, or from a named variable
        explicit = OpenAIBackend(base_url=server.openai_base_url, api_key=CONFIG_KEY)
        assert explicit._get_client().api_key == CONFIG_KEY and CONFIG_KEY not in repr(explicit)
        explicit.close()
        monkeypatch.setenv("TOGETHER_API_KEY", "together-key-123456")
        named = OpenAIBackend(base_url=server.openai_base_url, api_key_env="TOGETHER_API_KEY")
        assert named._get_client().api_key == "together-key-123456"
        named.close()
        assert all(r.auth_present for r in server.requests)
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(BackendError, match="set the OPENAI_API_KEY environment variable, or give a base_url"):
        OpenAIBackend()


def test_missing_model_is_a_clear_error(request_):
    backend = OpenAIBackend(base_url=unused_base_url("/v1"))
    with pytest.raises(BackendError, match="no model; set the agent's model"):
        backend.answer(request_, request_.views[0], AgentConfig("a", "openai"))


def test_check_agent_params():
    OpenAIBackend.check_agent_params({"structured": "none", "temperature": 1.2, "max_tokens": 5, "prompt": "v1"})
    for params, message in [
        ({"structure": "none"}, "did you mean 'structured'"),
        ({"structured": "xml"}, "structured: expected one of json_schema, json_object, none"),
        ({"temperature": "hot"}, "temperature: expected a number"),
        ({"prompt": "v1-trese"}, "did you mean 'v1-terse'"),
    ]:
        with pytest.raises(AgentParamError, match=message):
            OpenAIBackend.check_agent_params(params)
    with pytest.raises(BackendError, match="structured"):
        OpenAIBackend(base_url="http://127.0.0.1:1/v1", structured="grammar")


def test_cache_key(request_):
    backend = OpenAIBackend(base_url=unused_base_url("/v1"))
    front, top = request_.views
    key = backend.cache_key(request_, front, AGENT)
    assert key == backend.cache_key(request_, front, AGENT)
    variants = [
        backend.cache_key(request_, top, AGENT),
        backend.cache_key(request_, front, AgentConfig("q", "openai", "other")),
        backend.cache_key(request_, front, AgentConfig("q", "openai", AGENT.model, {"structured": "none"})),
        backend.cache_key(request_, front, AgentConfig("q", "openai", AGENT.model, {"temperature": 0.7})),
        backend.cache_key(request_, front, AgentConfig("q", "openai", AGENT.model, {"prompt": "v1-terse"})),
    ]
    assert key not in variants and len(set(variants)) == len(variants)
    assert PLANTED_KEY not in key


def test_pickled_backend_rebuilds_its_client(request_):
    with StubVLMServer("good") as server:
        backend = OpenAIBackend(base_url=server.openai_base_url)
        backend.answer(request_, request_.views[0], AGENT)
        data = pickle.dumps(backend)
        assert PLANTED_KEY.encode() not in data  # the env key is read again, not carried
        clone = pickle.loads(data)
        parse_answer(clone.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        backend.close()
        clone.close()


def test_injected_client(request_):
    with StubVLMServer("good") as server:
        client = openai.OpenAI(api_key="x", base_url=server.openai_base_url, max_retries=0)
        backend = OpenAIBackend(client=client, model="m")
        backend.close()   # closes only what the backend built itself: the injected client still works
        answer = parse_answer(backend.answer(request_, request_.views[0], AGENT), request_.candidate_ids)
        client.close()
    # the answer came through the injected client, from the stub server, for the candidates asked about
    assert server.counts == {"/v1/chat/completions": 1} and server.failed_checks == []
    assert sorted(answer.scores) == sorted(request_.candidate_ids) and 0 <= answer.view_clarity <= 10


@pytest.mark.parametrize(
    "behaviour", ["429", "500", "400", "401", "slow", "malformed", "refusal", "refused_connection"]
)
@pytest.mark.parametrize("key_source", ["env", "config"])
def test_the_key_leaks_nowhere(behaviour, key_source, request_, caplog):
    caplog.set_level(logging.DEBUG)
    secret = PLANTED_KEY if key_source == "env" else CONFIG_KEY
    texts = []
    with StubVLMServer("good" if behaviour == "refused_connection" else behaviour, slow_s=2.0) as server:
        url = unused_base_url("/v1") if behaviour == "refused_connection" else server.openai_base_url
        kwargs = {"api_key": CONFIG_KEY} if key_source == "config" else {}
        backend = OpenAIBackend(base_url=url, timeout_s=0.5, **kwargs)
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
    texts += [record.getMessage() for record in caplog.records]
    assert len(texts) >= 3
    for text in texts:
        assert secret not in text and "NEVER-SHOW" not in text
