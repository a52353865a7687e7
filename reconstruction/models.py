"""Known object models (the CAD catalog): geometry from a URDF, as a trimesh and a surface point cloud.

Geometry is expressed in the URDF root link's frame: the frame `sim` poses objects in (ObjectSpec.pose, the
base position given to loadURDF, World.object_pose), so an estimated pose can be handed to `sim` as it is.
(PyBullet's getBasePositionAndOrientation reports the inertial frame instead; they differ by the root link's
inertial origin.) The visual geometry is what cameras see; the collision geometry is what the object rests on.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial.transform import Rotation

import configs
from configs import Said
from sim.geometry import SYMMETRIES, Pose
from sim.scene import ObjectSpec, resolve_asset_path

log = logging.getLogger(__name__)

AUTO_SYMMETRY = "auto"   # a catalog entry that declares none: a task infers it from the mesh (model_symmetry)
N_MODEL_POINTS = 3000   # surface samples kept per model; registration downsamples them further


class ModelError(configs.InputError):
    """A model that cannot be built; the message names the URDF and the element."""


@dataclass(frozen=True)
class ModelGeometry:
    """A model's geometry in its PyBullet base frame (metres, object scale applied)."""

    mesh: trimesh.Trimesh
    points: np.ndarray      # (N, 3) surface samples
    normals: np.ndarray     # (N, 3) unit face normals of the samples
    bounds: np.ndarray      # (2, 3) axis-aligned min / max of the mesh
    collision_mesh: trimesh.Trimesh | None = None   # the collision shapes (None: the visual mesh stands in)
    collision_parts: tuple[trimesh.Trimesh, ...] = ()   # the same, one mesh per URDF <collision> element

    @property
    def support_mesh(self) -> trimesh.Trimesh:
        """What the object rests on: its collision geometry where the URDF has one."""
        return self.mesh if self.collision_mesh is None else self.collision_mesh

    @property
    def extent(self) -> np.ndarray:
        return self.bounds[1] - self.bounds[0]

    @property
    def diameter(self) -> float:
        return float(np.linalg.norm(self.extent))


