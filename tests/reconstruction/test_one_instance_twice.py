"""Two identical models fitted into one instance (a dark bowl split in halves): the weaker is dropped so it can be
looked for again; instances apart, stacked ones, and look-alikes in two colours are kept."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pybullet_data

from reconstruction.models import ObjectModel
from reconstruction.reconstructor import one_instance_twice

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"   # 5 cm


def _res(xyz, fitness):
    T = np.eye(4)
    T[:3, 3] = xyz
    return SimpleNamespace(T_world_object=T, fitness=fitness)


def test_two_names_on_one_instance_drop_the_weaker():
    models = {n: ObjectModel(n, CUBE) for n in ("a", "b", "c")}
    results = {"a": _res((0.5, 0.0, 0.025), 0.7), "b": _res((0.51, 0.005, 0.025), 0.8),
               "c": _res((0.5, 0.2, 0.025), 0.9)}
    assert one_instance_twice(models, results, 0.3) == [("a", "b")]


def test_apart_stacked_weak_and_differently_coloured_are_kept():
    models = {n: ObjectModel(n, CUBE) for n in ("a", "b", "top")}
    apart = {"a": _res((0.5, 0.0, 0.025), 0.7), "b": _res((0.5, 0.03, 0.025), 0.8)}
    assert one_instance_twice(models, apart, 0.3) == []
    stacked = {"a": _res((0.5, 0.0, 0.025), 0.7), "top": _res((0.5, 0.0, 0.075), 0.8)}
    assert one_instance_twice(models, stacked, 0.3) == []
    weak = {"a": _res((0.5, 0.0, 0.025), 0.2), "b": _res((0.5, 0.0, 0.025), 0.8)}
    assert one_instance_twice(models, weak, 0.3) == []   # below min_fitness: not found anyway
    coloured = {"red": ObjectModel("red", CUBE, rgba=(1, 0, 0, 1)),
                "blue": ObjectModel("blue", CUBE, rgba=(0, 0, 1, 1))}
    assert one_instance_twice(coloured, {"red": _res((0.5, 0, 0.025), 0.7), "blue": _res((0.5, 0, 0.025), 0.8)},
                              0.3) == []
