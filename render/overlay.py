"""Drawing candidates onto a view image: coloured numbered curves, end-pose axis markers and a legend.

Everything here works on an RGB array plus the view's `CameraSpec`; nothing touches PyBullet. Curves, axis
markers and labels are drawn on a canvas `supersample` times larger than the image and box-filtered down,
which gives anti-aliased edges (ImageDraw itself does not anti-alias lines). The twin image is scaled up with
nearest-neighbour first, so where nothing is drawn the downsampled result equals the input exactly.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from render.palette import AXIS_COLORS, AXIS_NAMES, HIGHLIGHT_OUTLINE, OUTLINE, color_of, text_color_on
from render.projection import checked_image, clip_polylines, project_visible, simplify, to_camera_frame
from sim.camera import CameraSpec
from sim.geometry import Pose

Point = tuple[float, float]


@dataclass(frozen=True)
class OverlayStyle:
    """Sizes in output pixels (before supersampling) and metres."""

    supersample: int = 2
    curve_width_px: float = 3.0
    highlight_width_px: float = 5.0
    outline_px: float = 1.0
    highlight_outline_px: float = 2.0
    axis_length_m: float = 0.04
    axis_width_px: float = 2.0
    label_font_px: int = 12
    legend_font_px: int = 12
    start_dot_px: float = 3.5
    axes: bool = True
    legend: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.supersample, int) or not 1 <= self.supersample <= 4:
            raise ValueError(f"OverlayStyle.supersample: expected an integer in 1..4, got {self.supersample!r}")
        for name in ("curve_width_px", "highlight_width_px", "axis_width_px", "axis_length_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OverlayStyle.{name}: expected a positive number, got {getattr(self, name)!r}")
        for name in ("outline_px", "highlight_outline_px", "start_dot_px"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"OverlayStyle.{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if self.label_font_px < 6 or self.legend_font_px < 6:
            raise ValueError("OverlayStyle: label_font_px and legend_font_px must be >= 6 to stay legible")


@dataclass(frozen=True)
class Trace:
    """One candidate as drawn: the TCP path it reached (world, metres) and its end pose for the axis marker."""

    id: int
    path_xyz: np.ndarray
    end_pose: Pose | None = None


@dataclass(frozen=True)
class Overlay:
    """An annotated image and where things were drawn, in pixels (u right, v down, from the top-left).

    endpoints_px: candidate id -> projected end of its path, None when behind the camera or off-image.
    labels_px: candidate id -> centre of its number label (only for candidates with a visible curve).
    """

    rgb: np.ndarray
    endpoints_px: dict[int, Point | None]
    labels_px: dict[int, Point]


@dataclass
class _Prepared:
    trace: Trace
    color: tuple[int, int, int]
    pieces: list[np.ndarray]               # visible pixel polylines, simplified for drawing
    raw_pieces: list[np.ndarray]           # the same, every point (for placing the legend and labels)
    depth_m: float                         # mean camera depth, for painter's ordering
    endpoint: Point | None                 # projected end, None if behind the camera or off-image
    axes: list[tuple[float, int, np.ndarray]]   # (tip depth, axis index, pixel segment)


@functools.lru_cache(maxsize=16)
def font(size_px: int) -> ImageFont.ImageFont:
    """Pillow's bundled scalable font (same glyphs on every machine); the bitmap font on old Pillow."""
    try:
        return ImageFont.load_default(size=size_px)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _dedupe(path: np.ndarray, min_step_m: float = 1e-4) -> np.ndarray:
    """Drop points within 0.1 mm of the previous one (a rollout holds still while the gripper acts).

    The last point is always kept, so the curve ends exactly where the path does.
    """
    if len(path) < 2:
        return path
    keep = np.ones(len(path), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(path, axis=0), axis=1) > min_step_m
    keep[-1] = True
    return path[keep]


