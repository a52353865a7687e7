"""Segments to objects (reconstruction/assignment.py) and a model's own colours (reconstruction/appearance.py)."""

from dataclasses import dataclass

import numpy as np
import pytest

from reconstruction.appearance import histogram_similarity, model_appearance
from reconstruction.assignment import assign_best_first
from reconstruction.models import ObjectModel
from reconstruction.reconstructor import color_hint


@dataclass
class _Fit:
    fitness: float


def _run(fits: dict[tuple[str, int], float], names=("a", "b"), good=0.95):
    segments = sorted({s for _, s in fits})
    calls = []

    def candidates(name, used):
        return [(s, (s,)) for s in segments if s not in used and (name, s) in fits]

    def estimate(name, segment):
        calls.append((name, segment))
        return _Fit(fits[(name, segment)])

    results, reasons = assign_best_first(list(names), candidates, estimate, min_fitness=0.5, good_fitness=good)
    return results, reasons, calls


def test_the_better_match_takes_the_segment_whatever_the_order():
    # a fits segment 0 a little better than segment 1; b fits only segment 0, and better than a does
    fits = {("a", 0): 0.7, ("a", 1): 0.6, ("b", 0): 0.9}
    for names in (("a", "b"), ("b", "a")):
        results, reasons, calls = _run(fits, names)
        assert results["b"].fitness == 0.9 and results["a"].fitness == 0.6 and not reasons
        assert len(calls) == len(set(calls))          # every object x segment pair registered once


def test_a_poor_match_claims_nothing_and_an_object_without_segments_is_reported():
    results, reasons, _ = _run({("a", 0): 0.3, ("b", 1): 0.8})
    assert results["b"].fitness == 0.8 and results["a"].fitness == 0.3     # reported, to be called not found
    results, reasons, _ = _run({("a", 0): 0.3, ("b", 0): 0.8})
    assert results["b"].fitness == 0.8 and "a" not in results and "no candidate" in reasons["a"]
    results, reasons, _ = _run({("a", 0): 0.9}, names=("a", "b"))
    assert "b" in reasons and "a" in results


@pytest.mark.parametrize("urdf,scale,distinct", [
    ("pybullet_data:duck_vhacd.urdf", 1.0, True),         # a yellow texture
    ("pybullet_data:jenga/jenga.urdf", 1.0, True),        # a wooden texture
    ("pybullet_data:tray/traybox.urdf", 0.5, False),      # grey metal
    ("pybullet_data:soccerball.urdf", 0.1, False),        # black and white
])
def test_model_colours_from_the_model_itself(urdf, scale, distinct):
    app = model_appearance(urdf, scale)
    assert app.n_pixels > 1000
    assert (app.hint() is not None) == distinct
    assert color_hint(ObjectModel("x", urdf, scale)) == app.hint()


def test_a_task_hint_wins_and_same_colours_look_alike():
    duck = "pybullet_data:duck_vhacd.urdf"
    assert color_hint(ObjectModel("d", duck, 1.0, rgba=(0.1, 0.2, 0.9, 1.0))) == (0.1, 0.2, 0.9)
    assert color_hint(ObjectModel("d", duck, 1.0, rgba=(0.5, 0.5, 0.5, 1.0))) is None   # grey: tells nothing
    a, b = model_appearance(duck, 1.0), model_appearance("pybullet_data:jenga/jenga.urdf", 1.0)
    assert histogram_similarity(a.hist, a.hist) == pytest.approx(1.0)
    assert histogram_similarity(a.hist, b.hist) < 0.5
    assert np.argmax(a.rgb) in (0, 1) and a.rgb[2] < 0.2      # yellow: red and green, little blue
