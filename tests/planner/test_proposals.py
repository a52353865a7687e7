"""Object-anchored proposals: grasp geometry on a mesh, approaches free in a twin, placements over the goal, pushes
for a boxed-in target, the narrowing across steps, and the mix with the annealed ball.

Tolerances come from the geometry: cube_small is a 50 mm cube (an exact box mesh), so a face-on grasp is 50 mm
wide to float precision and any antipodal grasp within the 25 degree friction cone is at most 50 / cos(25) mm.
"""

import dataclasses
import math

import numpy as np
import pybullet_data
import pytest
import trimesh

from planner.grasps import GraspConfig, GraspFinder, ray_hits
from planner.placements import PlaceConfig, place_moves
from planner.proposals import AnchoredProposer, ProposalConfig, anchor_goal
from planner.pushes import PushConfig, push_moves
from planner.sampler import AnnealedSampler, SamplerConfig
from sim import predicates
from sim.geometry import Pose
from sim.reach import clearance_at, finger_axis_tcp
from sim.scene import ObjectSpec, SceneSpec
from sim.world import World

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"
EDGE_M = 0.05


def _block(name, x, y, yaw=0.0, scale=1.0, symmetry="cube"):
    return ObjectSpec(name, Pose.from_xyz_rpy_deg((x, y, 0.025 * scale), (0, 0, yaw)), urdf=CUBE, scale=scale,
                      symmetry=symmetry)


def _world(client, robot, *objects) -> World:
    world = World.from_scene(client, SceneSpec(robot, tuple(objects)))
    world.step(30)
    return world


def _finder(world, name, **kw):
    return GraspFinder(world, name, GraspConfig(**kw), finger_axis_tcp(world), world.spec.robot.gripper_max_width_m)


def _yaw_of(axis_world) -> float:
    return math.atan2(axis_world[1], axis_world[0])


def test_ray_hits_a_box_face():
    box = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    dist, tri = ray_hits(np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), np.array([[-1.0, 0, 0], [-1.0, 0, 0]]),
                         np.asarray(box.triangles))
    assert dist[0] == pytest.approx(0.95) and tri[0] >= 0
    assert math.isinf(dist[1]) and tri[1] == -1


def test_antipodal_widths_fit_the_gripper_and_normals_oppose(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=30))
    finder = _finder(world, "red")
    grasps = finder.search(world.tcp_pose())
    assert grasps
    cfg = finder.config
    cone = math.radians(cfg.friction_cone_deg)
    for g in grasps:
        # pads 18 mm wide close on the cube's outermost points within their strip: at most its whole extent along
        # the closing direction (a square of side a turned psi from face-on spans a * (cos psi + sin psi))
        assert EDGE_M - 1e-6 <= g.width_m <= EDGE_M * (math.cos(cone) + math.sin(cone)) + 1e-6
        assert g.width_m <= panda_spec.gripper_max_width_m - 2 * cfg.finger_clearance_m
        R = g.tcp.rotation()
        assert R[:, 2] @ np.array([0, 0, -1.0]) == pytest.approx(1.0, abs=1e-9)   # approach straight down
        closing = R @ finger_axis_tcp(world)
        # the closing direction is within the friction cone of a face normal (the cube repeats every 90 deg)
        off = (_yaw_of(closing) - math.radians(30)) % (math.pi / 2)
        assert min(off, math.pi / 2 - off) <= cone + 1e-6
        lo, hi = world.object_aabb("red")
        assert lo[2] + cfg.grasp_min_height_m - 1e-9 <= g.tcp.position[2] <= hi[2] - cfg.grasp_min_depth_m + 1e-9
        assert g.pregrasp.position[2] == pytest.approx(hi[2] + cfg.pregrasp_height_m, abs=1e-3)
    face_on = [g for g in grasps if abs(g.offset_m) < 1e-9 and min(g.psi_rad, math.pi / 2 - g.psi_rad) < 1e-6]
    assert face_on and face_on[0].width_m == pytest.approx(EDGE_M, abs=1e-6)


