"""Start hints for identical instances from a BDDL's (:init ...) facts: LIBERO-Spatial's own text (task 0 and the
cabinet task 4, trimmed), in the robot base frame of LIBERO's tabletop scene. No LIBERO installation needed."""

import numpy as np
import pytest

from planner.bddl import parse_bddl
from planner.libero_task import arena_base_pose, identical_instances, start_hints

REGIONS = """
    (:regions
      (plate_region (:target main_table) (:ranges ((0.05 0.19 0.07 0.21))))
      (next_to_ramekin_region (:target main_table) (:ranges ((-0.19 0.31 -0.17 0.33))))
      (between_plate_ramekin_region (:target main_table) (:ranges ((-0.06 0.19 -0.04 0.21))))
      (box_region (:target main_table) (:ranges ((0.06 0.02 0.08 0.04))))
      (ramekin_region (:target main_table) (:ranges ((-0.21 0.19 -0.19 0.21))))
      (cabinet_region (:target main_table) (:ranges ((0.02 -0.28 0.04 -0.26)))
          (:yaw_rotation ((2.6613777765410678 2.7242096296128633))))
      (stove_region (:target main_table) (:ranges ((-0.42 -0.15 -0.4 -0.13))))
      (top_region (:target wooden_cabinet_1))
      (top_side (:target wooden_cabinet_1))
      (cook_region (:target flat_stove_1))
    )
  (:fixtures main_table - table wooden_cabinet_1 - wooden_cabinet flat_stove_1 - flat_stove)
  (:objects
    akita_black_bowl_1 akita_black_bowl_2 - akita_black_bowl
    cookies_1 - cookies
    glazed_rim_porcelain_ramekin_1 - glazed_rim_porcelain_ramekin
    plate_1 - plate
  )
"""


def _spatial(language: str, init: str) -> str:
    return f"""(define (problem LIBERO_Tabletop_Manipulation)
  (:domain robosuite)
  (:language {language})
  {REGIONS}
  (:init {init}
    (On plate_1 main_table_plate_region)
    (On cookies_1 main_table_box_region)
    (On glazed_rim_porcelain_ramekin_1 main_table_ramekin_region)
    (On wooden_cabinet_1 main_table_cabinet_region)
    (On flat_stove_1 main_table_stove_region))
  (:goal (And (On akita_black_bowl_1 plate_1))))"""


# LIBERO's tabletop scene: the robot base at (-0.66, 0, 0.912) in MuJoCo's world, the table top at z = 0.90
T_WORLD_BASE = np.array([[1, 0, 0, -0.66], [0, 1, 0, 0], [0, 0, 1, 0.912], [0, 0, 0, 1]], float)
TABLE_TOP = (0.0, 0.0, 0.90)
# the converted models' bounds (manifest.json of `make libero`): only heights matter here
BOUNDS = {"cookies": [[-0.03, -0.04, -0.01], [0.03, 0.04, 0.01]],
          "glazed_rim_porcelain_ramekin": [[-0.044, -0.044, 0.0], [0.044, 0.044, 0.0433]],
          "wooden_cabinet": [[-0.12, -0.11, 0.0046], [0.13, 0.11, 0.2216]],
          "akita_black_bowl": [[-0.056, -0.056, 0.0], [0.056, 0.056, 0.053]]}


def test_bowls_on_table_regions_start_at_their_centres():
    problem = parse_bddl(_spatial("Pick the akita black bowl between the plate and the ramekin and place it on "
                                  "the plate", """(On akita_black_bowl_1 main_table_between_plate_ramekin_region)
    (On akita_black_bowl_2 main_table_next_to_ramekin_region)"""))
    assert identical_instances(problem) == {"akita_black_bowl_1", "akita_black_bowl_2"}
    hints = start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS, identical_instances(problem))
    assert set(hints) == {"akita_black_bowl_1", "akita_black_bowl_2"}
    assert hints["akita_black_bowl_1"].xyz_m == pytest.approx((0.61, 0.20, -0.012))
    assert hints["akita_black_bowl_2"].xyz_m == pytest.approx((0.48, 0.32, -0.012))
    assert hints["akita_black_bowl_1"].z_known
    assert "between_plate_ramekin" in hints["akita_black_bowl_1"].source


def test_bowls_on_objects_and_fixtures_stand_on_top_of_them():
    problem = parse_bddl(_spatial("Pick the akita black bowl on the ramekin", """
    (On akita_black_bowl_1 glazed_rim_porcelain_ramekin_1)
    (On akita_black_bowl_2 cookies_1)"""))
    hints = start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS)
    assert hints["akita_black_bowl_1"].xyz_m == pytest.approx((0.46, 0.20, -0.012 + 0.0433))
    assert hints["akita_black_bowl_2"].xyz_m == pytest.approx((0.73, 0.03, -0.012 + 0.02))
    assert hints["plate_1"].xyz_m == pytest.approx((0.72, 0.20, -0.012))


