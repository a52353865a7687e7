"""Live API checks: one real call per backend. Opt-in: ANTIGROUNDING_LIVE_API=1 plus the backend's key or URL
(ANTHROPIC_API_KEY; OPENAI_BASE_URL and an OPENAI_MODEL for a local server). They cost money or a running
server, so `make test` skips them."""

from __future__ import annotations

import os

import pytest

from scoring.backend import AgentConfig, make_backend
from scoring.schema import parse_answer
from tests.fakes.stub_server import make_stub_request

pytestmark = [
    pytest.mark.live_api,
    pytest.mark.skipif(os.environ.get("ANTIGROUNDING_LIVE_API") != "1", reason="set ANTIGROUNDING_LIVE_API=1"),
]


def _answer(backend_name: str, model: str, **kwargs):
    request = make_stub_request(3, ("front",), size=(256, 192))
    backend = make_backend(backend_name, **kwargs)
    try:
        text = backend.answer(request, request.views[0], AgentConfig("live-0", backend_name, model))
    finally:
        backend.close()
    return parse_answer(text, request.candidate_ids)


@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="needs ANTHROPIC_API_KEY")
def test_anthropic_answers_by_the_schema():
    answer = _answer("anthropic", os.environ.get("ANTHROPIC_MODEL", "claude-sonnet-4-5"))
    assert answer.scores, "the model scored no candidate"


@pytest.mark.skipif(not (os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY")),
                    reason="needs OPENAI_BASE_URL (a local server) or OPENAI_API_KEY")
def test_openai_compatible_answers_by_the_schema():
    answer = _answer("openai", os.environ.get("OPENAI_MODEL", "Qwen/Qwen2.5-VL-7B-Instruct"))
    assert answer.scores, "the model scored no candidate"
