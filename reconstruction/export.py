"""Export a reconstructed twin for people and other tools: scene.json, one URDF per object with its meshes (OBJ),
and load_scene.py, which loads it all into plain PyBullet (no import of this project).

    out_dir/scene.json          robot state, every object's URDF path (relative), pose, fixed, mass, friction,
                                and the estimate's report (confidence, issues) when given
    out_dir/objects/NAME.urdf   one link; visual and collision geometry baked at the object's scale
    out_dir/meshes/*.obj        the visual mesh and one convex or catalog collision mesh per <collision>
    out_dir/load_scene.py       python load_scene.py [--gui]

Named objects keep their catalog geometry (visual mesh; each collision element as its own mesh, so a compound
shape like the tray stays a compound). Unknown objects become one URDF each, their convex parts as separate
collision and visual elements in a frame at the object's centroid. Poses are the URDF link frames, which is
what loadURDF's base position means.
"""

from __future__ import annotations

import json
import logging
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import trimesh

from reconstruction.estimate import SceneEstimate
from reconstruction.models import load_geometry
from sim.geometry import Pose
from sim.scene import ObjectSpec, SceneSpec

log = logging.getLogger(__name__)

DEFAULT_MASS_KG = 0.1
DEFAULT_FRICTION = 0.8

LOADER = '''"""Load this exported twin into plain PyBullet: python load_scene.py [--gui]"""
import json
import os
import sys
import time

import pybullet as p
import pybullet_data

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "scene.json")) as f:
    scene = json.load(f)
client = p.connect(p.GUI if "--gui" in sys.argv else p.DIRECT)
p.setGravity(0, 0, -9.81)
p.loadURDF(os.path.join(pybullet_data.getDataPath(), "plane.urdf"))
robot = scene.get("robot")
if robot and os.path.isfile(robot["urdf"]):
    rid = p.loadURDF(robot["urdf"], robot["base_xyz"], robot["base_quat_xyzw"], useFixedBase=True)
    names = {p.getJointInfo(rid, j)[1].decode(): j for j in range(p.getNumJoints(rid))}
    for name, q in zip(robot["arm_joints"], robot.get("joint_pos_rad") or []):
        p.resetJointState(rid, names[name], q)
bodies = {}
for o in scene["objects"]:
    bodies[o["name"]] = p.loadURDF(os.path.join(here, o["urdf"]), o["pose"]["xyz"], o["pose"]["quat_xyzw"],
                                   useFixedBase=o["fixed"])
print(f"loaded {len(bodies)} objects: {sorted(bodies)}")
if "--gui" in sys.argv:
    while p.isConnected():
        p.stepSimulation()
        time.sleep(1.0 / 240.0)
'''


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _write_obj(mesh: trimesh.Trimesh, path: str) -> None:
    verts = np.asarray(mesh.vertices, dtype=float)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _inertial(link: ET.Element, hull: trimesh.Trimesh, mass_kg: float) -> None:
    """Uniform-density inertia of the convex hull (a solid object fills its hull more or less)."""
    inertial = ET.SubElement(link, "inertial")
    com = np.asarray(hull.center_mass if hull.volume > 1e-12 else hull.centroid, dtype=float)
    ET.SubElement(inertial, "origin", xyz=" ".join(f"{v:.6f}" for v in com), rpy="0 0 0")
    ET.SubElement(inertial, "mass", value=f"{mass_kg:.6f}")
    if hull.volume > 1e-12:
        inertia = np.asarray(hull.moment_inertia, dtype=float) * (mass_kg / hull.volume)
    else:
        inertia = np.eye(3) * mass_kg * 1e-4
    ET.SubElement(inertial, "inertia", ixx=f"{inertia[0, 0]:.4e}", ixy=f"{inertia[0, 1]:.4e}",
                  ixz=f"{inertia[0, 2]:.4e}", iyy=f"{inertia[1, 1]:.4e}", iyz=f"{inertia[1, 2]:.4e}",
                  izz=f"{inertia[2, 2]:.4e}")


def _geometry(parent: ET.Element, tag: str, mesh_rel: str, rgba=None) -> None:
    elem = ET.SubElement(parent, tag)
    ET.SubElement(elem, "origin", xyz="0 0 0", rpy="0 0 0")
    geom = ET.SubElement(elem, "geometry")
    ET.SubElement(geom, "mesh", filename=mesh_rel, scale="1 1 1")
    if rgba is not None:
        material = ET.SubElement(elem, "material", name=f"color_{os.path.basename(mesh_rel)}")
        ET.SubElement(material, "color", rgba=" ".join(f"{v:.4f}" for v in rgba))


def _urdf(name: str, visuals: list[str], collisions: list[str], hull: trimesh.Trimesh, mass_kg: float,
          friction: float, rgba) -> ET.ElementTree:
    robot = ET.Element("robot", name=_safe(name))
    link = ET.SubElement(robot, "link", name="base_link")
    contact = ET.SubElement(link, "contact")
    ET.SubElement(contact, "lateral_friction", value=f"{friction:.4f}")
    _inertial(link, hull, mass_kg)
    for rel in visuals:
        _geometry(link, "visual", rel, rgba)
    for rel in collisions:
        _geometry(link, "collision", rel)
    ET.indent(robot)
    return ET.ElementTree(robot)


