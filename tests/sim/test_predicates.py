import pytest

from sim.predicates import PredicateError, validate_predicate

NAMES = frozenset({"red_block", "blue_block", "tray"})


def test_valid_tree_passes():
    validate_predicate({"all": [{"on_top": ["red_block", "blue_block"]}, {"gripper_open": True},
                                {"not": {"grasped": "tray"}}, {"near": {"objects": ["red_block", "tray"],
                                                                        "within_m": 0.1}}]}, "task.success", NAMES)


@pytest.mark.parametrize("pred,field,fragment", [
    ({"on_topp": ["red_block", "blue_block"]}, "task.success", "did you mean 'on_top'"),
    ({"on_top": ["red_block", "green_block"]}, "task.success.on_top[1]", "expected a task object name"),
    ({"on_top": "red_block"}, "task.success.on_top", "expected a list [top_object, bottom_object]"),
    ({"gripper_open": "yes"}, "task.success.gripper_open", "expected true or false"),
    ({"all": []}, "task.success.all", "expected a non-empty list"),
    ({"at": {"object": "tray", "xyz": [0, 0], "within_m": 0.1}}, "task.success.at.xyz", "expected [x, y, z]"),
    ({"at": {"object": "tray", "xyz": ["a", 0, 0], "within_m": 0.1}}, "task.success.at.xyz[0]",
     "expected a finite number"),
    ({"near": {"objects": ["tray", "red_block"], "within_m": float("inf")}}, "task.success.near.within_m",
     "positive finite number"),
    ({"grasped": "tray", "gripper_open": True}, "task.success", "exactly one predicate"),
])
def test_invalid_predicates_name_the_field(pred, field, fragment):
    with pytest.raises(PredicateError) as info:
        validate_predicate(pred, "task.success", NAMES, "task.yaml")
    assert (info.value.file, info.value.field) == ("task.yaml", field)
    assert fragment in str(info.value)


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