@dataclass(frozen=True)
class ObjectModel:
    """A known object: its URDF (absolute path or 'pybullet_data:...'), scale, colour, symmetry, and the twin's
    physics for it (mass_kg, friction: the catalog's prior or an identified value; None: the URDF's own).

    The one model of a catalog asset: the catalog reads it, reconstruction finds it in the cameras, the twin
    places it (`at`) and identification refines its physics (`with_physics`).
    """

    name: str
    urdf: str
    scale: float = 1.0
    rgba: tuple[float, float, float, float] | None = None   # a colour hint; None: found by its shape and texture
    symmetry: str = "none"
    mass_kg: float | None = None
    friction: float | None = None
    fixed: bool = False

    def __post_init__(self) -> None:
        where = f"object model '{self.name}'"
        path = resolve_asset_path(str(self.urdf))
        if not os.path.isfile(path):
            raise ModelError(where, "urdf", "an existing URDF file", Said(f"{path} (file not found)"))
        object.__setattr__(self, "urdf", path)
        if not (isinstance(self.scale, int | float) and self.scale > 0):
            raise ModelError(where, "scale", "a number > 0", self.scale)
        object.__setattr__(self, "scale", float(self.scale))
        if self.rgba is not None:   # None: the URDF's own colours (found by shape and the model's appearance)
            rgba = tuple(float(v) for v in self.rgba)
            if len(rgba) != 4 or not all(0.0 <= v <= 1.0 for v in rgba):
                raise ModelError(where, "rgba", "4 numbers in [0, 1]", self.rgba)
            object.__setattr__(self, "rgba", rgba)
        if self.symmetry != AUTO_SYMMETRY and self.symmetry not in SYMMETRIES:
            raise ModelError(where, "symmetry", f"{AUTO_SYMMETRY!r} or one of {SYMMETRIES}", self.symmetry,
                             hint=configs.did_you_mean(self.symmetry, (AUTO_SYMMETRY, *SYMMETRIES), False))
        for key in ("mass_kg", "friction"):
            v = getattr(self, key)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ModelError(where, key, "a number > 0", v)

    @classmethod
    def from_catalog(cls, name: str, entry: dict, where: str = "catalog") -> ObjectModel:
        """An entry of configs/objects.yaml (or a task's inline asset): {urdf, scale?, rgba?, symmetry?, mass_kg?,
        friction?, fixed?}. The planner's catalog (planner.catalog) validates the file with its messages."""
        if not isinstance(entry, dict) or "urdf" not in entry:
            raise ModelError(where, configs.safe_key(name), "a mapping with field 'urdf'", entry)
        return cls(name=name, urdf=str(entry["urdf"]), scale=float(entry.get("scale", 1.0)),
                   rgba=tuple(entry["rgba"]) if entry.get("rgba") is not None else None,
                   symmetry=str(entry.get("symmetry", "none")),
                   mass_kg=entry.get("mass_kg"), friction=entry.get("friction"), fixed=bool(entry.get("fixed", False)))

    def named(self, name: str) -> ObjectModel:
        """The same model under a task's object name (a catalog entry is keyed by its asset name)."""
        return dataclasses.replace(self, name=name)

    def with_physics(self, mass_kg: float | None = None, friction: float | None = None) -> ObjectModel:
        """The same model with these physics put in place (None: keep the current value)."""
        return dataclasses.replace(self, mass_kg=self.mass_kg if mass_kg is None else mass_kg,
                                   friction=self.friction if friction is None else friction)

    def physics(self) -> dict:
        """The twin's physics of this object, as the run log records it."""
        return {"mass_kg": self.mass_kg, "friction": self.friction, "fixed": self.fixed}

    def at(self, pose: Pose) -> ObjectSpec:
        """This object in a twin scene at `pose`."""
        return ObjectSpec(name=self.name, pose=pose, urdf=self.urdf, scale=self.scale, rgba=self.rgba,
                          symmetry=self.symmetry, mass_kg=self.mass_kg, friction=self.friction, fixed=self.fixed)

    @property
    def geometry(self) -> ModelGeometry:
        return load_geometry(self.urdf, self.scale)

    @property
    def mesh(self) -> trimesh.Trimesh:
        return self.geometry.mesh

    @property
    def points(self) -> np.ndarray:
        return self.geometry.points

    @property
    def normals(self) -> np.ndarray:
        return self.geometry.normals

    @property
    def chromatic(self) -> bool:
        """Whether the asset color is saturated enough to tell it from gray clutter by chromaticity."""
        return self.rgba is not None and color_saturation(self.rgba[:3]) > 0.3


def color_saturation(rgb) -> float:
    rgb = np.asarray(rgb, dtype=float)
    top = float(rgb.max())
    return 0.0 if top <= 0 else float((top - rgb.min()) / top)


# ---------------------------------------------------------------------------------------------- URDF parsing
def _origin(elem: ET.Element | None) -> np.ndarray:
    T = np.eye(4)
    if elem is None:
        return T
    xyz = [float(v) for v in elem.get("xyz", "0 0 0").split()]
    rpy = [float(v) for v in elem.get("rpy", "0 0 0").split()]
    T[:3, :3] = Rotation.from_euler("xyz", rpy).as_matrix()  # URDF rpy: fixed-axis roll, pitch, yaw
    T[:3, 3] = xyz
    return T


def _mesh_path(filename: str, urdf_dir: str) -> str:
    for prefix in ("package://", "file://"):
        if filename.startswith(prefix):
            filename = filename[len(prefix):]
    return filename if os.path.isabs(filename) else os.path.normpath(os.path.join(urdf_dir, filename))


def _geometry_mesh(geom: ET.Element, urdf: str) -> trimesh.Trimesh | None:
    shape = next(iter(geom), None)
    if shape is None:
        return None
    if shape.tag == "box":
        return trimesh.creation.box(extents=[float(v) for v in shape.get("size", "0 0 0").split()])
    if shape.tag == "cylinder":
        return trimesh.creation.cylinder(radius=float(shape.get("radius")), height=float(shape.get("length")),
                                         sections=32)
    if shape.tag == "sphere":
        return trimesh.creation.icosphere(subdivisions=2, radius=float(shape.get("radius")))
    if shape.tag == "capsule":
        return trimesh.creation.capsule(radius=float(shape.get("radius")), height=float(shape.get("length")))
    if shape.tag == "mesh":
        path = _mesh_path(shape.get("filename", ""), os.path.dirname(urdf))
        if not os.path.isfile(path):
            raise ModelError(urdf, "mesh.filename", "an existing mesh file", Said(f"{path} (file not found)"))
        mesh = trimesh.load(path, force="mesh", process=False, skip_materials=True)
        scale = [float(v) for v in shape.get("scale", "1 1 1").split()]
        mesh = mesh.copy()
        mesh.apply_scale(scale if len(scale) == 3 else scale[0])
        return mesh
    log.warning("%s: geometry <%s> is not supported; skipped", urdf, shape.tag)
    return None