def test_too_wide_object_has_no_grasp_and_no_push(client, panda_spec):
    world = _world(client, panda_spec, _block("big", 0.5, 0.0, scale=1.8))   # 90 mm: wider than the 80 mm gripper
    assert _finder(world, "big").search(world.tcp_pose()) == []
    # pushing cannot make it graspable: nothing is proposed (the ball alone)
    assert AnchoredProposer(ProposalConfig(), np.random.default_rng(0)).propose(
        world, {"grasped": "big"}, world.tcp_pose(), True, 1, 8) == []


def test_side_grasps_approach_horizontally_across_the_closing_direction(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=30))
    finder = _finder(world, "red")
    side = finder.side_grasps(world.tcp_pose())
    assert side
    for g in side:
        R = g.tcp.rotation()
        approach, closing = R[:, 2], R @ finder.finger_axis
        # the finger axis is measured from PyBullet's link positions (single precision): 1e-5 is its noise
        assert abs(approach[2]) < 1e-9 and abs(closing[2]) < 1e-5 and abs(approach @ closing) < 1e-5
        np.testing.assert_allclose(g.tcp.position - g.pregrasp.position, approach * finder.config.side_standoff_m,
                                   atol=1e-9)
        assert g.width_m <= panda_spec.gripper_max_width_m - 2 * finder.config.finger_clearance_m


def test_yaw_is_the_symmetric_equivalent_nearest_the_tcp(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=80))
    tcp = world.tcp_pose()
    for period in (math.pi / 2, math.pi):   # as a cube (quarter turns), as an object without symmetry
        finder = _finder(world, "red")
        finder.geo = dataclasses.replace(finder.geo, yaw_period_rad=period)
        for g in finder.free_grasps(tcp, 4):
            now = _yaw_of(tcp.rotation() @ finder.finger_axis)
            then = _yaw_of(g.tcp.rotation() @ finder.finger_axis)
            # the fingers are alike (a half turn changes nothing), the object repeats every `period`
            assert abs(math.remainder(then - now, math.pi)) <= period / 2 + 1e-6


def test_approaches_are_free_beside_a_touching_neighbour(client, panda_spec):
    # the neighbour touches the target's -x face: fingers closing along x would hit it; along y they are free
    world = _world(client, panda_spec, _block("t", 0.5, 0.1), _block("n", 0.5 - EDGE_M - 0.0005, 0.1))
    finder = _finder(world, "t")
    grasps = finder.free_grasps(world.tcp_pose(), 4)
    assert grasps
    for g in grasps:
        closing = g.tcp.rotation() @ finder.finger_axis
        assert abs(closing[0]) < math.sin(math.radians(finder.config.friction_cone_deg)) + 1e-6
        for pose in (g.pregrasp, g.tcp):
            clearance, err, _ = clearance_at(world, pose, ("t", "table"))
            assert err < finder.config.max_ik_error_m and clearance >= finder.config.min_free_m
    cand = AnchoredProposer(ProposalConfig(), np.random.default_rng(0)).propose(
        world, {"grasped": "t"}, world.tcp_pose(), True, 1, 1)[0]
    roll = world.rollout(cand, frozenset({"t"}))
    assert roll.feasible and roll.clean and roll.grasped_after == "t"


def test_boxed_in_target_gets_a_push_that_frees_a_grasp(client, panda_spec):
    # a cube turned 45 degrees with a corner against a tall wall: every antipodal pair has a finger in the wall
    corner = EDGE_M / math.sqrt(2)
    wall_x = 0.5 - corner - 0.05 - 0.0005
    world = _world(client, panda_spec, _block("t", 0.5, 0.1, yaw=45), _block("wall", wall_x, 0.1, scale=2.0))
    finder = _finder(world, "t")
    assert finder.search(world.tcp_pose()) and finder.free_grasps(world.tcp_pose(), 4) == []
    moves = push_moves(finder, world.tcp_pose(), world.gripper_width_m(), PushConfig(), 4)
    assert moves and moves[0].regrasp
    start = moves[0].waypoints[1]
    assert clearance_at(world, start, ("table",))[0] >= finder.config.min_free_m
    cands = AnchoredProposer(ProposalConfig(), np.random.default_rng(0)).propose(
        world, {"grasped": "t"}, world.tcp_pose(), True, 1, 6)
    assert cands and all(c.label.startswith("push") for c in cands)
    rolls = [world.rollout(c, frozenset({"t"}), probe=lambda w: {"done": predicates.evaluate(w, {"grasped": "t"})})
             for c in cands if c.gripper == "close"]
    assert any(r.clean and r.probe["done"] for r in rolls)   # pushed clear of the wall, then grasped


