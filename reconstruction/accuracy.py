"""How right an estimate is against the truth (evaluation only: benchmarks and reports, never the planner).

A named object's outcome: 'found' (reported found and within WRONG_T_M / WRONG_R_DEG of the truth, symmetry-aware),
'doubtful' (reported found but flagged low confidence, and off by more than that: the flag did its job),
'wrong' (reported found and trusted, but off by more than that: the failure that must not happen) or 'missing'.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from reconstruction.model_symmetry import object_symmetry
from reconstruction.models import ObjectModel
from sim.geometry import Pose, rotation_error_deg

WRONG_T_M = 0.02        # a trusted pose further than this from the truth is wrongly placed ...
WRONG_R_DEG = 20.0      # ... or turned further than this (symmetry-aware)
OUTCOMES = ("found", "doubtful", "wrong", "missing")


def pose_errors(est: Pose, truth: Pose, symmetry: str = "none") -> tuple[float, float]:
    """(translation error mm, symmetry-aware rotation error deg)."""
    return (float(np.linalg.norm(est.position - truth.position)) * 1000.0,
            rotation_error_deg(est.rotation(), truth.rotation(), symmetry))


def object_pose_errors(est: Pose, truth: Pose, model: ObjectModel) -> tuple[float, float]:
    """(translation error mm, rotation error deg) up to the model's whole symmetry (model_symmetry.object_symmetry:
    a lying can's turns about its own axis count as no error; a turn about an off-origin centre moves the origin)."""
    dt_m, dr_deg = object_symmetry(model).pose_error(est.matrix(), truth.matrix())
    return dt_m * 1000.0, dr_deg


def outcome(found: bool, low_confidence: bool, t_err_mm: float, r_err_deg: float) -> str:
    if not found:
        return "missing"
    off = not (t_err_mm <= WRONG_T_M * 1000.0 and r_err_deg <= WRONG_R_DEG)   # NaN counts as off
    if not off:
        return "found"
    return "doubtful" if low_confidence else "wrong"


def count_outcomes(outcomes: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOMES, 0)
    for o in outcomes:
        if o not in counts:
            raise ValueError(f"outcome {o!r}: expected one of {OUTCOMES}")
        counts[o] += 1
    return counts


def format_counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    pct = 100.0 * counts["found"] / total if total else math.nan
    return (f"found {counts['found']}/{total} ({pct:.1f}%), low confidence and off {counts['doubtful']}, "
            f"missing {counts['missing']}, wrongly placed {counts['wrong']} (off: over {WRONG_T_M * 1000:.0f} mm "
            f"or {WRONG_R_DEG:.0f} deg)")
