"""Virtual views: named look-at cameras on the twin's workspace, loaded from configs/views.yaml.

A virtual view is not a lab camera: it exists only to show candidate trajectories to a person or a VLM, so
it is described the way a person places a camera (eye, target, up, vertical field of view) and has no
noise. `VirtualView.camera()` turns it into the sim's OpenCV-frame pinhole `CameraSpec`.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields

import numpy as np
import yaml

from sim.camera import CameraSpec
from sim.scene import SpecError

_NEEDED = ("eye", "target", "fov_deg", "width", "height")


class ViewConfigError(SpecError):
    """A virtual view that cannot be used; the message names the file and the field."""


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _vec3(value, where: str, name: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ViewConfigError(f"{where}: field '{name}': expected 3 numbers [x, y, z] in metres, "
                              f"got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ViewConfigError(f"{where}: field '{name}': expected 3 finite numbers [x, y, z], got {value!r}")
    return out


@dataclass(frozen=True)
class VirtualView:
    """A look-at camera in the world frame (metres); fov_deg is the vertical field of view.

    `where` only prefixes error messages (the file and key the view came from); it is not compared.
    """

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fov_deg: float = 45.0
    width: int = 512
    height: int = 384
    near_m: float = 0.05
    far_m: float = 5.0
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ViewConfigError(f"{self.where or 'view'}: field 'name': expected a non-empty string, "
                                  f"got {self.name!r}")
        where = self.where or f"view '{self.name}'"
        object.__setattr__(self, "where", where)
        for key in ("eye", "target", "up"):
            object.__setattr__(self, key, _vec3(getattr(self, key), where, key))
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ViewConfigError(f"{where}: field '{key}': expected a positive whole number of pixels, "
                                      f"got {value!r}")
            object.__setattr__(self, key, int(value))
        for key, lo, hi in (("fov_deg", 0.0, 180.0), ("near_m", 0.0, math.inf), ("far_m", 0.0, math.inf)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(float(value)) or not lo < float(value) < hi:
                raise ViewConfigError(f"{where}: field '{key}': expected a number in ({lo:g}, {hi:g}), "
                                      f"got {value!r}")
            object.__setattr__(self, key, float(value))
        if self.near_m >= self.far_m:
            raise ViewConfigError(f"{where}: fields 'near_m', 'far_m': need near_m < far_m, "
                                  f"got {self.near_m} and {self.far_m}")
        forward = np.subtract(self.target, self.eye)
        if np.linalg.norm(forward) < 1e-6:
            raise ViewConfigError(f"{where}: fields 'eye', 'target': eye and target coincide at {self.eye}")
        up = np.asarray(self.up)
        if np.linalg.norm(up) < 1e-9 or np.linalg.norm(np.cross(forward / np.linalg.norm(forward),
                                                                  up / np.linalg.norm(up))) < 1e-3:
            raise ViewConfigError(f"{where}: field 'up': {self.up} is zero or parallel to the viewing direction "
                                  f"(target - eye); pick an up vector across it, e.g. (1, 0, 0) for a top view")

    def camera(self) -> CameraSpec:
        """The sim pinhole camera of this view (OpenCV optical frame, no noise)."""
        return CameraSpec.look_at(self.name, self.width, self.height, self.fov_deg, self.eye, self.target,
                                  self.up, near_m=self.near_m, far_m=self.far_m)

    def to_dict(self) -> dict:
        return {f.name: (list(getattr(self, f.name)) if isinstance(getattr(self, f.name), tuple)
                         else getattr(self, f.name))
                for f in fields(self) if f.name not in ("name", "where")}

    @classmethod
    def from_dict(cls, name: str, d, where: str) -> VirtualView:
        """Build one view from its YAML mapping; unknown or missing fields are errors naming `where`."""
        if not isinstance(d, dict):
            raise ViewConfigError(f"{where}: expected a mapping of view fields, got {type(d).__name__}")
        known = [f.name for f in fields(cls) if f.name not in ("name", "where")]
        for key in d:
            if key not in known:
                raise ViewConfigError(f"{where}: unknown field '{key}'{_did_you_mean(str(key), known)}; "
                                      f"expected some of {known}")
        for key in _NEEDED:
            if key not in d:
                raise ViewConfigError(f"{where}: missing field '{key}'")
        return cls(name=str(name), where=where, **d)


def load_views(path: str | os.PathLike, names=None) -> tuple[VirtualView, ...]:
    """Read `views:` from a YAML file (see configs/views.yaml); `names` picks and orders a subset.

    Top-level `width` / `height` (and the other optional fields) act as defaults for every view.
    """
    path = os.fspath(path)
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ViewConfigError(f"{path}: cannot read the views file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ViewConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or "views" not in data:
        raise ViewConfigError(f"{path}: expected a mapping with a 'views' field")
    defaults = {k: v for k, v in data.items() if k != "views"}
    allowed_defaults = ("up", "fov_deg", "width", "height", "near_m", "far_m")
    for key in defaults:
        if key not in allowed_defaults:
            raise ViewConfigError(f"{path}: unknown top-level field '{key}'{_did_you_mean(str(key), allowed_defaults)}"
                                  f"; expected 'views' and optional defaults {list(allowed_defaults)}")
    raw = data["views"]
    if not isinstance(raw, dict) or not raw:
        raise ViewConfigError(f"{path}: field 'views': expected a non-empty mapping of view name -> fields")
    views = {}
    for name, spec in raw.items():
        fields_ = {**defaults, **spec} if isinstance(spec, dict) else spec   # a non-mapping fails in from_dict
        views[str(name)] = VirtualView.from_dict(name, fields_, f"{path}: views.{name}")
    if names is None:
        return tuple(views.values())
    return select_views(views.values(), names, where=path)


def select_views(views, names, where: str = "views") -> tuple[VirtualView, ...]:
    """The views called `names`, in that order; an unknown name is answered with "did you mean"."""
    by_name = {v.name: v for v in views}
    out = []
    for name in names:
        if name not in by_name:
            raise ViewConfigError(f"{where}: no view named '{name}'{_did_you_mean(str(name), by_name)}; "
                                  f"known views: {sorted(by_name)}")
        out.append(by_name[name])
    return tuple(out)