def _holding(client, robot, *others):
    world = _world(client, robot, _block("red", 0.5, 0.1, yaw=20), *others)
    cand = AnchoredProposer(ProposalConfig(), np.random.default_rng(0)).propose(
        world, {"grasped": "red"}, world.tcp_pose(), True, 1, 1)[0]
    q, grip, dt, _ = world.plan_joint_path(cand)
    world.execute_joint_path(q, grip, dt)
    assert world.grasped() == "red"
    return world


def test_placement_lowers_the_held_object_onto_the_reference(client, panda_spec):
    world = _holding(client, panda_spec, _block("blue", 0.48, -0.12, yaw=-10))
    tcp = world.tcp_pose()
    lo_h, hi_h = world.object_aabb("red")
    lo_b, hi_b = world.object_aabb("blue")
    cfg = PlaceConfig()
    moves = place_moves(world, "red", "blue", "on_top", tcp, cfg, np.random.default_rng(0), 8)
    first = moves[0]
    assert first.gripper == "open"
    # where the fingers open, the held object's bottom centre is over the blue top's centre, gap above it
    release = first.waypoints[-1]
    bottom_xy = release.position[:2] + ((lo_h + hi_h) / 2)[:2] - tcp.position[:2]
    if abs(np.trace(release.rotation().T @ tcp.rotation()) - 3) < 1e-9:   # not turned: a pure translation
        np.testing.assert_allclose(bottom_xy, ((lo_b + hi_b) / 2)[:2], atol=1e-6)
    bottom_z = release.position[2] - (tcp.position[2] - lo_h[2])
    assert bottom_z == pytest.approx(hi_b[2] + cfg.release_gap_m, abs=1e-3)
    np.testing.assert_allclose(first.release_xyz[:2], ((lo_b + hi_b) / 2)[:2], atol=1e-6)
    hover = first.waypoints[-2]
    assert hover.position[2] == pytest.approx(release.position[2] + cfg.hover_m, abs=1e-9)
    goal = {"on_top": ["red", "blue"]}
    roll = world.rollout(moves[0], frozenset({"red", "blue"}), probe=lambda w: {"done": predicates.evaluate(w, goal)})
    assert roll.feasible and roll.clean and roll.probe["done"]


def test_placement_lifts_over_what_lies_between_before_it_carries(client, panda_spec):
    """LIBERO-Spatial task 4: the bowl lifted in an open drawer went straight for the plate at the plate's hover
    height, through the drawer's front wall. A 10 cm wall between the held block and the goal is cleared."""
    wall = ObjectSpec("wall", Pose.from_xyz_rpy_deg((0.49, -0.06, 0.05)), urdf=CUBE, scale=2.0, fixed=True)
    world = _holding(client, panda_spec, _block("blue", 0.48, -0.2, yaw=-10), wall)
    tcp = world.tcp_pose()
    lo_h = world.object_aabb("red")[0]
    top = world.object_aabb("wall")[1][2]
    cfg = PlaceConfig()
    moves = place_moves(world, "red", "blue", "on_top", tcp, cfg, np.random.default_rng(0), 8)
    lift = moves[0].waypoints[0]
    assert lift.position[:2] == pytest.approx(tcp.position[:2], abs=1e-6)     # straight up first
    assert lift.position[2] - (tcp.position[2] - lo_h[2]) >= top + cfg.carry_clearance_m - 1e-6
    goal = {"on_top": ["red", "blue"]}
    roll = world.rollout(moves[0], frozenset({"red", "blue"}), probe=lambda w: {"done": predicates.evaluate(w, goal)})
    assert roll.feasible and roll.clean and roll.probe["done"]