def _link_frames(root: ET.Element, urdf: str) -> dict[str, np.ndarray]:
    """Every link's frame in the root link's frame, with all joints at zero (catalog objects are rigid)."""
    links = [link.get("name") for link in root.findall("link")]
    children = {}
    child_names = set()
    for joint in root.findall("joint"):
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None:
            continue
        children.setdefault(parent.get("link"), []).append((child.get("link"), _origin(joint.find("origin"))))
        child_names.add(child.get("link"))
    roots = [name for name in links if name not in child_names]
    if not roots:
        raise ModelError(urdf, "link", "a root link (one that is no joint's child)", Said("none"))
    frames = {roots[0]: np.eye(4)}
    queue = deque([roots[0]])
    while queue:
        name = queue.popleft()
        for child, T_parent_child in children.get(name, ()):
            frames[child] = frames[name] @ T_parent_child
            queue.append(child)
    return frames


def _link_meshes(root: ET.Element, urdf: str, tag: str, fallback: str | None) -> list[trimesh.Trimesh]:
    """Every link's <tag> geometry (or <fallback> where a link has none) in the root link's frame."""
    frames = _link_frames(root, urdf)
    link_elems = {link.get("name"): link for link in root.findall("link")}
    parts = []
    for name, T_root_link in frames.items():
        link = link_elems.get(name)
        if link is None:
            continue
        elems = link.findall(tag) or (link.findall(fallback) if fallback else [])
        for elem in elems:
            geom = elem.find("geometry")
            if geom is None:
                continue
            mesh = _geometry_mesh(geom, urdf)
            if mesh is None or len(mesh.faces) == 0:
                continue
            mesh.apply_transform(T_root_link @ _origin(elem.find("origin")))
            parts.append(mesh)
    return parts


@functools.lru_cache(maxsize=64)
def load_geometry(urdf: str, scale: float, n_points: int = N_MODEL_POINTS) -> ModelGeometry:
    """Parse the URDF's visual elements (collision ones where a link has no visual) into one mesh, in the root
    link's frame, and its collision elements into another.

    Cached per (urdf, scale): the arrays are read-only and shared between models.
    """
    try:
        root = ET.parse(urdf).getroot()
    except ET.ParseError as exc:
        raise ModelError(urdf, None, "valid URDF XML", Said(f"a parse error: {exc}")) from None
    parts = _link_meshes(root, urdf, "visual", "collision")
    if not parts:
        raise ModelError(urdf, "link", "visual or collision geometry", Said("no visual or collision geometry found"))
    mesh = trimesh.util.concatenate(parts) if len(parts) > 1 else parts[0]
    mesh.apply_scale(scale)  # PyBullet's globalScaling scales every origin and shape alike
    collision_parts = _link_meshes(root, urdf, "collision", None)
    collision = None
    for part in collision_parts:
        part.apply_scale(scale)
    if collision_parts:
        collision = trimesh.util.concatenate(collision_parts) if len(collision_parts) > 1 else collision_parts[0]
    points, face_idx = trimesh.sample.sample_surface(mesh, n_points, seed=0)
    normals = np.asarray(mesh.face_normals)[face_idx]
    points = np.ascontiguousarray(points, dtype=np.float64)
    normals = np.ascontiguousarray(normals, dtype=np.float64)
    bounds = np.asarray(mesh.bounds, dtype=np.float64)
    for arr in (points, normals, bounds):
        arr.setflags(write=False)
    if not math.isfinite(float(np.abs(bounds).max())):
        raise ModelError(urdf, "mesh", "finite vertices", Said("non-finite vertices"))
    return ModelGeometry(mesh=mesh, points=points, normals=normals, bounds=bounds, collision_mesh=collision,
                         collision_parts=tuple(collision_parts))
