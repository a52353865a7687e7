"""Install-time preparation of the LIBERO lab (run by `make libero`, inside the LIBERO virtual environment).

    python -m robot_io.libero.prepare --out .libero-assets [--suites libero_object,libero_spatial,...]

Writes, into a git-ignored folder, everything the planner's side needs without importing LIBERO:
- objects/<category>/: each task object's model as OBJ + URDF that PyBullet loads. The object's MJCF is compiled
  with mujoco.MjModel; every visual (group 1) and collision (group 0) geom's mesh (mesh_vert / mesh_face, or the
  primitive) is placed by geom_xpos / geom_xmat in the object's root frame (the frame of the XML's body named
  'object', the body robosuite puts in the scene and whose pose LIBERO reports). The visual is written WITH its look
  (textured.py): UVs (mesh_texcoord / mesh_facetexcoord), each material's texture (tex_data) as a PNG and an MTL,
  so the planner can tell printed look-alike packages apart; the URDF's visual is that textured OBJ. The colour
  hint in the manifest (optional for the planner) is the mean surface colour kept gray (surface_colour).
- manifest.json: per suite, the tasks in LIBERO's official order (name, language, BDDL file, number of initial
  states, problem class); per problem class, the robot base pose in MuJoCo's world and the cameras (K and
  T_base_camera in the OpenCV frame); per category, the converted model.
Nothing here is committed; `make libero` regenerates it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from robot_io.libero.cameras import T_world_camera_cv
from robot_io.libero.fixtures import articulation, compile_model, region_sites
from robot_io.libero.textured import TexturedPart, write_textured_obj

log = logging.getLogger("robot_io.libero.prepare")

MANIFEST_VERSION = 4       # 2: textured visuals; 3: models in the scene's object frame; 4: region sites, fixtures
SUITES = ("libero_object", "libero_spatial", "libero_goal", "libero_10")
CAMERAS = ("agentview", "frontview", "birdview", "sideview")
MAX_FACES = 20000         # scanned meshes are simplified to this many faces for the twin
MAX_TEXTURED_FACES = 40000   # the textured visual: decimation blurs the print at UV seams, so only the largest scans
GRAY_SATURATION = 0.25    # colour hints stay below the reconstruction's chromatic threshold (0.3)


def _pose_matrix(xpos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = np.asarray(xmat, dtype=float).reshape(3, 3)
    T[:3, 3] = xpos
    return T


def object_body_frame(model, data) -> np.ndarray:
    """T_compiled_object: the pose of the body robosuite places in a scene. robosuite's MujocoXMLObject keeps only
    the subtree of the body named 'object' (`_get_object_subtree`) and makes it the object's root body, dropping
    its `pos` in the XML's outer body; the akita bowl's XML puts that body at (0, -0.1, 0), so the compiled model's
    world frame is not the scene's object frame. Identity where the XML has no body named 'object'."""
    import mujoco

    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "object")
    if bid < 0:
        return np.eye(4)
    return _pose_matrix(data.xpos[bid], data.xmat[bid])


def _geom_mesh(model, data, g: int, T_object_compiled: np.ndarray | None = None):
    """One geom as a trimesh in the object's root frame (the scene's: `object_body_frame`), or None."""
    import mujoco
    import trimesh

    gtype = model.geom_type[g]
    size = model.geom_size[g]
    if gtype == mujoco.mjtGeom.mjGEOM_MESH:
        m = model.geom_dataid[g]
        va, vn = model.mesh_vertadr[m], model.mesh_vertnum[m]
        fa, fn = model.mesh_faceadr[m], model.mesh_facenum[m]
        mesh = trimesh.Trimesh(model.mesh_vert[va:va + vn].copy(), model.mesh_face[fa:fa + fn].copy(), process=False)
    elif gtype == mujoco.mjtGeom.mjGEOM_BOX:
        mesh = trimesh.creation.box(extents=2 * size[:3])
    elif gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
        mesh = trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=24)
    elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
        mesh = trimesh.creation.capsule(radius=size[0], height=2 * size[1], count=[12, 12])
    elif gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    else:
        return None
    T = _pose_matrix(data.geom_xpos[g], data.geom_xmat[g])
    mesh.apply_transform(T if T_object_compiled is None else T_object_compiled @ T)
    return mesh


