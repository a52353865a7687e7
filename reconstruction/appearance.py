"""A catalog model's look, from the model itself: its URDF material colours, MTL colours and texture images as
PyBullet composes them, rendered from a ring of views in a private client and reduced to colour statistics.

A task need not give a colour hint (`rgba`): where the model's own colours are distinctive (one dominant,
saturated chromaticity: the yellow duck, the wooden jenga block, the red mug), that colour serves as the hint
the colour segmentation and the outline refinement use; where they are not (a black-and-white soccer ball, a
grey tray), the object is found by its shape alone. The colour histogram also tells same-shape instances apart.

The surface look (model_surface_look, look_match) is finer: the model's surface sampled with its texture's colour
at each point, compared point by point with the coloured points a segment was made of, at the pose the shape
gave. Printed look-alikes (two cans, two cartons of one shape) are told apart by their print.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np
import pybullet as p
import trimesh
from scipy.spatial import cKDTree

from reconstruction.models import _geometry_mesh, _link_frames, _origin, color_saturation, load_geometry
from reconstruction.segmentation import chromaticity
from sim.scene import resolve_asset_path

log = logging.getLogger(__name__)

_VIEW_PX = 96
_HIST_BINS = 8


@dataclass(frozen=True, eq=False)
class Appearance:
    """rgb: the median colour of the model's visible pixels (0..1); chroma_spread: the 80th percentile distance of
    the pixels' chromaticity from the median's; hist: normalised 2-D chromaticity histogram (r, g)."""

    rgb: np.ndarray
    chroma_spread: float
    hist: np.ndarray
    n_pixels: int

    @property
    def saturation(self) -> float:
        return color_saturation(self.rgb)

    def hint(self, min_saturation: float = 0.3, max_spread: float = 0.06) -> tuple[float, float, float] | None:
        """A colour the segmentation can look for, or None when the model's colours are not distinctive."""
        if self.n_pixels < 50 or self.saturation <= min_saturation or self.chroma_spread > max_spread:
            return None
        return tuple(float(v) for v in self.rgb)


def chroma_histogram(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) colours in 0..1 -> normalised histogram of their (r, g) chromaticity on _HIST_BINS^2 cells."""
    c = chromaticity(np.asarray(rgb, dtype=float).reshape(-1, 3))
    h, _, _ = np.histogram2d(c[:, 0], c[:, 1], bins=_HIST_BINS, range=[[0, 1], [0, 1]])
    total = h.sum()
    return h / total if total > 0 else h


def histogram_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two normalised histograms: 1 identical, 0 disjoint."""
    return float(np.sum(np.sqrt(np.asarray(a) * np.asarray(b))))


@functools.lru_cache(maxsize=64)
def model_appearance(urdf: str, scale: float = 1.0) -> Appearance:
    """Render the URDF with its own materials and textures (no colour override) from 8 views around and 2 above,
    and summarise the colours of its pixels."""
    path = resolve_asset_path(urdf)
    geom = load_geometry(path, float(scale))
    center = geom.bounds.mean(axis=0)
    dist = 2.5 * max(geom.diameter, 1e-3)
    client = p.connect(p.DIRECT)
    pixels = []
    try:
        body = p.loadURDF(path, globalScaling=float(scale), useFixedBase=True, physicsClientId=client)
        proj = p.computeProjectionMatrixFOV(30.0, 1.0, 0.01 * dist, 10.0 * dist)
        views = [(az, 20.0) for az in range(0, 360, 45)] + [(0.0, 80.0), (0.0, -60.0)]
        for az, el in views:
            a, e = math.radians(az), math.radians(el)
            eye = center + dist * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
            up = (0, 0, 1) if abs(el) < 75 else (1, 0, 0)
            view = p.computeViewMatrix(eye.tolist(), center.tolist(), up)
            _, _, rgba, _, seg = p.getCameraImage(_VIEW_PX, _VIEW_PX, view, proj, renderer=p.ER_TINY_RENDERER,
                                                  physicsClientId=client)
            rgba = np.asarray(rgba, dtype=np.uint8).reshape(_VIEW_PX, _VIEW_PX, 4)
            seg = np.asarray(seg).reshape(_VIEW_PX, _VIEW_PX)
            pixels.append(rgba[(seg & ((1 << 24) - 1)) == body][:, :3])
    finally:
        p.disconnect(client)
    rgb = np.concatenate(pixels).astype(np.float64) / 255.0 if pixels else np.zeros((0, 3))
    rgb = rgb[rgb.max(axis=1) > 0.08]          # the shadowed side has no colour to speak of
    if len(rgb) == 0:
        log.info("%s: no visible pixels rendered; no appearance", urdf)
        return Appearance(np.full(3, 0.5), math.inf, np.zeros((_HIST_BINS, _HIST_BINS)), 0)
    chroma = chromaticity(rgb)
    med_chroma = np.median(chroma, axis=0)
    # the median colour: of the pixels nearest the median chromaticity, their median (a real colour, lit)
    d = np.linalg.norm(chroma - med_chroma, axis=1)
    near = rgb[d <= np.quantile(d, 0.3)]
    return Appearance(np.median(near, axis=0), float(np.quantile(d, 0.8)), chroma_histogram(rgb), len(rgb))


