"""Loading objects into a PyBullet client: URDF or mesh bodies with their colour and physics, and the mesh files
mesh bodies need. World builds and re-poses its scene with these."""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np
import pybullet as p
from scipy.spatial import ConvexHull

from sim.geometry import Pose
from sim.scene import ObjectSpec


def link_T_com(client: int, body: int) -> Pose:
    """The base link's inertial (centre-of-mass) frame in the link frame."""
    info = p.getDynamicsInfo(body, -1, physicsClientId=client)
    return Pose(info[3], info[4])


def same_model(a: ObjectSpec, b: ObjectSpec) -> bool:
    return (a.urdf, a.scale, a.rgba, a.mesh_vertices, a.mass_kg, a.friction, a.fixed) == (
        b.urdf, b.scale, b.rgba, b.mesh_vertices, b.mass_kg, b.friction, b.fixed)


def mesh_dir_for(objects, current: str | None) -> str | None:
    """A private temp folder for mesh files, made only when some object is a mesh."""
    if current is None and any(o.mesh_vertices is not None for o in objects):
        return tempfile.mkdtemp(prefix="antigrounding-meshes-")
    return current


def mesh_file(vertices, faces, folder: str | None) -> str:
    """Write a mesh as OBJ under `folder` (the temp dir if None), named by its content hash."""
    verts = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if faces is None:
        faces = ConvexHull(verts).simplices
    tris = np.asarray(faces, dtype=np.int64).reshape(-1, 3).copy()
    # Wind every face outwards (away from the centroid): renderers cull back faces.
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    inward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3.0 - verts.mean(axis=0)) < 0
    tris[inward] = tris[inward][:, ::-1]
    digest = hashlib.sha1(verts.tobytes() + tris.tobytes()).hexdigest()[:20]
    folder = folder or tempfile.gettempdir()
    path = os.path.join(folder, f"{digest}.obj")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in tris]
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(tmp, path)   # atomic: a concurrent reader never sees half a file
    return path


def load_object(client: int, obj: ObjectSpec, mesh_dir: str | None) -> int:
    if obj.urdf is not None:
        body = p.loadURDF(obj.urdf, obj.pose.xyz, obj.pose.quat_xyzw, globalScaling=obj.scale,
                          useFixedBase=obj.fixed, physicsClientId=client)
    else:
        # Through an OBJ file: the EGL renderer draws only file meshes, not vertex-list visual shapes.
        path = mesh_file(obj.mesh_vertices, obj.mesh_faces, mesh_dir)
        col = p.createCollisionShape(p.GEOM_MESH, fileName=path, physicsClientId=client)
        vis = p.createVisualShape(p.GEOM_MESH, fileName=path, rgbaColor=obj.rgba or (0.55, 0.55, 0.55, 1),
                                  physicsClientId=client)
        mass = 0.0 if obj.fixed else (obj.mass_kg if obj.mass_kg is not None else 0.1)
        body = p.createMultiBody(mass, col, vis, obj.pose.xyz, obj.pose.quat_xyzw, physicsClientId=client)
    n_links = p.getNumJoints(body, physicsClientId=client)
    if obj.rgba is not None and obj.urdf is not None:
        for link in range(-1, n_links):
            p.changeVisualShape(body, link, rgbaColor=obj.rgba, textureUniqueId=-1, physicsClientId=client)
    dyn = {}
    if obj.mass_kg is not None and not obj.fixed:
        dyn["mass"] = obj.mass_kg
    if obj.friction is not None:
        dyn["lateralFriction"] = obj.friction
    if dyn:
        p.changeDynamics(body, -1, physicsClientId=client, **dyn)
    return body
