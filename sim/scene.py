"""Scene description: the robot, the objects with their poses and physics. Plain data, JSON-safe."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

import pybullet_data
import yaml

from sim.geometry import SYMMETRIES, Pose

PYBULLET_DATA_PREFIX = "pybullet_data:"


class SpecError(ValueError):
    """A scene/robot description that cannot be used; the message names the file and the field."""


def resolve_asset_path(path: str, base_dir: str | None = None) -> str:
    """'pybullet_data:x.urdf' -> the file shipped with pybullet; a relative path is taken from base_dir."""
    if path.startswith(PYBULLET_DATA_PREFIX):
        return os.path.join(pybullet_data.getDataPath(), path[len(PYBULLET_DATA_PREFIX):])
    if not os.path.isabs(path) and base_dir is not None:
        return os.path.normpath(os.path.join(base_dir, path))
    return path


def _tuple(values, n: int | None, where: str, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: field '{name}': expected a list of numbers, got {values!r}") from None
    if n is not None and len(out) != n:
        raise SpecError(f"{where}: field '{name}': expected {n} numbers, got {len(out)}")
    return out


@dataclass(frozen=True)
class RobotSpec:
    """An arm with a parallel gripper. Joint names refer to the URDF; the TCP is ee_link plus tcp_offset_xyz."""

    name: str
    urdf: str
    ee_link: str
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    finger_open_pos: tuple[float, ...]
    finger_closed_pos: tuple[float, ...]
    gripper_max_width_m: float
    home_joint_pos_rad: tuple[float, ...]
    joint_lower_rad: tuple[float, ...]
    joint_upper_rad: tuple[float, ...]
    max_joint_speed_rad_s: tuple[float, ...]
    tcp_offset_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    base_pose: Pose = field(default_factory=Pose)
    workspace_min_xyz: tuple[float, float, float] = (0.15, -0.5, 0.0)
    workspace_max_xyz: tuple[float, float, float] = (0.8, 0.5, 0.6)
    tcp_down_rpy_deg: tuple[float, float, float] = (180.0, 0.0, 0.0)
    finger_force_n: float = 40.0

    def __post_init__(self) -> None:
        dof = len(self.arm_joints)
        for name in ("home_joint_pos_rad", "joint_lower_rad", "joint_upper_rad", "max_joint_speed_rad_s"):
            if len(getattr(self, name)) != dof:
                raise SpecError(f"robot '{self.name}': field '{name}': expected {dof} values (one per arm joint)")
        nf = len(self.finger_joints)
        if len(self.finger_open_pos) != nf or len(self.finger_closed_pos) != nf:
            raise SpecError(f"robot '{self.name}': finger_open_pos/finger_closed_pos need {nf} values")
        if any(lo >= hi for lo, hi in zip(self.joint_lower_rad, self.joint_upper_rad)):
            raise SpecError(f"robot '{self.name}': every joint_lower_rad must be below joint_upper_rad")
        if any(lo >= hi for lo, hi in zip(self.workspace_min_xyz, self.workspace_max_xyz)):
            raise SpecError(f"robot '{self.name}': workspace_min_xyz must be below workspace_max_xyz")

    @property
    def dof(self) -> int:
        return len(self.arm_joints)

    @property
    def tcp_down(self) -> Pose:
        return Pose.from_xyz_rpy_deg((0, 0, 0), self.tcp_down_rpy_deg)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["base_pose"] = self.base_pose.to_dict()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict, where: str = "robot", base_dir: str | None = None) -> RobotSpec:
        if not isinstance(d, dict):
            raise SpecError(f"{where}: expected a mapping of robot fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
        required = ("name", "urdf", "ee_link", "arm_joints", "finger_joints", "finger_open_pos", "finger_closed_pos",
                    "gripper_max_width_m", "home_joint_pos_rad", "joint_lower_rad", "joint_upper_rad",
                    "max_joint_speed_rad_s")
        for key in required:
            if key not in d:
                raise SpecError(f"{where}: missing field '{key}'")
        kw = dict(d)
        kw["urdf"] = resolve_asset_path(str(d["urdf"]), base_dir)
        if not os.path.isfile(kw["urdf"]):
            raise SpecError(f"{where}: field 'urdf': file not found: {kw['urdf']}")
        for key in ("arm_joints", "finger_joints"):
            kw[key] = tuple(str(v) for v in d[key])
        for key, n in (("finger_open_pos", None), ("finger_closed_pos", None), ("home_joint_pos_rad", None),
                       ("joint_lower_rad", None), ("joint_upper_rad", None), ("max_joint_speed_rad_s", None),
                       ("tcp_offset_xyz", 3), ("workspace_min_xyz", 3), ("workspace_max_xyz", 3),
                       ("tcp_down_rpy_deg", 3)):
            if key in d:
                kw[key] = _tuple(d[key], n, where, key)
        if "base_pose" in d:
            kw["base_pose"] = Pose.from_dict(d["base_pose"])
        kw["gripper_max_width_m"] = float(d["gripper_max_width_m"])
        return cls(**kw)

    @classmethod
    def from_yaml(cls, path: str) -> RobotSpec:
        with open(path) as f:
            data = yaml.safe_load(f)
        return cls.from_dict(data, where=path, base_dir=os.path.dirname(os.path.abspath(path)))


@dataclass(frozen=True)
class ObjectSpec:
    """One rigid object: a URDF (known model) or a convex mesh (unknown clutter), at a world pose."""

    name: str
    pose: Pose
    urdf: str | None = None
    scale: float = 1.0
    rgba: tuple[float, float, float, float] | None = None
    mesh_vertices: tuple[tuple[float, float, float], ...] | None = None
    mesh_faces: tuple[tuple[int, int, int], ...] | None = None
    mass_kg: float | None = None
    friction: float | None = None
    fixed: bool = False
    symmetry: str = "none"

    def __post_init__(self) -> None:
        if (self.urdf is None) == (self.mesh_vertices is None):
            raise SpecError(f"object '{self.name}': give exactly one of urdf or mesh_vertices")
        if self.symmetry not in SYMMETRIES:
            raise SpecError(f"object '{self.name}': symmetry {self.symmetry!r}: expected one of {SYMMETRIES}")
        if self.scale <= 0:
            raise SpecError(f"object '{self.name}': scale must be > 0, got {self.scale}")
        if self.mass_kg is not None and self.mass_kg < 0:
            raise SpecError(f"object '{self.name}': mass_kg must be >= 0, got {self.mass_kg}")

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["pose"] = self.pose.to_dict()
        for key in ("rgba", "mesh_vertices", "mesh_faces"):
            if out[key] is not None:
                out[key] = [list(v) if isinstance(v, tuple) else v for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ObjectSpec:
        kw = dict(d)
        kw["pose"] = Pose.from_dict(d["pose"])
        if kw.get("rgba") is not None:
            kw["rgba"] = tuple(float(v) for v in kw["rgba"])
        if kw.get("mesh_vertices") is not None:
            kw["mesh_vertices"] = tuple(tuple(float(c) for c in v) for v in kw["mesh_vertices"])
        if kw.get("mesh_faces") is not None:
            kw["mesh_faces"] = tuple(tuple(int(c) for c in v) for v in kw["mesh_faces"])
        return cls(**kw)


@dataclass(frozen=True)
class SceneSpec:
    """Robot + objects on a table whose surface is the plane z = 0 of the world frame."""

    robot: RobotSpec
    objects: tuple[ObjectSpec, ...] = ()
    joint_pos_rad: tuple[float, ...] | None = None
    gripper_width_m: float | None = None
    grasped: str | None = None

    def __post_init__(self) -> None:
        names = [o.name for o in self.objects]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SpecError(f"scene: duplicate object names {sorted(dupes)}")
        if self.grasped is not None and self.grasped not in names:
            raise SpecError(f"scene: grasped object {self.grasped!r} is not among the objects {names}")

    def object(self, name: str) -> ObjectSpec:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {
            "robot": self.robot.to_dict(),
            "objects": [o.to_dict() for o in self.objects],
            "joint_pos_rad": None if self.joint_pos_rad is None else list(self.joint_pos_rad),
            "gripper_width_m": self.gripper_width_m,
            "grasped": self.grasped,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneSpec:
        robot = d["robot"]
        robot = RobotSpec.from_dict(robot) if isinstance(robot, dict) else robot
        q = d.get("joint_pos_rad")
        return cls(
            robot=robot,
            objects=tuple(ObjectSpec.from_dict(o) for o in d.get("objects", ())),
            joint_pos_rad=None if q is None else tuple(float(v) for v in q),
            gripper_width_m=d.get("gripper_width_m"),
            grasped=d.get("grasped"),
        )