def test_drawer_is_below_the_cabinet_top_and_an_unknown_stove_leaves_z_open():
    problem = parse_bddl(_spatial("Pick the akita black bowl in the top drawer", """
    (In akita_black_bowl_1 wooden_cabinet_1_top_region)
    (On akita_black_bowl_2 wooden_cabinet_1_top_side)"""))
    hints = start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS)
    top, drawer = hints["akita_black_bowl_2"].xyz_m, hints["akita_black_bowl_1"].xyz_m
    assert top[:2] == pytest.approx((0.69, -0.27)) and drawer[:2] == pytest.approx((0.69, -0.27))
    assert top[2] == pytest.approx(-0.012 + 0.217) and -0.012 < drawer[2] < top[2]
    stove = parse_bddl(_spatial("Pick the akita black bowl on the stove", """
    (On akita_black_bowl_1 flat_stove_1_cook_region)
    (On akita_black_bowl_2 wooden_cabinet_1_top_side)"""))
    on_stove = start_hints(stove, T_WORLD_BASE, TABLE_TOP, BOUNDS)["akita_black_bowl_1"]   # stove: no model
    assert on_stove.xyz_m[:2] == pytest.approx((0.25, -0.14)) and not on_stove.z_known


def test_instances_without_an_init_fact_get_no_hint():
    problem = parse_bddl(_spatial("Pick the bowl", "(On akita_black_bowl_1 main_table_plate_region)"))
    assert "akita_black_bowl_2" not in start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS)
    assert problem.init[0] == ["On", "akita_black_bowl_1", "main_table_plate_region"]


