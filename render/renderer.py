"""Twin + rollouts -> one annotated image per virtual view, the pictures the VLM agents are asked about."""

from __future__ import annotations

import io
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from render.frames import Frame, draw_frames
from render.overlay import OverlayStyle, Trace, draw_overlay
from render.views import VirtualView, load_views
from sim.camera import CameraSpec, render_rgbd
from sim.rollout import Rollout
from sim.world import World

log = logging.getLogger(__name__)

# zlib level 1: ~1.6x faster than Pillow's default 6 on these 512x384 views (~6.5 vs ~10.5 ms on 2 cores),
# for ~10 % more bytes.
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class RenderedView:
    """One annotated view (what scoring.ViewImage is made from).

    endpoints_px: candidate id -> (u, v) of the end of its path, None when that point is behind the camera or
    outside the image. labels_px: where each visible candidate's number was drawn. camera: the view's pinhole
    camera, for anyone who wants to project more points into the picture.
    """

    name: str
    rgb: np.ndarray = field(repr=False)
    png: bytes = field(repr=False)
    endpoints_px: dict[int, tuple[float, float] | None]
    camera: CameraSpec
    labels_px: dict[int, tuple[float, float]] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def encode_png(rgb: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def render_scene_image(world: World, view: VirtualView | CameraSpec) -> np.ndarray:
    """The twin in its current state through a view, without overlays: (H, W, 3) uint8.

    A drawing needs no segmentation mask; skipping it saves ~10-15 ms of the ~50 ms an EGL frame costs.
    """
    cam = view.camera() if isinstance(view, VirtualView) else view
    return render_rgbd(world.client, cam, renderer=world.renderer, segmentation=False).rgb


def traces_of(rollouts: Sequence[Rollout]) -> list[Trace]:
    """What is drawn for each rollout: the TCP path reached in the twin and the TCP pose at its end."""
    return [Trace(r.candidate.id, np.asarray(r.ee_path_xyz, dtype=float).reshape(-1, 3), r.ee_end_pose)
            for r in rollouts]


class Renderer:
    """Draws every candidate into every virtual view of the twin.

    The twin is rendered as it is now (the start of the MPC step: rollouts restore the world), and each
    candidate's curve is the path its TCP actually took in the twin, not the commanded waypoints.
    """

    def __init__(self, views: Sequence[VirtualView], style: OverlayStyle | None = None,
                 png_compress_level: int = PNG_COMPRESS_LEVEL) -> None:
        views = tuple(views)
        if not views:
            raise ValueError("Renderer needs at least one view")
        names = [v.name for v in views]
        if len(set(names)) != len(names):
            raise ValueError(f"Renderer: view names must be unique, got {names}")
        if not all(isinstance(v, VirtualView) for v in views):
            raise TypeError("Renderer: views must be VirtualView instances (see render.views.load_views)")
        self.views = views
        self.style = style or OverlayStyle()
        self.png_compress_level = int(png_compress_level)
        self.cameras = tuple(v.camera() for v in views)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, names: Sequence[str] | None = None, **kw) -> Renderer:
        return cls(load_views(path, names), **kw)

    def render(self, world: World, rollouts: Sequence[Rollout], highlight: int | None = None
               ) -> list[RenderedView]:
        """One RenderedView per view, in the order of self.views; highlight is a candidate id to emphasise."""
        t0 = time.perf_counter()
        traces = traces_of(rollouts)
        out = []
        for view, cam in zip(self.views, self.cameras):
            scene = render_scene_image(world, cam)
            drawn = draw_overlay(scene, cam, traces, view.name, highlight, self.style)
            out.append(RenderedView(view.name, drawn.rgb, encode_png(drawn.rgb, self.png_compress_level),
                                    drawn.endpoints_px, cam, drawn.labels_px))
        log.debug("rendered %d views x %d candidates in %.3f s", len(out), len(traces), time.perf_counter() - t0)
        return out

    def render_frames(self, world: World, frames: Sequence[Frame]) -> list[RenderedView]:
        """One view per virtual view of the twin as it is, with the frames' labelled axes drawn (the pictures of
        the rotation question); no candidates, so endpoints_px is empty."""
        out = []
        for view, cam in zip(self.views, self.cameras):
            drawn = draw_frames(render_scene_image(world, cam), cam, frames, view.name)
            out.append(RenderedView(view.name, drawn.rgb, encode_png(drawn.rgb, self.png_compress_level), {}, cam))
        return out


def save_pngs(views: Sequence[RenderedView], directory: str | os.PathLike, prefix: str = "") -> list[str]:
    """Write each view's PNG bytes as <directory>/<prefix><name>.png; returns the paths in view order."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for v in views:
        path = os.path.join(os.fspath(directory), f"{prefix}{v.name}.png")
        with open(path, "wb") as f:
            f.write(v.png)
        paths.append(path)
    return paths
