"""`LiberoLabSpec`: what the LIBERO lab process needs, as one JSON-safe value (written by the planner's task
loader for the lab process only, like `robot_io.labspec.LabSpec` for the sim lab).

The truth (object poses, physics, the goal check) is not in it: it lives in LIBERO's BDDL file and its
official initial states, which only the lab process loads.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

from configs.checks import mapping
from robot_io.labspec import LabSpecError
from sim.camera import CameraSpec
from sim.scene import RobotSpec


@dataclass(frozen=True)
class LiberoLabSpec:
    """suite/task_id: the LIBERO task; bddl_path: its BDDL file; robot: the planner's robot (announced in hello);
    cameras: the cameras to render (LIBERO camera names; K and pose are re-read from MuJoCo, the sensor model
    fields are the lab's noise); settle_steps: zero-motion control steps after the initial state is set (LIBERO's
    evaluations wait 10); heartbeat_timeout_s, realtime_factor: as in the sim lab."""

    suite: str
    task_id: int
    bddl_path: str
    robot: RobotSpec
    cameras: tuple[CameraSpec, ...]
    seed: int = 0
    settle_steps: int = 10
    heartbeat_timeout_s: float = 2.0
    realtime_factor: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.robot, RobotSpec):
            raise LabSpecError(f"robot: expected a RobotSpec, got {type(self.robot).__name__}")
        cams = tuple(self.cameras)
        if not cams or not all(isinstance(c, CameraSpec) for c in cams):
            raise LabSpecError("cameras: expected a non-empty list of CameraSpec")
        object.__setattr__(self, "cameras", cams)
        for name in ("task_id", "seed", "settle_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise LabSpecError(f"{name}: expected an integer >= 0, got {v!r}")
        for name in ("heartbeat_timeout_s", "realtime_factor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (
                    name == "heartbeat_timeout_s" and v == 0):
                raise LabSpecError(f"{name}: expected a finite number {'>' if name[0] == 'h' else '>='} 0, got {v!r}")

    @property
    def camera_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "task_id": self.task_id, "bddl_path": self.bddl_path,
                "robot": self.robot.to_dict(), "cameras": [c.to_dict() for c in self.cameras], "seed": self.seed,
                "settle_steps": self.settle_steps, "heartbeat_timeout_s": self.heartbeat_timeout_s,
                "realtime_factor": self.realtime_factor}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, d: Any, where: str = "libero lab spec") -> LiberoLabSpec:
        mapping(d, where, None, "a mapping of LIBERO lab spec fields", allowed=tuple(f.name for f in fields(cls)),
                required=("suite", "task_id", "bddl_path", "robot", "cameras"), error=LabSpecError)
        robot = RobotSpec.from_dict(d["robot"], where=f"{where}: robot")
        cams = tuple(CameraSpec.from_dict(c, where=f"{where}: cameras[{i}]") for i, c in enumerate(d["cameras"]))
        kw = {k: d[k] for k in ("seed", "settle_steps", "heartbeat_timeout_s", "realtime_factor") if k in d}
        return cls(str(d["suite"]), d["task_id"], str(d["bddl_path"]), robot, cams, **kw)

    @classmethod
    def from_json_file(cls, path: str) -> LiberoLabSpec:
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise LabSpecError(f"{path}: not valid JSON: {e}") from e
        return cls.from_dict(data, where=path)
