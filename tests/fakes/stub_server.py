"""A local stand-in for VLM APIs: an HTTP server on 127.0.0.1 that speaks both wire formats the backends use.

``StubVLMServer`` answers ``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/chat/completions``
(OpenAI chat) the way the real services shape their replies, so the real ``anthropic`` and ``openai``
client libraries can be tested against it, and benchmarks can measure the pool against a server with a
known latency. It is the one fake in the scoring tests, sitting at the machine's edge.

Every request is checked the way a strict server would (model named, at least one image that decodes as a
PNG, for Anthropic a forced tool with an input_schema, for OpenAI the expected ``response_format``), and
recorded (path, headers without credential values, whether a credential was sent, the JSON body). A failed
check is answered with HTTP 400 naming the problem and listed in ``failed_checks``.

What the server answers is scripted per request by ``behaviours``: one name, a sequence (request i gets
entry i, the last entry repeats), or a callable ``(index, path, body) -> name``. Names:

    good            valid scores for every candidate id (ids from the schema's ``enum``, or from the
                    prompt's "Candidate ids: 0, 1, 2" line when no schema is sent); Anthropic answers with a
                    tool_use block when the request offers a tool, OpenAI with message.content
    chatty          the JSON in a ```json fence between sentences (a text block / message.content)
    malformed       JSON cut off in the middle
    out_of_range    like good, but one score is 14 and one is -3
    missing         like good, but the last candidate is left out
    refusal         a refusal (Anthropic stop_reason "refusal" with its text; OpenAI message.refusal)
    429             HTTP 429 with a Retry-After header (``retry_after``, default "1")
    500             HTTP 500
    400             HTTP 400 (invalid request)
    401             HTTP 401 whose message echoes the credential the client sent, as some servers do (to
                    test that no key reaches an error message; the value is echoed, never recorded)
    slow            waits ``slow_s`` (default 2 s; longer than a test client's timeout), then answers good
    reject_response_format
                    HTTP 400 "response_format ... not supported" when the body has a response_format,
                    else good (a server without structured output support)

A rotation question (``scoring.rotation_question``: a tool / json_schema whose properties hold "axis", or
with no schema a prompt with a "Held object:" line) is answered with ``rotation`` (a dict, default: turn 90
degrees positive about the gripper's y axis) in the same wire shapes; "chatty", "malformed" and the errors
apply to it too.

``delay_s`` makes every answer wait that long first (a server with a known latency); requests are served
concurrently, one daemon thread each. A refused connection cannot be served by a live server:
``unused_base_url()`` gives a URL on a port nothing listens on. ``make_stub_request()`` builds a ScoreRequest
with small real PNGs for tests and benchmarks.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scoring.request import CandidateEvidence, ScoreRequest, ViewImage
from scoring.schema import DIMENSIONS

logger = logging.getLogger(__name__)

ANTHROPIC_PATH = "/v1/messages"
OPENAI_PATH = "/v1/chat/completions"
BEHAVIOURS = (
    "good",
    "chatty",
    "malformed",
    "out_of_range",
    "missing",
    "refusal",
    "429",
    "500",
    "400",
    "401",
    "slow",
    "reject_response_format",
)
RESPONSE_FORMAT_EXPECTATIONS = ("json_schema", "json_object", "none", "any")
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
_AUTH_HEADERS = ("authorization", "x-api-key", "api-key")
_IDS_LINE_RE = re.compile(r"candidate ids?\s*:\s*([0-9][0-9,\s]*)", re.IGNORECASE)

Behaviours = str | Sequence[str] | Callable[[int, str, Any], str]
ScoreFn = Callable[[int], "float | Mapping[str, float]"]


@dataclass(frozen=True)
class StubRequest:
    """One request as the stub saw it. headers: lower-case names, credential headers left out."""

    index: int
    path: str
    headers: dict[str, str]
    auth_present: bool
    body: Any
    behaviour: str
    check_errors: tuple[str, ...]
    model: str | None
    candidate_ids: tuple[int, ...]
    images: int
    user_text: str


def unused_base_url(path: str = "") -> str:
    """http://127.0.0.1:PORT + path on a port that nothing listens on (for connection-refused tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def png_bytes(width: int = 96, height: int = 72, seed: int = 0) -> bytes:
    """A small real PNG (coloured stripes, different per seed) made with PIL."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (40 + 20 * (seed % 5), 60, 80))
    draw = ImageDraw.Draw(image)
    for k in range(4):
        x = (seed * 7 + k * width // 4) % width
        draw.line([(x, 0), (width - 1 - x, height - 1)], fill=(230, 159 - 30 * k, 30 * k), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_stub_request(
    n_candidates: int = 4,
    view_names: Sequence[str] = ("front",),
    *,
    instruction: str = "Put the red block on top of the blue block.",
    subtask: str = "grasp the red block",
    size: tuple[int, int] = (96, 72),
    with_evidence: bool = False,
) -> ScoreRequest:
    """A ScoreRequest with ids 0..n-1 and one real PNG per view (views differ, so their hashes differ)."""
    ids = tuple(range(n_candidates))
    width, height = size
    views = tuple(
        ViewImage(
            name=name,
            png=png_bytes(width, height, seed=index),
            width=width,
            height=height,
            endpoints_px={cid: (float(5 + (cid * 11) % (width - 10)), float(height / 2)) for cid in ids},
        )
        for index, name in enumerate(view_names)
    )
    evidence = None
    if with_evidence:
        evidence = {
            cid: CandidateEvidence(
                id=cid, feasible=True, collisions=0, min_clearance_m=0.1, joint_limit_margin_rad=0.5,
                ik_error_m=0.0, path_length_m=0.2, duration_s=1.0, progress=0.5, subtask_done=False,
                task_success=False, gripper="close" if cid == 0 else "keep",
            )
            for cid in ids
        }
    return ScoreRequest(instruction=instruction, subtask=subtask, candidate_ids=ids, views=views, evidence=evidence)


def _default_scores(cid: int) -> float:
    return float((3 + cid) % 11)


def _decode_png(data: str) -> str | None:
    """None when data is base64 of a PNG that PIL can open, else the problem."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        return f"image data is not base64: {err}"
    try:
        with Image.open(io.BytesIO(raw)) as image:
            fmt = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        return f"image does not decode: {err}"
    return None if fmt == "PNG" else f"image is {fmt}, expected PNG"


