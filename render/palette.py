"""Candidate colours: a fixed palette ordered so that the first colours stay apart under colour blindness.

The first seven are Okabe & Ito's colour-universal-design set (black left out: the robot is dark). The rest
come from Paul Tol's schemes, Kelly's maximum-contrast list and a few light tints, ordered greedily so that
each new colour is as far as possible (CIE Lab distance) from the ones before it, from the axis colours,
from the tan table and from black and white (black is the curves' outline, white marks the chosen
candidate). Pure red, green and blue are left to the axis markers. A candidate's colour follows its id, so
it is the same in every view and every step.
"""

from __future__ import annotations

RGB = tuple[int, int, int]

PALETTE: tuple[RGB, ...] = (
    (230, 159, 0),     # orange            (Okabe-Ito)
    (86, 180, 233),    # sky blue          (Okabe-Ito)
    (0, 158, 115),     # bluish green      (Okabe-Ito)
    (240, 228, 66),    # yellow            (Okabe-Ito)
    (0, 114, 178),     # blue              (Okabe-Ito)
    (213, 94, 0),      # vermillion        (Okabe-Ito)
    (204, 121, 167),   # reddish purple    (Okabe-Ito)
    (238, 51, 119),    # magenta           (Tol vibrant)
    (130, 45, 23),     # reddish brown     (Kelly)
    (51, 34, 136),     # indigo            (Tol muted)
    (170, 255, 195),   # mint
    (187, 153, 255),   # lavender
    (153, 153, 51),    # olive             (Tol muted)
    (249, 147, 121),   # yellowish pink    (Kelly)
    (0, 210, 210),     # cyan
    (136, 34, 85),     # wine              (Tol muted)
    (141, 182, 0),     # yellow green      (Kelly)
    (96, 78, 151),     # violet            (Kelly)
    (255, 187, 221),   # pale pink
    (130, 130, 130),   # grey
)

# Axis markers at a candidate's end pose: x, y, z = red, green, blue (the ROS / RViz convention).
AXIS_COLORS: tuple[RGB, RGB, RGB] = ((235, 35, 35), (40, 200, 40), (40, 100, 255))
AXIS_NAMES = ("red", "green", "blue")

OUTLINE: RGB = (25, 25, 25)
HIGHLIGHT_OUTLINE: RGB = (255, 255, 255)


def color_of(candidate_id: int) -> RGB:
    """The colour of a candidate id (stable across views and steps)."""
    return PALETTE[int(candidate_id) % len(PALETTE)]


def relative_luminance(rgb: RGB) -> float:
    """WCAG relative luminance in [0, 1]."""
    def lin(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(float(c)) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_color_on(rgb: RGB) -> RGB:
    """Black or white, whichever contrasts more with the fill colour (WCAG contrast ratio)."""
    lum = relative_luminance(rgb)
    return (0, 0, 0) if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else (255, 255, 255)
