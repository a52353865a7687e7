"""LIBERO tasks on the planner's side: BDDL parsing, goal translation, and the errors when LIBERO is missing.

The BDDL texts are LIBERO's own files (libero_object task 0, libero_spatial, libero_goal goals), trimmed to
the parts the planner reads; no LIBERO installation is needed.
"""

import pytest

from planner.bddl import parse_bddl
from planner.errors import TaskError
from planner.libero_task import (
    LiberoNotInstalledError,
    UnsupportedGoalError,
    load_libero_task,
    parse_ref,
    subtasks_for,
    translate_goal,
)
from sim.predicates import validate_predicate

OBJECT_0 = """(define (problem LIBERO_Floor_Manipulation)
  (:domain robosuite)
  (:language Pick the alphabet soup and place it in the basket)
    (:regions
      (bin_region
          (:target floor)
          (:ranges (
              (-0.01 0.25 0.01 0.27)
            )
          )
      )
      (contain_region
          (:target basket_1)
      )
    )
  (:fixtures
    floor - floor
  )
  (:objects
    alphabet_soup_1 - alphabet_soup
    basket_1 - basket
    salad_dressing_1 - salad_dressing
    cream_cheese_1 - cream_cheese
  )
  (:obj_of_interest
    alphabet_soup_1
    basket_1
  )
  (:init
    (On alphabet_soup_1 floor_target_object_region)
    (On basket_1 floor_bin_region)
  )
  (:goal
    (And (In alphabet_soup_1 basket_1_contain_region))
  )
)
"""

GOAL_SCENE = """(define (problem LIBERO_Tabletop_Manipulation)
  (:domain robosuite)
  (:language put the bowl on the stove)
  (:regions
    (cook_region (:target flat_stove_1) (:ranges ((-0.01 -0.01 0.01 0.01))))
    (top_side (:target wooden_cabinet_1))
    (top_region (:target wooden_cabinet_1))
    (stove_front_region (:target main_table) (:ranges ((-0.05 0.1 0.05 0.2))))
  )
  (:fixtures
    main_table - table
    wooden_cabinet_1 - wooden_cabinet
    flat_stove_1 - flat_stove
  )
  (:objects
    akita_black_bowl_1 - akita_black_bowl
    plate_1 - plate
    cream_cheese_1 - cream_cheese
  )
  (:goal
    (And (On akita_black_bowl_1 flat_stove_1_cook_region))
  )
)
"""


def _goal_problem(goal: str):
    return parse_bddl(GOAL_SCENE.replace("(And (On akita_black_bowl_1 flat_stove_1_cook_region))", goal))


def test_parse_libero_object_bddl():
    prob = parse_bddl(OBJECT_0, "object_0.bddl")
    assert prob.problem == "LIBERO_Floor_Manipulation"
    assert prob.language == "Pick the alphabet soup and place it in the basket"
    assert prob.objects["alphabet_soup_1"] == "alphabet_soup" and len(prob.objects) == 4
    assert prob.fixtures == {"floor": "floor"}
    assert prob.obj_of_interest == ("alphabet_soup_1", "basket_1")
    assert prob.regions["contain_region"]["target"] == "basket_1"
    assert prob.regions["bin_region"]["ranges"] == [[-0.01, 0.25, 0.01, 0.27]]
    assert prob.goal == ["And", ["In", "alphabet_soup_1", "basket_1_contain_region"]]


def test_in_a_container_region_becomes_inside_and_subtasks():
    prob = parse_bddl(OBJECT_0)
    goal = translate_goal(prob)
    assert goal == {"inside": ["alphabet_soup_1", "basket_1"]}
    validate_predicate(goal, "goal", set(prob.objects))
    subs = subtasks_for(goal)
    assert [s.done for s in subs] == [{"grasped": "alphabet_soup_1"}, goal]
    assert subs[0].say == "grasp the alphabet soup" and subs[1].say == "place it in the basket"


def test_on_objects_regions_and_conjunctions():
    assert translate_goal(_goal_problem("(And (On akita_black_bowl_1 plate_1))")) == {
        "on_top": ["akita_black_bowl_1", "plate_1"]}
    # a region on a fixture means its top
    assert translate_goal(_goal_problem("(And (On akita_black_bowl_1 flat_stove_1_cook_region))")) == {
        "on_top": ["akita_black_bowl_1", "flat_stove_1"]}
    two = translate_goal(_goal_problem(
        "(And (On cream_cheese_1 akita_black_bowl_1) (On akita_black_bowl_1 wooden_cabinet_1_top_side))"))
    assert two == {"all": [{"on_top": ["cream_cheese_1", "akita_black_bowl_1"]},
                           {"on_top": ["akita_black_bowl_1", "wooden_cabinet_1"]}]}
    assert len(subtasks_for(two)) == 4
    # a fixture's own site, not listed in (:regions)
    assert translate_goal(_goal_problem("(And (On cream_cheese_1 flat_stove_1_burner_region))")) == {
        "on_top": ["cream_cheese_1", "flat_stove_1"]}
    # a compartment (contain_region) of a rigid object is its inside, listed or not
    assert translate_goal(_goal_problem("(And (In cream_cheese_1 plate_1_back_contain_region))")) == {
        "inside": ["cream_cheese_1", "plate_1"]}


