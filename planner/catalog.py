"""The object catalog (configs/objects.yaml): known models a task may name, with the planner's physics priors."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any

import yaml

import configs
from planner.errors import TaskError
from sim.geometry import SYMMETRIES
from sim.scene import resolve_asset_path

ASSET_FIELDS = ("urdf", "scale", "rgba", "symmetry", "mass_kg", "friction", "fixed")


@dataclass(frozen=True)
class Asset:
    """A known object model: URDF, scale, colour, symmetry, and prior mass/friction for the twin."""

    key: str
    urdf: str
    scale: float = 1.0
    rgba: tuple[float, float, float, float] | None = None
    symmetry: str = "none"
    mass_kg: float = 0.1
    friction: float = 0.8
    fixed: bool = False


def asset_from_dict(key: str, d: Any, where: str, base_dir: str | None) -> Asset:
    """Validate one asset mapping; `where` is 'file: field' for error messages."""
    if not isinstance(d, dict):
        raise TaskError(f"{where}: expected a mapping with at least 'urdf', got {d!r}")
    unknown = sorted(set(d) - set(ASSET_FIELDS))
    if unknown:
        raise TaskError(f"{where}: unknown field(s) {unknown}; expected some of {list(ASSET_FIELDS)}")
    if "urdf" not in d or not isinstance(d["urdf"], str):
        raise TaskError(f"{where}.urdf: expected a URDF path ('pybullet_data:...' or a file path), "
                        f"got {d.get('urdf')!r}")
    urdf = resolve_asset_path(d["urdf"], base_dir)
    if not os.path.isfile(urdf):
        raise TaskError(f"{where}.urdf: expected an existing URDF file, got {d['urdf']!r} (resolved to {urdf})")
    rgba = d.get("rgba")
    if rgba is not None:
        if not isinstance(rgba, list) or len(rgba) != 4 or not all(isinstance(v, (int, float)) for v in rgba):
            raise TaskError(f"{where}.rgba: expected [r, g, b, a] numbers in [0, 1], got {rgba!r}")
        rgba = tuple(float(v) for v in rgba)
    symmetry = d.get("symmetry", "auto")     # "auto": not declared; a task infers a named object's from its mesh
    if symmetry != "auto" and symmetry not in SYMMETRIES:
        raise TaskError(f"{where}.symmetry: expected one of {list(SYMMETRIES)}, got {symmetry!r}")
    nums = {}
    for key_, default in (("scale", 1.0), ("mass_kg", 0.1), ("friction", 0.8)):
        v = d.get(key_, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v <= 0:
            raise TaskError(f"{where}.{key_}: expected a positive number, got {v!r}")
        nums[key_] = float(v)
    return Asset(key, urdf, nums["scale"], rgba, symmetry, nums["mass_kg"], nums["friction"],
                 bool(d.get("fixed", False)))


def load_catalog(path: str | None = None) -> dict[str, Asset]:
    path = path or str(configs.file("objects.yaml"))
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise TaskError(f"{path}: expected a mapping of asset names to assets")
    base = os.path.dirname(os.path.abspath(path))
    return {key: asset_from_dict(key, val, f"{path}: {key}", base) for key, val in data.items()}


def lookup_asset(catalog: dict[str, Asset], key: Any, where: str) -> Asset:
    if not isinstance(key, str):
        raise TaskError(f"{where}: expected a catalog asset name or an inline asset mapping, got {key!r}")
    if key not in catalog:
        close = difflib.get_close_matches(key, list(catalog), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise TaskError(f"{where}: unknown asset '{key}'{hint} (known: {sorted(catalog)})")
    return catalog[key]
