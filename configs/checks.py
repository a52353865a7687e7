"""Checks of one config value each: finite and physical numbers, lists of them, names, integers.

Every loader validates its fields with these, so a bad value gets the same message everywhere: the file, the
field, what was expected (with the physical range) and what was there. `error` picks the floor's subclass of
InputError to raise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from configs.errors import InputError, Said, did_you_mean, safe_key

Err = type[InputError]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _range_text(lo: float | None, hi: float | None, lo_open: bool) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" <= {hi:g}"
    return ""


def number(value: Any, file: str | None, field: str, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, unit: str = "", error: Err = InputError) -> float:
    """A finite real number within [lo, hi] (lo excluded when lo_open); bools are not numbers."""
    expected = f"a finite number{_range_text(lo, hi, lo_open)}{' ' + unit if unit else ''}"
    if not is_number(value):
        raise error(file, field, expected, value)
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
        raise error(file, field, expected, value)
    return float(value)


def integer(value: Any, file: str | None, field: str, lo: int | None = None, hi: int | None = None, *,
            error: Err = InputError) -> int:
    expected = f"an integer{_range_text(lo, hi, False)}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(file, field, expected, value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise error(file, field, expected, value)
    return int(value)


def numbers(value: Any, file: str | None, field: str, n: int | None = None, lo: float | None = None,
            hi: float | None = None, *, lo_open: bool = False, unit: str = "", what: str = "",
            max_len: int = 64, error: Err = InputError) -> tuple[float, ...]:
    """A list of finite numbers (exactly n when given), each within [lo, hi]."""
    count = f"{n} " if n is not None else ""
    desc = what or f"a list of {count}finite numbers"
    expected = f"{desc}{_range_text(lo, hi, lo_open)}{' ' + unit if unit else ''}"
    if not isinstance(value, list | tuple) or (n is not None and len(value) != n) or (n is None and not value) \
            or len(value) > max_len:
        raise error(file, field, expected, value)
    return tuple(number(v, file, f"{field}[{i}]", lo, hi, lo_open=lo_open, unit=unit, error=error)
                 for i, v in enumerate(value))


def text(value: Any, file: str | None, field: str, what: str = "a non-empty string", max_len: int = 10_000, *,
         error: Err = InputError) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise error(file, field, f"{what} (at most {max_len} characters)", value)
    return value


def name(value: Any, file: str | None, field: str, what: str = "a name", *, error: Err = InputError) -> str:
    """A short name made of letters, digits, '_', '-' and '.' (a joint, a link, an object)."""
    ok = isinstance(value, str) and 0 < len(value) <= 128 and value.replace("_", "a").replace("-", "a") \
        .replace(".", "a").isalnum()
    if not ok:
        raise error(file, field, f"{what} (letters, digits, _ - .; at most 128 characters)", value)
    return value


def mapping(value: Any, file: str | None, field: str | None, what: str, allowed: tuple[str, ...] | None = None,
            required: tuple[str, ...] = (), *, error: Err = InputError) -> Mapping:
    """A mapping with string keys, only `allowed` keys (a did-you-mean for others) and every `required` key."""
    if not isinstance(value, Mapping):
        raise error(file, field, what, value)
    for key in value:
        if not isinstance(key, str):
            raise error(file, field, f"{what} with text keys", key)
        if allowed is not None and key not in allowed:
            sub = f"{field}.{safe_key(key)}" if field else safe_key(key)
            raise error(file, sub, f"one of the fields {', '.join(allowed)}", Said("an unknown field"),
                        hint=did_you_mean(key, allowed, list_choices=False))
    for key in required:
        if key not in value:
            raise error(file, f"{field}.{key}" if field else key, "a value (this field is required)",
                        Said("nothing"))
    return value
