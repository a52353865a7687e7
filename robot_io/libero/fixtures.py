"""What the converter (prepare.py) needs for LIBERO's fixtures beyond their meshes.

- `dedupe_assets`: an MJCF whose <asset> repeats a name (flat_stove.xml defines the texture 'tex-stove_knob'
  twice) does not compile on its own; robosuite compiles it inside a scene, where `MujocoXML.merge_assets` keeps
  the FIRST asset of each (tag, name) and drops the later ones. The same rule here, so the converted model looks
  like the one the lab renders; relative file paths are made absolute so the text compiles from anywhere.
- `region_sites`: the model's sites (a cabinet's `top_side` and drawer `top_region`, a stove's `cook_region`) in
  the object's root frame, with the slide joint that moves a drawer's site; the planner's start hints put an
  object "in the top drawer" or "on the stove" where that site is, not at the fixture's origin.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np

ASSET_TAGS = ("texture", "material", "mesh", "hfield", "skin")


def dedupe_assets(xml_text: str, xml_dir: str) -> tuple[str, list[str]]:
    """(MJCF text without repeated asset names, the dropped '<tag> name' entries). Files resolve as before:
    the compiler's meshdir / texturedir (or the XML's folder) become absolute paths under xml_dir."""
    root = ET.fromstring(xml_text)
    dropped: list[str] = []
    for asset in root.iter("asset"):
        seen: set[tuple[str, str]] = set()
        for el in list(asset):
            key = (el.tag, el.get("name", ""))
            if el.tag in ASSET_TAGS and key[1] and key in seen:
                asset.remove(el)
                dropped.append(f"{el.tag} {key[1]}")
            seen.add(key)
    compiler = root.find("compiler")
    if compiler is None:
        compiler = ET.SubElement(root, "compiler")
    for attr in ("meshdir", "texturedir"):
        compiler.set(attr, os.path.normpath(os.path.join(xml_dir, compiler.get(attr, compiler.get("assetdir", "")))))
    compiler.attrib.pop("assetdir", None)
    return ET.tostring(root, encoding="unicode"), dropped


def compile_model(xml_path: str):
    """mujoco.MjModel of an object's MJCF, with repeated asset names dropped (`dedupe_assets`) where it has any."""
    import mujoco

    with open(xml_path) as f:
        text = f.read()
    fixed, dropped = dedupe_assets(text, os.path.dirname(os.path.abspath(xml_path)))
    if not dropped:
        return mujoco.MjModel.from_xml_path(xml_path), []
    return mujoco.MjModel.from_xml_string(fixed), dropped


def _half_extent(model, s: int, R_object_site: np.ndarray) -> np.ndarray:
    """The site's half extents along the object's axes (a box turned by its frame; a cylinder or sphere round)."""
    import mujoco

    size = np.asarray(model.site_size[s], float)
    kind = int(model.site_type[s])
    if kind == int(mujoco.mjtGeom.mjGEOM_BOX):
        local = size
    elif kind in (int(mujoco.mjtGeom.mjGEOM_CYLINDER), int(mujoco.mjtGeom.mjGEOM_CAPSULE)):
        local = np.array([size[0], size[0], size[1]])
    else:
        local = np.full(3, size[0])
    return np.abs(R_object_site) @ local


def _slide_joint(model, data, body: int, R_object_compiled: np.ndarray) -> dict | None:
    """The first slide joint on the way from `body` up to the root: its axis in the object frame and its range."""
    import mujoco

    while body > 0:
        for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
                axis = R_object_compiled @ np.asarray(data.xaxis[j], float)
                return {"axis": [round(float(v), 5) for v in axis],
                        "range_m": [round(float(v), 5) for v in model.jnt_range[j]]}
        body = model.body_parentid[body]
    return None


def region_sites(model, data, T_object_compiled: np.ndarray) -> dict[str, dict]:
    """Named sites of a compiled model (mj_forward done) in the object's root frame: site name -> {"pos_m",
    "half_m" (axis-aligned half extents), "slide" (the drawer joint moving it, or absent)}. LIBERO's bookkeeping
    sites (bottom_site, top_site, horizontal_radius_site) are left out."""
    import mujoco

    out: dict[str, dict] = {}
    R = T_object_compiled[:3, :3]
    for s in range(model.nsite):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, s)
        if not name or name in ("bottom_site", "top_site", "horizontal_radius_site"):
            continue
        pos = T_object_compiled @ np.append(np.asarray(data.site_xpos[s], float), 1.0)
        R_site = R @ np.asarray(data.site_xmat[s], float).reshape(3, 3)
        entry = {"pos_m": [round(float(v), 5) for v in pos[:3]],
                 "half_m": [round(float(v), 5) for v in _half_extent(model, s, R_site)]}
        slide = _slide_joint(model, data, int(model.site_bodyid[s]), R)
        if slide is not None:
            entry["slide"] = slide
        out[name] = entry
    return out


def articulation(obj) -> dict:
    """The JSON-able part of a LIBERO object's articulation properties (a cabinet's default_open_ranges: the
    drawer joint's position when the task's init says (Open ...)), or {}."""
    props = getattr(obj, "object_properties", {}) or {}
    art = props.get("articulation", {}) if isinstance(props, dict) else {}
    return {k: [float(v) for v in val] for k, val in art.items()
            if isinstance(val, (list, tuple)) and all(isinstance(v, (int, float)) for v in val)}