def _surface_colours(model, g: int, rng: np.random.Generator, n: int = 4000) -> tuple[np.ndarray, np.ndarray] | None:
    """Colours of the geom's surface (its texture sampled at face UV centroids, times the material colour) and
    the area each sample stands for; None for a geom without a material."""
    mat = model.geom_matid[g]
    if mat < 0:
        return None
    rgba = np.array(model.mat_rgba[mat], dtype=float)
    texids = np.atleast_1d(model.mat_texid[mat])
    tex = int(texids.max()) if texids.size else -1
    m = model.geom_dataid[g]
    if tex < 0 or m < 0 or model.mesh_texcoordnum[m] == 0:
        return rgba[None, :3], np.ones(1)
    fa, fn = model.mesh_faceadr[m], model.mesh_facenum[m]
    va = model.mesh_vertadr[m]
    faces = model.mesh_face[fa:fa + fn]
    verts = model.mesh_vert[va:va + model.mesh_vertnum[m]]
    area = 0.5 * np.linalg.norm(np.cross(verts[faces[:, 1]] - verts[faces[:, 0]],
                                         verts[faces[:, 2]] - verts[faces[:, 0]]), axis=1)
    # area-weighted samples (with replacement: many scanned faces have zero area)
    pick = rng.choice(fn, size=n, replace=True, p=area / area.sum()) if area.sum() > 0 else np.arange(fn)
    uv = model.mesh_texcoord[model.mesh_texcoordadr[m] + model.mesh_facetexcoord[fa + pick]].mean(axis=1)
    h, w, c = model.tex_height[tex], model.tex_width[tex], model.tex_nchannel[tex]
    img = np.asarray(model.tex_data[model.tex_adr[tex]:model.tex_adr[tex] + h * w * c]).reshape(h, w, c)
    px = np.clip((uv[:, 0] % 1.0) * w, 0, w - 1).astype(int)
    py = np.clip((uv[:, 1] % 1.0) * h, 0, h - 1).astype(int)
    return img[py, px, :3].astype(float) / 255.0 * rgba[:3], np.full(len(pick), area.sum() / len(pick))


def _texture_image(model, tex: int) -> np.ndarray:
    """Texture `tex` as an (h, w, 3) uint8 image, row 0 first as MuJoCo stores it (row = v * h)."""
    h, w, c = int(model.tex_height[tex]), int(model.tex_width[tex]), int(model.tex_nchannel[tex])
    img = np.asarray(model.tex_data[model.tex_adr[tex]:model.tex_adr[tex] + h * w * c], dtype=np.uint8)
    img = img.reshape(h, w, c)
    return np.repeat(img, 3, axis=2) if c == 1 else img[:, :, :3]


def _geom_look(model, g: int, placed) -> TexturedPart:
    """The geom's placed mesh with its look: per-corner UVs and the texture image where its material has a 2-D
    texture and its mesh has texture coordinates, else the material's (or geom's) flat colour."""
    mat = model.geom_matid[g]
    rgba = np.array(model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[g], dtype=float)
    texids = np.atleast_1d(model.mat_texid[mat]) if mat >= 0 else np.array([-1])
    tex = int(texids.max()) if texids.size else -1
    m = model.geom_dataid[g]
    if (tex < 0 or m < 0 or model.geom_type[g] != 7 or model.mesh_texcoordnum[m] == 0
            or int(model.tex_type[tex]) != 0):     # 7 = mjGEOM_MESH; tex_type 0 = 2-D (not a cube or skybox)
        return TexturedPart(placed, None, None, tuple(rgba[:3]))
    fa, fn = model.mesh_faceadr[m], model.mesh_facenum[m]
    corner_uv = model.mesh_texcoord[model.mesh_texcoordadr[m] + model.mesh_facetexcoord[fa:fa + fn]]
    return TexturedPart(placed, np.asarray(corner_uv, dtype=float).reshape(fn, 3, 2), _texture_image(model, tex),
                        tuple(rgba[:3]))


