import pytest

from sim.predicates import PredicateError, validate_predicate

NAMES = frozenset({"red_block", "blue_block", "tray"})


def test_valid_tree_passes():
    validate_predicate({"all": [{"on_top": ["red_block", "blue_block"]}, {"gripper_open": True},
                                {"not": {"grasped": "tray"}}, {"near": {"objects": ["red_block", "tray"],
                                                                        "within_m": 0.1}}]}, "task.success", NAMES)


@pytest.mark.parametrize("pred,match", [
    ({"on_topp": ["red_block", "blue_block"]}, r"task.success: unknown predicate 'on_topp'; did you mean 'on_top'"),
    ({"on_top": ["red_block", "green_block"]}, r"task.success.on_top\[1\]: expected a task object name"),
    ({"on_top": "red_block"}, r"task.success.on_top: expected a list \[top_object, bottom_object\]"),
    ({"gripper_open": "yes"}, r"gripper_open: expected true or false"),
    ({"all": []}, r"task.success.all: expected a non-empty list"),
    ({"at": {"object": "tray", "xyz": [0, 0], "within_m": 0.1}}, r"at.xyz: expected \[x, y, z\]"),
    ({"at": {"object": "tray", "xyz": ["a", 0, 0], "within_m": 0.1}}, r"at.xyz: expected \[x, y, z\]"),
    ({"grasped": "tray", "gripper_open": True}, r"exactly one predicate"),
])
def test_invalid_predicates_name_the_field(pred, match):
    with pytest.raises(PredicateError, match=match):
        validate_predicate(pred, "task.success", NAMES)


def test_missing_object_is_false_not_an_error(client, panda_spec):
    """A twin without an object (the reconstruction did not find it) answers False / progress 0."""
    from sim.predicates import evaluate, objects_of, progress
    from sim.scene import SceneSpec
    from sim.world import World

    world = World.from_scene(client, SceneSpec(panda_spec))
    pred = {"all": [{"on_top": ["red_block", "blue_block"]}, {"gripper_open": True}]}
    assert objects_of(pred) == {"red_block", "blue_block"}
    assert evaluate(world, pred) is False
    assert evaluate(world, {"gripper_open": True}) is True
    assert progress(world, {"on_top": ["red_block", "blue_block"]}) == 0.0
    assert 0.0 < progress(world, pred) < 1.0
