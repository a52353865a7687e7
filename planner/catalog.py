"""The object catalog (configs/objects.yaml): known models a task may name (`ObjectModel`, with the twin's
physics priors)."""

from __future__ import annotations

import os
from typing import Any

import configs
from configs import checks
from planner.errors import TaskError
from reconstruction.models import ObjectModel
from sim.geometry import SYMMETRIES
from sim.scene import resolve_asset_path

ASSET_FIELDS = ("urdf", "scale", "rgba", "symmetry", "mass_kg", "friction", "fixed")


# A catalog entry is the object model reconstruction and the twin share (named by its asset key until a task
# names the object: `ObjectModel.named`).
Asset = ObjectModel


# Physical bounds of a task object (the arms here lift a few kg; beyond these a value is a typo).
MAX_MASS_KG = 50.0
MAX_FRICTION = 10.0
MAX_SCALE = 10.0
MAX_ASSETS = 256


def asset_from_dict(key: str, d: Any, where: str, base_dir: str | None, file: str | None = None) -> Asset:
    """Validate one asset mapping found in `file` at field `where` (`objects.red_block.asset`)."""
    checks.mapping(d, file, where, "a mapping with at least 'urdf'", ASSET_FIELDS, ("urdf",), error=TaskError)
    urdf_raw = d["urdf"]
    if not isinstance(urdf_raw, str) or not urdf_raw.endswith(".urdf"):
        raise TaskError(file, f"{where}.urdf", "a URDF path ('pybullet_data:...' or a file path) ending in .urdf",
                        urdf_raw)
    urdf = resolve_asset_path(urdf_raw, base_dir, file, f"{where}.urdf")
    if not os.path.isfile(urdf):
        raise TaskError(file, f"{where}.urdf", "an existing URDF file", urdf_raw)
    rgba = d.get("rgba")
    if rgba is not None:
        rgba = checks.numbers(rgba, file, f"{where}.rgba", 4, 0.0, 1.0, what="[r, g, b, a]", error=TaskError)
    symmetry = d.get("symmetry", "auto")     # "auto": not declared; a task infers a named object's from its mesh
    if symmetry != "auto" and symmetry not in SYMMETRIES:
        raise TaskError(file, f"{where}.symmetry", f"auto or one of {', '.join(SYMMETRIES)}", symmetry,
                        hint=configs.did_you_mean(symmetry, ("auto",) + tuple(SYMMETRIES)))
    nums = {}
    for key_, default, hi, unit in (("scale", 1.0, MAX_SCALE, ""), ("mass_kg", 0.1, MAX_MASS_KG, "kg"),
                                    ("friction", 0.8, MAX_FRICTION, "")):
        nums[key_] = checks.number(d.get(key_, default), file, f"{where}.{key_}", 0.0, hi, lo_open=True, unit=unit,
                                   error=TaskError)
    fixed = d.get("fixed", False)
    if not isinstance(fixed, bool):
        raise TaskError(file, f"{where}.fixed", "true or false", fixed)
    return Asset(key, urdf, nums["scale"], rgba, symmetry, nums["mass_kg"], nums["friction"], fixed)


def load_catalog(path: str | None = None) -> dict[str, Asset]:
    path = path or str(configs.file("objects.yaml"))
    data = configs.read_yaml(path, "object catalog")
    data = {} if data is None else data
    checks.mapping(data, path, None, "a mapping of asset names to assets", error=TaskError)
    if len(data) > MAX_ASSETS:
        raise TaskError(path, None, f"at most {MAX_ASSETS} assets", len(data))
    base = os.path.dirname(os.path.abspath(path))
    return {key: asset_from_dict(key, val, checks.name(key, path, configs.safe_key(key), "an asset name",
                                                       error=TaskError), base, path)
            for key, val in data.items()}


def lookup_asset(catalog: dict[str, Asset], key: Any, where: str, file: str | None = None) -> Asset:
    if not isinstance(key, str):
        raise TaskError(file, where, "a catalog asset name or an inline asset mapping", key)
    if key not in catalog:
        raise TaskError(file, where, "an asset of the object catalog (configs/objects.yaml)", key,
                        hint=configs.did_you_mean(key, catalog))
    return catalog[key]
