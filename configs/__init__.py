"""The shipped configuration files (package data) and the one locator for them and a user's own.

Shipped tasks, robots, cameras, the object catalog, views, prompts and scoring configs live in this package's
folder and are found through `importlib.resources`, so a wheel or `pip install .` finds them from any working
directory. A user's own config folders (same layout: `tasks/`, `robots/`, `cameras/`, `scoring/`, `prompts/`)
are searched first; only the command line sets them (`--config-dir`, `ANTIGROUNDING_CONFIG_DIR`).

`configs` is a data package below every floor: any package may import it, it imports nothing internal. It also
holds what every loader shares: the one input error (`InputError`: file, field, expected, got), the did-you-mean
hint, and the strict YAML reader (`read_yaml`: bounded, UTF-8, no aliases or duplicate keys, finite numbers).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from configs.errors import InputError, Said, did_you_mean, safe_key, show
from configs.safe_yaml import parse_yaml, read_text, read_yaml

__all__ = ["InputError", "Said", "ConfigNotFoundError", "did_you_mean", "safe_key", "show", "parse_yaml", "read_text",
           "read_yaml", "find", "file", "names", "shipped", "shipped_dir", "search_dirs", "set_user_dirs",
           "looks_like_path", "KINDS"]

# Per kind: what a name means (a YAML file, or for prompts a folder) and what to call it in an error.
KINDS: dict[str, tuple[str, str]] = {"tasks": (".yaml", "task"), "robots": (".yaml", "robot"),
                                     "cameras": (".yaml", "camera"), "scoring": (".yaml", "scoring config"),
                                     "prompts": ("", "template")}

_user_dirs: tuple[Path, ...] = ()


class ConfigNotFoundError(InputError):
    """A config named by name or path that is not there; the message lists what is and a did-you-mean."""


def shipped_dir() -> Path:
    """This package's folder (a real directory: the package is never installed zipped)."""
    return Path(str(resources.files(__name__)))


def set_user_dirs(dirs: list[str] | tuple[str, ...]) -> None:
    """Folders searched before the shipped configs, in order. Called by the command line only."""
    global _user_dirs
    paths = tuple(Path(d).expanduser().resolve() for d in dirs)
    for path in paths:
        if not path.is_dir():
            raise ConfigNotFoundError(None, "--config-dir", "an existing folder", str(path))
    _user_dirs = paths


def search_dirs() -> tuple[Path, ...]:
    """The user's folders first, then the shipped one."""
    return (*_user_dirs, shipped_dir())


def shipped(*parts: str) -> Path:
    """A shipped file or folder by its relative path (e.g. `shipped("views.yaml")`), user folders ignored."""
    return shipped_dir().joinpath(*parts)


def file(*parts: str) -> Path:
    """A top-level config file (`objects.yaml`, `views.yaml`): the first user folder that has it, else shipped."""
    for root in search_dirs():
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return shipped(*parts)


def names(kind: str) -> list[str]:
    """Every name of this kind in the search folders, sorted."""
    suffix = _suffix(kind)
    found: set[str] = set()
    for root in search_dirs():
        folder = root / kind
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if suffix and entry.is_file() and entry.name.endswith(suffix):
                found.add(entry.name[: -len(suffix)])
            elif not suffix and entry.is_dir() and not entry.name.startswith(("_", ".")):
                found.add(entry.name)
    return sorted(found)


def looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.startswith(".") or value.endswith((".yaml", ".yml"))


def find(kind: str, value: str, field: str | None = None, file: str | None = None) -> Path:
    """A config of `kind` given by name (searched in the user's folders, then shipped) or by path.

    `file`/`field` say where the name was written (a task's `robot` field, the `--task` flag) for the error.
    """
    suffix = _suffix(kind)
    what = KINDS[kind][1]
    field = field or kind
    if not isinstance(value, str) or not value.strip():
        raise ConfigNotFoundError(file, field, f"a {what} name or a path", value)
    if looks_like_path(value):
        path = Path(value).expanduser()
        if not (path.is_dir() if not suffix else path.is_file()):
            expected = f"an existing {what} {'folder' if not suffix else 'file'}"
            if file:   # written in a config file: that file and field, and the path as written
                raise ConfigNotFoundError(file, field, expected, value)
            raise ConfigNotFoundError(value, field, expected, Said("no such " + ("folder" if not suffix else "file")))
        return path
    for root in search_dirs():
        path = root / kind / f"{value}{suffix}"
        if path.is_dir() if not suffix else path.is_file():
            return path
    known = names(kind)
    where = ", ".join(str(root / kind) for root in search_dirs())
    raise ConfigNotFoundError(file, field, f"a known {what} name (searched {where}) or a path", value,
                              hint=did_you_mean(value, known))


def _suffix(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"config kind {kind!r}: expected one of {sorted(KINDS)}")  # a programming error
    return KINDS[kind][0]
