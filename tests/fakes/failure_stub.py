"""StubVLMServer taught the failure question: the same two wire formats and the same strict checks (model, a
PNG image, a forced tool with a schema / the response_format), answering with a scripted failure answer
instead of candidate scores. It serves only failure questions: a request without the failure prompt's first
line ("Failure question v1") or without the failure schema fails its checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.stub_server import StubVLMServer

MARKER = "Failure question v1"
_NO_IDS = "cannot tell the candidate ids"


def _failure_schema(schema: Any) -> bool:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return "failure_type" in props and "dropped" in props["failure_type"].get("enum", ())


class FailureStubServer(StubVLMServer):
    """answer: the failure answer every good request gets (a dict, as the model would write it)."""

    def __init__(self, behaviours="good", *, answer: Mapping[str, Any], **kw: Any) -> None:
        super().__init__(behaviours, **kw)
        self.answer = dict(answer)

    def _fix(self, errors: list[str], info: dict[str, Any], schema_ok: bool) -> tuple[list[str], dict[str, Any]]:
        errors = [e for e in errors if not e.startswith(_NO_IDS)]
        if MARKER not in info.get("text", ""):
            errors.append(f"not a failure question: no '{MARKER}' line")
        if not schema_ok:
            errors.append("the failure schema was not sent")
        info["ids"] = (0,)   # the base server records ids; a failure question has none
        return errors, info

    def _check_anthropic(self, body: Any) -> tuple[list[str], dict[str, Any]]:
        errors, info = super()._check_anthropic(body)
        tools = body.get("tools") if isinstance(body, dict) else None
        ok = isinstance(tools, list) and any(_failure_schema(t.get("input_schema")) for t in tools)
        return self._fix(errors, info, ok)

    def _check_openai(self, body: Any) -> tuple[list[str], dict[str, Any]]:
        errors, info = super()._check_openai(body)
        fmt = body.get("response_format") if isinstance(body, dict) else None
        ok = info.get("response_format") != "json_schema" or _failure_schema(
            (fmt.get("json_schema") or {}).get("schema"))
        return self._fix(errors, info, ok)

    def _answer_object(self, ids: Sequence[int], behaviour: str) -> dict[str, Any]:
        answer = dict(self.answer)
        if behaviour == "out_of_range":
            answer["confidence"] = 14
        if behaviour == "missing":
            answer.pop("redo_subtask", None)
        return answer
