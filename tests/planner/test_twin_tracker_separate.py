"""Neighbours the fits leave touching side by side are set apart in the twin (LIBERO-Spatial's bowl against the
plate's rim): real PyBullet worlds with two cubes, side by side, stacked, fixed."""

from __future__ import annotations

import numpy as np
import pybullet as p
import pybullet_data
import pytest

import configs
from planner.twin_tracker import SEPARATE_GAP_M, SEPARATE_MAX_M, separate_touching
from sim.geometry import Pose
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"   # 5 cm


def _world(client, *objects) -> World:
    robot = RobotSpec.from_yaml(str(configs.find("robots", "panda_libero")))
    world = World.from_scene(client, SceneSpec(robot, tuple(objects)))
    world.step(60)
    return world


def _gap(world, a, b) -> float:
    pts = p.getClosestPoints(world.body_ids[a], world.body_ids[b], 0.1, physicsClientId=world.client)
    return min(c[8] for c in pts)


def test_touching_neighbours_are_set_apart_half_each(client):
    world = _world(client, ObjectSpec("a", Pose((0.5, 0.0, 0.025)), urdf=CUBE),
                   ObjectSpec("b", Pose((0.5505, 0.0, 0.025)), urdf=CUBE))
    ya, yb = world.object_pose("a").position, world.object_pose("b").position
    assert _gap(world, "a", "b") < 0.002
    moved = separate_touching(world)
    assert [m[:2] for m in moved] == [["a", "b"]]
    assert _gap(world, "a", "b") == pytest.approx(SEPARATE_GAP_M, abs=5e-4)
    da = world.object_pose("a").position - ya
    db = world.object_pose("b").position - yb
    assert da[0] < 0 < db[0]                       # pushed apart along the line between them
    assert abs(da[0]) == pytest.approx(abs(db[0]), abs=3e-4)
    assert abs(da[1]) < 1e-4 and abs(da[2]) < 1e-4  # horizontally only
    assert separate_touching(world) == []           # already apart


def test_far_apart_stacked_and_held_are_left_alone(client):
    world = _world(client, ObjectSpec("a", Pose((0.5, 0.0, 0.025)), urdf=CUBE),
                   ObjectSpec("top", Pose((0.5, 0.0, 0.075)), urdf=CUBE),
                   ObjectSpec("far", Pose((0.5, 0.2, 0.025)), urdf=CUBE))
    before = {n: world.object_pose(n).position for n in ("a", "top", "far")}
    assert separate_touching(world) == []
    for n, xyz in before.items():
        assert np.allclose(world.object_pose(n).position, xyz, atol=1e-6)


def test_a_fixed_neighbour_stays_and_a_big_overlap_moves_at_most_the_cap(client):
    world = _world(client, ObjectSpec("wall", Pose((0.5, 0.0, 0.025)), urdf=CUBE, fixed=True),
                   ObjectSpec("b", Pose((0.551, 0.0, 0.025)), urdf=CUBE))
    wall, b = world.object_pose("wall").position, world.object_pose("b").position
    separate_touching(world)
    assert np.allclose(world.object_pose("wall").position, wall, atol=1e-6)
    moved = world.object_pose("b").position - b
    assert 0 < moved[0] <= SEPARATE_MAX_M + 1e-6
    assert _gap(world, "wall", "b") == pytest.approx(SEPARATE_GAP_M, abs=5e-4)
