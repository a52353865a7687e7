"""The `on_side`, `on_end` and `on_table` predicates and the orientation requirements the rotation module
reads (sim.predicates)."""

import math
import os

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import configs
from sim.geometry import Pose
from sim.predicates import (
    ON_SIDE_TOL_DEG,
    PredicateError,
    evaluate,
    orientation_error_deg,
    orientation_objects,
    progress,
    tilt_deg_of,
    validate_predicate,
)
from sim.scene import ObjectSpec, SceneSpec
from sim.world import World

TALL = os.path.join(configs.shipped_dir(), "assets", "tall_block.urdf")
HALF = (0.02, 0.05)   # the tall block's half width and half height (4 x 4 x 10 cm)


def tilted(deg: float) -> np.ndarray:
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def test_validation_takes_an_object_name():
    validate_predicate({"on_side": "b"}, "task.success", {"b"})
    with pytest.raises(PredicateError, match="task object name"):
        validate_predicate({"on_side": "c"}, "task.success", {"b"})


def test_orientation_error_per_leaf_and_combinator():
    assert tilt_deg_of(tilted(30)) == pytest.approx(30.0)
    assert orientation_error_deg({"on_side": "b"}, {"b": tilted(30)}) == pytest.approx(60.0)
    assert orientation_error_deg({"on_side": "b"}, {"b": tilted(120)}) == pytest.approx(30.0)
    assert orientation_error_deg({"upright": "b"}, {"b": tilted(20)}) == pytest.approx(20.0)
    assert orientation_error_deg({"on_end": "b"}, {"b": tilted(20)}) == pytest.approx(20.0)
    assert orientation_error_deg({"on_end": "b"}, {"b": tilted(170)}) == pytest.approx(10.0)   # either end down
    both = {"all": [{"grasped": "b"}, {"on_side": "b"}, {"upright": "c"}]}
    assert orientation_error_deg(both, {"b": tilted(80), "c": tilted(25)}) == pytest.approx(25.0)   # the worst
    either = {"any": [{"on_side": "b"}, {"upright": "b"}]}
    assert orientation_error_deg(either, {"b": tilted(80)}) == pytest.approx(10.0)                  # the best
    assert orientation_error_deg({"grasped": "b"}, {"b": tilted(80)}) is None
    assert orientation_error_deg({"not": {"on_side": "b"}}, {"b": tilted(0)}) is None
    assert orientation_objects(both) == {"b", "c"} and orientation_objects({"near": {"objects": ["b", "c"],
                                                                                     "within_m": 1}}) == set()


@pytest.mark.parametrize("roll_deg, lies", [(0, False), (90, True), (90 - ON_SIDE_TOL_DEG + 1, True),
                                            (90 - ON_SIDE_TOL_DEG - 5, False), (180, False)])
def test_on_side_in_a_world(client, panda_spec, roll_deg, lies):
    # The block's centre height at that roll: it rests on an edge or a face; the predicate reads only the pose.
    z = HALF[0] * abs(math.sin(math.radians(roll_deg))) + HALF[1] * abs(math.cos(math.radians(roll_deg))) + 0.001
    block = ObjectSpec("b", Pose.from_xyz_rpy_deg((0.5, 0.0, z), (roll_deg, 0, 0)), urdf=TALL)
    world = World.from_scene(client, SceneSpec(panda_spec, (block,)))
    assert evaluate(world, {"on_side": "b"}) is lies
    p = progress(world, {"on_side": "b"})
    assert p == 1.0 if lies else p == pytest.approx(0.99 * (1 - abs(90 - roll_deg) / 90), abs=1e-6)
    stands = min(roll_deg, 180 - roll_deg) <= ON_SIDE_TOL_DEG
    assert evaluate(world, {"on_end": "b"}) is stands
    p = progress(world, {"on_end": "b"})
    assert p == 1.0 if stands else p == pytest.approx(0.99 * (1 - min(roll_deg, 180 - roll_deg) / 90), abs=1e-6)


@pytest.mark.parametrize("lift_m, grasped", [(0.0, False), (0.03, False), (0.0, True)])
def test_on_table_needs_the_block_resting_on_the_table(client, panda_spec, lift_m, grasped):
    block = ObjectSpec("b", Pose.from_xyz_rpy_deg((0.5, 0.0, HALF[1] + lift_m), (0, 0, 0)), urdf=TALL)
    world = World.from_scene(client, SceneSpec(panda_spec, (block,), grasped="b" if grasped else None))
    assert evaluate(world, {"on_table": "b"}) is (lift_m == 0.0 and not grasped)
    if grasped:   # held at the table: as close as holding gets, letting go completes it
        assert progress(world, {"on_table": "b"}) == pytest.approx(0.9, abs=1e-3)
    elif lift_m:
        assert progress(world, {"on_table": "b"}) == pytest.approx(0.5 * math.exp(-(lift_m - 0.01) / 0.05), abs=2e-3)