def _schema_ids(schema: Any) -> tuple[int, ...] | None:
    try:
        enum = schema["properties"]["candidates"]["items"]["properties"]["id"]["enum"]
    except (KeyError, TypeError):
        return None
    return tuple(int(i) for i in enum) if isinstance(enum, list) and enum else None


def _is_rotation(schema: Any, text: str) -> bool:
    """A rotation question: its schema asks for an "axis", or (no schema) its prompt names the held object."""
    if isinstance(schema, dict):
        return "axis" in (schema.get("properties") or {})
    return "held object:" in text.lower()


def _text_ids(text: str) -> tuple[int, ...] | None:
    match = _IDS_LINE_RE.search(text)
    if not match:
        return None
    ids = tuple(int(part) for part in re.split(r"[,\s]+", match.group(1).strip()) if part)
    return ids or None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a handler that sleeps in a "slow" answer
    request_queue_size = 256  # benchmarks keep many requests in flight at once
    allow_reuse_address = True

    def __init__(self, stub: StubVLMServer) -> None:
        self.stub = stub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API; every reply carries Content-Length
    timeout = 60  # an idle keep-alive connection's thread ends after a minute
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the client went away (a timed-out request)
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        logger.debug("stub %s: " + format, self.address_string(), *args)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.server.stub._handle(self)

    def do_GET(self) -> None:  # noqa: N802
        self.server.stub._reply(self, 404, {"error": {"type": "not_found_error", "message": "POST only"}})


