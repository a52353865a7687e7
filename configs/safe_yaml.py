"""Reading a config file the way an untrusted file must be read: bounded, strict, and checked once.

- the size is bounded before reading (a config is a few kB; MAX_BYTES leaves room for long tasks);
- the bytes must be UTF-8;
- YAML anchors and aliases are refused (a 1.6 kB alias bomb expands to gigabytes), so are duplicate keys
  (YAML would keep the last one silently), `<<` merges, nesting deeper than MAX_DEPTH and more than MAX_NODES
  nodes;
- every number must be finite (`.inf` and `.nan` are never a physical value in a config).
Every refusal is an `InputError` naming the file and the line or field.
"""

from __future__ import annotations

import math
import os
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

from configs.errors import InputError, Said, safe_key

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000


def read_text(path: str | os.PathLike[str], what: str = "text file", max_bytes: int = MAX_BYTES) -> str:
    """The file's text: it must exist, be a regular file of at most max_bytes, and be UTF-8."""
    source = os.fspath(path)
    if not os.path.exists(source):
        raise InputError(source, None, f"an existing {what}", Said("no such file"))
    if not os.path.isfile(source):  # checked before opening: a FIFO or a device would block or never end
        raise InputError(source, None, f"a {what} (a regular file)", Said("a directory or a special file"))
    try:
        with open(source, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(source, None, f"a readable {what}", Said(exc.strerror or type(exc).__name__)) from None
    if len(data) > max_bytes:
        raise InputError(source, None, f"a {what} of at most {max_bytes} bytes", Said("a larger file"))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = Said(f"a byte that is not UTF-8 ({exc.object[exc.start]:#04x}) at byte {exc.start}")
        raise InputError(source, f"line {line}", "UTF-8 text", bad) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, merge keys and duplicate keys, and bounds depth and size."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.depth = 0
        self.nodes = 0

    def _fail(self, mark, expected: str, got: str) -> InputError:
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        return InputError(self.source, where, expected, Said(got))

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise self._fail(event.start_mark, "plain YAML without anchors or aliases", f"the alias *{event.anchor}")
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor is not None:
            raise self._fail(event.start_mark, "plain YAML without anchors or aliases", f"the anchor &{event.anchor}")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self._fail(event.start_mark, f"at most {MAX_NODES} values", "more")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._fail(event.start_mark, f"nesting at most {MAX_DEPTH} levels deep", "deeper nesting")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self._fail(key_node.start_mark, "plain YAML without '<<' merge keys", "'<<'")
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise self._fail(key_node.start_mark, "a scalar mapping key", "a mapping or list as a key") from None
            if key in seen:
                raise self._fail(key_node.start_mark, "each key once per mapping",
                                 f"'{safe_key(key)}' again (first on line {seen[key].line + 1})")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _first_non_finite(data: Any, path: str = "") -> tuple[str, float] | None:
    stack = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return where, value
        if isinstance(value, dict):
            stack.extend((f"{where}.{safe_key(k)}" if where else safe_key(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return None


def parse_yaml(text: str, source: str) -> Any:
    """YAML text -> plain data (dicts, lists, scalars), refusing what the module docstring lists."""
    loader = _StrictLoader(text, source)
    try:
        data = loader.get_single_data()
    except InputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        raise InputError(source, where, "valid YAML", Said(exc.problem or exc.context or "a syntax error")) from None
    except yaml.YAMLError as exc:
        raise InputError(source, None, "valid YAML", Said(type(exc).__name__)) from None
    except (RecursionError, MemoryError):
        raise InputError(source, None, "a config of ordinary size and depth", Said("one too large to parse")) from None
    finally:
        loader.dispose()
    bad = _first_non_finite(data)
    if bad is not None:
        raise InputError(source, bad[0] or None, "a finite number", bad[1])
    return data


def read_yaml(path: str | os.PathLike[str], what: str = "YAML file", max_bytes: int = MAX_BYTES) -> Any:
    """Read, decode and parse a YAML config file strictly (see the module docstring)."""
    source = os.fspath(path)
    return parse_yaml(read_text(source, what, max_bytes), source)
