"""StubVLMServer itself: its checks catch malformed requests, scripts run in order, it serves concurrently and
stops promptly. Raw http.client requests (no proxy, no client library) so the server is tested on its own."""

import base64
import http.client
import json
import threading
import time

import pytest

from tests.fakes.stub_server import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    StubVLMServer,
    png_bytes,
    unused_base_url,
)


def post(server, path, body, headers=None, timeout=5.0):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json",
                                                                   **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read() or b"null")
    finally:
        conn.close()


def openai_body(png=None, text="Candidate ids: 1, 2", response_format=None, model="m"):
    data = base64.b64encode(png if png is not None else png_bytes()).decode()
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "judge"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}},
                                         {"type": "text", "text": text}]},
        ],
    }
    if response_format is not None:
        body["response_format"] = response_format
    return body


def anthropic_body(png=None, tool=True, ids=(4, 5)):
    data = base64.b64encode(png if png is not None else png_bytes()).decode()
    body = {
        "model": "claude",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
            {"type": "text", "text": "score them"}]}],
    }
    if tool:
        id_schema = {"id": {"enum": list(ids)}}
        schema = {"type": "object", "properties": {"candidates": {"items": {"properties": id_schema}}}}
        body["tools"] = [{"name": "t", "input_schema": schema}]
        body["tool_choice"] = {"type": "tool", "name": "t"}
    return body


def test_good_answers_in_both_formats_and_records_without_credentials():
    with StubVLMServer("good", expect_response_format="none") as server:
        status, _, body = post(server, OPENAI_PATH, openai_body(), {"Authorization": "Bearer secret-xyz"})
        assert status == 200
        answer = json.loads(body["choices"][0]["message"]["content"])
        assert [c["id"] for c in answer["candidates"]] == [1, 2]  # ids read from the prompt text
        status, _, body = post(server, ANTHROPIC_PATH, anthropic_body(), {"x-api-key": "secret-abc"})
        assert status == 200 and body["stop_reason"] == "tool_use"
        assert [c["id"] for c in body["content"][0]["input"]["candidates"]] == [4, 5]  # ids from the enum
        records = server.requests
        assert server.failed_checks == [] and server.counts == {OPENAI_PATH: 1, ANTHROPIC_PATH: 1}
    assert [r.auth_present for r in records] == [True, True]
    assert "secret" not in json.dumps([r.headers for r in records])


@pytest.mark.parametrize(
    "path, body, problem",
    [
        (OPENAI_PATH, openai_body(png=b"not a png"), "image 0: image does not decode"),
        (OPENAI_PATH, openai_body(model=""), "model: missing"),
        (OPENAI_PATH, openai_body(text="no ids here"), "cannot tell the candidate ids"),
        (ANTHROPIC_PATH, anthropic_body(tool=False), "tools: expected the scoring tool"),
        (ANTHROPIC_PATH, {**anthropic_body(), "messages": [{"role": "user", "content": "text only"}]},
         "no image in the request"),
    ],
)
def test_checks_answer_400_and_are_recorded(path, body, problem):
    with StubVLMServer("good", expect_response_format="none") as server:
        status, _, reply = post(server, path, body)
        assert status == 400 and problem in json.dumps(reply)
        assert len(server.failed_checks) == 1 and problem in server.failed_checks[0]


def test_response_format_expectation():
    with StubVLMServer("good") as server:  # expects json_schema by default
        status, _, _ = post(server, OPENAI_PATH, openai_body())
        assert status == 400 and "response_format: expected type 'json_schema', got None" in server.failed_checks[0]
    with pytest.raises(ValueError, match="expect_response_format"):
        StubVLMServer(expect_response_format="yaml")


def test_sequence_and_callable_scripts():
    with StubVLMServer(["429", "500", "good"], retry_after="3", expect_response_format="none") as server:
        statuses = [post(server, OPENAI_PATH, openai_body())[:2] for _ in range(4)]
    assert [s for s, _ in statuses] == [429, 500, 200, 200]  # the last entry repeats
    assert statuses[0][1]["Retry-After"] == "3"
    with StubVLMServer(lambda i, path, body: "refusal" if i % 2 else "good", expect_response_format="none") as server:
        replies = [post(server, OPENAI_PATH, openai_body())[2]["choices"][0]["message"] for _ in range(2)]
    assert replies[0]["refusal"] is None and replies[1]["refusal"].startswith("I'm sorry")
    with pytest.raises(ValueError, match="unknown"):
        StubVLMServer(["good", "teapot"])


def test_serves_requests_concurrently_with_a_delay():
    with StubVLMServer("good", delay_s=0.3, expect_response_format="none") as server:
        results = []
        threads = [threading.Thread(target=lambda: results.append(post(server, OPENAI_PATH, openai_body())[0]))
                   for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 6
        assert server.max_in_flight >= 2  # more than one request was being answered at the same moment


def test_stop_is_prompt_with_a_slow_request_in_flight():
    server = StubVLMServer("slow", slow_s=30.0, expect_response_format="none").start()
    errors = []

    def call():
        try:
            post(server, OPENAI_PATH, openai_body(), timeout=60.0)
        except (OSError, http.client.HTTPException) as err:
            errors.append(err)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    worker.join(timeout=10.0)
    assert not worker.is_alive()
    # not a speed assertion: 30 s of "slow" must not have been waited out
    assert time.monotonic() - started < 10.0


def test_unused_base_url_refuses_connections():
    url = unused_base_url("/v1")
    port = int(url.split(":")[2].split("/")[0])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    with pytest.raises(ConnectionRefusedError):
        conn.request("GET", "/")
    conn.close()
