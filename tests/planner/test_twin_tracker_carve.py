"""A named object swallowed by an unknown obstacle's convex part keeps its place in the twin (LIBERO-Spatial task
4: the bowl in the open drawer, inside the hull of drawer and cabinet): real PyBullet worlds."""

from __future__ import annotations

import itertools

import numpy as np
import pybullet as p
import pybullet_data
import pytest

import configs
from planner.twin_tracker import carve_swallowed
from sim.geometry import Pose
from sim.scene import ObjectSpec, RobotSpec, SceneSpec
from sim.world import World

CUBE = f"{pybullet_data.getDataPath()}/cube_small.urdf"   # 5 cm


def _block(name: str, lo, hi) -> ObjectSpec:
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    centre = (lo + hi) / 2
    verts = [tuple(v - centre) for v in itertools.product(*zip(lo, hi))]
    faces = ((0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3))
    return ObjectSpec(name, Pose(tuple(centre)), mesh_vertices=tuple(verts), mesh_faces=faces, fixed=True)


def _world(client, *objects) -> World:
    robot = RobotSpec.from_yaml(str(configs.find("robots", "panda_libero")))
    return World.from_scene(client, SceneSpec(robot, tuple(objects)))


def test_a_swallowed_object_keeps_its_place_and_the_rest_of_the_part_stays(client):
    # a 5 cm cube standing on a shelf 10 cm up, sunk 4 cm into a block that reaches 14 cm (the hull's top)
    objects = (_block("clutter_0", (0.5, -0.15, 0.0), (0.8, 0.15, 0.14)),
               ObjectSpec("cube", Pose((0.65, 0.0, 0.125)), urdf=CUBE))
    plain = _world(client, *objects)
    plain.step(120)
    thrown = plain.object_pose("cube").position[2] - 0.125
    assert thrown > 0.02            # without the cut the twin throws it out of the part
    p.resetSimulation(physicsClientId=client)

    world = _world(client, *objects)
    cut = carve_swallowed(world, {"cube"}, margin_m=0.02)
    assert [c[:2] for c in cut] == [["clutter_0", "cube"]] and cut[0][2] > 30
    world.step(120)
    assert np.linalg.norm(world.object_pose("cube").position - (0.65, 0.0, 0.125)) < 0.003
    parts = [n for n in world.body_ids if n.startswith("clutter_0_c")]
    assert len(parts) == 5
    lo = np.min([world.object_aabb(n)[0] for n in parts], axis=0)
    hi = np.max([world.object_aabb(n)[1] for n in parts], axis=0)
    assert lo[:2] == pytest.approx([0.5, -0.15], abs=0.01) and hi == pytest.approx([0.8, 0.15, 0.14], abs=0.01)
    assert carve_swallowed(world, {"cube"}) == []      # nothing left to cut


def test_an_object_resting_on_a_part_or_beside_it_is_no_cut(client):
    world = _world(client, _block("clutter_0", (0.5, -0.15, 0.0), (0.8, 0.15, 0.1)),
                   ObjectSpec("on", Pose((0.6, 0.0, 0.125)), urdf=CUBE),
                   ObjectSpec("beside", Pose((0.83, 0.0, 0.025)), urdf=CUBE))
    assert carve_swallowed(world, {"on", "beside"}) == []
    assert set(world.body_ids) == {"clutter_0", "on", "beside"}


def test_the_held_object_is_cut_free_too(client):
    # pinched where it stood inside the part: the column over it is cut out, so it can be lifted
    world = _world(client, _block("clutter_0", (0.5, -0.15, 0.0), (0.8, 0.15, 0.14)),
                   ObjectSpec("cube", Pose((0.65, 0.0, 0.125)), urdf=CUBE))
    world._attach("cube")
    assert world.grasped() == "cube"
    assert [c[:2] for c in carve_swallowed(world, {"cube"})] == [["clutter_0", "cube"]]
