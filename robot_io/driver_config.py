"""Loading a vendor driver's frozen config dataclass from YAML (or a dict), and the robot spec it names.

Every driver folder (`robot_io/ur`, `robot_io/franka`, `robot_io/xarm`) has a config dataclass and a default
YAML next to it; `load_driver_config` fills the dataclass with clear errors (file, field, expected, got, and a
"did you mean" for unknown fields). The optional `envelope:` mapping becomes an `EnvelopeConfig`.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from robot_io.envelope import EnvelopeConfig
from sim.scene import RobotSpec, SpecError

ROBOTS_DIR = Path(__file__).resolve().parents[1] / "configs" / "robots"
T = TypeVar("T")


class DriverConfigError(ValueError):
    """A driver config file or mapping is malformed (the message names the file, field, expected and got)."""


def robot_spec(name_or_path: str, where: str = "robot") -> RobotSpec:
    """configs/robots/<name>.yaml, or a YAML path; unknown names get the list of known ones."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = ROBOTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ROBOTS_DIR.glob("*.yaml"))
        close = difflib.get_close_matches(str(name_or_path), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DriverConfigError(f"{where}: unknown robot '{name_or_path}'{hint} (known: {known}, or a .yaml path)")
    try:
        return RobotSpec.from_yaml(str(path))
    except SpecError as e:
        raise DriverConfigError(str(e)) from None


def load_driver_config(cls: type[T], source: str | os.PathLike | dict | None, **overrides: Any) -> T:
    """Build the frozen dataclass `cls` from a YAML file path or a mapping, then apply non-None overrides."""
    where = cls.__name__
    data: dict[str, Any] = {}
    if isinstance(source, dict):
        data = dict(source)
    elif source is not None:
        where = str(source)
        try:
            with open(source) as f:
                loaded = yaml.safe_load(f)
        except OSError as e:
            raise DriverConfigError(f"{where}: cannot read the driver config: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise DriverConfigError(f"{where}: not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DriverConfigError(f"{where}: expected a mapping of fields, got {type(loaded).__name__}")
        data = dict(loaded or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise DriverConfigError(f"{where}: unknown field '{key}'{hint} (fields: {sorted(fields)})")
        kwargs[key] = _coerce(value, hints[key], f"{where}: field '{key}'")
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise DriverConfigError(f"{where}: missing required field(s) {missing}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise DriverConfigError(f"{where}: {e}") from None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is EnvelopeConfig:
        if not isinstance(value, dict):
            raise DriverConfigError(f"{where}: expected a mapping of envelope fields, got {value!r}")
        return load_driver_config(EnvelopeConfig, value)
    if hint is bool:
        if not isinstance(value, bool):
            raise DriverConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DriverConfigError(f"{where}: expected a finite number, got {value!r}")
        if hint is int and value != int(value):
            raise DriverConfigError(f"{where}: expected a whole number, got {value!r}")
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise DriverConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise DriverConfigError(f"{where}: expected a list, got {value!r}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value))
    return value
