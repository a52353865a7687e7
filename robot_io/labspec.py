"""`LabSpec`: everything the sim lab needs to stand in for the real world, as one JSON-safe value.

It holds the task's *truth* (object poses, physics, clutter, per-seed randomisation, the success
predicate), so it is written by the planner's task loader for the lab process only and never read back
by the planner.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from robot_io.lab_limits import ControllerLimits
from sim.camera import CameraSpec
from sim.predicates import validate_predicate
from sim.scene import SceneSpec


class LabSpecError(ValueError):
    """A lab spec that cannot be used; the message names the field and what was expected."""


def _number(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None,
            exclusive_min: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise LabSpecError(f"{where}: expected a finite number, got {value!r}")
    value = float(value)
    if minimum is not None and (value <= minimum if exclusive_min else value < minimum):
        op = ">" if exclusive_min else ">="
        raise LabSpecError(f"{where}: expected a number {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise LabSpecError(f"{where}: expected a number <= {maximum}, got {value}")
    return value


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
    def from_dict(cls, d: Any, where: str = "randomize") -> Randomize:
        if not isinstance(d, dict):
            raise LabSpecError(f"{where}: expected a mapping {{xy_m, yaw_deg}}, got {type(d).__name__}")
        unknown = set(d) - {"xy_m", "yaw_deg"}
        if unknown:
            raise LabSpecError(f"{where}: unknown field(s) {sorted(unknown)}; expected xy_m, yaw_deg")
        return cls(xy_m=d.get("xy_m", 0.0), yaw_deg=d.get("yaw_deg", 0.0))


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
    limits: ControllerLimits = field(default_factory=ControllerLimits)

    def __post_init__(self) -> None:
        if not isinstance(self.scene, SceneSpec):
            raise LabSpecError(f"scene: expected a sim.scene.SceneSpec, got {type(self.scene).__name__}")
        cameras = tuple(self.cameras)
        if not all(isinstance(c, CameraSpec) for c in cameras):
            raise LabSpecError("cameras: expected sim.camera.CameraSpec items")
        names = [c.name for c in cameras]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise LabSpecError(f"cameras: duplicate camera names {dupes}")
        object.__setattr__(self, "cameras", cameras)
        randomize = self.randomize
        if isinstance(randomize, dict):
            randomize = Randomize.from_dict(randomize)
        if not isinstance(randomize, Randomize):
            raise LabSpecError(f"randomize: expected {{xy_m, yaw_deg}}, got {type(randomize).__name__}")
        object.__setattr__(self, "randomize", randomize)
        if self.success is not None:
            if not isinstance(self.success, dict):
                raise LabSpecError(
                    f"success: expected a predicate mapping, got {type(self.success).__name__}")
            try:
                # Normalise tuples to lists so a spec equals its JSON round trip.
                success = json.loads(json.dumps(self.success))
            except (TypeError, ValueError) as e:
                raise LabSpecError(f"success: not JSON-safe: {e}") from e
            validate_predicate(success, "success", [o.name for o in self.scene.objects])
            object.__setattr__(self, "success", success)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise LabSpecError(f"seed: expected an integer >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "heartbeat_timeout_s", _number(
            self.heartbeat_timeout_s, "heartbeat_timeout_s", minimum=0.0, exclusive_min=True))
        object.__setattr__(self, "realtime_factor",
                           _number(self.realtime_factor, "realtime_factor", minimum=0.0))
        object.__setattr__(self, "settle_s", _number(self.settle_s, "settle_s", minimum=0.0, maximum=60.0))
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
            "limits": self.limits.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "lab spec") -> LabSpec:
        if not isinstance(d, dict):
            raise LabSpecError(f"{where}: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise LabSpecError(
                f"{where}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
        if "scene" not in d:
            raise LabSpecError(f"{where}: missing field 'scene'")
        try:
            scene = SceneSpec.from_dict(d["scene"])
        except (KeyError, TypeError) as e:
            raise LabSpecError(f"{where}: field 'scene': malformed scene description: {e!r}") from e
        cams = d.get("cameras", [])
        if not isinstance(cams, list | tuple):
            raise LabSpecError(f"{where}: field 'cameras': expected a list of camera mappings")
        cameras = tuple(CameraSpec.from_dict(c, where=f"{where}: cameras[{i}]") for i, c in enumerate(cams))
        scalars = ("success", "seed", "heartbeat_timeout_s", "realtime_factor", "settle_s", "limits")
        kw = {k: d[k] for k in scalars if k in d}
        return cls(scene=scene, cameras=cameras,
                   randomize=Randomize.from_dict(d.get("randomize", {}), f"{where}: randomize"), **kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_json_file(cls, path: str) -> LabSpec:
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise LabSpecError(f"{path}: not valid JSON: {e}") from e
        return cls.from_dict(data, where=path)
