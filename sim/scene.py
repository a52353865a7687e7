"""Scene description: the robot, the objects with their poses and physics. Plain data, JSON-safe."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, fields
from functools import lru_cache

import pybullet_data

import configs
from configs import checks
from sim.geometry import SYMMETRIES, Pose

PYBULLET_DATA_PREFIX = "pybullet_data:"
# Physical bounds of an arm config (a real arm is far inside them; beyond them a value is a typo or an attack).
MAX_JOINTS = 16
MAX_JOINT_SPEED_RAD_S = 20.0
MAX_REACH_M = 5.0


class SpecError(configs.InputError):
    """A scene/robot description that cannot be used: file, field, expected, got."""


def resolve_asset_path(path: str, base_dir: str | None = None, file: str | None = None,
                       field: str | None = None) -> str:
    """'pybullet_data:x.urdf' -> the file shipped with pybullet; a relative path is taken from base_dir.

    The result must stay inside its data root: pybullet_data for the prefix, else the config file's folder
    (base_dir), a config search folder or pybullet_data (`pybullet_data:../../etc/passwd` is refused).
    """
    data_root = os.path.realpath(pybullet_data.getDataPath())
    if not isinstance(path, str) or not path or "\0" in path:
        raise SpecError(file, field, "a file path ('pybullet_data:...' or a path)", path)
    if path.startswith(PYBULLET_DATA_PREFIX):
        resolved, roots = os.path.join(data_root, path[len(PYBULLET_DATA_PREFIX):]), [data_root]
    else:
        if base_dir is None and os.path.isabs(path):
            return os.path.normpath(path)  # a spec's own JSON round trip: confined when it was first loaded
        resolved = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
        roots = [data_root, *(os.path.realpath(d) for d in configs.search_dirs())]
        if base_dir is not None:
            roots.append(os.path.realpath(base_dir))
    real = os.path.realpath(resolved)
    if not any(real == root or real.startswith(root + os.sep) for root in roots):
        raise SpecError(file, field, "a path inside its data root (pybullet_data, or the config's own folder)",
                        path)
    return os.path.normpath(resolved)


@lru_cache(maxsize=32)
def urdf_names(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """The joint and link names a URDF file declares (read bounded; a URDF that is not XML is refused)."""
    text = configs.read_text(path, "URDF file", max_bytes=16 << 20)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SpecError(path, f"line {exc.position[0]}", "a URDF (XML) file", configs.Said(str(exc))) from None
    if root.tag != "robot":
        raise SpecError(path, None, "a URDF file (a <robot> element)", configs.Said(f"<{root.tag}>"))
    return (frozenset(j.get("name", "") for j in root.iter("joint")),
            frozenset(x.get("name", "") for x in root.iter("link")))


def _tuple(values, n: int | None, where: str, name: str, lo: float | None = None, hi: float | None = None,
           ) -> tuple[float, ...]:
    return checks.numbers(values, where, name, n, lo, hi, error=SpecError)


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
        where = f"robot '{self.name}'"
        for name in ("home_joint_pos_rad", "joint_lower_rad", "joint_upper_rad", "max_joint_speed_rad_s"):
            if len(getattr(self, name)) != dof:
                raise SpecError(where, name, f"{dof} values (one per arm joint)", len(getattr(self, name)))
        nf = len(self.finger_joints)
        for name in ("finger_open_pos", "finger_closed_pos"):
            if len(getattr(self, name)) != nf:
                raise SpecError(where, name, f"{nf} values (one per finger joint)", len(getattr(self, name)))
        for i, (lo, hi) in enumerate(zip(self.joint_lower_rad, self.joint_upper_rad)):
            if lo >= hi:
                raise SpecError(where, f"joint_lower_rad[{i}]", f"below joint_upper_rad[{i}] = {hi}", lo)
        for i, (q, lo, hi) in enumerate(zip(self.home_joint_pos_rad, self.joint_lower_rad, self.joint_upper_rad)):
            if not lo <= q <= hi:
                raise SpecError(where, f"home_joint_pos_rad[{i}]", f"a position within the joint limits [{lo}, {hi}]",
                                q)
        for i, (lo, hi) in enumerate(zip(self.workspace_min_xyz, self.workspace_max_xyz)):
            if lo >= hi:
                raise SpecError(where, f"workspace_min_xyz[{i}]", f"below workspace_max_xyz[{i}] = {hi}", lo)

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
    def from_dict(cls, d: dict, where: str | None = None, base_dir: str | None = None,
                  prefix: str | None = None) -> RobotSpec:
        """Validate a robot mapping: `where` is the file it came from, `prefix` its field there (inline)."""
        def f(key: str) -> str:
            return f"{prefix}.{key}" if prefix else key

        known = tuple(x.name for x in fields(cls))
        required = ("name", "urdf", "ee_link", "arm_joints", "finger_joints", "finger_open_pos", "finger_closed_pos",
                    "gripper_max_width_m", "home_joint_pos_rad", "joint_lower_rad", "joint_upper_rad",
                    "max_joint_speed_rad_s")
        checks.mapping(d, where, prefix, "a mapping of robot fields", known, required, error=SpecError)
        kw: dict = {"name": checks.name(d["name"], where, f("name"), "a robot name", error=SpecError),
                    "ee_link": checks.name(d["ee_link"], where, f("ee_link"), "a URDF link name", error=SpecError)}
        urdf = d["urdf"]
        if not isinstance(urdf, str) or not urdf.endswith(".urdf"):
            raise SpecError(where, f("urdf"), "a URDF path ('pybullet_data:...' or a path) ending in .urdf", urdf)
        kw["urdf"] = resolve_asset_path(urdf, base_dir, where, f("urdf"))
        if not os.path.isfile(kw["urdf"]):
            raise SpecError(where, f("urdf"), "an existing URDF file", urdf)
        for key, least in (("arm_joints", 1), ("finger_joints", 0)):   # an arm without a gripper model is an arm
            raw = d[key]
            if not isinstance(raw, list) or not least <= len(raw) <= MAX_JOINTS or len(set(map(str, raw))) != len(raw):
                raise SpecError(where, f(key), f"a list of {least} to {MAX_JOINTS} distinct joint names", raw)
            kw[key] = tuple(checks.name(v, where, f"{f(key)}[{i}]", "a URDF joint name", error=SpecError)
                            for i, v in enumerate(raw))
        joints, links = urdf_names(kw["urdf"])
        for key in ("arm_joints", "finger_joints"):
            for i, joint in enumerate(kw[key]):
                if joint not in joints:
                    raise SpecError(where, f"{f(key)}[{i}]", f"a joint of {os.path.basename(kw['urdf'])}", joint,
                                    hint=configs.did_you_mean(joint, joints, list_choices=False))
        if kw["ee_link"] not in links:
            raise SpecError(where, f("ee_link"), f"a link of {os.path.basename(kw['urdf'])}", kw["ee_link"],
                            hint=configs.did_you_mean(kw["ee_link"], links, list_choices=False))
        dof = len(kw["arm_joints"])
        limits = {"home_joint_pos_rad": (dof, -10.0, 10.0), "joint_lower_rad": (dof, -10.0, 10.0),
                  "joint_upper_rad": (dof, -10.0, 10.0), "max_joint_speed_rad_s": (dof, 0.0, MAX_JOINT_SPEED_RAD_S),
                  "finger_open_pos": (len(kw["finger_joints"]), -1.0, 1.0),
                  "finger_closed_pos": (len(kw["finger_joints"]), -1.0, 1.0),
                  "tcp_offset_xyz": (3, -1.0, 1.0), "workspace_min_xyz": (3, -MAX_REACH_M, MAX_REACH_M),
                  "workspace_max_xyz": (3, -MAX_REACH_M, MAX_REACH_M), "tcp_down_rpy_deg": (3, -360.0, 360.0)}
        for key, (n, lo, hi) in limits.items():
            if key in d:
                kw[key] = checks.numbers(d[key], where, f(key), n, lo, hi, error=SpecError)
        for i, v in enumerate(kw["max_joint_speed_rad_s"]):
            if v <= 0:
                raise SpecError(where, f"{f('max_joint_speed_rad_s')}[{i}]",
                                f"a finite number in (0, {MAX_JOINT_SPEED_RAD_S:g}] rad/s", v)
        if "base_pose" in d:
            base = checks.mapping(d["base_pose"], where, f("base_pose"), "a pose {xyz, quat_xyzw | rpy_deg}",
                                  ("xyz", "quat_xyzw", "rpy_deg"), ("xyz",), error=SpecError)
            xyz = checks.numbers(base["xyz"], where, f("base_pose.xyz"), 3, -MAX_REACH_M, MAX_REACH_M,
                                 error=SpecError)
            if "quat_xyzw" in base:
                quat = checks.numbers(base["quat_xyzw"], where, f("base_pose.quat_xyzw"), 4, -1.0, 1.0,
                                      error=SpecError)
                if abs(sum(q * q for q in quat) - 1.0) > 1e-3:
                    raise SpecError(where, f("base_pose.quat_xyzw"), "a unit quaternion", list(quat))
                kw["base_pose"] = Pose(xyz, quat)
            else:
                rpy = checks.numbers(base.get("rpy_deg", [0, 0, 0]), where, f("base_pose.rpy_deg"), 3, -360.0,
                                     360.0, error=SpecError)
                kw["base_pose"] = Pose.from_xyz_rpy_deg(xyz, rpy)
        kw["gripper_max_width_m"] = checks.number(d["gripper_max_width_m"], where, f("gripper_max_width_m"), 0.0,
                                                  0.5, lo_open=True, unit="m", error=SpecError)
        if "finger_force_n" in d:
            kw["finger_force_n"] = checks.number(d["finger_force_n"], where, f("finger_force_n"), 0.0, 1000.0,
                                                 lo_open=True, unit="N", error=SpecError)
        try:
            return cls(**kw)
        except SpecError as exc:  # a consistency check across fields: place it in the file
            raise SpecError(where, f(exc.field or ""), exc.expected, *(() if exc.got is None else (exc.got,)),
                            hint=exc.hint) from None

    @classmethod
    def from_yaml(cls, path: str) -> RobotSpec:
        data = configs.read_yaml(path, "robot config")
        return cls.from_dict(data, where=str(path), base_dir=os.path.dirname(os.path.abspath(path)))


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
        where = f"object '{self.name}'"
        if (self.urdf is None) == (self.mesh_vertices is None):
            raise SpecError(where, "urdf", "exactly one of urdf or mesh_vertices")
        if self.symmetry not in SYMMETRIES:
            raise SpecError(where, "symmetry", f"one of {SYMMETRIES}", self.symmetry)
        if self.scale <= 0:
            raise SpecError(where, "scale", "a number > 0", self.scale)
        if self.mass_kg is not None and self.mass_kg < 0:
            raise SpecError(where, "mass_kg", "a number >= 0", self.mass_kg)

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
            raise SpecError("scene", "objects", "distinct object names", sorted(dupes))
        if self.grasped is not None and self.grasped not in names:
            raise SpecError("scene", "grasped", f"one of the objects {names}", self.grasped)

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
