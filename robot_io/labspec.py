"""`LabSpec`: everything the sim lab needs to stand in for the real world, as one JSON-safe value.

It holds the task's *truth* (object poses, physics, clutter, per-seed randomisation, the success
predicate), so it is written by the planner's task loader for the lab process only and never read back
by the planner.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

import configs
from configs import checks
from robot_io.lab_limits import ControllerLimits
from sim.camera import CameraSpec
from sim.predicates import validate_predicate
from sim.scene import SceneSpec


class LabSpecError(configs.InputError):
    """A lab spec that cannot be used: file, field, expected, got."""


def _number(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None,
            exclusive_min: bool = False, file: str | None = None) -> float:
    return checks.number(value, file, where, minimum, maximum, lo_open=exclusive_min, error=LabSpecError)


@dataclass(frozen=True)
class Randomize:
    """Per-seed jitter the lab applies to every movable object: xy uniformly in +-xy_m, yaw in +-yaw_deg."""

    xy_m: float = 0.0
    yaw_deg: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "xy_m", _number(self.xy_m, "randomize.xy_m", minimum=0.0, maximum=1.0))
        object.__setattr__(self, "yaw_deg",
                           _number(self.yaw_deg, "randomize.yaw_deg", minimum=0.0, maximum=180.0))

    def to_dict(self) -> dict[str, float]:
        return {"xy_m": self.xy_m, "yaw_deg": self.yaw_deg}

    @classmethod
    def from_dict(cls, d: Any, where: str = "randomize", file: str | None = None) -> Randomize:
        checks.mapping(d, file, where, "a mapping {xy_m, yaw_deg}", ("xy_m", "yaw_deg"), error=LabSpecError)
        return cls(xy_m=_number(d.get("xy_m", 0.0), f"{where}.xy_m", minimum=0.0, maximum=1.0, file=file),
                   yaw_deg=_number(d.get("yaw_deg", 0.0), f"{where}.yaw_deg", minimum=0.0, maximum=180.0, file=file))


@dataclass(frozen=True)
class LabSpec:
    """The lab's truth and its behaviour.

    scene: the true SceneSpec (robot, objects with true poses and physics, clutter as objects).
    cameras: the real cameras the lab renders in `observe` (with their depth noise).
    randomize: per-seed jitter (a dict {xy_m, yaw_deg} is accepted too).
    success: the task's success predicate (sim.predicates syntax) judged by `evaluate`; None = no predicate.
    seed: default seed (the command line's --seed overrides it).
    heartbeat_timeout_s: the watchdog stops a running trajectory when the planner is silent this long.
    realtime_factor: > 0 paces execution to wall time (1.0 = real time); 0 = as fast as possible.
    settle_s: simulated seconds the objects settle before the lab starts serving.
    fast_render: EGL for the cameras when available; False forces TinyRenderer (ANTIGROUNDING_RENDERER=tiny).
    limits: the lab controller's limits (robot_io.lab_limits.ControllerLimits; a dict is accepted too).
    """

    scene: SceneSpec
    cameras: tuple[CameraSpec, ...] = ()
    randomize: Randomize = field(default_factory=Randomize)
    success: dict | None = None
    seed: int = 0
    heartbeat_timeout_s: float = 2.0
    realtime_factor: float = 0.0
    settle_s: float = 1.0
    fast_render: bool = True
    limits: ControllerLimits = field(default_factory=ControllerLimits)

    def __post_init__(self) -> None:
        # Types and invariants only: the task file's values were validated once, by the loader that read them
        # (planner.task), and a spec from JSON by from_dict.
        if not isinstance(self.scene, SceneSpec):
            raise LabSpecError(None, "scene", "a sim.scene.SceneSpec", type(self.scene).__name__)
        cameras = tuple(self.cameras)
        if not all(isinstance(c, CameraSpec) for c in cameras):
            raise LabSpecError(None, "cameras", "sim.camera.CameraSpec items")
        names = [c.name for c in cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LabSpecError(None, "cameras", "distinct camera names", dupes)
        object.__setattr__(self, "cameras", cameras)
        randomize = self.randomize
        if isinstance(randomize, dict):
            randomize = Randomize.from_dict(randomize)
        if not isinstance(randomize, Randomize):
            raise LabSpecError(None, "randomize", "{xy_m, yaw_deg}", type(randomize).__name__)
        object.__setattr__(self, "randomize", randomize)
        if self.success is not None:
            if not isinstance(self.success, dict):
                raise LabSpecError(None, "success", "a predicate mapping", type(self.success).__name__)
            try:
                # Normalise tuples to lists so a spec equals its JSON round trip.
                success = json.loads(json.dumps(self.success))
            except (TypeError, ValueError) as e:
                raise LabSpecError(None, "success", "a JSON-safe predicate", str(e)) from e
            object.__setattr__(self, "success", success)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or not 0 <= self.seed < 2**32:
            raise LabSpecError(None, "seed", "an integer in [0, 2**32)", self.seed)
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "heartbeat_timeout_s", _number(
            self.heartbeat_timeout_s, "heartbeat_timeout_s", minimum=0.0, maximum=60.0, exclusive_min=True))
        object.__setattr__(self, "realtime_factor",
                           _number(self.realtime_factor, "realtime_factor", minimum=0.0, maximum=100.0))
        object.__setattr__(self, "settle_s", _number(self.settle_s, "settle_s", minimum=0.0, maximum=60.0))
        if not isinstance(self.fast_render, bool):
            raise LabSpecError(None, "fast_render", "true or false", self.fast_render)
        limits = self.limits
        try:
            if isinstance(limits, dict):
                limits = ControllerLimits.from_dict(limits)
            if not isinstance(limits, ControllerLimits):
                raise ValueError(f"limits: expected ControllerLimits, got {type(limits).__name__}")
            limits.accel(self.scene.robot.dof)
        except ValueError as e:
            raise LabSpecError(str(e)) from None
        object.__setattr__(self, "limits", limits)

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; `LabSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec`."""
        return {
            "scene": self.scene.to_dict(),
            "cameras": [c.to_dict() for c in self.cameras],
            "randomize": self.randomize.to_dict(),
            "success": self.success,
            "seed": self.seed,
            "heartbeat_timeout_s": self.heartbeat_timeout_s,
            "realtime_factor": self.realtime_factor,
            "settle_s": self.settle_s,
            "fast_render": self.fast_render,
            "limits": self.limits.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "lab spec") -> LabSpec:
        """A spec from JSON (the lab process's input): every field validated, the predicate against the scene."""
        known = tuple(f.name for f in fields(cls))
        checks.mapping(d, where, None, "a lab spec mapping", known, ("scene",), error=LabSpecError)
        try:
            scene = SceneSpec.from_dict(d["scene"])
        except configs.InputError as e:
            raise e.located(where, "scene") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise LabSpecError(where, "scene", "a scene description (SceneSpec.to_dict())", type(e).__name__) from e
        cams = d.get("cameras", [])
        if not isinstance(cams, list | tuple):
            raise LabSpecError(where, "cameras", "a list of camera mappings", cams)
        cameras = tuple(CameraSpec.from_dict(c, where, f"cameras[{i}]") for i, c in enumerate(cams))
        scalars = ("success", "seed", "heartbeat_timeout_s", "realtime_factor", "settle_s", "fast_render", "limits")
        kw = {k: d[k] for k in scalars if k in d}
        if kw.get("success") is not None:
            validate_predicate(kw["success"], "success", [o.name for o in scene.objects], where)
        try:
            return cls(scene=scene, cameras=cameras,
                       randomize=Randomize.from_dict(d.get("randomize", {}), "randomize", where), **kw)
        except configs.InputError as e:
            raise e.located(where) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json_file(cls, path: str) -> LabSpec:
        text = configs.read_text(path, "lab spec (JSON)", max_bytes=64 << 20)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise LabSpecError(path, f"line {e.lineno}", "valid JSON", e.msg) from None
        return cls.from_dict(data, where=path)
