"""One place that turns anthropic / openai client exceptions into the scoring package's errors.

(Plus what both HTTP backends share around that: scrubbing secrets from text, a base URL safe to show,
and the checks of the per-agent max_tokens / temperature parameters.)

Both libraries share the same exception tree (generated from one template), so ``translate_api_error`` takes
the library module and checks against its classes:

- RateLimitError (429)                   -> TransientBackendError, retry_after_s from the response headers
  (``retry-after-ms``, else ``Retry-After`` as seconds or an HTTP date), None when absent;
- any APIStatusError with status >= 500  -> TransientBackendError (529 "overloaded" included);
- APITimeoutError                        -> BackendError "no answer within X s" (not retried: a slow model
  stays slow, and the planner has a step budget). It subclasses APIConnectionError, so it is checked first;
- other APIConnectionError               -> TransientBackendError "connection failed: ...";
- other 4xx                              -> BackendError with the status, the error type and a short server
  message (401/403 add which environment variable holds the key);
- anything else from the library         -> BackendError with the exception's class name.

Messages never carry a key: the libraries' messages hold none, and every message is scrubbed anyway of the
current values of the named environment variables, of explicit secrets, and of anything after "Bearer ".
The translated error is raised ``from None`` by the backends, so the library exception (whose ``request``
holds the Authorization header) is not chained to it.
"""

from __future__ import annotations

import email.utils
import math
import os
import re
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

from scoring.errors import AgentParamError, BackendError, TransientBackendError

_BEARER_RE = re.compile(r"(?i)\b(bearer\s+)[^\s'\",]+")
_KEY_LIKE_RE = re.compile(r"\b(sk-(?:ant-)?[A-Za-z0-9_\-]{8,})")
_MAX_SERVER_MESSAGE = 300
_MIN_SECRET_LEN = 4  # shorter strings ("", "x") would mangle messages and are no secrets anyway


def scrub(text: str, secrets: Iterable[str | None] = (), env_vars: Iterable[str] = ()) -> str:
    """text with every secret, the current value of each env var, bearer tokens and sk-... keys as ***."""
    values = [s for s in secrets if s] + [os.environ.get(name) or "" for name in env_vars]
    # Longest first, so a key that contains another secret is replaced whole.
    for value in sorted({v for v in values if len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _BEARER_RE.sub(r"\1***", text)
    return _KEY_LIKE_RE.sub("***", text)


def parse_retry_after_s(headers: Mapping[str, str] | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent.

    Negative or unparseable values give None; a date in the past gives 0.
    """
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            value_ms = float(millis)
        except ValueError:
            value_ms = math.nan
        if math.isfinite(value_ms) and value_ms >= 0:
            return value_ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        now = time.time() if now_s is None else now_s
        return max(0.0, when.timestamp() - now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _server_message(err: Any) -> tuple[str | None, str]:
    """(error type, message) from the response body the way both APIs shape it, else the exception text."""
    body = getattr(err, "body", None)
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping):
        kind = error.get("type") if isinstance(error.get("type"), str) else None
        message = error.get("message")
        if isinstance(message, str) and message.strip():
            return kind, message
    elif isinstance(error, str) and error.strip():  # some OpenAI-compatible servers answer {"error": "..."}
        return None, error
    detail = body.get("detail") if isinstance(body, Mapping) else None  # FastAPI-style servers (vLLM)
    if isinstance(detail, str) and detail.strip():
        return None, detail
    return None, str(getattr(err, "message", None) or err)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_SERVER_MESSAGE else text[: _MAX_SERVER_MESSAGE - 3] + "..."


def translate_api_error(
    err: BaseException,
    library: ModuleType,
    *,
    provider: str,
    timeout_s: float,
    key_env: str,
    endpoint: str = "",
    secrets: Iterable[str | None] = (),
) -> BackendError:
    """The BackendError (or TransientBackendError) to raise for ``err``, an exception of ``library``.

    provider names the API in messages ("anthropic", "openai"); key_env is the environment variable the
    key comes from (named in 401/403 hints and scrubbed from messages); endpoint, a base URL without
    credentials, is named in connection errors; secrets are further strings to scrub (an explicit key).
    """
    secrets = list(secrets)

    def clean(text: str) -> str:
        return scrub(text, secrets, (key_env,))

    where = f" to {endpoint}" if endpoint else ""
    if isinstance(err, library.APITimeoutError):
        return BackendError(f"{provider}: no answer within {timeout_s:g} s{clean(where)} (timeout; not retried)")
    if isinstance(err, library.APIConnectionError):
        cause = err.__cause__ or err.__context__
        reason = f"{type(cause).__name__}: {cause}" if cause is not None else str(err)
        return TransientBackendError(clean(f"{provider}: connection failed{where}: {_short(reason)}"))
    if isinstance(err, library.APIStatusError):
        status = int(err.status_code)
        kind, message = _server_message(err)
        label = f"{provider} API error {status}" + (f" ({kind})" if kind else "")
        text = clean(f"{label}: {_short(message)}")
        if isinstance(err, library.RateLimitError) or status == 429:
            headers = getattr(getattr(err, "response", None), "headers", None)
            return TransientBackendError(text, retry_after_s=parse_retry_after_s(headers))
        if status >= 500:
            return TransientBackendError(text)
        if status in (401, 403):
            text += f" (check the key in the {key_env} environment variable)"
        return BackendError(text)
    return BackendError(clean(f"{provider}: {type(err).__name__}: {_short(str(err))}"))


# --- small checks both HTTP backends share ----------------------------------------------------------------


def check_max_tokens(value: Any, where: str = "max_tokens") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AgentParamError(where, f"expected a positive integer, got {value!r}")
    return value


def check_temperature(value: Any, where: str = "temperature", upper: float = 2.0) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AgentParamError(where, f"expected a number in [0, {upper:g}] or null, got {value!r}")
    if not 0.0 <= value <= upper:
        raise AgentParamError(where, f"expected a number in [0, {upper:g}] or null, got {value!r}")
    return float(value)


def public_url(url: str | None) -> str:
    """A base URL safe to show: without user:password@ and without a query string."""
    if not url:
        return ""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text.split("?", 1)[0]
    host_and_path = rest.split("@", 1)[-1] if "@" in rest.split("/", 1)[0] else rest
    return f"{scheme}://{host_and_path}".split("?", 1)[0]
