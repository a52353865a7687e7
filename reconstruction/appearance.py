"""A catalog model's look, from the model itself: its URDF material colours, MTL colours and texture images as
PyBullet composes them, rendered from a ring of views in a private client and reduced to colour statistics.

A task need not give a colour hint (`rgba`): where the model's own colours are distinctive (one dominant,
saturated chromaticity: the yellow duck, the wooden jenga block, the red mug), that colour serves as the hint
the colour segmentation and the outline refinement use; where they are not (a black-and-white soccer ball, a
grey tray), the object is found by its shape alone. The colour histogram also tells same-shape instances apart.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pybullet as p

from reconstruction.models import color_saturation, load_geometry
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
