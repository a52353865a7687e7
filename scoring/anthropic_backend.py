"""Anthropic Messages API backend: one call per (agent, view), the answer forced through a scoring tool.

Request: the system prompt, one user message holding the view as a base64 PNG image block and the user
prompt, and one tool ``submit_scores`` whose ``input_schema`` is ``answer_schema(request.candidate_ids)``,
forced with ``tool_choice``. The tool call's input is returned as JSON text; a text-only answer is returned
as it is (``schema.parse_answer`` finds JSON in chatty text and recognises refusals). When the API flags a
refusal (``stop_reason == "refusal"``) the text is returned behind ``schema.REFUSAL_MARKER``, so the parser
raises RefusalError and the run log still holds what the model said (chosen over raising in the backend).

Settings (constructor, i.e. the backend's config): ``model`` (used when an agent names none), ``max_tokens``,
``timeout_s``, ``base_url`` (default: the library's, which honours ANTHROPIC_BASE_URL), ``client`` (a ready
``anthropic.Anthropic``, for tests or custom transports). The API key comes from the ANTHROPIC_API_KEY
environment variable only; it is read when the client is built and never stored on this object, logged or
put in a message. The client is built with ``max_retries=0``: retries (429/5xx only) belong to the pool.

Per-agent params: ``prompt`` (template name or directory, see scoring.prompts), ``max_tokens``,
``temperature``. Temperature is not sent unless an agent sets it: anthropic 2.x dropped the sampling
parameters from ``messages.create`` and the API version it sends (2026-10-21) answers 400 to any of them,
so a set temperature goes through ``extra_body`` for gateways and older API versions that still take it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from scoring.api_backend import ApiClientBackend
from scoring.api_errors import check_max_tokens, check_temperature, public_url, scrub, translate_api_error
from scoring.backend import AgentConfig
from scoring.errors import AgentParamError, BackendError, MissingKeyError, did_you_mean
from scoring.prompts import Prompt, build_prompt, check_prompt_param
from scoring.request import ScoreRequest, ViewImage
from scoring.rotation_question import ROTATION_SCHEMA, RotationRequest
from scoring.rotation_question import TOOL_DESCRIPTION as ROTATION_TOOL_DESCRIPTION
from scoring.rotation_question import TOOL_NAME as ROTATION_TOOL_NAME
from scoring.schema import REFUSAL_MARKER, answer_schema

logger = logging.getLogger(__name__)

KEY_ENV = "ANTHROPIC_API_KEY"
DEFAULT_MODEL = "claude-sonnet-4-5"
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT_S = 60.0
TOOL_NAME = "submit_scores"
TOOL_DESCRIPTION = (
    "Submit the scores for the numbered candidate trajectories drawn in this view: the view's clarity and, "
    "for each candidate id, safety, task_alignment, efficiency and feasibility, each from 0 to 10."
)
AGENT_PARAMS = ("prompt", "max_tokens", "temperature")


class AnthropicBackend(ApiClientBackend):
    """Claude through the Messages API (``anthropic`` library), images as base64 blocks, a forced tool."""

    name: ClassVar[str] = "anthropic"

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        base_url: str | None = None,
        client: Any = None,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise BackendError(f"anthropic backend: model: expected a non-empty string, got {model!r}")
        try:
            check_max_tokens(max_tokens)
        except AgentParamError as err:
            raise BackendError(f"anthropic backend: {err}") from None
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise BackendError(f"anthropic backend: timeout_s: expected a number > 0, got {timeout_s!r}")
        if base_url is not None and (not isinstance(base_url, str) or not base_url.strip()):
            raise BackendError(f"anthropic backend: base_url: expected a URL string, got {base_url!r}")
        if client is None and not os.environ.get(KEY_ENV):
            # Fail when the ensemble is built, not at the first MPC step.
            raise MissingKeyError(None, KEY_ENV, f"an API key: set the {KEY_ENV} environment variable (anthropic "
                                  "backend)")
        self.model = model
        self.max_tokens = int(max_tokens)
        self.timeout_s = float(timeout_s)
        self.base_url = base_url
        super().__init__(client)

    def __repr__(self) -> str:
        where = public_url(self.base_url) or "ANTHROPIC_BASE_URL or the library default"
        return (
            f"AnthropicBackend(model={self.model!r}, max_tokens={self.max_tokens}, timeout_s={self.timeout_s:g}, "
            f"base_url={where!r})"
        )

    @classmethod
    def check_agent_params(cls, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            if key not in AGENT_PARAMS:
                raise AgentParamError(key, f"unknown anthropic parameter{did_you_mean(key, AGENT_PARAMS)}")
            if key == "max_tokens":
                check_max_tokens(value)
            elif key == "temperature":
                check_temperature(value, upper=1.0)
        check_prompt_param(params)

    def _make_client(self) -> Any:
        import anthropic

        key = os.environ.get(KEY_ENV)
        if not key:
            raise BackendError(f"anthropic backend: no API key; set the {KEY_ENV} environment variable")
        kwargs: dict[str, Any] = {"api_key": key, "timeout": self.timeout_s, "max_retries": 0}
        if self.base_url is not None:
            kwargs["base_url"] = self.base_url
        return anthropic.Anthropic(**kwargs)

    def _scrub(self, text: str) -> str:
        return scrub(text, env_vars=(KEY_ENV,))

    def _settings(self, agent: AgentConfig) -> tuple[str, int, float | None]:
        try:
            self.check_agent_params(agent.params)
        except AgentParamError as err:
            raise BackendError(f"agent {agent.name!r}: params.{err}") from None
        model = agent.model or self.model
        max_tokens = int(agent.params.get("max_tokens", self.max_tokens))
        return model, max_tokens, check_temperature(agent.params.get("temperature"), upper=1.0)

    @staticmethod
    def tool(candidate_ids: tuple[int, ...]) -> dict[str, Any]:
        """The scoring tool offered (and forced) in every request."""
        return {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": answer_schema(candidate_ids)}

    @classmethod
    def tool_for(cls, request: ScoreRequest | RotationRequest) -> dict[str, Any]:
        """The tool forced for this question: the scores, or the rotation answer."""
        if isinstance(request, RotationRequest):
            return {"name": ROTATION_TOOL_NAME, "description": ROTATION_TOOL_DESCRIPTION,
                    "input_schema": ROTATION_SCHEMA}
        return cls.tool(request.candidate_ids)

    def request_kwargs(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig,
                       prompt: Prompt | None = None) -> dict[str, Any]:
        """The keyword arguments of ``messages.create`` for this call (no key in them)."""
        model, max_tokens, temperature = self._settings(agent)
        prompt = prompt or build_prompt(request, view, agent)
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": prompt.system,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": base64.b64encode(view.png).decode("ascii"),
                            },
                        },
                        {"type": "text", "text": prompt.user},
                    ],
                }
            ],
            "tools": [self.tool_for(request)],
            "tool_choice": {"type": "tool", "name": self.tool_for(request)["name"]},
        }
        if temperature is not None:
            kwargs["extra_body"] = {"temperature": temperature}
        return kwargs

    def answer(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str:
        import anthropic

        kwargs = self.request_kwargs(request, view, agent)
        client = self._get_client()
        logger.debug(
            "anthropic call: agent %r model %r view %r (%d PNG bytes, %d candidates)",
            agent.name, kwargs["model"], view.name, len(view.png), len(request.candidate_ids),
        )
        try:
            message = client.messages.create(**kwargs)
        except anthropic.AnthropicError as err:
            raise translate_api_error(
                err, anthropic, provider="anthropic", timeout_s=self.timeout_s, key_env=KEY_ENV,
                endpoint=public_url(str(getattr(client, "base_url", "") or "")),
            ) from None
        return self._answer_text(message, agent, kwargs["max_tokens"])

    def _answer_text(self, message: Any, agent: AgentConfig, max_tokens: int) -> str:
        stop_reason = getattr(message, "stop_reason", None)
        blocks = list(getattr(message, "content", None) or [])
        text = "".join(getattr(b, "text", "") or "" for b in blocks if getattr(b, "type", None) == "text")
        if stop_reason == "refusal":
            logger.warning("agent %r: the model refused (stop_reason refusal)", agent.name)
            return f"{REFUSAL_MARKER} {text}".rstrip()
        if stop_reason == "max_tokens":
            logger.warning(
                "agent %r: answer cut off at max_tokens=%d; raise max_tokens if answers fail to parse",
                agent.name, max_tokens,
            )
        for block in blocks:
            if getattr(block, "type", None) == "tool_use" and getattr(block, "name", None) in (
                    TOOL_NAME, ROTATION_TOOL_NAME):
                return json.dumps(block.input)
        return text

    def cache_key(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str | None:
        model, max_tokens, temperature = self._settings(agent)
        prompt = build_prompt(request, view, agent)
        tool_sha = hashlib.sha256(
            json.dumps(self.tool_for(request), sort_keys=True).encode("utf-8")
        ).hexdigest()
        content = {
            "backend": self.name,
            "model": model,
            "prompt": prompt.sha256,
            "image": view.png_sha256,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "tool": tool_sha,
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()

