"""OpenAI-compatible chat backend: OpenAI itself, or vLLM / SGLang / Ollama serving an open VLM (Qwen2.5-VL...).

Request: a system message, then one user message with the view as an ``image_url`` part holding a
``data:image/png;base64,...`` URL and the user prompt as a text part. The answer is constrained according to
``structured``:

- ``"json_schema"`` (default): ``response_format={"type": "json_schema", "json_schema": {"name":
  "trajectory_scores", "strict": true, "schema": answer_schema(ids)}}`` (OpenAI structured outputs; vLLM,
  SGLang and Ollama accept the same field);
- ``"json_object"``: ``response_format={"type": "json_object"}`` (JSON mode, no schema);
- ``"none"``: no response_format; the prompt alone asks for JSON and the tolerant parser does the rest.

A server that answers 400 complaining about response_format makes this backend instance retry that call once
without it and send none from then on (logged once as a warning). The answer is ``message.content``; a
refusal the API flags (``message.refusal``) is returned behind ``schema.REFUSAL_MARKER``, so the parser
raises RefusalError and the run log keeps the text.

Settings (constructor / config): ``model`` (used when an agent names none), ``base_url`` (else the
OPENAI_BASE_URL environment variable, else the library's default, api.openai.com), ``api_key`` (else the
environment variable named by ``api_key_env``, default OPENAI_API_KEY), ``timeout_s``, ``max_tokens``,
``temperature`` (default 0; None leaves it out, for models that reject it), ``structured``,
``max_tokens_param`` ("max_tokens", which vLLM/SGLang/Ollama read, or "max_completion_tokens", which newer
OpenAI models require), ``client`` (a ready ``openai.OpenAI``). Local servers usually need no key: when none
is set and a base URL is, the placeholder "EMPTY" is sent (the vLLM convention). Keys stay out of repr, logs
and messages; prefer the environment variable to a key in a config file. The client is built with
``max_retries=0``: retries (429/5xx only) belong to the pool.

Per-agent params: ``prompt``, ``max_tokens``, ``temperature``, ``structured``.
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
from scoring.rotation_question import SCHEMA_NAME as ROTATION_SCHEMA_NAME
from scoring.schema import REFUSAL_MARKER, answer_schema

logger = logging.getLogger(__name__)

KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
PLACEHOLDER_KEY = "EMPTY"
DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT_S = 60.0
SCHEMA_NAME = "trajectory_scores"
STRUCTURED_MODES = ("json_schema", "json_object", "none")
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens")
AGENT_PARAMS = ("prompt", "max_tokens", "temperature", "structured")
# Words in a 400's message that say the server does not take our response_format.
_FORMAT_COMPLAINTS = ("response_format", "json_schema", "json_object", "structured output", "guided")


class _Secret:
    """A key given in the config: shows as *** in any repr, so it cannot leak through one."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "***"


def _check_structured(value: Any, where: str = "structured") -> str:
    if value not in STRUCTURED_MODES:
        raise AgentParamError(where, f"expected one of {', '.join(STRUCTURED_MODES)}, got {value!r}")
    return value