# ---------------------------------------------------------------------------------------------- surface look
@dataclass(frozen=True, eq=False)
class SurfaceLook:
    """Samples of the model's surface in its own frame with their albedo (texture x material colour, 0..1) and
    outward normals; `textured`: some of it comes from a texture image (a print can tell look-alikes apart)."""

    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    center: np.ndarray
    textured: bool
    tree: cKDTree
    area_m2: float = 0.0


def _urdf_colour(elem: ET.Element | None, named: dict[str, np.ndarray]) -> np.ndarray | None:
    if elem is None:
        return None
    color = elem.find("color")
    if color is not None and color.get("rgba"):
        return np.array([float(v) for v in color.get("rgba").split()][:3])
    return named.get(elem.get("name", ""))


def _texture_colours(mesh: trimesh.Trimesh, faces: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """The texture's colour at surface points on the given faces (OBJ convention: v = 0 at the image's bottom),
    times the material's diffuse colour; None when the mesh has no texture image and UVs."""
    vis = mesh.visual
    uv = getattr(vis, "uv", None)
    material = getattr(vis, "material", None)
    image = getattr(material, "image", None) if material is not None else None
    if uv is None or image is None or len(uv) != len(mesh.vertices):
        return None
    tri = mesh.vertices[mesh.faces[faces]]
    bary = trimesh.triangles.points_to_barycentric(tri, points)
    st = np.einsum("nc,ncu->nu", bary, np.asarray(uv)[mesh.faces[faces]])
    img = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    h, w = img.shape[:2]
    # wrap only outside [0, 1] (repeat), so that v = 1 stays the top row
    st = np.where((st >= -1e-6) & (st <= 1.0 + 1e-6), np.clip(st, 0.0, 1.0), st % 1.0)
    col = np.clip((st[:, 0] * w).astype(int), 0, w - 1)
    row = np.clip(((1.0 - st[:, 1]) * h).astype(int), 0, h - 1)
    diffuse = getattr(material, "diffuse", None)
    gain = np.asarray(diffuse[:3], dtype=float) / 255.0 if diffuse is not None else np.ones(3)
    return img[row, col] * gain


def _flat_colour(mesh: trimesh.Trimesh) -> np.ndarray | None:
    material = getattr(mesh.visual, "material", None)
    for attr in ("main_color", "diffuse"):
        c = getattr(material, attr, None) if material is not None else None
        if c is not None:
            return np.asarray(c[:3], dtype=float) / 255.0
    return None


@functools.lru_cache(maxsize=64)
def model_surface_look(urdf: str, scale: float = 1.0, n_points: int = 6000) -> SurfaceLook | None:
    """The URDF's visual surface sampled (area-weighted) with its colours: each mesh's texture through its UVs and
    MTL (as PyBullet draws it), else the MTL's colour, else the URDF material's; None when nothing has a colour."""
    path = resolve_asset_path(urdf)
    root = ET.parse(path).getroot()
    named = {m.get("name", ""): c for m in root.findall("material")
             if (c := _urdf_colour(m, {})) is not None}
    frames = _link_frames(root, path)
    links = {link.get("name"): link for link in root.findall("link")}
    parts: list[tuple[trimesh.Trimesh, np.ndarray | None]] = []
    for name, T_root_link in frames.items():
        link = links.get(name)
        for elem in link.findall("visual") if link is not None else ():
            geom = elem.find("geometry")
            shape = next(iter(geom), None) if geom is not None else None
            if shape is None:
                continue
            urdf_rgb = _urdf_colour(elem.find("material"), named)
            T = T_root_link @ _origin(elem.find("origin"))
            if shape.tag == "mesh":
                file = os.path.normpath(os.path.join(os.path.dirname(path), shape.get("filename", "")))
                loaded = trimesh.load(file, force="scene", process=False)
                s = [float(v) for v in shape.get("scale", "1 1 1").split()]
                for m in loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]:
                    m = m.copy()
                    m.apply_scale(s if len(s) == 3 else s[0])
                    m.apply_transform(T)
                    parts.append((m, urdf_rgb))
            else:
                m = _geometry_mesh(geom, path)
                if m is not None:
                    m.apply_transform(T)
                    parts.append((m, urdf_rgb))
    parts = [(m, c) for m, c in parts if len(m.faces)]
    if not parts:
        return None
    areas = np.array([m.area for m, _ in parts])
    counts = np.maximum(1, np.round(n_points * areas / max(areas.sum(), 1e-12))).astype(int)
    pts, nrm, alb, textured = [], [], [], False
    for (m, urdf_rgb), k in zip(parts, counts):
        p_k, f_k = trimesh.sample.sample_surface(m, int(k), seed=0)
        colours = _texture_colours(m, f_k, p_k)
        if colours is not None:
            textured = True
            if urdf_rgb is not None and np.all(urdf_rgb < 0.999):
                colours = colours * urdf_rgb      # a coloured URDF material tints the texture
        else:
            flat = urdf_rgb if urdf_rgb is not None else _flat_colour(m)
            if flat is None:
                continue
            colours = np.tile(flat, (len(p_k), 1))
        pts.append(p_k)
        nrm.append(np.asarray(m.face_normals)[f_k])
        alb.append(colours)
    if not pts:
        return None
    points = np.concatenate(pts) * float(scale)
    return SurfaceLook(points, np.concatenate(nrm), np.clip(np.concatenate(alb), 0.0, 1.0),
                       points.mean(axis=0), textured, cKDTree(points), float(areas.sum()) * float(scale) ** 2)