@pytest.mark.parametrize("goal, why", [
    ("(And (Open wooden_cabinet_1_top_region))", "articulated"),
    ("(And (Turnon flat_stove_1))", "articulated"),
    ("(And (On plate_1 main_table_stove_front_region))", "region of the main_table"),
    # a cabinet's top/middle/bottom region is a drawer's inside: the twin's cabinet has none to open
    ("(And (In akita_black_bowl_1 wooden_cabinet_1_top_region))", "drawer or compartment of an articulated"),
    ("(And (In cream_cheese_1 wooden_cabinet_1_middle_region))", "drawer or compartment of an articulated"),
])
def test_goals_without_a_planner_predicate_are_refused(goal, why):
    with pytest.raises(UnsupportedGoalError, match=why):
        translate_goal(_goal_problem(goal))


def test_goal_on_an_unknown_object_is_an_error():
    with pytest.raises(TaskError, match="not one of the task's objects"):
        translate_goal(_goal_problem("(And (On ghost_1 plate_1))"))


@pytest.mark.parametrize("text, msg", [
    ("(define (problem x) (:language hi))", "no \\(:goal"),
    ("(define (problem x) (:goal (And (On a b))))", "no \\(:language"),
    ("(define (problem x) (:language hi)) )", "unbalanced"),
    ("(define (:objects a b - ) (:language x) (:goal (On a b)))", "name ... - category"),
])
def test_malformed_bddl(text, msg):
    with pytest.raises(TaskError, match=msg):
        parse_bddl(text, "bad.bddl")


@pytest.mark.parametrize("ref", ["libero:libero_object", "libero:/3", "libero:libero_object/x", "libero_object/3"])
def test_bad_task_reference(ref):
    with pytest.raises(TaskError, match="libero:SUITE/ID"):
        parse_ref(ref)


def test_missing_libero_says_make_libero(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTIGROUNDING_LIBERO_ASSETS", str(tmp_path / "none"))
    with pytest.raises(LiberoNotInstalledError, match="make libero"):
        load_libero_task("libero:libero_object/0")


def test_cli_run_without_libero_exits_2(tmp_path, monkeypatch, capsys):
    from planner.cli import main

    monkeypatch.setenv("ANTIGROUNDING_LIBERO_ASSETS", str(tmp_path / "none"))
    assert main(["run", "--task", "libero:libero_object/0", "--seed", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "make libero" in err and "Traceback" not in err


def test_bench_suite_without_libero_exits_2(tmp_path, monkeypatch, capsys):
    from bench.libero_suite import main

    monkeypatch.setenv("ANTIGROUNDING_LIBERO_ASSETS", str(tmp_path / "none"))
    assert main(["--suite", "libero_object", "--tasks", "0", "--inits", "0", "--json"]) == 2
    assert "make libero" in capsys.readouterr().err


def test_bench_range_parsing():
    from bench.libero_suite import parse_range

    assert parse_range("0-9", "--tasks", 10) == list(range(10))
    assert parse_range("1,3, 5", "--tasks", 10) == [1, 3, 5]
    for bad in ("0-10", "x", "-1"):
        with pytest.raises(TaskError, match="--tasks"):
            parse_range(bad, "--tasks", 10)


@pytest.mark.parametrize("problem", ["libero_tabletop_manipulation", "libero_kitchen_tabletop_manipulation",
                                     "libero_living_room_tabletop_manipulation", "libero_study_tabletop_manipulation"])
def test_tabletop_scenes_leave_out_the_birdview_that_sees_the_floor(problem):
    """The problem classes of LIBERO's four suites (their manifest's `problems`): a tabletop scene's birdview sees
    the floor 0.9 m below the table, which the frame check refuses (LIBERO-10 tasks 0 and 1 stopped at step 0)."""
    from planner.libero_task import CAMERAS_BY_PROBLEM, DEFAULT_CAMERAS
    assert "birdview" not in CAMERAS_BY_PROBLEM[problem]
    assert "birdview" in CAMERAS_BY_PROBLEM.get("libero_floor_manipulation", DEFAULT_CAMERAS)