def test_placement_inside_a_tray_releases_above_its_floor(client, panda_spec):
    tray = ObjectSpec("tray", Pose.from_xyz_rpy_deg((0.56, -0.15, 0.0)), urdf=f"{pybullet_data.getDataPath()}/"
                      "tray/traybox.urdf", scale=0.5, symmetry="square", fixed=True)
    world = _holding(client, panda_spec, tray)
    lo_t, hi_t = world.object_aabb("tray")
    moves = place_moves(world, "red", "tray", "inside", world.tcp_pose(), PlaceConfig(), np.random.default_rng(0), 4)
    floor = moves[0].release_xyz[2] - PlaceConfig().release_gap_m
    assert lo_t[2] <= floor < hi_t[2]   # the floor found by the ray, not the rim
    goal = {"inside": ["red", "tray"]}
    roll = world.rollout(moves[0], frozenset({"red", "tray"}), probe=lambda w: {"done": predicates.evaluate(w, goal)})
    assert roll.feasible and roll.probe["done"]


def test_narrowing_samples_closer_to_the_last_choice(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=30))
    prop = AnchoredProposer(ProposalConfig(), np.random.default_rng(0))
    spreads = []
    for _ in range(3):
        cands = prop.propose(world, {"grasped": "red"}, world.tcp_pose(), True, 1, 8)
        graded = {c.id: float(c.id) for c in cands}   # the scorer likes the last-numbered grasp best
        chosen = max(cid for cid in graded if cid in prop._grasp_of)
        target = prop._grasp_of[chosen]
        prop.remember(cands, graded)
        assert prop.focus is not None and prop.focus.psi_rad == target.psi_rad
        nxt = prop.propose(world, {"grasped": "red"}, world.tcp_pose(), True, 1, 8)
        focused = [prop._grasp_of[c.id] for c in nxt if "round" in c.label]
        assert focused
        spreads.append(max(abs(math.remainder(g.psi_rad - prop.focus.psi_rad, math.pi / 2)) for g in focused))
    assert prop.focus.round == 3
    assert spreads[-1] <= spreads[0] + 1e-9
    prop.reset()
    assert prop.focus is None


def test_a_reached_pre_grasp_is_not_offered_again(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=30))
    prop = AnchoredProposer(ProposalConfig(), np.random.default_rng(0))
    cands = prop.propose(world, {"grasped": "red"}, world.tcp_pose(), True, 1, 8)
    pre = [c for c in cands if c.label == "pre-grasp"]
    assert pre and any(c.label.startswith("grasp") for c in cands)
    at_pregrasp = pre[0].waypoints[-1]   # the hand hovers there now
    again = prop.propose(world, {"grasped": "red"}, at_pregrasp, True, 1, 8)
    assert any(c.label.startswith("grasp") for c in again)
    assert all(np.linalg.norm(at_pregrasp.position - c.waypoints[-1].position) >= 0.03
               for c in again if c.label == "pre-grasp")


def test_anchor_goal_reads_the_first_anchoring_leaf():
    assert anchor_goal({"grasped": "a"}) == ("grasped", "a")
    assert anchor_goal({"all": [{"gripper_open": True}, {"on_top": ["a", "b"]}]}) == ("on_top", ["a", "b"])
    assert anchor_goal({"upright": "a"}) is None


def test_sampler_mixes_anchored_and_ball_and_the_ablation_has_none(client, panda_spec):
    world = _world(client, panda_spec, _block("red", 0.5, 0.1, yaw=30))

    def sampler():
        return AnnealedSampler(SamplerConfig(), panda_spec.tcp_down, panda_spec.workspace_min_xyz,
                               panda_spec.workspace_max_xyz, np.random.default_rng(0))
    mixed = sampler().propose(world.tcp_pose(), True, world=world, goal={"grasped": "red"})
    ball = sampler().propose(world.tcp_pose(), True)
    assert [c.id for c in mixed] == list(range(SamplerConfig().n_candidates))
    anchored = [c for c in mixed if c.label.startswith(("grasp", "pre-grasp"))]
    assert 1 <= len(anchored) <= round(SamplerConfig().anchored_share * (SamplerConfig().n_candidates - 1))
    assert any(c.label in ("line", "arc") for c in mixed)
    assert not any(c.label.startswith(("grasp", "pre-grasp")) for c in ball)