class OpenAIBackend(ApiClientBackend):
    """An OpenAI-compatible chat-completions server (``openai`` library), image as a data URL."""

    name: ClassVar[str] = "openai"

    def __init__(
        self,
        *,
        model: str = "",
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str = KEY_ENV,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float | None = 0.0,
        structured: str = "json_schema",
        max_tokens_param: str = "max_tokens",
        client: Any = None,
    ) -> None:
        where = "openai backend"
        if not isinstance(model, str):
            raise BackendError(f"{where}: model: expected a string, got {type(model).__name__}")
        try:
            check_max_tokens(max_tokens)
            check_temperature(temperature)
            _check_structured(structured)
        except AgentParamError as err:
            raise BackendError(f"{where}: {err}") from None
        if max_tokens_param not in MAX_TOKENS_PARAMS:
            raise BackendError(
                f"{where}: max_tokens_param: expected one of {', '.join(MAX_TOKENS_PARAMS)}, got {max_tokens_param!r}"
            )
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
            raise BackendError(f"{where}: timeout_s: expected a number > 0, got {timeout_s!r}")
        if base_url is not None and (not isinstance(base_url, str) or not base_url.strip()):
            raise BackendError(f"{where}: base_url: expected a URL string, got {base_url!r}")
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            raise BackendError(f"{where}: api_key: expected a non-empty string (better: set {api_key_env})")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise BackendError(f"{where}: api_key_env: expected an environment variable name, got {api_key_env!r}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_tokens = int(max_tokens)
        self.temperature = None if temperature is None else float(temperature)
        self.structured = structured
        self.max_tokens_param = max_tokens_param
        self._api_key = _Secret(api_key) if api_key else None
        super().__init__(client)
        self._no_response_format = False
        if client is None:
            self._resolve_key()  # fail when the ensemble is built, not at the first MPC step

    def __repr__(self) -> str:
        where = public_url(self._resolved_base_url()) or "the library default"
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={where!r}, structured={self.structured!r}, "
            f"max_tokens={self.max_tokens}, timeout_s={self.timeout_s:g})"
        )

    @classmethod
    def check_agent_params(cls, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            if key not in AGENT_PARAMS:
                raise AgentParamError(key, f"unknown openai parameter{did_you_mean(key, AGENT_PARAMS)}")
            if key == "max_tokens":
                check_max_tokens(value)
            elif key == "temperature":
                check_temperature(value)
            elif key == "structured":
                _check_structured(value)
        check_prompt_param(params)

    def _resolved_base_url(self) -> str | None:
        return self.base_url or os.environ.get(BASE_URL_ENV) or None

    def _resolve_key(self) -> str:
        if self._api_key is not None:
            return self._api_key.value
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self._resolved_base_url():
            return PLACEHOLDER_KEY
        raise MissingKeyError(
            None, self.api_key_env, f"an API key: set the {self.api_key_env} environment variable, or give a "
            f"base_url (or {BASE_URL_ENV}) for a local server that needs none (openai backend)"
        )

    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key.value,) if self._api_key is not None else ()

    def _make_client(self) -> Any:
        import openai

        key = self._resolve_key()
        if key == PLACEHOLDER_KEY:
            logger.info("openai backend: no %s set; sending the placeholder key %r to %s",
                        self.api_key_env, PLACEHOLDER_KEY, public_url(self._resolved_base_url()))
        kwargs: dict[str, Any] = {"api_key": key, "timeout": self.timeout_s, "max_retries": 0}
        base_url = self._resolved_base_url()
        if base_url:
            kwargs["base_url"] = base_url
        return openai.OpenAI(**kwargs)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets(), (self.api_key_env,))

    def _settings(self, agent: AgentConfig) -> tuple[str, int, float | None, str]:
        try:
            self.check_agent_params(agent.params)
        except AgentParamError as err:
            raise BackendError(f"agent {agent.name!r}: params.{err}") from None
        model = agent.model or self.model
        if not model:
            raise BackendError(
                f"agent {agent.name!r}: no model; set the agent's model (the name the server serves) or the "
                "openai backend's model"
            )
        max_tokens = int(agent.params.get("max_tokens", self.max_tokens))
        temperature = agent.params["temperature"] if "temperature" in agent.params else self.temperature
        structured = agent.params.get("structured", self.structured)
        return model, max_tokens, check_temperature(temperature), structured

    @staticmethod
    def response_format(structured: str, candidate_ids: tuple[int, ...]) -> dict[str, Any] | None:
        """The response_format sent for a structured mode (None for "none")."""
        if structured == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": answer_schema(candidate_ids)},
            }
        if structured == "json_object":
            return {"type": "json_object"}
        return None

    @classmethod
    def response_format_for(cls, structured: str, request: ScoreRequest | RotationRequest) -> dict[str, Any] | None:
        """The response_format for this question: the scores' schema, or the rotation answer's."""
        if isinstance(request, RotationRequest) and structured == "json_schema":
            return {"type": "json_schema",
                    "json_schema": {"name": ROTATION_SCHEMA_NAME, "strict": True, "schema": ROTATION_SCHEMA}}
        return cls.response_format(structured, request.candidate_ids)

    def request_kwargs(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig,
                       prompt: Prompt | None = None) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for this call (no key in them)."""
        model, max_tokens, temperature, structured = self._settings(agent)
        prompt = prompt or build_prompt(request, view, agent)
        image_url = "data:image/png;base64," + base64.b64encode(view.png).decode("ascii")
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": image_url}},
                        {"type": "text", "text": prompt.user},
                    ],
                },
            ],
            self.max_tokens_param: max_tokens,
        }
        if temperature is not None:
            kwargs["temperature"] = temperature
        fmt = None if self._no_response_format else self.response_format_for(structured, request)
        if fmt is not None:
            kwargs["response_format"] = fmt
        return kwargs

    def _translate(self, err: BaseException, openai_module: Any, client: Any) -> BackendError:
        return translate_api_error(
            err, openai_module, provider="openai", timeout_s=self.timeout_s, key_env=self.api_key_env,
            endpoint=public_url(str(getattr(client, "base_url", "") or "")), secrets=self._secrets(),
        )

    @staticmethod
    def _complains_about_format(err: Any, openai_module: Any) -> bool:
        if not isinstance(err, openai_module.APIStatusError) or err.status_code not in (400, 422):
            return False
        text = f"{getattr(err, 'message', '')} {getattr(err, 'body', '')}".lower()
        return any(word in text for word in _FORMAT_COMPLAINTS)

    def answer(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str:
        import openai

        kwargs = self.request_kwargs(request, view, agent)
        client = self._get_client()
        logger.debug(
            "openai call: agent %r model %r view %r (%d PNG bytes, %d candidates, response_format %s)",
            agent.name, kwargs["model"], view.name, len(view.png), len(request.candidate_ids),
            (kwargs.get("response_format") or {}).get("type", "none"),
        )
        try:
            completion = client.chat.completions.create(**kwargs)
        except openai.OpenAIError as err:
            if "response_format" not in kwargs or not self._complains_about_format(err, openai):
                raise self._translate(err, openai, client) from None
            with self._lock:
                first = not self._no_response_format
                self._no_response_format = True
            if first:
                logger.warning(
                    "openai backend: %s rejected response_format (%s); sending none from now on and relying "
                    "on the prompt and the tolerant parser",
                    public_url(str(getattr(client, "base_url", "") or "")),
                    scrub(str(getattr(err, "message", err)), self._secrets(), (self.api_key_env,))[:200],
                )
            kwargs.pop("response_format")
            try:
                completion = client.chat.completions.create(**kwargs)
            except openai.OpenAIError as retry_err:
                raise self._translate(retry_err, openai, client) from None
        return self._answer_text(completion, agent, kwargs)

    def _answer_text(self, completion: Any, agent: AgentConfig, kwargs: Mapping[str, Any]) -> str:
        choices = list(getattr(completion, "choices", None) or [])
        if not choices:
            raise BackendError(f"agent {agent.name!r}: the server answered without choices")
        choice = choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal:
            logger.warning("agent %r: the model refused", agent.name)
            return f"{REFUSAL_MARKER} {refusal}"
        if getattr(choice, "finish_reason", None) == "length":
            logger.warning(
                "agent %r: answer cut off at %s=%s; raise max_tokens if answers fail to parse",
                agent.name, self.max_tokens_param, kwargs.get(self.max_tokens_param),
            )
        return message.content or ""

    def cache_key(self, request: ScoreRequest, view: ViewImage, agent: AgentConfig) -> str | None:
        model, max_tokens, temperature, structured = self._settings(agent)
        prompt = build_prompt(request, view, agent)
        fmt = self.response_format_for(structured, request)
        content = {
            "backend": self.name,
            "server": public_url(self._resolved_base_url()),   # one model name can mean different weights
            "model": model,
            "prompt": prompt.sha256,
            "image": view.png_sha256,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "structured": structured,
            "schema": hashlib.sha256(json.dumps(fmt, sort_keys=True).encode("utf-8")).hexdigest(),
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()
