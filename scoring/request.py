"""What the scorer is asked: task text, candidate ids, the rendered views and optional rollout evidence.

The scoring package imports nothing internal, so these are plain value types: the planner fills them from
the renderer's images and the twin's rollouts. Pixel coordinates are (u, v) = (column, row) from the image's
top-left corner, as the renderer draws them.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRIPPER_COMMANDS = ("open", "close", "keep")


def _check_id(value: Any, where: str) -> int:
    # numbers.Integral also admits numpy integers from the planner; bool is excluded on purpose.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: expected an integer candidate id, got {value!r}")
    return int(value)


def _check_real(value: Any, where: str, *, minimum: float | None = None, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: expected a number >= {minimum:g}, got {value!r}")
    return value


@dataclass(frozen=True)
class ViewImage:
    """One rendered virtual view with all candidates drawn and numbered.

    endpoints_px: candidate id -> (u, v) pixel position of the drawn end of its curve, or None when the
    end point projects behind the camera. Points outside [0, width) x [0, height) are kept as given.
    """

    name: str
    png: bytes
    width: int
    height: int
    endpoints_px: dict[int, tuple[float, float] | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ViewImage.name: expected a non-empty string, got {self.name!r}")
        where = f"ViewImage {self.name!r}"
        if not isinstance(self.png, (bytes, bytearray)):
            raise ValueError(f"{where}.png: expected bytes, got {type(self.png).__name__}")
        for dim in ("width", "height"):
            value = getattr(self, dim)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{where}.{dim}: expected a positive integer (pixels), got {value!r}")
        endpoints: dict[int, tuple[float, float] | None] = {}
        for key, uv in dict(self.endpoints_px).items():
            cid = _check_id(key, f"{where}.endpoints_px key")
            if uv is None:
                endpoints[cid] = None
                continue
            if len(uv) != 2:
                raise ValueError(f"{where}.endpoints_px[{cid}]: expected (u, v) or None, got {uv!r}")
            # numpy scalars from the renderer become plain floats here, so the request stays JSON-friendly.
            endpoints[cid] = (
                _check_real(uv[0], f"{where}.endpoints_px[{cid}].u"),
                _check_real(uv[1], f"{where}.endpoints_px[{cid}].v"),
            )
        object.__setattr__(self, "png", bytes(self.png))
        object.__setattr__(self, "endpoints_px", endpoints)

    @property
    def png_sha256(self) -> str:
        """Hex digest of the PNG bytes (for logs and cache keys; the bytes themselves stay out of logs)."""
        return hashlib.sha256(self.png).hexdigest()

    def contains(self, uv: tuple[float, float] | None) -> bool:
        """True when the pixel position lies inside the image."""
        return uv is not None and 0.0 <= uv[0] < self.width and 0.0 <= uv[1] < self.height

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (the PNG as its hash and size, not its bytes)."""
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "png_sha256": self.png_sha256,
            "png_bytes": len(self.png),
            "endpoints_px": {
                str(k): (list(v) if v is not None else None) for k, v in self.endpoints_px.items()
            },
        }


