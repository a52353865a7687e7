"""The cluttered tasks (configs/tasks/cluttered_*.yaml) reconstruct: six random_urdfs clutter objects, touching objects,
objects partly outside one camera's view. The lab's scene (truth, randomised per seed as the lab does it) is
rendered by the task's own cameras with their sensor model; the reconstruction sees only the observation.

Every named object is found within the contract's 10 mm / 10 deg, every clutter object is covered by an
obstacle, no obstacle cuts into a named object, and the twin built from the estimate settles (< 5 mm in 1 s).
"""

import os

import numpy as np
import pybullet as p
import pytest

from planner.components import object_models
from planner.task import load_task
from reconstruction import Reconstructor
from robot_io.simlab import randomize_scene
from sim.world import World
from tests.fakes.recon_scenes import REPO, pose_errors, shoot

MAX_TRANS_M = 0.010
MAX_ROT_DEG = 10.0


def _run(task: str, seed: int):
    loaded = load_task(os.path.join(REPO, "configs", "tasks", f"{task}.yaml"))
    task_ = loaded.planner
    scene = randomize_scene(loaded.lab.scene, loaded.lab.randomize, seed)
    shot = shoot(scene, task_.cameras, seed=seed, settle_s=1.0)
    models = object_models(task_)
    with Reconstructor(models, task_.robot, task_.cameras) as rec:
        est = rec.update(shot.obs)
    return loaded, scene, shot, est, models


def _check(task: str, seed: int) -> None:
    loaded, scene, shot, est, models = _run(task, seed)
    named = loaded.planner.objects
    for name in named:
        obj = est.objects[name]
        dt, dr = pose_errors(obj.pose, shot.truth[name], models[name].symmetry)
        assert obj.found and dt <= MAX_TRANS_M and dr <= MAX_ROT_DEG, (task, name, dt, dr, est.notes)
        assert obj.confidence > 0.5, (task, name, obj.confidence)
    assert not [i for i in est.issues if i.kind == "missing"], est.issues
    clutter = [o.name for o in scene.objects if o.name not in named]
    assert len(clutter) >= 4
    parts = np.concatenate([np.asarray(u.mesh_vertices) + u.pose.xyz for u in est.unknown])
    for name in clutter:
        # some obstacle vertex lies within the clutter object's footprint (+ 1.5 cm)
        xy = shot.truth[name].position[:2]
        assert np.min(np.linalg.norm(parts[:, :2] - xy, axis=1)) < 0.045, (task, name)
    twin = est.to_scene(loaded.planner.robot, shot.obs.joint_pos_rad, shot.obs.gripper_width_m, models)
    client = p.connect(p.DIRECT)
    try:
        world = World.from_scene(client, twin)
        before = world.object_poses()
        world.step(240)
        for name in named:
            moved = np.linalg.norm(world.object_pose(name).position - before[name].position)
            assert moved < 0.005, (task, name, moved)
        world.close()
    finally:
        p.disconnect(client)


def test_six_clutter_objects():
    _check("cluttered_five", 1)


@pytest.mark.slow
def test_touching_objects():
    _check("cluttered_touching", 1)


@pytest.mark.slow
def test_objects_partly_outside_one_camera():
    loaded, _, shot, est, _ = _run("cluttered_edge_of_view", 2)
    overhead = next(c for c in loaded.planner.cameras if c.name == "overhead")
    from sim.camera import project_points

    # the blue block straddles the overhead image's edge: some of its corners project outside the image
    corners = shot.truth["blue_block"].matrix() @ np.array([[sx, sy, 0.025, 1.0] for sx in (-0.025, 0.025)
                                                             for sy in (-0.025, 0.025)]).T
    uv, _ = project_points(overhead, corners[:3].T)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < overhead.width) & (uv[:, 1] >= 0) & (uv[:, 1] < overhead.height)
    assert inside.any() and not inside.all()
    _check("cluttered_edge_of_view", 2)
