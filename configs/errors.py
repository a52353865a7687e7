"""The one error for input that cannot be used, and the one did-you-mean hint.

Every loader (task, catalog, robot, camera, views, scoring config, prompts, lab spec) and the command line's
flag checks raise `InputError` (or a floor's subclass of it); the command line catches it in one place and
exits 2 without a traceback. It lives in `configs`, the data package below every floor, so that `sim` and
`scoring` (both floor 1, which may not import each other) share it.

A value that is shown is truncated (a 1 MB string or a deep mapping never lands in a terminal or a log); a
value that may be a secret (`secret=True`: anything in a scoring config) is described by its type and size,
never echoed.
"""

from __future__ import annotations

import difflib
import os
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

_MISSING = object()
_MAX_SHOWN = 200
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlevel = 160, 60, 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


class Said(str):
    """A description of what was found ("no such file", "an unknown field"), printed as is, not quoted."""


def show(value: Any) -> str:
    """A short, bounded repr: what a message may print of a value that is not secret."""
    text = str(value) if isinstance(value, Said) else _repr.repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def describe(value: Any) -> str:
    """The type and size of a value, without its content (for values that may be secrets)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Said):
        return str(value)
    if isinstance(value, str):
        # a short plain name (a backend, a view, a template) is no credential: show it; anything longer may be one
        if len(value) <= 24 and value.replace("_", "a").replace("-", "a").replace(".", "a").isalnum():
            return repr(value)
        return f"a string of {len(value)} characters (not shown)"
    if isinstance(value, Mapping):
        return f"a mapping of {len(value)} entries (not shown)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} items (not shown)"
    return f"a {type(value).__name__} (not shown)"


def did_you_mean(word: Any, choices: Iterable[str], list_choices: bool = True) -> str:
    """ "; did you mean 'x'?" for the closest choice, or "; choose from a, b" when nothing is close (and
    list_choices: a message whose `expected` lists them already says list_choices=False)."""
    choices = sorted(str(c) for c in choices)
    if not choices:
        return ""
    close = difflib.get_close_matches(str(word)[:80], choices, n=1, cutoff=0.6) if isinstance(word, str) else []
    if close:
        return f"; did you mean '{close[0]}'?"
    if not list_choices:
        return ""
    listed = ", ".join(choices[:20]) + (", ..." if len(choices) > 20 else "")
    return f"; choose from {listed}"


def safe_key(key: Any) -> str:
    """A mapping key fit to print in a field path: a short identifier-like name as is, anything else described
    (a credential pasted as a key, a 10 kB key)."""
    text = str(key)
    if isinstance(key, str) and len(text) <= 40 and text.replace("_", "a").replace("-", "a").isalnum():
        return text
    return f"<key of {len(text)} characters>" if isinstance(key, str) else show(key)


class InputError(ValueError):
    """Input that cannot be used: which file, which field, what was expected, what was there.

    file: the file the value came from (None for a command-line flag or an in-memory value);
    field: a dotted path inside it (`objects.red_block.pose.xyz`), or a flag (`--seed`);
    expected: what a valid value looks like;
    got: the value (shown truncated; described only, never shown, when `secret`);
    hint: appended as is (a did-you-mean).
    """

    def __init__(self, file: str | os.PathLike[str] | None, field: str | None = None, expected: str | None = None,
                 got: Any = _MISSING, *, secret: bool = False, hint: str = "") -> None:
        if expected is None and field is None and got is _MISSING:
            # one free-text argument: an older raise site (kept working while every site moves to the fields)
            file, expected = None, str(file)
        self.file = None if file is None else os.fspath(file)
        self.field = field or None
        self.expected = expected or "a usable value"
        self.got = None if got is _MISSING else (describe(got) if secret else show(got))
        self.hint = hint
        super().__init__(self.message())

    def message(self) -> str:
        field = None if not self.field else self.field if self.field.startswith(("line ", "--")) \
            else f"field '{self.field}'"
        where = ": ".join(part for part in (self.file, field) if part)
        got = "" if self.got is None else f", got {self.got}"
        text = f"expected {self.expected}{got}{self.hint}" if self.file or self.field or self.got is not None \
            else f"{self.expected}{self.hint}"
        return f"{where}: {text}" if where else text

    def located(self, file: str | os.PathLike[str] | None, prefix: str | None = None) -> InputError:
        """The same error placed in a file (when it names none yet) under a field prefix (a nested value)."""
        field = ".".join(part for part in (prefix, self.field) if part) or None
        return _rebuild(type(self), self.file or (None if file is None else os.fspath(file)), field, self.expected,
                        self.got, self.hint)

    def __reduce__(self):  # pickles (Ray, multiprocessing) with its fields, not with the formatted message
        return _rebuild, (type(self), self.file, self.field, self.expected, self.got, self.hint)


def _rebuild(cls: type[InputError], file, field, expected, got, hint) -> InputError:
    err = cls.__new__(cls)
    err.file, err.field, err.expected, err.got, err.hint = file, field, expected, got, hint
    ValueError.__init__(err, err.message())
    return err
