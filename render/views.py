"""Virtual views: named look-at cameras on the twin's workspace, loaded from configs/views.yaml.

A virtual view is not a lab camera: it exists only to show candidate trajectories to a person or a VLM, so
it is described the way a person places a camera (eye, target, up, vertical field of view) and has no
noise. `VirtualView.camera()` turns it into the sim's OpenCV-frame pinhole `CameraSpec`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import numpy as np

import configs
from configs import checks
from sim.camera import MAX_PIXELS, MAX_SIDE_PX, CameraSpec
from sim.scene import SpecError

_NEEDED = ("eye", "target", "fov_deg", "width", "height")


class ViewConfigError(SpecError):
    """A virtual view that cannot be used: file, field, expected, got."""


def _vec3(value, file: str | None, name: str) -> tuple[float, float, float]:
    return checks.numbers(value, file, name, 3, -100.0, 100.0, what="3 finite numbers [x, y, z]", unit="m",
                          error=ViewConfigError)


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
        # `where` is "file: views.<name>" from load_views, or empty for a view built in code
        file, _, prefix = self.where.rpartition(": ") if ": " in self.where else (None, "", self.where)
        prefix = prefix or f"views.{self.name}"

        def f(key: str) -> str:
            return f"{prefix}.{key}"

        if not isinstance(self.name, str) or not self.name.strip():
            raise ViewConfigError(file, f("name"), "a non-empty string", self.name)
        object.__setattr__(self, "where", self.where or f"view '{self.name}'")
        for key in ("eye", "target", "up"):
            object.__setattr__(self, key, _vec3(getattr(self, key), file, f(key)))
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 < value <= MAX_SIDE_PX:
                raise ViewConfigError(file, f(key), f"a whole number of pixels in [1, {MAX_SIDE_PX}]", value)
            object.__setattr__(self, key, int(value))
        if self.width * self.height > MAX_PIXELS:
            raise ViewConfigError(file, f("width"), f"width x height at most {MAX_PIXELS} pixels",
                                  f"{self.width} x {self.height}")
        for key, lo, hi in (("fov_deg", 0.0, 179.0), ("near_m", 0.0, 100.0), ("far_m", 0.0, 1000.0)):
            value = getattr(self, key)
            value = float(value) if isinstance(value, np.number) else value
            object.__setattr__(self, key, checks.number(value, file, f(key), lo, hi, lo_open=True,
                                                        error=ViewConfigError))
        if self.near_m >= self.far_m:
            raise ViewConfigError(file, f("far_m"), f"a distance beyond near_m = {self.near_m}", self.far_m)
        forward = np.subtract(self.target, self.eye)
        if np.linalg.norm(forward) < 1e-6:
            raise ViewConfigError(file, f("target"), "a point away from the eye", list(self.target))
        up = np.asarray(self.up)
        if np.linalg.norm(up) < 1e-9 or np.linalg.norm(np.cross(forward / np.linalg.norm(forward),
                                                                  up / np.linalg.norm(up))) < 1e-3:
            raise ViewConfigError(file, f("up"), "a vector across the viewing direction (target - eye), e.g. "
                                  "(1, 0, 0) for a top view", list(self.up))

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
        """Build one view from its YAML mapping; `where` is "file: views.<name>"."""
        file, _, prefix = where.rpartition(": ") if ": " in where else (None, "", where)
        known = tuple(f.name for f in fields(cls) if f.name not in ("name", "where"))
        checks.mapping(d, file, prefix, "a mapping of view fields", known, _NEEDED, error=ViewConfigError)
        return cls(name=str(name), where=where, **d)


def load_views(path: str | os.PathLike, names=None) -> tuple[VirtualView, ...]:
    """Read `views:` from a YAML file (see configs/views.yaml); `names` picks and orders a subset.

    Top-level `width` / `height` (and the other optional fields) act as defaults for every view.
    """
    path = os.fspath(path)
    try:
        data = configs.read_yaml(path, "views file")
    except configs.InputError as exc:
        raise ViewConfigError(exc.file, exc.field, exc.expected, *(() if exc.got is None else (exc.got,))) from None
    allowed = ("views", "up", "fov_deg", "width", "height", "near_m", "far_m")
    checks.mapping(data, path, None, "a mapping with a 'views' field and optional defaults", allowed, ("views",),
                   error=ViewConfigError)
    defaults = {k: v for k, v in data.items() if k != "views"}
    raw = data["views"]
    if not isinstance(raw, dict) or not raw or len(raw) > 32:
        raise ViewConfigError(path, "views", "a mapping of 1 to 32 view names -> fields", raw)
    views = {}
    for name, spec in raw.items():
        checks.name(name, path, f"views.{configs.safe_key(name)}", "a view name", error=ViewConfigError)
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
            raise ViewConfigError(where, "views", f"a known view name ({', '.join(sorted(by_name))})", name,
                                  hint=configs.did_you_mean(name, by_name))
        out.append(by_name[name])
    return tuple(out)