def look_match(look: SurfaceLook, T_world_object: np.ndarray, points: np.ndarray, colors: np.ndarray,
               view_origins: np.ndarray | None = None, n_yaws: int = 24, tol_m: float = 0.006,
               sigma: float = 0.12, max_points: int = 1000) -> tuple[float, float]:
    """How well the observed coloured points agree with the model's colours at this pose: (score in 0..1, the
    extra turn about the vertical through the model's centre, in radians, that agrees best).

    The turn is searched because shape leaves it open for look-alikes (a can's print turns with the can; a box's
    print decides which of its two ends is which). Each observed point takes the colour of the model point
    nearest it (within tol_m, facing the camera that saw it); one gain for the whole object absorbs the light;
    the score is the mean of exp(-(residual / sigma)^2) over the matched points, times the matched fraction
    relative to the best turn's (a turn the shape does not allow matches fewer points)."""
    T = np.asarray(T_world_object, dtype=float)
    pts = np.asarray(points, dtype=float)
    obs = np.asarray(colors, dtype=float)
    if len(pts) < 20:
        return 0.0, 0.0
    if len(pts) > max_points:      # a mean over a thousand points is as good as over all, at a fraction of the cost
        keep = np.sort(np.random.default_rng(0).choice(len(pts), max_points, replace=False))
        pts, obs = pts[keep], obs[keep]
        view_origins = None if view_origins is None else np.asarray(view_origins)[keep]
    c_world = T[:3, :3] @ look.center + T[:3, 3]
    R_inv = T[:3, :3].T
    results = []
    for yaw in np.arange(n_yaws) * (2.0 * math.pi / n_yaws):
        cz, sz = math.cos(-yaw), math.sin(-yaw)
        Rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
        q_world = (pts - c_world) @ Rz.T + c_world          # turning the model by +yaw = the points by -yaw
        q = (q_world - T[:3, 3]) @ R_inv.T                   # R_inv applied to each row
        dist, idx = look.tree.query(q, distance_upper_bound=tol_m)
        ok = np.isfinite(dist)
        if view_origins is not None and ok.any():
            eye = (np.asarray(view_origins, dtype=float)[ok] - c_world) @ Rz.T + c_world
            eye = (eye - T[:3, 3]) @ R_inv.T
            facing = np.einsum("ij,ij->i", look.normals[idx[ok]], eye - q[ok]) > 0
            ok[np.flatnonzero(ok)[~facing]] = False
        n_ok = int(ok.sum())
        if n_ok < 20:
            results.append((0.0, n_ok, yaw))
            continue
        o, a = obs[ok], look.albedo[idx[ok]]
        gain = float(np.clip(np.sum(o * a) / max(float(np.sum(a * a)), 1e-9), 0.2, 5.0))
        r = np.linalg.norm(o - gain * a, axis=1)
        results.append((float(np.mean(np.exp(-(r / sigma) ** 2))), n_ok, yaw))
    most = max(n for _, n, _ in results)
    if most == 0:
        return 0.0, 0.0
    score, _, yaw = max(((s * n / most, n, y) for s, n, y in results), key=lambda t: t[0])
    return float(score), float(yaw)