def test_the_planner_world_is_the_base_frame_lowered_onto_the_table():
    """The twin's table is the plane z = 0: LIBERO-Spatial's base, 12 mm above its table, stands at z = 0.012 in
    the planner's world, and the start hints (the table's regions) land on z = 0; a floor scene is not moved."""
    base = arena_base_pose(T_WORLD_BASE, TABLE_TOP)
    assert base.xyz == pytest.approx((0.0, 0.0, 0.012))
    assert base.quat_xyzw == pytest.approx((0.0, 0.0, 0.0, 1.0))
    floor = np.array([[1, 0, 0, -0.6], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    assert arena_base_pose(floor, (0.0, 0.0, 0.0)).xyz == (0.0, 0.0, 0.0)
    assert arena_base_pose(T_WORLD_BASE, None).xyz == (0.0, 0.0, 0.0)
    problem = parse_bddl(_spatial("Pick the akita black bowl between the plate and the ramekin and place it on "
                                  "the plate", """(On akita_black_bowl_1 main_table_between_plate_ramekin_region)
    (On akita_black_bowl_2 main_table_next_to_ramekin_region)"""))
    T_mujoco_world = T_WORLD_BASE @ np.linalg.inv(base.matrix())
    hints = start_hints(problem, T_mujoco_world, TABLE_TOP, BOUNDS, identical_instances(problem))
    assert hints["akita_black_bowl_1"].xyz_m == pytest.approx((0.61, 0.20, 0.0))


def test_on_a_dish_is_also_believed_when_the_object_rests_near_its_centre():
    """The twin's on_top wants the top object's lowest point within 15 mm of the other's bounding-box top; a bowl
    nests 18 mm below the plate's rim. The believed success also takes a bowl resting (not held) within half the
    plate's half-width of its centre; the subtasks keep the plain leaf; a reference without a size is plain."""
    from planner.libero_task import nested_on_top, subtasks_for
    from sim.predicates import validate_predicate

    goal = {"all": [{"on_top": ["bowl_1", "plate_1"]}, {"inside": ["can_1", "basket_1"]}]}
    got = nested_on_top(goal, {"plate_1": 0.0686})
    assert got == {"all": [{"any": [{"on_top": ["bowl_1", "plate_1"]},
                                    {"all": [{"near": {"objects": ["bowl_1", "plate_1"], "within_m": 0.0343}},
                                             {"not": {"grasped": "bowl_1"}}]}]},
                           {"inside": ["can_1", "basket_1"]}]}
    validate_predicate(got, "test", frozenset({"bowl_1", "plate_1", "can_1", "basket_1"}))
    assert nested_on_top(goal, {}) == goal
    assert [s.done for s in subtasks_for(goal)][1] == {"on_top": ["bowl_1", "plate_1"]}


# the sites `make libero` (manifest version 4) records for LIBERO's wooden cabinet and flat stove, in their root
# frames: the cabinet's top and its top drawer (sliding along its y axis), the stove's cook region 15 cm off its knob
SITE_MODELS = {
    "wooden_cabinet": {"bounds_m": BOUNDS["wooden_cabinet"], "articulation": {"default_open_ranges": [-0.16, -0.14]},
                       "sites": {"top_side": {"pos_m": [0.00354, 0.01567, 0.22152],
                                              "half_m": [0.12534, 0.09438, 0.00147]},
                                 "top_region": {"pos_m": [0.00328, 0.01128, 0.18563],
                                                "half_m": [0.10224, 0.07561, 0.02993],
                                                "slide": {"axis": [0.0, 1.0, 0.0], "range_m": [-0.16, 0.01]}}}},
    "flat_stove": {"bounds_m": [[-0.0495, -0.095, -0.02], [0.245, 0.095, 0.0539]],
                   "sites": {"cook_region": {"pos_m": [0.15, 0.0, 0.0], "half_m": [0.075, 0.075, 0.0025]}}}}


@pytest.mark.parametrize("init, truth", [
    # LIBERO-Spatial task 4 at initial state 0 (the lab's log): the bowl in the opened top drawer, the other on top
    ("(In akita_black_bowl_1 wooden_cabinet_1_top_region)\n(Open wooden_cabinet_1_top_region)",
     (0.745, -0.130, 0.163)),
    # task 7: the bowl on the stove's cook region (the burner), not at the stove's origin (its knob)
    ("(On akita_black_bowl_1 flat_stove_1_cook_region)", (0.398, -0.131, 0.026)),
])
def test_fixture_sites_put_the_bowl_where_libero_starts_it(init, truth):
    """A bowl in a drawer or on a stove starts at the fixture's region site, placed by the fixture's pose (turned
    by its region's yaw, the drawer slid out where the init says Open); within 3 cm of LIBERO's initial state,
    and nearer to its own instance than to the other bowl on the cabinet (0.699, -0.282, 0.226)."""
    other_init = "\n(On akita_black_bowl_2 wooden_cabinet_1_top_side)"
    problem = parse_bddl(_spatial("Pick the akita black bowl", init + other_init))
    base = arena_base_pose(T_WORLD_BASE, TABLE_TOP)
    hints = start_hints(problem, T_WORLD_BASE @ np.linalg.inv(base.matrix()), TABLE_TOP, BOUNDS,
                        identical_instances(problem), SITE_MODELS)
    bowl, other = np.array(hints["akita_black_bowl_1"].xyz_m), np.array(hints["akita_black_bowl_2"].xyz_m)
    assert hints["akita_black_bowl_1"].z_known and "site" in hints["akita_black_bowl_1"].source
    assert np.linalg.norm(bowl - truth) < 0.03
    assert np.linalg.norm(other - (0.699, -0.282, 0.226)) < 0.03


def test_a_closed_drawer_keeps_its_site_in_the_cabinet():
    problem = parse_bddl(_spatial("Pick the akita black bowl", "(In akita_black_bowl_1 wooden_cabinet_1_top_region)"))
    closed = start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS, None, SITE_MODELS)["akita_black_bowl_1"].xyz_m
    cabinet = start_hints(problem, T_WORLD_BASE, TABLE_TOP, BOUNDS, None, SITE_MODELS)["wooden_cabinet_1"].xyz_m
    assert np.linalg.norm(np.subtract(closed[:2], cabinet[:2])) < 0.02


def test_yaw_rotation_of_a_region_is_read():
    problem = parse_bddl(_spatial("Pick the bowl", "(On akita_black_bowl_1 main_table_plate_region)"))
    assert problem.regions["cabinet_region"]["yaw_rad"] == pytest.approx([2.66138, 2.72421], abs=1e-4)
    assert "yaw_rad" not in problem.regions["stove_region"]


def test_a_goal_on_the_stoves_cook_region_is_believed_off_the_table_near_its_site():
    """LIBERO-Goal task 1 ("put the bowl on the stove"): the stove's knob, at its origin, stands 24 mm above the
    burner plate, so the twin's on_top (lowest point within 15 mm of the stove's box top) never holds for a bowl
    on the burner; the planner also believes it resting off the table within reach of the cook region's site."""
    from planner.libero_task import goal_site_reach, nested_on_top, translate_goal
    from sim.predicates import validate_predicate

    text = _spatial("Put the bowl on the stove", "(On akita_black_bowl_1 main_table_plate_region)").replace(
        "(On akita_black_bowl_1 plate_1)", "(On akita_black_bowl_1 flat_stove_1_cook_region)")
    problem = parse_bddl(text)
    goal = translate_goal(problem)
    assert goal == {"on_top": ["akita_black_bowl_1", "flat_stove_1"]}
    reach = goal_site_reach(problem, SITE_MODELS)
    assert reach == {"flat_stove_1": pytest.approx(0.15 + 0.0375)}
    got = nested_on_top(goal, {"flat_stove_1": 0.095}, reach)
    assert got == {"any": [goal, {"all": [
        {"near": {"objects": ["akita_black_bowl_1", "flat_stove_1"], "within_m": 0.1875}},
        {"not": {"grasped": "akita_black_bowl_1"}}, {"not": {"on_table": "akita_black_bowl_1"}}]}]}
    validate_predicate(got, "test", frozenset({"akita_black_bowl_1", "flat_stove_1"}))
    # without the stove's sites (an older manifest) the plain rule stays
    assert goal_site_reach(problem, {}) == {}
    plate = parse_bddl(_spatial("Pick the bowl", "(On akita_black_bowl_1 main_table_plate_region)"))
    assert goal_site_reach(plate, SITE_MODELS) == {}