def _export_named(obj: ObjectSpec, out_dir: str) -> tuple[str, Pose]:
    geom = load_geometry(obj.urdf, float(obj.scale))
    base = _safe(obj.name)
    _write_obj(geom.mesh, os.path.join(out_dir, "meshes", f"{base}_visual.obj"))
    collisions = []
    for k, part in enumerate(geom.collision_parts or (geom.mesh,)):
        rel = f"{base}_collision_{k}.obj"
        _write_obj(part, os.path.join(out_dir, "meshes", rel))
        collisions.append(f"../meshes/{rel}")
    rgba = obj.rgba or (0.6, 0.6, 0.6, 1.0)
    tree = _urdf(obj.name, [f"../meshes/{base}_visual.obj"], collisions, geom.support_mesh.convex_hull,
                 obj.mass_kg if obj.mass_kg is not None else DEFAULT_MASS_KG,
                 obj.friction if obj.friction is not None else DEFAULT_FRICTION, rgba)
    path = os.path.join(out_dir, "objects", f"{base}.urdf")
    tree.write(path, xml_declaration=True, encoding="utf-8")
    return path, obj.pose


def _export_unknown(name: str, parts: list[ObjectSpec], out_dir: str) -> tuple[str, Pose]:
    """One URDF for an unknown object's convex parts, in a frame at their common centroid (world-aligned)."""
    world_meshes = []
    for part in parts:
        verts = np.asarray(part.mesh_vertices, dtype=float)
        T = part.pose.matrix()
        world_meshes.append(trimesh.Trimesh(verts @ T[:3, :3].T + T[:3, 3], np.asarray(part.mesh_faces),
                                            process=False))
    centre = np.mean([m.vertices.mean(axis=0) for m in world_meshes], axis=0)
    base = _safe(name)
    rels = []
    for k, mesh in enumerate(world_meshes):
        local = trimesh.convex.convex_hull(np.asarray(mesh.vertices) - centre)   # outward-facing winding
        rel = f"{base}_part_{k}.obj"
        _write_obj(local, os.path.join(out_dir, "meshes", rel))
        rels.append(f"../meshes/{rel}")
    hull = trimesh.convex.convex_hull(np.concatenate([m.vertices for m in world_meshes]) - centre)
    rgba = parts[0].rgba or (0.55, 0.55, 0.55, 1.0)
    tree = _urdf(name, rels, rels, hull, DEFAULT_MASS_KG, DEFAULT_FRICTION, rgba)
    path = os.path.join(out_dir, "objects", f"{base}.urdf")
    tree.write(path, xml_declaration=True, encoding="utf-8")
    return path, Pose(tuple(centre))


def export_scene(scene: SceneSpec, out_dir: str, estimate: SceneEstimate | None = None) -> dict[str, str]:
    """Write the twin `scene` (e.g. SceneEstimate.to_scene(...)) under out_dir; return {what: path} of the files.

    With the estimate, unknown objects' parts are grouped into one URDF per object and scene.json carries the
    estimate's report (confidence per object, issues); without it, each mesh object is its own URDF.
    """
    os.makedirs(os.path.join(out_dir, "objects"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "meshes"), exist_ok=True)
    written: dict[str, str] = {}
    group_of: dict[str, str] = {}
    if estimate is not None:
        group_of = {part.name: u.name for u in estimate.clutter for part in u.parts}
    groups: dict[str, list[ObjectSpec]] = {}
    entries = []
    for obj in scene.objects:
        if obj.urdf is not None:
            path, pose = _export_named(obj, out_dir)
            entries.append({"name": obj.name, "kind": "named", "urdf": os.path.relpath(path, out_dir),
                            "pose": pose.to_dict(), "fixed": bool(obj.fixed), "mass_kg": obj.mass_kg,
                            "friction": obj.friction, "symmetry": obj.symmetry, "source_urdf": obj.urdf,
                            "scale": obj.scale})
            written[obj.name] = path
        else:
            groups.setdefault(group_of.get(obj.name, obj.name), []).append(obj)
    for name, parts in groups.items():
        path, pose = _export_unknown(name, parts, out_dir)
        entries.append({"name": name, "kind": "unknown", "urdf": os.path.relpath(path, out_dir),
                        "pose": pose.to_dict(), "fixed": True, "parts": [p.name for p in parts]})
        written[name] = path
    robot = scene.robot
    doc = {
        "format": "antigrounding-twin/1",
        "table": {"plane_z_m": 0.0},
        "robot": {"name": robot.name, "urdf": robot.urdf, "base_xyz": list(robot.base_pose.xyz),
                  "base_quat_xyzw": list(robot.base_pose.quat_xyzw), "arm_joints": list(robot.arm_joints),
                  "joint_pos_rad": None if scene.joint_pos_rad is None else list(scene.joint_pos_rad),
                  "gripper_width_m": scene.gripper_width_m, "grasped": scene.grasped},
        "objects": entries,
    }
    if estimate is not None:
        doc["estimate"] = estimate.report()
        doc["table"] = None if estimate.table is None else {"normal": list(estimate.table.normal),
                                                             "d": estimate.table.d, "fitted": estimate.table.fitted}
    scene_path = os.path.join(out_dir, "scene.json")
    with open(scene_path, "w") as f:
        json.dump(doc, f, indent=2)
    loader_path = os.path.join(out_dir, "load_scene.py")
    with open(loader_path, "w") as f:
        f.write(LOADER)
    written["scene.json"] = scene_path
    written["load_scene.py"] = loader_path
    log.info("exported the twin (%d objects) to %s", len(entries), out_dir)
    return written
