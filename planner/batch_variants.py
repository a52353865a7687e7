"""Planner variants: named settings of `planner.mpc.MPCConfig` (and the rendered views) that a batch grid runs.

A variant is data, validated when it is read: every key is a field of `MPCConfig` (a nested dataclass field as
`sampler.n_candidates`), or `views`, the virtual views rendered and asked about (names in views.yaml; one view
instead of the fused three is the "single view" ablation). `seed` and `fast_render` are not settable: the grid
gives the seed, the command line the renderer. A value must have the field's type and pass `MPCConfig`'s own
checks. Variants come from a YAML file (`configs/ablations.yaml`, or any path):

    variants:
      full: {}
      single_view: {views: [front]}
      slow_arm: {speed_scale: 0.25}

or from `--planner-option KEY=VALUE` on the command line (applied on top of every variant of the grid).
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from typing import Any

import configs
from configs import InputError, Said, did_you_mean, safe_key
from planner.errors import TaskError

DEFAULT_VARIANT = "default"
VIEWS_KEY = "views"
NOT_SETTABLE = ("seed", "fast_render")   # the grid's seed; the command line's renderer
MAX_VARIANTS = 64
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.=+,")


@dataclass(frozen=True)
class PlannerVariant:
    """A named planner setting. mpc: (field path, value) pairs applied to MPCConfig; views: None keeps the
    scoring config's views."""

    name: str = DEFAULT_VARIANT
    mpc: tuple[tuple[str, Any], ...] = ()
    views: tuple[str, ...] | None = None

    def apply(self, cfg: Any) -> Any:
        """The MPCConfig with this variant's fields set."""
        for path, value in self.mpc:
            cfg = _replace_path(cfg, path.split("."), value)
        return cfg

    def describe(self) -> str:
        parts = [f"{k}={_short(v)}" for k, v in self.mpc]
        if self.views is not None:
            parts.append(f"views=[{','.join(self.views)}]")
        return ", ".join(parts) or "as configured"

    def to_dict(self) -> dict:
        return {"name": self.name, "mpc": {k: v for k, v in self.mpc}, "views": None if self.views is None
                else list(self.views)}


def _short(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else \
        "[" + ",".join(map(str, value)) + "]" if isinstance(value, tuple) else str(value)


def _replace_path(obj: Any, path: list[str], value: Any) -> Any:
    if len(path) == 1:
        return dataclasses.replace(obj, **{path[0]: value})
    return dataclasses.replace(obj, **{path[0]: _replace_path(getattr(obj, path[0]), path[1:], value)})


# ---------------------------------------------------------------- what may be set
def settable_fields() -> dict[str, Any]:
    """Field path -> its type, for every MPCConfig field a variant may set (nested dataclasses flattened)."""
    from planner.mpc import MPCConfig

    out: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not prefix and f.name in NOT_SETTABLE:
                continue
            kind = hints.get(f.name, Any)
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                walk(kind, prefix + f.name + ".")
            else:
                out[prefix + f.name] = kind

    walk(MPCConfig, "")
    return out


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind).replace("typing.", "")


def _check_value(key: str, kind: Any, value: Any, file: str | None, field: str) -> Any:
    """The value in the field's type (lists become tuples), or InputError naming the field."""
    origin = typing.get_origin(kind)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    elif origin in (tuple, list):
        ok = isinstance(value, list | tuple)
        value = tuple(value) if ok else value
    else:
        raise InputError(file, field, f"a field batch can set (MPCConfig.{key} is a {_type_name(kind)})", value)
    if not ok:
        article = "an" if _type_name(kind)[0] in "aeiou" else "a"
        raise InputError(file, field, f"{article} {_type_name(kind)} (the type of MPCConfig.{key})", value)
    return value


def check_options(options: dict, file: str | None, prefix: str) -> tuple[tuple[str, Any], ...]:
    """{field path or 'views': value} -> the MPCConfig pairs (views checked separately); InputError on a bad key
    or value, with a did-you-mean over the settable fields."""
    from planner.mpc import MPCConfig

    fields = settable_fields()
    pairs = []
    for key, value in options.items():
        name = key if isinstance(key, str) and 0 < len(key) <= 60 and set(key) <= _NAME_CHARS else safe_key(key)
        field = f"{prefix}.{name}" if prefix else name
        if key == VIEWS_KEY:
            continue
        if key not in fields:
            expected = (f"a field of planner.mpc.MPCConfig or '{VIEWS_KEY}'" if key not in NOT_SETTABLE
                        else "a field a variant may set (the grid gives the seed, the command line the renderer)")
            raise InputError(file, field, expected, key, hint=did_you_mean(key, [*fields, VIEWS_KEY]))
        pairs.append((key, _check_value(key, fields[key], value, file, field)))
    try:   # MPCConfig's own checks (ranges) on the whole set
        PlannerVariant(mpc=tuple(pairs)).apply(MPCConfig())
    except (ValueError, TypeError) as exc:
        raise InputError(file, prefix or None, "values MPCConfig accepts", Said(str(exc))) from None
    return tuple(pairs)


