"""A neutral object split in two segments is a candidate as the pair (the bowl on a cabinet: one part stood
apart, the other was cut off the cabinet's top); two specks never crowd out an object's own segment."""

from __future__ import annotations

import numpy as np

from reconstruction.candidates import candidate_clusters
from reconstruction.fusion import PointSet
from reconstruction.segmentation import NEUTRAL, Cluster
from tests.fakes.recon_scenes import models_for


def _blob(lo, hi, step=0.004):
    axes = [np.arange(a, b + 1e-9, step) for a, b in zip(lo, hi)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return Cluster(PointSet(pts, np.full_like(pts, 0.4), np.zeros_like(pts)), NEUTRAL)


def test_the_two_halves_of_an_object_are_a_candidate_together():
    tray = models_for({"t": "tray"})["t"]
    size = float(np.max(tray.geometry.extent))
    half = 0.5 * size
    a = _blob((0.4, 0.0, 0.0), (0.4 + half - 0.01, size, 0.02))
    b = _blob((0.4 + half + 0.005, 0.0, 0.0), (0.4 + size, size, 0.02))    # 15 mm apart
    far = _blob((0.9, 0.5, 0.0), (0.9 + half, 0.5 + size, 0.02))
    cands = candidate_clusters(tray, NEUTRAL, [a, b, far], set(), 3)
    assert [1, 0] != cands[0][1] and sorted(cands[0][1]) == [0, 1]      # the whole comes first: closest in size
    assert len(cands[0][0]) == len(a) + len(b)
    assert all(sorted(idx) != [0, 2] and sorted(idx) != [1, 2] for _, idx in cands)   # far apart: no pair
    assert candidate_clusters(tray, NEUTRAL, [a, b, far], {1}, 3)[0][1] in ([0], [2])   # a used part: no pair


def test_specks_that_make_an_objects_size_do_not_crowd_out_its_own_segment():
    tray = models_for({"t": "tray"})["t"]
    size = float(np.max(tray.geometry.extent))
    own = _blob((0.4, 0.0, 0.0), (0.4 + size, size, 0.02))
    specks = [_blob((0.9 + k * 0.01, 0.5, 0.0), (0.9 + k * 0.01 + 0.3 * size, 0.5 + 0.6 * size, 0.01))
              for k in range(4)]
    cands = candidate_clusters(tray, NEUTRAL, specks + [own], set(), 1)
    assert any(idx == [4] for _, idx in cands)
