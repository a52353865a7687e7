"""What reconstruction reports: estimated named objects with their confidence, unknown clutter, issues (missing or
low-confidence objects, unusable cameras), timings; and the twin's SceneSpec."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from reconstruction.clutter import UnknownObject
from reconstruction.models import ObjectModel
from reconstruction.segmentation import TablePlane
from sim.geometry import Pose
from sim.scene import ObjectSpec, RobotSpec, SceneSpec

log = logging.getLogger(__name__)

ISSUE_KINDS = ("missing", "low_confidence", "camera", "table", "held_unknown")


@dataclass(frozen=True)
class EstimatedObject:
    """A named object's pose estimate.

    fitness in [0, 1]: the fraction of its observed points on the model surface x (1 - the fraction of the model
    surface the cameras see through). coverage: the fraction of the model surface the cameras should see that
    they did see. confidence = fitness x min(1, coverage / full_coverage): one number to threshold.
    found=False means no acceptable match this step; its pose is then the last one seen (or identity) and
    must not be used.
    """

    name: str
    pose: Pose
    fitness: float
    found: bool
    n_points: int = 0
    rmse_m: float = math.nan
    coverage: float = 0.0
    held: bool = False         # found between the closed fingers
    source: str = ""           # winning hypothesis: "global", "yaw", "tcp"
    confidence: float = 0.0
    resting: str = ""          # "table": snapped to a stable pose on the table; "support": on something else
    rival: float = 0.0         # best clearly different pose's rank / the winner's: near 1, the data cannot tell

    def to_dict(self) -> dict:
        return {"name": self.name, "pose": self.pose.to_dict(), "fitness": self.fitness, "found": self.found,
                "n_points": self.n_points, "rmse_m": None if math.isnan(self.rmse_m) else self.rmse_m,
                "coverage": self.coverage, "confidence": self.confidence, "held": self.held, "source": self.source,
                "resting": self.resting, "rival": self.rival}


@dataclass(frozen=True)
class Issue:
    """Something a person should know about this estimate. kind: one of ISSUE_KINDS; subject: object/camera."""

    kind: str
    subject: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in ISSUE_KINDS:
            raise ValueError(f"Issue.kind {self.kind!r}: expected one of {ISSUE_KINDS}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "message": self.message}


@dataclass(frozen=True, eq=False)
class SceneEstimate:
    """objects: every named object (found or not). unknown: the clutter's convex parts as fixed ObjectSpecs (what
    the twin loads); clutter: the same grouped per unknown object. issues: missing / low-confidence objects and
    unusable cameras. notes: every remark of this step, issues included, as plain text."""

    objects: dict[str, EstimatedObject]
    unknown: tuple[ObjectSpec, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    table: TablePlane | None = None
    clutter: tuple[UnknownObject, ...] = ()
    issues: tuple[Issue, ...] = ()
    cameras_used: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-safe summary for a run log."""
        return {
            "objects": {name: o.to_dict() for name, o in self.objects.items()},
            "unknown": [u.to_dict() for u in self.unknown],
            "clutter": [c.to_dict() for c in self.clutter],
            "issues": [i.to_dict() for i in self.issues],
            "cameras_used": list(self.cameras_used),
            "timings_s": dict(self.timings_s),
            "notes": list(self.notes),
            "table": None if self.table is None else {"normal": list(self.table.normal), "d": self.table.d,
                                                      "fitted": self.table.fitted},
        }

    def report(self) -> dict:
        """Per object status ('ok', 'low_confidence', 'missing'), confidence and fitness; issues; clutter count.

        Small and JSON-safe: what a run log step, the CLI or a report page shows."""
        flagged = {i.subject: i.kind for i in self.issues if i.kind in ("missing", "low_confidence")}
        return {
            "objects": {name: {"status": flagged.get(name, "ok" if o.found else "missing"),
                               "confidence": round(o.confidence, 3), "fitness": round(o.fitness, 3),
                               "coverage": round(o.coverage, 3), "held": o.held,
                               "xyz": [round(v, 4) for v in o.pose.xyz] if o.found else None}
                        for name, o in self.objects.items()},
            "n_unknown": len(self.clutter) if self.clutter else len(self.unknown),
            # where each unknown obstacle stands: a veto by "arm contact with clutter_0_p1" is traced from here
            "unknown": [{"name": c.name, "centroid": [round(v, 3) for v in c.centroid],
                         "extent_m": [round(v, 3) for v in c.extent_m], "n_points": c.n_points}
                        for c in self.clutter],
            "issues": [i.to_dict() for i in self.issues],
            "cameras_used": list(self.cameras_used),
        }

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name, o in self.objects.items() if not o.found)

    @property
    def low_confidence(self) -> tuple[str, ...]:
        return tuple(i.subject for i in self.issues if i.kind == "low_confidence")

    @property
    def held(self) -> str | None:
        held = [o.name for o in self.objects.values() if o.found and o.held]
        return held[0] if len(held) == 1 else None

    def to_scene(self, robot: RobotSpec, joint_pos_rad, gripper_width_m: float | None,
                 models: dict[str, ObjectModel], include_unknown: bool = True) -> SceneSpec:
        """The twin: found named objects with their model (geometry and physics) at the estimated pose, plus the
        clutter. Objects not found are left out (logged). A single held object is attached to the gripper.
        """
        objects = []
        for name, est in self.objects.items():
            if not est.found:
                log.info("to_scene: '%s' was not found; left out of the twin", name)
                continue
            if name not in models:
                raise KeyError(f"to_scene: no model for estimated object '{name}'; models: {sorted(models)}")
            objects.append(models[name].at(est.pose))
        if include_unknown:
            taken = {o.name for o in objects}
            for u in self.unknown:
                if u.name in taken:
                    raise ValueError(f"to_scene: clutter name '{u.name}' collides with a named object")
                objects.append(u)
        q = None if joint_pos_rad is None else tuple(float(v) for v in joint_pos_rad)
        held = self.held
        return SceneSpec(robot=robot, objects=tuple(objects), joint_pos_rad=q,
                         gripper_width_m=None if gripper_width_m is None else float(gripper_width_m),
                         grasped=held if held in {o.name for o in objects} else None)