@dataclass(frozen=True)
class CandidateEvidence:
    """Twin rollout metrics for one candidate: what simjudge answers from (VLM backends ignore it).

    min_clearance_m excludes the target object (approaching it is the point of grasping) and may be
    +inf when nothing is within the twin's query distance. joint_limit_margin_rad is the minimum over the
    path (negative when a limit is exceeded); ik_error_m is the maximum over the path.
    """

    id: int
    feasible: bool
    collisions: int
    min_clearance_m: float
    joint_limit_margin_rad: float
    ik_error_m: float
    path_length_m: float
    duration_s: float
    progress: float
    subtask_done: bool
    task_success: bool
    gripper: str
    drop_height_m: float = 0.0      # how far a released object falls onto what is below it

    def __post_init__(self) -> None:
        _check_id(self.id, "CandidateEvidence.id")
        where = f"CandidateEvidence {self.id}"
        for name in ("feasible", "subtask_done", "task_success"):
            flag = getattr(self, name)
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"{where}.{name}: expected true or false, got {flag!r}")
            object.__setattr__(self, name, bool(flag))
        collisions = self.collisions
        if isinstance(collisions, bool) or not isinstance(collisions, numbers.Integral) or collisions < 0:
            raise ValueError(f"{where}.collisions: expected an integer >= 0, got {collisions!r}")
        object.__setattr__(self, "id", int(self.id))
        object.__setattr__(self, "collisions", int(collisions))
        clearance = _check_real(self.min_clearance_m, f"{where}.min_clearance_m", allow_inf=True)
        if clearance == -math.inf:
            raise ValueError(f"{where}.min_clearance_m: expected a number or +inf, got -inf")
        object.__setattr__(self, "min_clearance_m", clearance)
        object.__setattr__(
            self,
            "joint_limit_margin_rad",
            _check_real(self.joint_limit_margin_rad, f"{where}.joint_limit_margin_rad"),
        )
        for name in ("ik_error_m", "path_length_m", "duration_s", "drop_height_m"):
            object.__setattr__(self, name, _check_real(getattr(self, name), f"{where}.{name}", minimum=0.0))
        progress = _check_real(self.progress, f"{where}.progress", minimum=0.0)
        if progress > 1.0:
            raise ValueError(f"{where}.progress: expected a number in [0, 1], got {self.progress!r}")
        object.__setattr__(self, "progress", progress)
        if self.gripper not in GRIPPER_COMMANDS:
            raise ValueError(f"{where}.gripper: expected one of {GRIPPER_COMMANDS}, got {self.gripper!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (an infinite clearance is written as null)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if math.isinf(out["min_clearance_m"]):
            out["min_clearance_m"] = None
        return out


def view_named(views: tuple[ViewImage, ...], name: str) -> ViewImage:
    """The view with this name among a request's views (KeyError listing the names otherwise)."""
    for view in views:
        if view.name == name:
            return view
    raise KeyError(f"no view {name!r} in this request (views: {[v.name for v in views]})")


@dataclass(frozen=True)
class ScoreRequest:
    """One scoring question: instruction, current subtask, candidate ids, the views showing them."""

    instruction: str
    subtask: str
    candidate_ids: tuple[int, ...]
    views: tuple[ViewImage, ...]
    evidence: dict[int, CandidateEvidence] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str) or not self.instruction.strip():
            raise ValueError(f"ScoreRequest.instruction: expected non-empty text, got {self.instruction!r}")
        if not isinstance(self.subtask, str):
            raise ValueError(f"ScoreRequest.subtask: expected text, got {self.subtask!r}")
        ids = tuple(_check_id(i, "ScoreRequest.candidate_ids") for i in self.candidate_ids)
        if not ids:
            raise ValueError("ScoreRequest.candidate_ids: expected at least one candidate id")
        if len(set(ids)) != len(ids):
            raise ValueError(f"ScoreRequest.candidate_ids: ids must be unique, got {list(ids)}")
        views = tuple(self.views)
        if not views:
            raise ValueError("ScoreRequest.views: expected at least one ViewImage")
        for view in views:
            if not isinstance(view, ViewImage):
                raise ValueError(f"ScoreRequest.views: expected ViewImage, got {type(view).__name__}")
        names = [v.name for v in views]
        if len(set(names)) != len(names):
            raise ValueError(f"ScoreRequest.views: view names must be unique, got {names}")
        for view in views:
            # An endpoint for an id that is not asked about means the picture and the question disagree.
            strangers = sorted(set(view.endpoints_px) - set(ids))
            if strangers:
                raise ValueError(
                    f"ScoreRequest.views[{view.name!r}].endpoints_px: ids {strangers} are not in "
                    f"candidate_ids {list(ids)}"
                )
        evidence = None
        if self.evidence is not None:
            evidence = {}
            for key, ev in dict(self.evidence).items():
                if not isinstance(ev, CandidateEvidence):
                    raise ValueError(
                        f"ScoreRequest.evidence[{key!r}]: expected CandidateEvidence, got {ev!r}"
                    )
                if key != ev.id:
                    raise ValueError(f"ScoreRequest.evidence[{key!r}]: holds evidence for candidate {ev.id}")
                if key not in ids:
                    raise ValueError(
                        f"ScoreRequest.evidence[{key!r}]: {key} is not in candidate_ids {list(ids)}"
                    )
                evidence[int(key)] = ev
        object.__setattr__(self, "candidate_ids", ids)
        object.__setattr__(self, "views", views)
        object.__setattr__(self, "evidence", evidence)

    def view(self, name: str) -> ViewImage:
        """The view with this name (KeyError listing the names otherwise)."""
        return view_named(self.views, name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary for the run log (images by hash)."""
        return {
            "instruction": self.instruction,
            "subtask": self.subtask,
            "candidate_ids": list(self.candidate_ids),
            "views": [v.to_dict() for v in self.views],
            "evidence": None
            if self.evidence is None
            else {str(k): ev.to_dict() for k, ev in self.evidence.items()},
        }
