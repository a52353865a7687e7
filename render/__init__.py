"""Annotated images of the twin: virtual views, numbered candidate curves, end-pose axis markers, a legend.

Floor 3: imports only `sim`. The planner turns each RenderedView into a scoring.ViewImage.
"""

from render.overlay import Overlay, OverlayStyle, Trace, draw_overlay
from render.palette import PALETTE, color_of
from render.renderer import RenderedView, Renderer, render_scene_image, save_pngs
from render.views import ViewConfigError, VirtualView, load_views, select_views

__all__ = [
    "PALETTE",
    "Overlay",
    "OverlayStyle",
    "RenderedView",
    "Renderer",
    "Trace",
    "ViewConfigError",
    "VirtualView",
    "color_of",
    "draw_overlay",
    "load_views",
    "render_scene_image",
    "save_pngs",
    "select_views",
]