LOOK_FLOOR = 0.3    # a print that matches nothing still keeps this share of the shape's fitness in the ranking
VISIBLE_SHARE = 0.3  # of a model's surface, about this much is seen (as voxels) when it stands free in the cameras


def textured_look(urdf: str, scale: float = 1.0) -> SurfaceLook | None:
    """The model's surface look when part of it is textured (a print to compare), else None; a model whose files
    cannot be read for colours is simply ranked by shape (logged)."""
    try:
        look = model_surface_look(urdf, float(scale))
    except (OSError, ValueError, ET.ParseError) as exc:
        log.info("%s: no surface look (%s); ranked by shape alone", urdf, exc)
        return None
    return look if look is not None and look.textured else None


def look_for(model) -> SurfaceLook | None:
    """The look to rank an ObjectModel's matches by: its textured surface when the task gives no colour hint.
    A hint (even a grey one) means the object is seen in that colour (the sim lab paints catalog objects in their
    rgba, texture off), so the model's own texture would be the wrong reference."""
    return textured_look(model.urdf, model.scale) if model.rgba is None else None


def look_rank(look: SurfaceLook | None, result, voxel_m: float | None = None) -> float:
    """The assignment's rank of a pose result (with .fitness, .T_world_object and .cluster): its fitness, scaled
    between LOOK_FLOOR and 1 by how well the print matches the segment's colours (look_match).

    voxel_m (the cloud's resolution): the print's evidence is weighed by the segment's size against the points a
    free-standing model gives (VISIBLE_SHARE of its area in voxels): a fragment (a can's lid, split off its side)
    fits any can of that size and its few colours match any print about as well, so it must not outrank the
    whole object's segment."""
    if look is None or getattr(result, "cluster", None) is None:
        return float(result.fitness)
    pts = result.cluster.points
    score, _ = look_match(look, result.T_world_object, pts.points, pts.colors, pts.view_origins)
    if voxel_m and look.area_m2 > 0:
        score *= min(1.0, len(pts) / (VISIBLE_SHARE * look.area_m2 / voxel_m ** 2))
    return float(result.fitness) * (LOOK_FLOOR + (1.0 - LOOK_FLOOR) * score)