class StubVLMServer:
    """A scripted Anthropic + OpenAI compatible server on 127.0.0.1 (a context manager; port chosen by the OS).

    behaviours: see the module docstring. scores: candidate id -> one number for every dimension or a
    mapping per dimension (default (3 + id) % 11). clarity: the view_clarity answered. delay_s: wait before
    every answer. slow_s: the wait of "slow". retry_after: the Retry-After header of "429".
    expect_response_format: what OpenAI requests must carry ("json_schema", "json_object", "none", or "any"
    to skip the check). require_tool: Anthropic requests must force a tool with an input_schema.
    record_bodies: keep each request's JSON body (images included) in ``requests``; a long benchmark sets it
    False to keep memory flat (the checks still run on every body).
    """

    def __init__(
        self,
        behaviours: Behaviours = "good",
        *,
        scores: ScoreFn | None = None,
        clarity: float = 7.0,
        delay_s: float = 0.0,
        slow_s: float = 2.0,
        retry_after: str = "1",
        expect_response_format: str = "json_schema",
        require_tool: bool = True,
        record_bodies: bool = True,
        rotation: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(behaviours, str):
            behaviours = (behaviours,)
        if not callable(behaviours):
            behaviours = tuple(behaviours)
            if not behaviours:
                raise ValueError("StubVLMServer.behaviours: expected at least one behaviour")
            unknown = [b for b in behaviours if b not in BEHAVIOURS]
            if unknown:
                raise ValueError(f"StubVLMServer.behaviours: unknown {unknown}; choose from {', '.join(BEHAVIOURS)}")
        if expect_response_format not in RESPONSE_FORMAT_EXPECTATIONS:
            raise ValueError(
                f"StubVLMServer.expect_response_format: expected one of {RESPONSE_FORMAT_EXPECTATIONS}, "
                f"got {expect_response_format!r}"
            )
        for name, value in (("delay_s", delay_s), ("slow_s", slow_s)):
            if not value >= 0:
                raise ValueError(f"StubVLMServer.{name}: expected a number >= 0, got {value!r}")
        self.behaviours = behaviours
        self.scores = scores or _default_scores
        self.clarity = float(clarity)
        self.delay_s = float(delay_s)
        self.slow_s = float(slow_s)
        self.retry_after = str(retry_after)
        self.expect_response_format = expect_response_format
        self.require_tool = require_tool
        self.record_bodies = record_bodies
        self.rotation = dict(rotation or {"frame": "gripper", "axis": "y", "direction": "positive", "angle_deg": 90})
        self._lock = threading.Lock()
        self._records: list[StubRequest] = []
        self._counts: dict[str, int] = {}
        self._next_index = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> StubVLMServer:
        if self._server is not None:
            raise RuntimeError("StubVLMServer is already running")
        self._stop_event.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-vlm", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; sleeping handlers wake up and open connections are closed (returns promptly)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop_event.set()
        server.shutdown()
        with server.connections_lock:
            connections = list(server.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> StubVLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses and records -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("StubVLMServer is not running")
        return int(self._server.server_address[1])

    @property
    def anthropic_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[StubRequest]:
        with self._lock:
            return list(self._records)

    @property
    def counts(self) -> dict[str, int]:
        """Requests received per path."""
        with self._lock:
            return dict(self._counts)

    @property
    def max_in_flight(self) -> int:
        """The most requests this server was answering at the same moment (concurrency actually reached)."""
        with self._lock:
            return self._max_in_flight

    @property
    def failed_checks(self) -> list[str]:
        """'path #index: problem' for every request that failed a check (empty when all were well formed)."""
        return [f"{r.path} #{r.index}: {e}" for r in self.requests for e in r.check_errors]

    # --- request handling ----------------------------------------------------------------------------------

    def _choose(self, index: int, path: str, body: Any) -> str:
        if callable(self.behaviours):
            name = self.behaviours(index, path, body)
            if name not in BEHAVIOURS:
                raise ValueError(f"behaviours callable returned {name!r}; choose from {', '.join(BEHAVIOURS)}")
            return name
        return self.behaviours[min(index, len(self.behaviours) - 1)]

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stop_event.wait(seconds)

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, payload: Any,
               headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except OSError:  # BrokenPipe / ConnectionReset: the client gave up (its timeout) before the answer
            handler.close_connection = True

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in handler.headers.items() if k.lower() not in _AUTH_HEADERS}
        auth_present = any(handler.headers.get(name) for name in _AUTH_HEADERS)
        presented = next((handler.headers.get(n) for n in _AUTH_HEADERS if handler.headers.get(n)), "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            index = self._next_index
            self._next_index += 1
            self._counts[path] = self._counts.get(path, 0) + 1

        if path == ANTHROPIC_PATH:
            errors, info = self._check_anthropic(body)
        elif path == OPENAI_PATH:
            errors, info = self._check_openai(body)
        else:
            errors, info = [f"unknown path {path!r}; serving {ANTHROPIC_PATH} and {OPENAI_PATH}"], {}
        behaviour = "check_failed" if errors else self._choose(index, path, body)
        record = StubRequest(
            index=index, path=path, headers=headers, auth_present=bool(auth_present),
            body=body if self.record_bodies else None,
            behaviour=behaviour, check_errors=tuple(errors), model=info.get("model"),
            candidate_ids=tuple(info.get("ids") or ()), images=int(info.get("images", 0)),
            user_text=info.get("text", ""),
        )
        with self._lock:
            self._records.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            self._wait(self.delay_s)
            if errors:
                status = 404 if path not in (ANTHROPIC_PATH, OPENAI_PATH) else 400
                self._reply(handler, status, self._error_body(path, "invalid_request_error", "; ".join(errors)))
                return
            if behaviour == "slow":
                self._wait(self.slow_s)
            if behaviour == "401":
                message = f"stub: invalid credential {presented!r}"
                self._reply(handler, 401, self._error_body(path, "authentication_error", message))
            elif path == ANTHROPIC_PATH:
                self._answer_anthropic(handler, record, info)
            else:
                self._answer_openai(handler, record, info)
        finally:
            with self._lock:
                self._in_flight -= 1

    # --- checks ----------------------------------------------------------------------------------------------

    def _check_images(self, sources: list[str], errors: list[str]) -> int:
        if not sources:
            errors.append("no image in the request")
        for k, data in enumerate(sources):
            problem = _decode_png(data)
            if problem:
                errors.append(f"image {k}: {problem}")
        return len(sources)

    def _check_anthropic(self, body: Any) -> tuple[list[str], dict[str, Any]]:
        errors: list[str] = []
        info: dict[str, Any] = {}
        if not isinstance(body, dict):
            return ["body is not a JSON object"], info
        info["model"] = body.get("model")
        if not isinstance(body.get("model"), str) or not body["model"]:
            errors.append("model: missing")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] <= 0:
            errors.append("max_tokens: expected a positive integer")
        images, texts = [], []
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            errors.append("messages: expected a non-empty list")
            messages = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                texts.append(content)
                continue
            for block in content or []:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text":
                    texts.append(str(block.get("text", "")))
                elif block.get("type") == "image":
                    source = block.get("source") or {}
                    if source.get("type") != "base64" or source.get("media_type") != "image/png":
                        errors.append("image block: expected a base64 image/png source")
                    images.append(str(source.get("data", "")))
        info["images"] = self._check_images(images, errors)
        info["text"] = "\n".join(texts)
        tools = body.get("tools")
        schema = None
        if self.require_tool:
            choice = body.get("tool_choice")
            if not isinstance(tools, list) or not tools:
                errors.append("tools: expected the scoring tool")
            elif not isinstance(choice, dict) or choice.get("type") != "tool":
                errors.append("tool_choice: expected {'type': 'tool', 'name': ...} forcing the scoring tool")
            else:
                named = [t for t in tools if isinstance(t, dict) and t.get("name") == choice.get("name")]
                if not named:
                    errors.append(f"tool_choice names {choice.get('name')!r}, which is not in tools")
                elif not isinstance(named[0].get("input_schema"), dict) or named[0]["input_schema"].get(
                    "type"
                ) != "object":
                    errors.append("tool input_schema: expected a JSON schema of type object")
                else:
                    schema = named[0]["input_schema"]
                    info["tool"] = named[0]["name"]
        elif isinstance(tools, list) and tools and isinstance(tools[0], dict):
            schema = tools[0].get("input_schema")
            info["tool"] = tools[0].get("name")
        info["ids"] = _schema_ids(schema) or _text_ids(info["text"])
        if _is_rotation(schema, info["text"]):
            info["question"], info["ids"] = "rotation", ()
        elif not errors and not info["ids"]:
            errors.append("cannot tell the candidate ids: no id enum in the schema, no 'Candidate ids:' line")
        return errors, info

    def _check_openai(self, body: Any) -> tuple[list[str], dict[str, Any]]:
        errors: list[str] = []
        info: dict[str, Any] = {}
        if not isinstance(body, dict):
            return ["body is not a JSON object"], info
        info["model"] = body.get("model")
        if not isinstance(body.get("model"), str) or not body["model"]:
            errors.append("model: missing")
        images, texts = [], []
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            errors.append("messages: expected a non-empty list")
            messages = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                if message.get("role") == "user":
                    texts.append(content)
                continue
            for part in content or []:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    url = str((part.get("image_url") or {}).get("url", ""))
                    prefix = "data:image/png;base64,"
                    if not url.startswith(prefix):
                        errors.append("image_url: expected a data:image/png;base64 URL")
                    images.append(url[len(prefix):] if url.startswith(prefix) else "")
        info["images"] = self._check_images(images, errors)
        info["text"] = "\n".join(texts)
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        info["response_format"] = kind
        expected = self.expect_response_format
        if expected == "none" and fmt is not None:
            errors.append(f"response_format: expected none, got {kind!r}")
        elif expected in ("json_schema", "json_object") and kind != expected:
            errors.append(f"response_format: expected type {expected!r}, got {kind!r}")
        schema = None
        if kind == "json_schema":
            spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
            if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("schema"), dict):
                errors.append("response_format.json_schema: expected a name and a schema")
            else:
                schema = spec["schema"]
        info["ids"] = _schema_ids(schema) or _text_ids(info["text"])
        if _is_rotation(schema, info["text"]):
            info["question"], info["ids"] = "rotation", ()
        elif not errors and not info["ids"]:
            errors.append("cannot tell the candidate ids: no id enum in the schema, no 'Candidate ids:' line")
        return errors, info

    # --- answers ---------------------------------------------------------------------------------------------

    def _answer_object(self, ids: Sequence[int], behaviour: str) -> dict[str, Any]:
        rows = []
        for cid in ids:
            value = self.scores(cid)
            if isinstance(value, Mapping):
                row = {"id": cid, **{dim: float(value[dim]) for dim in DIMENSIONS}}
            else:
                row = {"id": cid, **{dim: float(value) for dim in DIMENSIONS}}
            rows.append(row)
        if behaviour == "out_of_range" and rows:
            rows[0]["safety"] = 14
            rows[-1]["efficiency"] = -3
        if behaviour == "missing" and rows:
            rows = rows[:-1]
        return {"view_clarity": self.clarity, "candidates": rows}

    def _answer_text(self, ids: Sequence[int], behaviour: str, question: str | None = None) -> str:
        obj = dict(self.rotation) if question == "rotation" else self._answer_object(ids, behaviour)
        text = json.dumps(obj)
        if behaviour == "chatty":
            fenced = json.dumps(obj, indent=1)
            return f"Here is my assessment of the candidates.\n```json\n{fenced}\n```\nHope this helps."
        if behaviour == "malformed":
            return text[: max(1, len(text) // 2)]
        return text

    @staticmethod
    def _error_body(path: str, kind: str, message: str) -> dict[str, Any]:
        if path == ANTHROPIC_PATH:
            return {"type": "error", "error": {"type": kind, "message": message}}
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def _answer_error(self, handler: BaseHTTPRequestHandler, path: str, behaviour: str) -> bool:
        if behaviour == "429":
            body = self._error_body(path, "rate_limit_error", "stub: rate limited, slow down")
            self._reply(handler, 429, body, {"Retry-After": self.retry_after})
        elif behaviour == "500":
            self._reply(handler, 500, self._error_body(path, "api_error", "stub: internal server error"))
        elif behaviour == "400":
            self._reply(handler, 400, self._error_body(path, "invalid_request_error", "stub: bad request"))
        else:
            return False
        return True

    def _answer_anthropic(self, handler: BaseHTTPRequestHandler, record: StubRequest, info: dict[str, Any]) -> None:
        behaviour = record.behaviour
        if self._answer_error(handler, record.path, behaviour):
            return
        stop_reason = "end_turn"
        if behaviour == "refusal":
            content = [{"type": "text", "text": REFUSAL_TEXT}]
            stop_reason = "refusal"
        elif behaviour in ("chatty", "malformed") or not info.get("tool"):
            content = [{"type": "text", "text": self._answer_text(record.candidate_ids, behaviour,
                                                                  info.get("question"))}]
        else:
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_stub_{record.index}",
                    "name": info["tool"],
                    "input": dict(self.rotation) if info.get("question") == "rotation"
                    else self._answer_object(record.candidate_ids, behaviour),
                }
            ]
            stop_reason = "tool_use"
        self._reply(
            handler,
            200,
            {
                "id": f"msg_stub_{record.index}",
                "type": "message",
                "role": "assistant",
                "model": record.model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": {"input_tokens": 100, "output_tokens": 50},
            },
        )

    def _answer_openai(self, handler: BaseHTTPRequestHandler, record: StubRequest, info: dict[str, Any]) -> None:
        behaviour = record.behaviour
        if self._answer_error(handler, record.path, behaviour):
            return
        if behaviour == "reject_response_format" and info.get("response_format") is not None:
            message = (
                f"response_format type {info['response_format']!r} is not supported by this server "
                "(stub: no structured output)"
            )
            self._reply(handler, 400, self._error_body(record.path, "invalid_request_error", message))
            return
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if behaviour == "refusal":
            message["refusal"] = REFUSAL_TEXT
        else:
            message["content"] = self._answer_text(record.candidate_ids, behaviour, info.get("question"))
        self._reply(
            handler,
            200,
            {
                "id": f"chatcmpl-stub-{record.index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": record.model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
            },
        )