def surface_colour(colours: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The colour hint for the planner: the area-weighted mean surface colour, with its saturation capped at
    GRAY_SATURATION. LIBERO's objects are printed packages: no single colour covers them, and a chromatic hint
    makes the reconstruction look for clusters of that one colour (it finds none); a gray hint makes it
    identify them by shape alone (reconstruction.segmentation treats saturation <= 0.3 as gray)."""
    rgb = (colours * weights[:, None]).sum(axis=0) / weights.sum()
    top, bottom = float(rgb.max()), float(rgb.min())
    if top > 0 and (top - bottom) / top > GRAY_SATURATION:
        # move towards the gray of the same brightness until (max - min) / max = GRAY_SATURATION
        k = GRAY_SATURATION * top / (top - bottom)
        rgb = top - (top - rgb) * k
    return rgb


def convert_object(xml_path: str, out_dir: Path) -> dict:
    """Compile one object's MJCF and write visual.obj, collision.obj and model.urdf; return its manifest entry."""
    import mujoco
    import trimesh

    model, dropped = compile_model(xml_path)
    if dropped:
        log.info("%s: dropped repeated assets %s (robosuite's scene keeps the first of each name)", xml_path, dropped)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    visual, collision, colours, looks = [], [], [], []
    rng = np.random.default_rng(0)
    T_object_compiled = np.linalg.inv(object_body_frame(model, data))
    for g in range(model.ngeom):
        mesh = _geom_mesh(model, data, g, T_object_compiled)
        if mesh is None:
            continue
        if model.geom_group[g] == 0 and model.geom_contype[g] != 0:
            collision.append(mesh)
        else:
            visual.append(mesh)
            looks.append(_geom_look(model, g, mesh))
            c = _surface_colours(model, g, rng)
            if c is not None:
                colours.append(c)
    if not visual:
        visual = collision
        looks = [TexturedPart(m, None, None, (0.6, 0.6, 0.6)) for m in collision]
    if not collision:
        collision = visual
    if not visual:
        raise ValueError(f"{xml_path}: no mesh or primitive geoms")
    out_dir.mkdir(parents=True, exist_ok=True)
    vis = trimesh.util.concatenate(visual)
    if len(vis.faces) > MAX_FACES:
        try:
            vis = vis.simplify_quadric_decimation(face_count=MAX_FACES)
        except (ImportError, ValueError) as e:   # fast_simplification is optional
            log.info("%s: kept %d faces (%s)", xml_path, len(vis.faces), e)
    vis.export(out_dir / "visual.obj")      # untextured and simplified: kept for tools that want plain geometry
    n_textures = write_textured_obj(looks, out_dir, "textured", MAX_TEXTURED_FACES)
    # one OBJ object per collision geom: PyBullet makes each a convex hull, so boxes stay boxes
    parts = []
    for i, m in enumerate(collision):
        name = f"collision_{i}.obj"
        m.export(out_dir / name)
        parts.append(name)
    rgba = np.array([0.6, 0.6, 0.6, 1.0])
    if colours:
        rgba[:3] = surface_colour(np.concatenate([c for c, _ in colours]), np.concatenate([w for _, w in colours]))
    mass = float(max(model.body_mass.sum(), 0.01))
    # inertia of the solid convex hull at the object's mass: a made-up tiny inertia lets resting objects creep
    hull = vis.convex_hull
    hull.density = mass / max(hull.volume, 1e-9)
    com, inertia = hull.center_mass, hull.moment_inertia
    coll_xml = "\n".join(
        f'    <collision><geometry><mesh filename="{p}"/></geometry></collision>' for p in parts)
    (out_dir / "model.urdf").write_text(f"""<?xml version="1.0"?>
<!-- Generated by robot_io.libero.prepare from {os.path.basename(xml_path)}; do not edit. -->
<robot name="{out_dir.name}">
  <link name="base">
    <inertial><origin xyz="{' '.join(f'{v:.5f}' for v in com)}"/><mass value="{mass:.4f}"/>
      <inertia ixx="{inertia[0, 0]:.3e}" ixy="{inertia[0, 1]:.3e}" ixz="{inertia[0, 2]:.3e}" iyy="{inertia[1, 1]:.3e}"
        iyz="{inertia[1, 2]:.3e}" izz="{inertia[2, 2]:.3e}"/></inertial>
    <visual><geometry><mesh filename="textured.obj"/></geometry>
      <material name="white"><color rgba="1 1 1 1"/></material></visual>
{coll_xml}
  </link>
</robot>
""")
    bounds = vis.bounds
    return {"urdf": str((out_dir / "model.urdf").resolve()), "rgba": [round(float(v), 3) for v in rgba],
            "mass_kg": round(mass, 4), "bounds_m": bounds.round(4).tolist(), "source": xml_path,
            "textures": n_textures, "sites": region_sites(model, data, T_object_compiled)}


def _cameras_and_base(bddl: str) -> dict:
    """Build the task's env once (no reset) and read the robot base pose and the cameras in the base frame."""
    from robot_io.libero.envs import make_env

    env = make_env(bddl, camera_names=(), width=64, height=64)
    try:
        sim = env.sim
        sim.forward()
        m = sim.model
        base = env.robots[0].robot_model.root_body
        T_world_base = _pose_matrix(sim.data.get_body_xpos(base), sim.data.get_body_xmat(base))
        T_base_world = np.linalg.inv(T_world_base)
        cams = {}
        for i in range(m.ncam):
            name = m.camera_id2name(i)
            if name not in CAMERAS:
                continue
            T = T_base_world @ T_world_camera_cv(sim.data.cam_xpos[i], sim.data.cam_xmat[i])
            cams[name] = {"fovy_deg": float(m.cam_fovy[i]), "T_base_camera": T.round(6).tolist()}
        return {"T_world_base": T_world_base.round(6).tolist(), "cameras": cams}
    finally:
        env.close()


def prepare(out: Path, suites: tuple[str, ...]) -> dict:
    from libero.libero import benchmark
    from libero.libero.envs import bddl_utils
    from libero.libero.envs.objects import get_object_fn

    out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"version": MANIFEST_VERSION, "suites": {}, "problems": {}, "objects": {}, "failed_objects": {}}
    categories: dict[str, str] = {}
    for suite in suites:
        bench = benchmark.get_benchmark_dict()[suite]()
        tasks = []
        for i, task in enumerate(bench.tasks):
            bddl = bench.get_task_bddl_file_path(i)
            parsed = bddl_utils.robosuite_parse_problem(bddl)
            n_init = len(bench.get_task_init_states(i))
            objs = {n: c for c, names in parsed["objects"].items() for n in names}
            fixtures = {n: c for c, names in parsed["fixtures"].items() for n in names}
            for c in [*objs.values(), *fixtures.values()]:
                categories.setdefault(c, bddl)
            tasks.append({"id": i, "name": task.name, "language": task.language, "bddl": bddl,
                          "problem": parsed["problem_name"], "n_init_states": n_init,
                          "objects": objs, "fixtures": fixtures})
            if parsed["problem_name"] not in manifest["problems"]:
                log.info("%s: reading cameras of %s", suite, parsed["problem_name"])
                manifest["problems"][parsed["problem_name"]] = _cameras_and_base(bddl)
        manifest["suites"][suite] = tasks
        log.info("%s: %d tasks", suite, len(tasks))
    for i, (category, _) in enumerate(sorted(categories.items())):
        try:
            obj = get_object_fn(category)(name=f"{category}_1")
            xml = obj.file
        except (KeyError, AttributeError, TypeError) as e:
            manifest["failed_objects"][category] = f"no object class: {e}"
            continue
        try:
            manifest["objects"][category] = convert_object(xml, out / "objects" / category)
            if articulation(obj):
                manifest["objects"][category]["articulation"] = articulation(obj)
        except (ValueError, OSError) as e:
            manifest["failed_objects"][category] = f"{type(e).__name__}: {e}"
        print(f"\rconverting objects {i + 1}/{len(categories)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    # written last and atomically: a reader sees the old manifest or the new one, never half of one
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m robot_io.libero.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".libero-assets", help="output folder (git-ignored)")
    parser.add_argument("--suites", default=",".join(SUITES), help="comma-separated LIBERO suites")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    t0 = time.monotonic()
    manifest = prepare(Path(args.out), tuple(s for s in args.suites.split(",") if s))
    log.info("%d object models (%d failed: %s), %d problem classes in %.1f s -> %s",
             len(manifest["objects"]), len(manifest["failed_objects"]), sorted(manifest["failed_objects"]),
             len(manifest["problems"]), time.monotonic() - t0, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