def check_views(value: Any, file: str | None, field: str) -> tuple[str, ...]:
    """Names of views in views.yaml (the first user folder that has one, else the shipped file)."""
    from render.views import load_views

    if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(file, field, "a non-empty list of view names from views.yaml", value)
    try:
        load_views(str(configs.file("views.yaml")), tuple(value))
    except InputError as exc:
        raise InputError(file, field, exc.expected, Said(exc.got or "?"), hint=exc.hint) from None
    return tuple(value)


def make_variant(name: Any, options: Any, file: str | None, prefix: str, where: str | None = None) -> PlannerVariant:
    if not isinstance(name, str) or not name or len(name) > 80 or not set(name) <= _NAME_CHARS:
        raise InputError(file, prefix, "a variant name of 1 to 80 letters, digits, '_', '-', '.'", name)
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InputError(file, f"{prefix}.{name}", "a mapping of MPCConfig fields (or 'views') to values", options)
    where = where if where is not None else f"{prefix}.{name}" if prefix else name
    views = check_views(options[VIEWS_KEY], file, f"{where}.{VIEWS_KEY}") if VIEWS_KEY in options else None
    return PlannerVariant(name, check_options(options, file, where), views)


# ---------------------------------------------------------------- loading and choosing
def load_variants(value: str) -> list[PlannerVariant]:
    """A variants YAML by path, or a top-level config file by name (`ablations` -> configs/ablations.yaml)."""
    path = value if configs.looks_like_path(value) else str(configs.file(f"{value}.yaml"))
    if not os.path.isfile(path):
        raise InputError(None, "--variants", "a variants YAML file (a path, or a name such as 'ablations')", value)
    data = configs.read_yaml(path, "variants file")
    if not isinstance(data, dict) or set(data) != {"variants"}:
        raise InputError(path, None, "a mapping with one field, 'variants'", Said(
            f"fields {sorted(map(str, data))}" if isinstance(data, dict) else type(data).__name__))
    raw = data["variants"]
    if not isinstance(raw, dict) or not 0 < len(raw) <= MAX_VARIANTS:
        raise InputError(path, "variants", f"a mapping of 1 to {MAX_VARIANTS} variant names -> settings", raw)
    return [make_variant(name, options, path, "variants") for name, options in raw.items()]


def select_variants(variants: list[PlannerVariant], names: list[str] | None) -> list[PlannerVariant]:
    if not names:
        return variants
    by_name = {v.name: v for v in variants}
    for name in names:
        if name not in by_name:
            raise InputError(None, "--variant", f"a variant of the file ({', '.join(by_name)})", name,
                             hint=did_you_mean(name, by_name, list_choices=False))
    return [by_name[n] for n in dict.fromkeys(names)]


def parse_planner_options(items: list[str] | None) -> dict[str, Any]:
    """`--planner-option KEY=VALUE` items -> {key: value}, each VALUE read as one YAML scalar or flow list."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise InputError(None, "--planner-option", "KEY=VALUE (speed_scale=0.3, views=[front])", item)
        try:
            out[key] = configs.parse_yaml(text, "--planner-option")
        except InputError:
            raise InputError(None, "--planner-option", "a VALUE that is a number, true/false, a word or [a, b]",
                             item) from None
    return out


def with_options(variants: list[PlannerVariant], options: dict[str, Any]) -> list[PlannerVariant]:
    """Every variant with the command line's options on top (the name says so: `full+speed_scale=0.3`)."""
    if not options:
        return variants
    try:
        extra = make_variant("options", options, None, "", where="")
    except InputError as exc:   # the flag is the place; the key is in what was given
        raise InputError(None, "--planner-option", exc.expected, Said(exc.got or "?"), hint=exc.hint) from None
    suffix = extra.describe().replace(" ", "")
    out = []
    for v in variants:
        mpc = dict(v.mpc)
        mpc.update(extra.mpc)
        name = suffix if v.name == DEFAULT_VARIANT else f"{v.name}+{suffix}"
        out.append(PlannerVariant(name, tuple(mpc.items()), extra.views if extra.views is not None else v.views))
    return out


def grid_variants(variants_file: str | None, names: list[str] | None,
                  options: list[str] | None) -> list[PlannerVariant]:
    """The variants a grid runs: the file's (or the names chosen from it), or the default; options on top."""
    if variants_file is None and names:
        raise TaskError(None, "--variant", "--variants FILE to choose from", names)
    base = select_variants(load_variants(variants_file), names) if variants_file else [PlannerVariant()]
    return with_options(base, parse_planner_options(options))
