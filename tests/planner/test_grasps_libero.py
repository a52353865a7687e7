"""Grasps and placements for LIBERO-Object's shapes, in a twin with the LIBERO Panda (`panda_libero.yaml`): a flat
box as low as LIBERO's cream cheese (19 mm), a long bottle whose centre of mass sits in its body (not at its
bounding box's centre), and a basket deeper than the hand can reach into.

The objects are boxes written as URDFs (the shapes and masses of the converted LIBERO models, measured from
`.libero-assets`), so the test needs no LIBERO install. Tolerances come from the geometry: the flat box's top is
19 mm up, the twin's held rule wants the TCP GRASP_DEPTH_M below its (bounding box) top; the bottle's body is
100 mm long with its centre of mass 20 mm into it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

import configs
from planner.grasps import GraspConfig, GraspFinder, fit_twin_fingers
from planner.placements import PlaceConfig, diagonal_turns, hand_above_tcp_m, place_moves
from sim import predicates
from sim.geometry import Pose
from sim.grasp import GRASP_DEPTH_M
from sim.reach import finger_axis_tcp
from sim.rollout import Candidate
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World


def _urdf(path, boxes, mass_kg: float, com=(0.0, 0.0, 0.0)) -> str:
    """A one-link URDF of box meshes (OBJ, as the LIBERO converter writes its models; PyBullet pads a mesh's
    bounding box as it does theirs): [(size_xyz, centre_xyz)], its centre of mass at `com`."""
    geoms = ""
    for i, (size, centre) in enumerate(boxes):
        mesh = trimesh.creation.box(extents=size)
        mesh.apply_translation(centre)
        name = f"{path.stem}_{i}.obj"
        mesh.export(str(path.parent / name))
        geoms += (f'<collision><geometry><mesh filename="{name}"/></geometry></collision>'
                  f'<visual><geometry><mesh filename="{name}"/></geometry></visual>')
    path.write_text(
        f'<robot name="o"><link name="base"><inertial><origin xyz="{com[0]} {com[1]} {com[2]}"/>'
        f'<mass value="{mass_kg}"/><inertia ixx="1e-5" iyy="1e-5" izz="1e-5" ixy="0" ixz="0" iyz="0"/>'
        f'</inertial>{geoms}</link></robot>')
    return str(path)


@pytest.fixture(scope="module")
def libero_panda() -> RobotSpec:
    return RobotSpec.from_yaml(str(configs.find("robots", "panda_libero")))


def _world(client, robot, *objects) -> World:
    world = World.from_scene(client, SceneSpec(robot, tuple(objects)))
    world.step(120)
    return world


def _finder(world, name) -> GraspFinder:
    return GraspFinder(world, name, GraspConfig(), finger_axis_tcp(world), world.spec.robot.gripper_max_width_m)


def _flat(tmp_path, x=0.55, y=0.05, yaw=30.0) -> ObjectSpec:
    urdf = _urdf(tmp_path / "flat.urdf", [((0.08, 0.043, 0.019), (0, 0, 0))], 0.012)
    return ObjectSpec("cheese", Pose.from_xyz_rpy_deg((x, y, 0.0095), (0, 0, yaw)), urdf=urdf)


def _bottle(tmp_path, x=0.5, y=-0.2, yaw=40.0) -> ObjectSpec:
    # body 100 mm (56 wide, 38 high) and a neck 50 mm (34 wide): the neck's narrow grasp leaves the fingers more
    # room, but the centre of mass is in the body, 45 mm from the bounding box's centre along the bottle
    urdf = _urdf(tmp_path / "bottle.urdf", [((0.10, 0.056, 0.038), (-0.025, 0, 0)),
                                            ((0.05, 0.034, 0.030), (0.05, 0, -0.004))], 0.05, com=(-0.02, 0, 0))
    return ObjectSpec("bottle", Pose.from_xyz_rpy_deg((x, y, 0.019), (0, 0, yaw)), urdf=urdf)


def _basket(tmp_path) -> ObjectSpec:
    # LIBERO's basket: a 16 x 15 cm box 14.5 cm deep, its floor 2 cm thick, inside 12.6 x 11.8 cm
    wall = 0.145
    urdf = _urdf(tmp_path / "basket.urdf", [
        ((0.16, 0.15, 0.02), (0, 0, 0.01)),
        ((0.017, 0.15, wall), (-0.0715, 0, wall / 2)), ((0.017, 0.15, wall), (0.0715, 0, wall / 2)),
        ((0.16, 0.016, wall), (0, -0.067, wall / 2)), ((0.16, 0.016, wall), (0, 0.067, wall / 2))], 0.55,
        com=(0, 0, 0.06))
    return ObjectSpec("basket", Pose.from_xyz_rpy_deg((0.6, 0.22, 0.0), (0, 0, 10)), urdf=urdf)


def test_a_flat_box_gets_grasps_the_twin_holds(client, tmp_path, libero_panda):
    world = _world(client, libero_panda, _flat(tmp_path))
    finder = _finder(world, "cheese")
    assert finder.flat and not finder.shallow
    grasps = finder.free_grasps(world.tcp_pose(), 4, q_seed=world.joint_pos_rad())
    assert grasps
    top = world.object_aabb("cheese")[1][2]
    for g in grasps:
        assert finder.config.min_tcp_z_m - 1e-9 <= g.tcp.position[2] < top - GRASP_DEPTH_M
        # across the box, within the flat friction cone of face-on (never along its 80 mm)
        cone = math.radians(finder.config.flat_friction_cone_deg)
        assert 0.043 - 1e-3 <= g.width_m <= 0.043 / math.cos(cone) + 1e-3
    grasp = Candidate(0, (grasps[0].pregrasp, grasps[0].tcp), "close")
    # the twin's fingers hang 6 mm below LIBERO's: at this height they are in the floor and the grasp is vetoed
    vetoed = world.rollout(grasp, frozenset({"cheese"}))
    assert not vetoed.clean and any(c.b == "table" for c in vetoed.contacts)
    assert fit_twin_fingers(world)
    held = world.rollout(grasp, frozenset({"cheese"}))
    assert held.clean and held.grasped_after == "cheese"


def test_only_a_robot_with_longer_twin_fingers_lets_them_pass_the_table(client, panda_spec):
    world = _world(client, panda_spec)
    assert not fit_twin_fingers(world)


def test_a_long_bottle_is_grasped_near_its_centre_of_mass(client, tmp_path, libero_panda):
    world = _world(client, libero_panda, _bottle(tmp_path))
    finder = _finder(world, "bottle")
    grasps = finder.free_grasps(world.tcp_pose(), 4, q_seed=world.joint_pos_rad())
    assert grasps
    R = world.object_pose("bottle").rotation()
    along = R[:, 0]
    com = world.object_pose("bottle").position + R @ np.array([-0.02, 0.0, 0.0])   # the URDF's inertial origin
    assert np.linalg.norm(finder.com - com) < 1e-3
    best = grasps[0]
    assert abs(float((best.tcp.position - com) @ along)) < 0.02
    assert best.width_m > 0.05     # the body, not the neck


def test_a_long_bottle_goes_into_a_deep_basket_without_shoving_it(client, tmp_path, libero_panda):
    world = _world(client, libero_panda, _bottle(tmp_path), _basket(tmp_path))
    fit_twin_fingers(world)
    g = _finder(world, "bottle").free_grasps(world.tcp_pose(), 1, q_seed=world.joint_pos_rad())[0]
    world.execute_joint_path(*world.plan_joint_path(Candidate(0, (g.pregrasp, g.tcp), "close"))[:3])
    up = Pose(tuple(world.tcp_pose().position + np.array([0.0, 0.0, 0.2])), world.tcp_pose().quat_xyzw)
    world.execute_joint_path(*world.plan_joint_path(Candidate(0, (up,), "keep"))[:3])
    assert world.grasped() == "bottle"
    from planner.grasps import object_geometry

    turns = diagonal_turns(object_geometry(world, "bottle"), object_geometry(world, "basket"))
    assert len(turns) == 2 and all(abs(t) <= math.pi / 2 for t in turns)
    config = PlaceConfig()
    moves = place_moves(world, "bottle", "basket", "inside", world.tcp_pose(), config, np.random.default_rng(0), 6)
    rim = world.object_aabb("basket")[1][2]
    lowest = rim + config.rim_clearance_m - hand_above_tcp_m(world) - 0.01   # the basket's bounding box margin
    goal = {"inside": ["bottle", "basket"]}
    before = world.object_pose("basket").position
    done = 0
    for i, m in enumerate(moves):
        assert m.waypoints[-1].position[2] >= lowest
        r = world.rollout(Candidate(i, m.waypoints, m.gripper, label=m.label), frozenset({"bottle", "basket"}),
                          probe=lambda w: {"done": predicates.evaluate(w, goal, predicates.PLAN_INSIDE_MARGIN)})
        assert np.linalg.norm(r.object_poses_after["basket"].position - before) < 0.02
        done += bool(r.probe["done"]) and m.gripper == "open"
    assert done >= 1


def test_the_planners_inside_rim_is_stricter_than_the_labs(client, tmp_path, panda_spec):
    # a tray 30 cm square: the lab's 20% rim leaves +-12 cm of it inside, the planner's 35% +-9.75 cm
    wall = 0.03
    tray = ObjectSpec("tray", Pose((0.55, 0.0, 0.0)), urdf=_urdf(tmp_path / "tray.urdf", [
        ((0.30, 0.30, 0.01), (0, 0, 0.005)), ((0.01, 0.30, wall), (-0.145, 0, wall / 2)),
        ((0.01, 0.30, wall), (0.145, 0, wall / 2)), ((0.30, 0.01, wall), (0, -0.145, wall / 2)),
        ((0.30, 0.01, wall), (0, 0.145, wall / 2))], 0.5))
    box = ObjectSpec("box", Pose((0.66, 0.0, 0.025)), urdf=_urdf(
        tmp_path / "box.urdf", [((0.03, 0.03, 0.02), (0, 0, 0))], 0.02))
    world = _world(client, panda_spec, tray, box)
    goal = {"inside": ["box", "tray"]}
    assert predicates.evaluate(world, goal)
    assert not predicates.evaluate(world, goal, predicates.PLAN_INSIDE_MARGIN)
    assert predicates.progress(world, goal, predicates.PLAN_INSIDE_MARGIN) < 1.0