def _prepare_all(cam: CameraSpec, traces: Sequence[Trace], style: OverlayStyle) -> list[_Prepared]:
    paths, tips = [], []
    for trace in traces:
        path = np.asarray(trace.path_xyz, dtype=float).reshape(-1, 3)
        if len(path) == 0 and trace.end_pose is not None:
            path = trace.end_pose.position.reshape(1, 3)
        paths.append(_dedupe(path[np.all(np.isfinite(path), axis=1)]))
        if trace.end_pose is not None and style.axes:
            origin = trace.end_pose.position
            R = trace.end_pose.rotation()
            tips.append([np.stack([origin, origin + style.axis_length_m * R[:, k]]) for k in range(3)])
        else:
            tips.append([])
    axis_paths = [seg for t in tips for seg in t]
    clipped = clip_polylines(cam, paths + axis_paths)
    tip_depth = to_camera_frame(cam, np.array([seg[1] for seg in axis_paths]).reshape(-1, 3))[:, 2]
    out, j = [], len(paths)
    for i, trace in enumerate(traces):
        path = paths[i]
        depth = float(np.mean(to_camera_frame(cam, path)[:, 2])) if len(path) else math.inf
        endpoint = project_visible(cam, path[-1]) if len(path) else None
        axes = []
        for k in range(len(tips[i])):
            if clipped[j]:
                axes.append((float(tip_depth[j - len(paths)]), k, clipped[j][0]))
            j += 1
        pieces = [simplify(piece) for piece in clipped[i]]
        out.append(_Prepared(trace, color_of(trace.id), pieces, clipped[i], depth, endpoint, axes))
    return out


class _Canvas:
    """A supersampled drawing surface; takes output-pixel coordinates and widths."""

    def __init__(self, rgb: np.ndarray, scale: int) -> None:
        self.scale = scale
        self.height, self.width = rgb.shape[:2]
        image = Image.fromarray(rgb)
        if scale > 1:
            image = image.resize((self.width * scale, self.height * scale), Image.Resampling.NEAREST)
        self.image = image
        self.draw = ImageDraw.Draw(image)

    def xy(self, uv) -> np.ndarray:
        # Output pixel u covers canvas pixels s*u .. s*u + s - 1, whose centre is s*u + (s - 1) / 2.
        return np.asarray(uv, dtype=float) * self.scale + (self.scale - 1) / 2.0

    def polyline(self, uv: np.ndarray, color, width_px: float) -> None:
        pts = self.xy(uv)
        w = max(1, int(round(width_px * self.scale)))
        if len(pts) > 1:
            self.draw.line([tuple(p) for p in pts], fill=color, width=w, joint="curve")
        r = w / 2.0
        for p in (pts[0], pts[-1]):  # round caps
            self.draw.ellipse((p[0] - r, p[1] - r, p[0] + r, p[1] + r), fill=color)

    def disc(self, uv, radius_px: float, color, outline=None, outline_px: float = 0.0) -> None:
        x, y = self.xy(uv)
        r = radius_px * self.scale
        if outline is not None and outline_px > 0:
            ro = r + outline_px * self.scale
            self.draw.ellipse((x - ro, y - ro, x + ro, y + ro), fill=outline)
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=color)

    def sprite(self, uv, sprite: Image.Image) -> None:
        """Paste an RGBA sprite (made at this canvas's scale) centred on uv, blending by its alpha."""
        x, y = self.xy(uv)
        # the sprite's centre is at (size - 1) / 2 in pixel-centre coordinates
        left, top = int(round(x - (sprite.width - 1) / 2.0)), int(round(y - (sprite.height - 1) / 2.0))
        self.image.paste(sprite, (left, top), sprite)

    def result(self) -> Image.Image:
        return self.image.reduce(self.scale) if self.scale > 1 else self.image


def _cased(canvas: _Canvas, uv: np.ndarray, color, width_px: float, casings) -> None:
    """A line with outlines: casings are (colour, extra width per side), drawn outermost first."""
    total = sum(extra for _, extra in casings)
    for c, extra in casings:
        canvas.polyline(uv, c, width_px + 2 * total)
        total -= extra
    canvas.polyline(uv, color, width_px)


def _label_radius(text: str, size_px: int) -> float:
    left, _, right, _ = font(size_px).getbbox(text)
    return max(0.75 * size_px, (right - left) / 2.0 + 3.0)


