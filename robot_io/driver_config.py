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
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

import configs
from configs.errors import Said, did_you_mean
from robot_io.envelope import EnvelopeConfig
from sim.scene import RobotSpec, SpecError

ROBOTS_DIR = Path(__file__).resolve().parents[1] / "configs" / "robots"
T = TypeVar("T")
# what the config dataclasses' __post_init__ say: "URConfig.servo_gain must be in [100, 2000] (UR's range), got 5"
_RULE = re.compile(r"^\w+\.(\w+) must (?:be )?(.+), got (.+)$", re.S)


class DriverConfigError(configs.InputError):
    """A driver or camera config file or mapping is malformed: file, field, expected, got (exit 2 from the CLI)."""


def robot_spec(name_or_path: str, where: str = "robot") -> RobotSpec:
    """configs/robots/<name>.yaml, or a YAML path; unknown names get the list of known ones."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = ROBOTS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in ROBOTS_DIR.glob("*.yaml"))
        close = difflib.get_close_matches(str(name_or_path), known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DriverConfigError(None, where, f"a robot name ({', '.join(known)}) or a .yaml path",
                                name_or_path, hint=hint)
    try:
        return RobotSpec.from_yaml(str(path))
    except SpecError as e:
        raise DriverConfigError(e.file, e.field, e.expected, Said(e.got) if e.got is not None else None,
                                hint=e.hint) from None


def require_range(cfg: Any, name: str, lo: float | None = 0.0, hi: float | None = None, *, lo_open: bool = True,
                  hi_open: bool = False, note: str = "") -> None:
    """Raise ValueError unless cfg.<name> is finite and within the bounds (open or closed; None: unbounded), in the
    words `load_driver_config` turns into file / field / expected / got: "URConfig.servo_gain must be in [100,
    2000] (UR's range), got 5". The default is "> 0"."""
    v = getattr(cfg, name)
    ok = math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo)) \
        and (hi is None or (v < hi if hi_open else v <= hi))
    if ok:
        return
    if hi is None:
        expected = f"{'>' if lo_open else '>='} {lo:g}"
    elif lo is None:
        expected = f"{'<' if hi_open else '<='} {hi:g}"
    else:
        expected = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    raise ValueError(f"{type(cfg).__name__}.{name} must be {expected}{' ' + note if note else ''}, got {v}")


def require_positive(cfg: Any, *names: str) -> None:
    """require_range(cfg, name) (finite and > 0) for each name."""
    for name in names:
        require_range(cfg, name)


def load_driver_config(cls: type[T], source: str | os.PathLike | dict | None, **overrides: Any) -> T:
    """Build the frozen dataclass `cls` from a YAML file path or a mapping, then apply non-None overrides."""
    return _load(cls, source, None, overrides)


def _load(cls: type[T], source: str | os.PathLike | dict | None, prefix: str | None, overrides: dict,
          file: str | None = None) -> T:
    data: dict[str, Any] = {}
    if isinstance(source, dict):
        data = dict(source)
    elif source is not None:
        file = os.fspath(source)
        try:
            with open(source) as f:
                loaded = yaml.safe_load(f)
        except OSError as e:
            raise DriverConfigError(file, None, f"a readable {cls.__name__} YAML file", Said(e.strerror or str(e))) \
                from None
        except yaml.YAMLError as e:
            raise DriverConfigError(file, None, "valid YAML", Said(str(e).replace("\n", " "))) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise DriverConfigError(file, prefix, f"a mapping of {cls.__name__} fields", loaded)
        data = dict(loaded or {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}

    def at(key: str) -> str:
        return f"{prefix}.{key}" if prefix else key

    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise DriverConfigError(file, at(str(key)), f"one of the {cls.__name__} fields {', '.join(fields)}",
                                    Said("an unknown field"), hint=did_you_mean(str(key), fields, list_choices=False))
        kwargs[key] = _coerce(value, hints[key], file, at(key))
    for n, f in fields.items():
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DriverConfigError(file, at(n), "a value (this field is required)", Said("nothing"))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        m = _RULE.match(str(e))
        if m and m.group(1) in fields:
            raise DriverConfigError(file, at(m.group(1)), m.group(2), Said(m.group(3))) from None
        raise DriverConfigError(file, prefix, f"a valid {cls.__name__}", Said(str(e))) from None


def _coerce(value: Any, hint: Any, file: str | None, field: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is EnvelopeConfig:
        if not isinstance(value, dict):
            raise DriverConfigError(file, field, "a mapping of envelope fields", value)
        return _load(EnvelopeConfig, value, field, {}, file)
    if hint is bool:
        if not isinstance(value, bool):
            raise DriverConfigError(file, field, "true or false", value)
        return value
    if hint in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DriverConfigError(file, field, "a finite number" if hint is float else "a whole number", value)
        if hint is int and value != int(value):
            raise DriverConfigError(file, field, "a whole number", value)
        return hint(value)
    if hint is str:
        if not isinstance(value, str):
            raise DriverConfigError(file, field, "a string", value)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise DriverConfigError(file, field, "a list", value)
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(v, inner, file, f"{field}[{i}]") for i, v in enumerate(value))
    return value