@functools.lru_cache(maxsize=512)
def _label_sprite(text: str, size_px: int, fill: tuple[int, int, int], rings: tuple, scale: int) -> Image.Image:
    """A filled disc with outline rings (colour, width px, outermost first) and centred text, as RGBA.

    Cached: the same ids in the same colours are drawn in every view of every step.
    """
    r = _label_radius(text, size_px) * scale
    total = sum(w for _, w in rings) * scale
    half = int(math.ceil(r + total)) + 2
    img = Image.new("RGBA", (2 * half, 2 * half), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    c = half - 0.5  # the centre of the sprite in pixel-centre coordinates
    ro = r + total
    for color, w in rings:
        draw.ellipse((c - ro, c - ro, c + ro, c + ro), fill=(*color, 255))
        ro -= w * scale
    draw.ellipse((c - r, c - r, c + r, c + r), fill=(*fill, 255))
    draw.text((c, c), text, font=font(size_px * scale), fill=(*text_color_on(fill), 255), anchor="mm")
    return img


def _clutter_integral(width: int, height: int, curves: Sequence[np.ndarray], markers: Sequence[np.ndarray]
                      ) -> np.ndarray:
    """Summed-area table, at half resolution, of what a label should not cover.

    Curve pixels weigh 1 and axis-marker pixels 5. Half resolution is plenty for a ~20 px label and makes the
    table ~4x cheaper (it is rebuilt for every view).
    """
    mask = Image.new("L", ((width + 1) // 2, (height + 1) // 2), 0)
    draw = ImageDraw.Draw(mask)
    for weight, lines, w in ((1, curves, 3), (5, markers, 2)):   # half of the drawn widths with outlines
        for uv in lines:
            if len(uv) > 1:
                draw.line([(float(u) / 2, float(v) / 2) for u, v in uv], fill=weight, width=w)
    table = np.zeros((mask.height + 1, mask.width + 1), dtype=np.int32)
    table[1:, 1:] = np.asarray(mask, dtype=np.int32).cumsum(axis=0, dtype=np.int32).cumsum(axis=1, dtype=np.int32)
    return table


def _box_sums(table: np.ndarray, x: np.ndarray, y: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Sum of the half-resolution mask over the squares [x - half, x + half] x [y - half, y + half] (pixels)."""
    h, w = table.shape[0] - 1, table.shape[1] - 1
    x0 = np.clip(np.floor((x - half) / 2).astype(int), 0, w)
    x1 = np.clip(np.ceil((x + half) / 2).astype(int) + 1, 0, w)
    y0 = np.clip(np.floor((y - half) / 2).astype(int), 0, h)
    y1 = np.clip(np.ceil((y + half) / 2).astype(int) + 1, 0, h)
    return table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]


def _place_labels(items, width: int, height: int, keep_out: Sequence[tuple[float, float, float, float]],
                  clutter: np.ndarray, endpoints: np.ndarray, starts: np.ndarray) -> dict[int, Point]:
    """Greedy placement of round labels next to their anchors.

    items: (id, anchor (u, v), outward direction (unit 2-vector), radius) in priority order. Tries 12
    directions on four rings, preferring the inner ring and the outward direction. Costs: leaving the image,
    touching a placed label or a keep-out box (the legend) are heavy; covering the start point, another
    candidate's end point, an axis marker or curve points are lighter, in that order. Everything but the
    placed labels is scored for all items at once; only the label-vs-label test runs per item.
    """
    if not items:
        return {}
    offsets = np.radians([0, 30, -30, 60, -60, 90, -90, 120, -120, 150, -150, 180])
    ring = np.arange(4.0)
    anchors = np.array([it[1] for it in items], dtype=float)                       # (n, 2)
    base = np.array([math.atan2(it[2][1], it[2][0]) for it in items])              # (n,)
    radius = np.array([it[3] for it in items], dtype=float)                        # (n,)
    dist = (ring[None, :] + 1.0) * radius[:, None] + 7.0 + 4.0 * ring[None, :]     # (n, 4)
    ang = base[:, None, None] + offsets[None, None, :]                             # (n, 1, 12)
    c = anchors[:, None, None, :] + dist[:, :, None, None] * np.stack([np.cos(ang), np.sin(ang)], axis=-1)
    n = len(items)
    c = c.reshape(n, -1, 2)                                                        # (n, 48, 2)
    r = radius[:, None]
    cost = np.broadcast_to(ring[:, None] * 2.0 + np.arange(len(offsets))[None, :] * 0.1, (n, 4, 12))
    cost = cost.reshape(n, -1).copy()
    x, y = c[..., 0], c[..., 1]
    cost += 1000.0 * ((x - r < 1) | (x + r > width - 2) | (y - r < 1) | (y + r > height - 2))
    for x0, y0, x1, y1 in keep_out:
        dx = np.maximum(np.maximum(x0 - x, x - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - y, y - y1), 0.0)
        cost += 100.0 * (np.hypot(dx, dy) < r + 2.0)
    flat = c.reshape(-1, 2)
    r_flat = np.repeat(radius, c.shape[1])[:, None]

    def covered(points: np.ndarray, clearance: float) -> np.ndarray:
        if len(points) == 0:
            return np.zeros(c.shape[:2])
        d2 = ((flat[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
        return (d2 < (r_flat + clearance) ** 2).sum(axis=1).reshape(c.shape[:2])

    cost += 50.0 * covered(starts, 6.0) + 10.0 * covered(endpoints, 4.0)
    # a curve across a label covers ~r x 1.5 half-resolution pixels (cost ~1.5 for r = 9); an axis marker
    # across it ~r x 1 pixels of weight 5 (cost ~4)
    cost += 0.1 * _box_sums(clutter, x, y, r + 1.0)

    placed = np.zeros((0, 3))
    out: dict[int, Point] = {}
    for i, (cid, *_rest) in enumerate(items):
        total = cost[i]
        if len(placed):
            gap = np.hypot(c[i, :, None, 0] - placed[None, :, 0], c[i, :, None, 1] - placed[None, :, 1])
            total = total + 100.0 * (gap < radius[i] + placed[None, :, 2] + 2.0).sum(axis=1)
        best = int(np.argmin(total))
        out[cid] = (float(c[i, best, 0]), float(c[i, best, 1]))
        placed = np.vstack([placed, [c[i, best, 0], c[i, best, 1], radius[i]]])
    return out


def _legend_lines(view_name: str, n: int, highlight: int | None, axes: bool = True) -> tuple:
    """Legend text as lines of (text, colour) runs; hashable so that the rendered legend can be cached."""
    white = (255, 255, 255)
    lines = [[(f"view: {view_name}   candidates: {n}", white)]]
    axes_line = [("end axes ", white)]
    for k, letter in enumerate("xyz"):
        axes_line.append((letter + " ", AXIS_COLORS[k]))
    axes_line.append(("= ", white))
    for k, name in enumerate(AXIS_NAMES):
        axes_line.append((name + ("" if k == 2 else " "), AXIS_COLORS[k]))
    if axes:
        lines.append(axes_line)
    lines.append([("o = start   number = candidate id", white)])
    if highlight is not None:
        lines.append([(f"chosen: {highlight} (thick, white outline)", white)])
    return tuple(tuple(line) for line in lines)


@functools.lru_cache(maxsize=64)
def _legend_layer(lines: tuple, size_px: int) -> Image.Image:
    """The legend as an RGBA image: a translucent dark box (the scene stays faintly visible) with text."""
    f = font(size_px)
    pad, step = 4, size_px + 3
    width = int(math.ceil(2 * pad + max(sum(f.getlength(text) for text, _ in line) for line in lines)))
    height = 2 * pad + step * len(lines) - 2
    img = Image.new("RGBA", (width, height), (0, 0, 0, 170))
    draw = ImageDraw.Draw(img)
    y = pad
    for line in lines:
        x = float(pad)
        for text, color in line:
            draw.text((x, y), text, font=f, fill=(*color, 255))
            x += f.getlength(text)
        y += step
    return img


def _legend_corner(size: tuple[int, int], width: int, height: int, pieces: Sequence[np.ndarray],
                   margin: int = 4) -> tuple[int, int, int, int]:
    """The image corner where the legend covers the fewest curve points (ties: top-left first)."""
    w, h = size
    corners = [(margin, margin), (margin, height - h - margin), (width - w - margin, margin),
               (width - w - margin, height - h - margin)]
    pts = np.concatenate(pieces) if pieces else np.zeros((0, 2))
    best, best_count = corners[0], None
    for x0, y0 in corners:
        inside = (pts[:, 0] >= x0 - 6) & (pts[:, 0] <= x0 + w + 6) & (pts[:, 1] >= y0 - 6) & (pts[:, 1] <= y0 + h + 6)
        count = int(inside.sum())
        if best_count is None or count < best_count:
            best, best_count = (x0, y0), count
    return best[0], best[1], best[0] + w, best[1] + h


def draw_overlay(rgb: np.ndarray, cam: CameraSpec, traces: Sequence[Trace], view_name: str | None = None,
                 highlight: int | None = None, style: OverlayStyle | None = None) -> Overlay:
    """Draw the candidates on a copy of rgb (H, W, 3) uint8 seen through cam.

    Each candidate: its path as a thick curve in its palette colour with a dark outline (the highlighted one
    thicker, with a white outline, on top), x/y/z axis markers at its end pose, and its id in a disc next to
    the end of the curve. A white dot marks where the paths start; a legend names the view and the axes.
    """
    style = style or OverlayStyle()
    rgb = checked_image(rgb, cam, "draw_overlay")
    ids = [t.id for t in traces]
    if len(set(ids)) != len(ids):
        raise ValueError(f"draw_overlay: candidate ids must be unique, got {ids}")
    if highlight is not None and highlight not in ids:
        raise ValueError(f"draw_overlay: highlight {highlight} is not among the candidate ids {ids}")
    view_name = view_name or cam.name
    prepared = _prepare_all(cam, traces, style)
    # Painter's order: far curves first, the chosen one last so nothing hides it.
    order = sorted(prepared, key=lambda q: (q.trace.id == highlight, -q.depth_m))
    starts = {}
    for q in prepared:
        if q.pieces and len(q.trace.path_xyz):
            first = project_visible(cam, np.asarray(q.trace.path_xyz, dtype=float).reshape(-1, 3)[0])
            if first is not None:
                starts[(round(first[0]), round(first[1]))] = first

    legend = _legend_layer(_legend_lines(view_name, len(traces), highlight, style.axes), style.legend_font_px) \
        if style.legend else None
    legend_box = _legend_corner(legend.size, cam.width, cam.height, [p for q in prepared for p in q.raw_pieces]) \
        if legend is not None else None

    items = []  # (id, anchor, outward direction, radius), the chosen candidate first
    for q in sorted(prepared, key=lambda q: (q.trace.id != highlight, q.trace.id)):
        if not q.raw_pieces:
            continue
        last = q.raw_pieces[-1]
        anchor = q.endpoint
        if anchor is None:  # the path leaves the view: label where it was last seen, inside the image
            anchor = (float(np.clip(last[-1, 0], 0, cam.width - 1)), float(np.clip(last[-1, 1], 0, cam.height - 1)))
        # the last direction of travel over a few pixels points away from the curve
        back = np.hypot(*(last[-1] - last).T)
        far = np.flatnonzero(back > 6.0)
        step = last[-1] - last[far[-1] if len(far) else 0]
        norm = float(np.hypot(*step))
        direction = step / norm if norm > 1e-6 else np.array([0.0, -1.0])
        size = style.label_font_px + (2 if q.trace.id == highlight else 0)
        items.append((q.trace.id, anchor, direction, _label_radius(str(q.trace.id), size)))
    ends = np.array([q.endpoint for q in prepared if q.endpoint is not None]).reshape(-1, 2)
    clutter = _clutter_integral(cam.width, cam.height, [p for q in prepared for p in q.pieces],
                                [s[2] for q in prepared for s in q.axes])
    places = _place_labels(items, cam.width, cam.height, [legend_box] if legend_box else [], clutter, ends,
                           np.array(list(starts.values())).reshape(-1, 2))

    canvas = _Canvas(rgb, style.supersample)
    # leaders first: curves and markers are drawn over them
    by_id = {q.trace.id: q for q in prepared}
    for cid, anchor, _, r in items:
        gap = np.asarray(places[cid]) - np.asarray(anchor)
        dist = float(np.hypot(*gap))
        if dist > r + 1.0:  # a leader from the end point to the label's rim
            rim = np.asarray(anchor) + gap * (dist - r) / dist
            _cased(canvas, np.stack([anchor, rim]), by_id[cid].color, 1.5, [(OUTLINE, 1.0)])

    for q in order:
        chosen = q.trace.id == highlight
        for piece in q.pieces:
            if chosen:
                _cased(canvas, piece, q.color, style.highlight_width_px,
                       [(OUTLINE, style.outline_px), (HIGHLIGHT_OUTLINE, style.highlight_outline_px)])
            else:
                _cased(canvas, piece, q.color, style.curve_width_px, [(OUTLINE, style.outline_px)])

    for uv in starts.values():
        canvas.disc(uv, style.start_dot_px, (255, 255, 255), OUTLINE, style.outline_px)

    for q in order:
        for _, k, seg in sorted(q.axes, key=lambda a: -a[0]):
            _cased(canvas, seg, AXIS_COLORS[k], style.axis_width_px, [(OUTLINE, style.outline_px)])

    for cid, _, _, _ in items:
        if cid == highlight:
            rings = ((OUTLINE, style.outline_px), (HIGHLIGHT_OUTLINE, style.highlight_outline_px))
            size = style.label_font_px + 2
        else:
            rings = ((OUTLINE, style.outline_px),)
            size = style.label_font_px
        canvas.sprite(places[cid], _label_sprite(str(cid), size, by_id[cid].color, rings, canvas.scale))

    image = canvas.result()
    if legend is not None:
        image.paste(legend, legend_box[:2], legend)
    return Overlay(np.array(image), {q.trace.id: q.endpoint for q in prepared}, places)
